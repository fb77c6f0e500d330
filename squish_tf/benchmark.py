"""Speed, size and accuracy of every artefact of a model, on this machine.

For a model directory (`model.keras`, plus `spec.json` for a SqueezeNet: any
model dir the job writes) and, optionally, its export directory
(`saved_model/`, `*.tflite`), each artefact is measured the same way:

- file bytes (a SavedModel's bytes are the sum over its directory);
- validation top-1 on the same images for every artefact, fed as the uint8
  pixels a camera gives (float inputs get them cast, quantized inputs get them
  quantized with the input tensor's own scale and zero point), plus the
  agreement of its predicted classes with the Keras model's: how faithful a
  conversion or quantization is, independent of the labels;
- at each batch size: images/sec and latency percentiles (ms per batch) over
  timed runs repeated until both `min_runs` and `min_seconds` are reached,
  after `warmup_runs` untimed ones (tracing, allocation, caches).

What is timed is one inference on a prepared input: `predict_on_batch` for
Keras, the `serving_default` signature for a SavedModel, and
set_tensor + invoke + get_tensor for a LiteRT interpreter. Input preparation
(casting, quantizing) and output dequantization are left out: they are the
same few numpy operations for every artefact.

TFLite files run in `squish_tf.litert.LiteRTRunner`, the runner the export's
parity and the latency model use too (`ai_edge_litert`; TensorFlow's own
`tf.lite.Interpreter` is deprecated), with `num_threads` threads. TensorFlow's
thread pool cannot be resized once its runtime has started; the pipeline main
sets it before anything else, and `settings` records what TensorFlow used.

Speed-ups are measured, not divided. The per-artefact figures above are each
timed alone, and on a shared CPU two of them drift apart by 30% or more; so
the .tflite files that are compared (`comparison_pairs`: every model's fp32
and int8 file against the reference model's fp32 file) are timed again
together, interleaved (`squish_tf.timing.time_interleaved`: A B C A B C ...,
`pair_rounds` rounds, ~`pair_round_seconds` per file per round, one process,
`num_threads` threads), and each pair's speed-up is the median of its
per-round ratios with their min-max (`measure_model_pairs`). benchmark.json keeps
them beside the per-artefact figures:

  "interleaved": {"rounds": 7, "round_seconds": 0.1, "num_threads": 2, "image_size": 64,
                  "batches": {"1": {"invokes": {"ancestor/tflite_fp32": 77, ...},
                                    "load_average": {"start": 2.9, "end": 3.1},
                                    "seconds": 6.1, "errors": {},
                                    "artefacts": {"ancestor/tflite_fp32": {
                                        "images_per_sec": {"median", "min", "max", "q1",
                                                           "q3"},
                                        "latency_ms": {...}, "invokes": 77,
                                        "rounds": 7}}}}},
  "pairs": {"squishednet/tflite_fp32 vs ancestor/tflite_fp32": {
                "1": {"ratio_median": 1.65, "ratio_min": 1.52, "ratio_max": 1.71,
                      "rounds": 7, "ratios": [...]}, "8": {...}}}

A pair's ratio is the first file's speed over the second's (> 1: faster);
`litert_fields` reads speed-ups from here and nowhere else.

The network is fully convolutional, so its speed-up is also measured at the
resolutions of `pair_resolutions` (224 px by default: the paper's and most
cameras' size): every model in an fp32-vs-fp32 pair is rebuilt at that size
with the same weights and converted to fp32 TFLite as the export does
(`speed_pairs.tflite_at_size`, in memory: nothing is written to the export),
and those files are timed interleaved at batch 1 as above (a 224 px invoke
takes ~12x a 64 px one, so each round holds fewer invokes: the same
`pair_round_seconds`). They sit under "resolutions", one entry per size:

  "resolutions": {"224": {"image_size": 224, "batch_sizes": [1],
                          "files": {"ancestor/tflite_fp32": {"bytes": 2950000}, ...},
                          "errors": {"mobilenet_v3_small": "... cannot be rebuilt ..."},
                          "convert_seconds": 21.0,
                          "interleaved": {... as above ...},
                          "pairs": {"squishednet/tflite_fp32 vs ancestor/tflite_fp32": {
                              "1": {"ratio_median": 3.1, ...}}}}}
"""

import dataclasses
import fnmatch
import importlib.metadata
import os
import platform
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from squish_tf import data as data_lib
from squish_tf import litert as litert_lib
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import speed_pairs as pairs_lib
from squish_tf import timing as timing_lib

BENCHMARK_FILE = "benchmark.json"
# 2: "interleaved" and "pairs" (speed-ups measured interleaved); 3: "resolutions" (the
# fp32 pairs again at 224 px).
BENCHMARK_VERSION = 3
SAVED_MODEL_DIR = "saved_model"
SIGNATURE = "serving_default"
# The export's standard artefacts, in the order tables list them. Any other
# `<name>.tflite` in an export dir is benchmarked too, as `tflite_<name>`.
ARTEFACT_ORDER = ("keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic",
                  "tflite_int8", "tflite_qat_int8")
# Preferred output keys of a SavedModel signature with several outputs.
_OUTPUT_KEYS = ("probabilities", "output_0", "softmax", "logits")
# Sizes the fp32 pairs are timed at besides the run's own (BenchmarkConfig.pair_resolutions).
RESOLUTIONS = (224,)
# Batch sizes at those resolutions: a camera's one frame.
RESOLUTION_BATCH_SIZES = (1,)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """How to measure; mirrors the benchmark flags.

  Attributes:
    batch_sizes: batch sizes to time, each >= 1.
    num_threads: LiteRT interpreter threads.
    min_seconds: keep timing a batch size until this much time has passed...
    min_runs: ...and at least this many timed runs were made.
    warmup_runs: untimed runs before timing each batch size.
    eval_batch_size: batch size of the accuracy pass (results do not depend on it).
    formats: artefact names or fnmatch patterns to keep (e.g. ("keras",
      "tflite_*")); None keeps every artefact found.
    pair_rounds: interleaved rounds of the compared .tflite files (0: no
      pairs, hence no speed-ups).
    pair_round_seconds: each file's share of a round, roughly: its invokes
      per round are calibrated to take this long...
    pair_min_invokes, pair_max_invokes: ...within these bounds.
    pair_resolutions: square input sizes, besides the models' own, at which
      the fp32 pairs are timed again (batch 1), each model rebuilt there with
      the same weights; () for none. A size equal to the models' own is
      skipped (already measured).
  """

  batch_sizes: Tuple[int, ...] = (1, 8)
  num_threads: int = 2
  min_seconds: float = 0.5
  min_runs: int = 10
  warmup_runs: int = 3
  eval_batch_size: int = 32
  formats: Optional[Tuple[str, ...]] = None
  pair_rounds: int = timing_lib.DEFAULT_ROUNDS
  pair_round_seconds: float = timing_lib.DEFAULT_ROUND_SECONDS
  pair_min_invokes: int = timing_lib.DEFAULT_MIN_INVOKES
  pair_max_invokes: int = timing_lib.DEFAULT_MAX_INVOKES
  pair_resolutions: Tuple[int, ...] = RESOLUTIONS

  def __post_init__(self):
    object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
    object.__setattr__(self, "pair_resolutions", tuple(self.pair_resolutions))
    for size in self.pair_resolutions:
      if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"pair_resolutions must be positive image sizes (e.g. (224,)), got "
                         f"{size!r} in {self.pair_resolutions!r}.")
    object.__setattr__(self, "pair_resolutions",
                       tuple(dict.fromkeys(int(s) for s in self.pair_resolutions)))
    if self.formats is not None:
      object.__setattr__(self, "formats", tuple(self.formats))
    if not self.batch_sizes:
      raise ValueError("batch_sizes is empty; give at least one batch size, e.g. (1, 8).")
    for size in self.batch_sizes:
      if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"batch sizes must be positive integers, got {size!r} in "
                         f"{self.batch_sizes!r}.")
    if len(set(self.batch_sizes)) != len(self.batch_sizes):
      raise ValueError(f"batch_sizes lists a size twice: {self.batch_sizes!r}.")
    object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
    for field, minimum in (("num_threads", 1), ("min_runs", 1), ("warmup_runs", 0),
                           ("eval_batch_size", 1), ("pair_rounds", 0), ("pair_min_invokes", 1),
                           ("pair_max_invokes", 1)):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}.")
    if not self.min_seconds >= 0:
      raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds!r}.")
    if not self.pair_round_seconds > 0:
      raise ValueError(f"pair_round_seconds must be > 0, got {self.pair_round_seconds!r}.")
    if self.pair_min_invokes > self.pair_max_invokes:
      raise ValueError(f"pair_min_invokes ({self.pair_min_invokes}) exceeds pair_max_invokes "
                       f"({self.pair_max_invokes}).")
    if self.formats is not None and not self.formats:
      raise ValueError("formats is empty; pass None to benchmark every artefact, or names such "
                       f"as {list(ARTEFACT_ORDER)}.")


# -- finding artefacts -----------------------------------------------------------


def artefact_name(tflite_file: str) -> str:
  """`model_int8.tflite` -> `tflite_int8`; `other.tflite` -> `tflite_other`."""
  stem = os.path.basename(tflite_file)[:-len(".tflite")]
  if stem.startswith("model_"):
    stem = stem[len("model_"):]
  return f"tflite_{stem}"


def find_artefacts(model_dir: Optional[str],
                   export_dir: Optional[str] = None,
                   formats: Optional[Sequence[str]] = None) -> Dict[str, str]:
  """The benchmarkable artefacts of a model, as {name: path}, in table order.

  Args:
    model_dir: a model directory (with or without `spec.json`: any dir the
      job writes); its `model.keras` is the `keras` artefact. None when only
      an export is benchmarked.
    export_dir: an export directory (`saved_model/`, `*.tflite`), or None for
      none. When given it must exist and hold at least one of them.
    formats: names or fnmatch patterns to keep; None keeps all.

  Raises:
    ValueError: the export dir is missing or empty, or nothing is left to
      benchmark (the message lists what was found).
  """
  found: Dict[str, str] = {}
  if model_dir is not None:
    keras_path = os.path.join(model_dir, model_io.MODEL_FILE)
    if os.path.isfile(keras_path):
      found["keras"] = keras_path
  if export_dir is not None:
    if not os.path.isdir(export_dir):
      raise ValueError(f"Export directory {export_dir!r} does not exist. Export the model first "
                       "(squish-export), or pass the --export_dir that holds its saved_model/ and "
                       ".tflite files.")
    exported = _exported_files(export_dir)
    if not exported:
      listing = sorted(os.listdir(export_dir))
      raise ValueError(f"Export directory {export_dir!r} holds nothing to benchmark: expected "
                       f"{SAVED_MODEL_DIR}/ (with saved_model.pb) or *.tflite files, found "
                       f"{listing}. Re-run the export, or pass the right --export_dir.")
    found.update(exported)
  if not found:
    holds = (f"holds {sorted(os.listdir(model_dir))}" if model_dir and os.path.isdir(model_dir)
             else "does not exist")
    raise ValueError(f"Nothing to benchmark: model dir {model_dir!r} {holds}, with no "
                     f"{model_io.MODEL_FILE}, and no export directory was given. Pass a model dir "
                     "the job wrote (ancestor/, squishednet/, baselines/<name>/, ...) or an "
                     "--export_dir with .tflite files.")
  ordered = {name: found[name] for name in ARTEFACT_ORDER if name in found}
  ordered.update({name: path for name, path in found.items() if name not in ordered})
  if formats is None:
    return ordered
  kept = {name: path for name, path in ordered.items()
          if any(fnmatch.fnmatchcase(name, pattern) for pattern in formats)}
  if not kept:
    raise ValueError(f"No artefact matches formats {list(formats)}; found {list(ordered)}. "
                     "Pass some of those names (fnmatch patterns such as tflite_* work too).")
  return kept


def _exported_files(export_dir: Optional[str]) -> Dict[str, str]:
  """{artefact name: path} of an export dir's SavedModel and .tflite files ({} for none)."""
  if export_dir is None or not os.path.isdir(export_dir):
    return {}
  exported: Dict[str, str] = {}
  saved_model = os.path.join(export_dir, SAVED_MODEL_DIR)
  if os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
    exported["saved_model"] = saved_model
  for name in sorted(os.listdir(export_dir)):
    path = os.path.join(export_dir, name)
    if name.endswith(".tflite") and os.path.isfile(path):
      exported[artefact_name(name)] = path
  return exported


def artefact_bytes(path: str) -> int:
  """A file's size, or the sum over a directory's files (a SavedModel)."""
  if os.path.isfile(path):
    return os.path.getsize(path)
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
  return total


# -- running artefacts -----------------------------------------------------------


class _Runner:
  """One loaded artefact. `feed` prepares uint8 pixels, `invoke` is what is timed."""

  input_size: Tuple[int, int]  # (height, width)
  input_info: Dict[str, Any]  # the input's dtype and quantization, for the record

  def feed(self, pixels: np.ndarray) -> Any:
    raise NotImplementedError

  def invoke(self, feed: Any) -> np.ndarray:
    raise NotImplementedError

  def probabilities(self, raw: np.ndarray) -> np.ndarray:
    return np.asarray(raw, np.float32)


class _KerasRunner(_Runner):

  def __init__(self, path: str):
    import keras  # pylint: disable=g-import-not-at-top

    self._model = keras.models.load_model(path, compile=False)
    shape = tuple(self._model.input_shape)
    self.input_size = (shape[1], shape[2])
    self.input_info = {"dtype": "float32"}

  def feed(self, pixels):
    return pixels.astype(np.float32)

  def invoke(self, feed):
    return self._model.predict_on_batch(feed)


class _SavedModelRunner(_Runner):

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    self._tf = tf
    # Keep the loaded object: its signatures use its variables, which die with it.
    self._loaded = tf.saved_model.load(path)
    signatures = self._loaded.signatures
    if SIGNATURE not in signatures:
      raise ValueError(f"SavedModel {path!r} has no {SIGNATURE!r} signature (it has "
                       f"{sorted(signatures)}); re-export the model.")
    self._function = signatures[SIGNATURE]
    _, inputs = self._function.structured_input_signature
    if len(inputs) != 1:
      raise ValueError(f"SavedModel {path!r}: {SIGNATURE} takes {len(inputs)} inputs "
                       f"({sorted(inputs)}); an image classifier takes one image batch.")
    (self._input_name, input_spec), = inputs.items()
    self._dtype = input_spec.dtype
    self.input_size = (input_spec.shape[1], input_spec.shape[2])
    self.input_info = {"dtype": self._dtype.name}
    outputs = self._function.structured_outputs
    preferred = [key for key in _OUTPUT_KEYS if key in outputs]
    self._output_key = preferred[0] if preferred else sorted(outputs)[0]

  def feed(self, pixels):
    return self._tf.constant(pixels.astype(self._dtype.as_numpy_dtype))

  def invoke(self, feed):
    return self._function(**{self._input_name: feed})[self._output_key].numpy()


class _LiteRTArtefact(_Runner):
  """A .tflite file in the shared runner (`squish_tf.litert.LiteRTRunner`)."""

  def __init__(self, path: str, num_threads: int):
    self.runner = litert_lib.LiteRTRunner(path, num_threads=num_threads)
    self.input_size = self.runner.input_size
    self.input_info = self.runner.input_info()

  def feed(self, pixels):
    self.runner.resize(pixels.shape[0])
    return self.runner.quantize_input(pixels)

  def invoke(self, feed):
    self.runner.set_quantized(feed)
    self.runner.invoke()
    return self.runner.raw_output()

  def probabilities(self, raw):
    return self.runner.dequantize_output(raw)


# A fixed-batch graph that cannot take a batch size.
_UnsupportedBatch = litert_lib.UnsupportedBatch


def _load_runner(name: str, path: str, config: BenchmarkConfig) -> _Runner:
  if name == "keras":
    return _KerasRunner(path)
  if name == "saved_model":
    return _SavedModelRunner(path)
  return _LiteRTArtefact(path, config.num_threads)


# -- measuring -------------------------------------------------------------------


# Timing itself lives in squish_tf.timing; these names stay for callers.
time_runs = timing_lib.time_runs
latency_stats = timing_lib.latency_stats


def _predict_classes(runner: _Runner, pixels: np.ndarray, batch_size: int) -> np.ndarray:
  classes = []
  for start in range(0, len(pixels), batch_size):
    raw = runner.invoke(runner.feed(pixels[start:start + batch_size]))
    classes.append(np.argmax(runner.probabilities(raw), axis=-1))
  return np.concatenate(classes).astype(np.int64)


_timing_batch = pairs_lib.timing_batch


def benchmark_artefact(name: str, path: str, pixels: Optional[np.ndarray] = None,
                       labels: Optional[np.ndarray] = None,
                       config: BenchmarkConfig = BenchmarkConfig(),
                       reference_classes: Optional[np.ndarray] = None
                      ) -> Tuple[Dict[str, Any], Optional[np.ndarray]]:
  """Bytes, top-1 and speed of one artefact (see the module docstring).

  Args:
    name: the artefact's name (`keras`, `saved_model`, `tflite_*`).
    path: its file (directory for a SavedModel).
    pixels: uint8 [N, H, W, 3] validation images, or None (speed only, on noise).
    labels: int [N] labels of `pixels`, or None (no top-1).
    config: how to measure.
    reference_classes: predicted classes of a reference artefact on `pixels`,
      for `agreement`.

  Returns:
    ({"path", "bytes", "input", "top1", "agreement", "batches": {"1": {...}}},
     the predicted classes on `pixels` or None).
  """
  runner = _load_runner(name, path, config)
  if (pixels is not None and None not in runner.input_size and
      tuple(pixels.shape[1:3]) != tuple(runner.input_size)):
    height, width = runner.input_size
    raise ValueError(f"{path!r} takes {height}x{width} images but the evaluation images are "
                     f"{pixels.shape[1]}x{pixels.shape[2]}; load them at --image_size={height}.")
  result: Dict[str, Any] = {"path": path, "bytes": artefact_bytes(path),
                            "input": runner.input_info, "top1": None, "agreement": None}
  classes = None
  if pixels is not None and len(pixels):
    try:
      classes = _predict_classes(runner, pixels, config.eval_batch_size)
    except _UnsupportedBatch:
      classes = _predict_classes(runner, pixels, 1)  # fixed-batch graphs still run one by one
    if labels is not None:
      result["top1"] = float(np.mean(classes == np.asarray(labels).reshape(-1)))
    if reference_classes is not None:
      result["agreement"] = float(np.mean(classes == reference_classes))
  batches: Dict[str, Any] = {}
  for batch_size in config.batch_sizes:
    try:
      feed = runner.feed(_timing_batch(pixels, batch_size, runner.input_size))
      latencies = time_runs(lambda feed=feed: runner.invoke(feed), config.min_seconds,
                            config.min_runs, config.warmup_runs)
    except _UnsupportedBatch as error:
      batches[str(batch_size)] = {"error": str(error)}
      continue
    batches[str(batch_size)] = latency_stats(latencies, batch_size)
  result["batches"] = batches
  return result, classes


def benchmark_model(model_dir: Optional[str],
                    export_dir: Optional[str] = None,
                    images: Optional[np.ndarray] = None,
                    labels: Optional[np.ndarray] = None,
                    config: BenchmarkConfig = BenchmarkConfig(),
                    log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
  """Benchmarks every artefact of one model.

  Args:
    model_dir: the model directory (`model.keras`, and `spec.json` for a
      SqueezeNet); params and MACs come from its spec, or are read off the
      Keras model for one without (`describe_model`).
    export_dir: its export directory, or None to time only the Keras model.
      When given it must exist and hold a SavedModel or .tflite files; formats
      it lacks are skipped and listed under `missing`.
    images: [N, H, W, 3] validation images in [0, 255] (any dtype; rounded to
      uint8 once so every artefact sees the same pixels), or None to time on
      noise without accuracy.
    labels: int [N] labels of `images`, or None.
    config: how to measure.
    log: called with one line per artefact as it finishes (e.g. print).

  Returns:
    {"model_dir", "export_dir", "params", "size_mb", "macs", "image_size",
     "artefacts": {name: {...}}, "missing": [standard names not found]}.

  Raises:
    ValueError: nothing to benchmark, a missing export dir, images of the
      wrong size or count.
  """
  pixels = data_lib.as_pixels(images) if images is not None else None
  if labels is not None:
    if pixels is None:
      raise ValueError("labels were given without images; pass both or neither.")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(pixels):
      raise ValueError(f"{len(pixels)} images but {len(labels)} labels; they must pair up.")
  artefacts = find_artefacts(model_dir, export_dir, config.formats)
  entry: Dict[str, Any] = {"model_dir": model_dir, "export_dir": export_dir}
  described = describe_model(model_dir, export_dir)
  entry.update({field: described[field] for field in MODEL_FIELDS})
  if pixels is not None and entry.get("image_size") is not None:
    if tuple(pixels.shape[1:3]) != tuple(entry["image_size"][:2]):
      height, width = entry["image_size"][:2]
      raise ValueError(f"{model_dir!r} takes {height}x{width} images but the evaluation images "
                       f"are {pixels.shape[1]}x{pixels.shape[2]}; load them at "
                       f"--image_size={height}.")
  results: Dict[str, Any] = {}
  reference = None
  for name, path in artefacts.items():
    result, classes = benchmark_artefact(name, path, pixels, labels, config, reference)
    if reference is None and classes is not None:
      reference = classes  # the first artefact (Keras when present) is the reference
      result["agreement"] = 1.0
    results[name] = result
    if log is not None:
      log(_artefact_line(name, result))
  entry["reference_artefact"] = next(iter(results)) if pixels is not None else None
  entry["artefacts"] = results
  expected = ARTEFACT_ORDER if export_dir is not None else ("keras",)
  entry["missing"] = [name for name in expected if name not in artefacts and
                      (config.formats is None or
                       any(fnmatch.fnmatchcase(name, p) for p in config.formats))]
  return entry


def benchmark_models(model_dirs: Mapping[str, Union[str, Mapping[str, Optional[str]]]],
                     images: Optional[np.ndarray] = None,
                     labels: Optional[np.ndarray] = None,
                     config: BenchmarkConfig = BenchmarkConfig(),
                     log: Optional[Callable[[str], None]] = None,
                     pairs: Union[str, Sequence[Tuple[str, str]], None] = "auto"
                    ) -> Dict[str, Any]:
  """Benchmarks several models on the same images: the benchmark.json dict.

  Args:
    model_dirs: {name: model_dir} (Keras model only) or {name: {"model_dir":
      ..., "export_dir": ...}}, e.g. {"ancestor": {...}, "squishednet": {...}}.
    images, labels, config, log: as in `benchmark_model`.
    pairs: the .tflite files to time interleaved, as (subject, reference)
      keys ("squishednet/tflite_fp32", "ancestor/tflite_fp32"); "auto": every
      .tflite file against the first model's fp32 file (`comparison_pairs`);
      None: none.

  Returns:
    {"version", "settings": {...}, "models": {name: benchmark_model(...)},
     "interleaved": {...}, "pairs": {...}} (see the module docstring).
  """
  if not model_dirs:
    raise ValueError("No models to benchmark; pass {name: model_dir}.")
  # Settings (and the machine's load) before the first timing.
  run_settings = settings(config, eval_images=None if images is None else len(images))
  models: Dict[str, Any] = {}
  for name, where in model_dirs.items():
    if isinstance(where, str):
      where = {"model_dir": where, "export_dir": None}
    unknown = sorted(set(where) - {"model_dir", "export_dir"})
    if unknown:
      raise ValueError(f"Model {name!r}: unknown keys {unknown}; expected model_dir and "
                       "export_dir.")
    if log is not None:
      log(f"{name}:")
    models[name] = benchmark_model(where.get("model_dir"), where.get("export_dir"), images,
                                   labels, config, log=log)
  result = {"version": BENCHMARK_VERSION, "settings": run_settings, "models": models}
  if isinstance(pairs, str):
    if pairs != "auto":
      raise ValueError(f"pairs must be 'auto', None or a list of (subject, reference) keys, "
                       f"got {pairs!r}.")
    pairs = comparison_pairs(models, reference=next(iter(models)), artefacts=None)
  if pairs:
    pixels = data_lib.as_pixels(images) if images is not None else None
    result.update(measure_model_pairs(models, pairs, pixels, config, log=log))
  if hasattr(os, "getloadavg"):
    run_settings["machine"]["load_average_1min_end"] = os.getloadavg()[0]
  return result


# -- speed-ups, measured interleaved ----------------------------------------------

artefact_key = pairs_lib.artefact_key
pair_key = pairs_lib.pair_key
# What the report's speed-ups compare: each model's files against the reference's fp32 file.
PAIRED_ARTEFACTS = ("tflite_fp32", "tflite_int8")
REFERENCE_ARTEFACT = "tflite_fp32"


def comparison_pairs(models: Mapping[str, Mapping[str, Any]], reference: str = "ancestor",
                     reference_artefact: str = REFERENCE_ARTEFACT,
                     artefacts: Optional[Sequence[str]] = PAIRED_ARTEFACTS
                    ) -> List[Tuple[str, str]]:
  """(subject, reference) keys of the files whose speed-up the report shows.

  Args:
    models: benchmark.json's "models" ({name: {"artefacts": {...}}}).
    reference: the model speed-ups are over.
    reference_artefact: its file they are over.
    artefacts: the files of every model compared against it (None: every
      .tflite file); a model's file is not paired with itself.

  Returns:
    e.g. [("ancestor/tflite_int8", "ancestor/tflite_fp32"),
          ("squishednet/tflite_fp32", "ancestor/tflite_fp32"),
          ("squishednet/tflite_int8", "ancestor/tflite_fp32"), ...]; empty when
    the reference has no such file.
  """
  base = artefact_key(reference, reference_artefact)
  if reference_artefact not in ((models.get(reference) or {}).get("artefacts") or {}):
    return []
  out: List[Tuple[str, str]] = []
  for name, entry in models.items():
    for artefact in (entry.get("artefacts") or {}):
      if not artefact.startswith("tflite_"):
        continue
      if artefacts is not None and artefact not in artefacts:
        continue
      key = artefact_key(name, artefact)
      if key != base:
        out.append((key, base))
  return out


def measure_model_pairs(models: Mapping[str, Mapping[str, Any]],
                        pairs: Sequence[Tuple[str, str]], pixels: Optional[np.ndarray] = None,
                        config: BenchmarkConfig = BenchmarkConfig(),
                        log: Optional[Callable[[str], None]] = None,
                        convert: Callable[[str, int], bytes] = pairs_lib.tflite_at_size
                       ) -> Dict[str, Any]:
  """Times benchmarked .tflite files interleaved: "interleaved", "pairs" and "resolutions".

  Args:
    models: benchmark.json's "models"; keys "model/artefact" name their files.
    pairs: (subject, reference) keys, e.g. from `comparison_pairs`.
    pixels: uint8 images to time on (noise when None).
    config: num_threads, batch_sizes and the pair_* settings.
    log: called with one line per pair and batch size.
    convert: (model_dir, image_size) -> fp32 .tflite bytes at that size, for
      `config.pair_resolutions` (`speed_pairs.tflite_at_size`; tests pass a
      stand-in).
  """
  if not pairs or config.pair_rounds == 0:
    return {}
  result = _measure_files(models, pairs, pixels, config, log)
  result["interleaved"]["image_size"] = run_image_size(models, pairs[0][1])
  resolutions = {}
  for size in config.pair_resolutions:
    measured = measure_pairs_at_size(models, pairs, size, config, log, convert)
    if measured is not None:
      resolutions[str(size)] = measured
  if resolutions:
    result["resolutions"] = resolutions
  return result


def run_image_size(models: Mapping[str, Mapping[str, Any]], key: str) -> Optional[int]:
  """The input height of the file "model/artefact" as benchmarked (the run's resolution)."""
  model, artefact = key.split("/", 1)
  entry = models.get(model) or {}
  size = entry.get("image_size")
  if size:
    return int(size[0])
  path = ((entry.get("artefacts") or {}).get(artefact) or {}).get("path")
  if path and os.path.isfile(path):
    return litert_lib.LiteRTRunner(path).input_size[0]
  return None


def measure_pairs_at_size(models: Mapping[str, Mapping[str, Any]],
                          pairs: Sequence[Tuple[str, str]], image_size: int,
                          config: BenchmarkConfig = BenchmarkConfig(),
                          log: Optional[Callable[[str], None]] = None,
                          convert: Callable[[str, int], bytes] = pairs_lib.tflite_at_size
                         ) -> Optional[Dict[str, Any]]:
  """The fp32-vs-fp32 pairs again, every model rebuilt at image_size: one "resolutions" entry.

  Each model named in such a pair is converted once (`convert(model_dir,
  image_size)`, in memory); a model that cannot be rebuilt there is listed
  under "errors" and its pairs hold {"error": ...}. The files run interleaved
  at `RESOLUTION_BATCH_SIZES` with the config's rounds and round seconds.

  Returns:
    {"image_size", "batch_sizes", "files": {key: {"bytes"}}, "errors":
     {model: message}, "convert_seconds", "interleaved", "pairs"} (see the
    module docstring), or None when no pair is fp32 against fp32 or the
    files already run at image_size.
  """
  chosen = [(s, r) for s, r in pairs if s.endswith("/" + REFERENCE_ARTEFACT)
            and r.endswith("/" + REFERENCE_ARTEFACT)]
  if not chosen or run_image_size(models, chosen[0][1]) == int(image_size):
    return None
  started = time.perf_counter()
  files: Dict[str, bytes] = {}
  errors: Dict[str, str] = {}
  converted: Dict[str, bytes] = {}  # by model dir: two names for one model convert once
  for key in dict.fromkeys(k for pair in chosen for k in (pair[1], pair[0])):
    model = key.split("/", 1)[0]
    model_dir = (models.get(model) or {}).get("model_dir")
    try:
      if not model_dir:
        raise ValueError(f"benchmark.json records no model_dir for {model!r}, so it cannot be "
                         "rebuilt at another size.")
      if model_dir not in converted:
        converted[model_dir] = convert(model_dir, int(image_size))
      files[key] = converted[model_dir]
    except Exception as error:  # pylint: disable=broad-except
      # One model that will not rebuild or convert at this size (a baseline whose
      # graph fixes it) loses its pair, not the benchmark.
      errors[model] = str(error) if isinstance(error, ValueError) else (
          f"{type(error).__name__}: {error}")
      if log is not None:
        log(f"  {model} at {image_size} px: {error}")
  entry: Dict[str, Any] = {
      "image_size": int(image_size), "batch_sizes": list(RESOLUTION_BATCH_SIZES),
      "files": {key: {"bytes": len(content)} for key, content in files.items()},
      "errors": errors, "convert_seconds": time.perf_counter() - started}
  timed = [(s, r) for s, r in chosen if s in files and r in files]
  measured: Dict[str, Any] = {"interleaved": {}, "pairs": {}}
  if timed:
    if log is not None:
      log(f"speed-ups at {image_size} px, fp32 rebuilt with the same weights, interleaved "
          f"({config.pair_rounds} rounds, {config.num_threads} threads):")
    measured = pairs_lib.measure_pairs(
        files, timed, RESOLUTION_BATCH_SIZES, None, config.num_threads, config.pair_rounds,
        config.pair_round_seconds, config.pair_min_invokes, config.pair_max_invokes,
        max(config.warmup_runs, 1), log=log)
  for subject, reference in chosen:
    if (subject, reference) not in timed:
      failed = [errors[k.split("/", 1)[0]] for k in (subject, reference)
                if k.split("/", 1)[0] in errors]
      measured["pairs"][pairs_lib.pair_key(subject, reference)] = {
          str(size): {"error": "; ".join(failed)} for size in RESOLUTION_BATCH_SIZES}
  entry.update(interleaved=measured["interleaved"], pairs=measured["pairs"])
  return entry


def _measure_files(models: Mapping[str, Mapping[str, Any]], pairs: Sequence[Tuple[str, str]],
                   pixels: Optional[np.ndarray], config: BenchmarkConfig,
                   log: Optional[Callable[[str], None]]) -> Dict[str, Any]:
  """The pairs of the benchmarked files themselves: "interleaved" and "pairs"."""
  known = {artefact_key(model, artefact): art["path"]
           for model, entry in models.items()
           for artefact, art in (entry.get("artefacts") or {}).items()
           if artefact.startswith("tflite_")}
  files: Dict[str, str] = {}
  for key in dict.fromkeys(k for pair in pairs for k in pair):
    if key not in known:
      raise ValueError(f"Pair member {key!r} is not a benchmarked .tflite file; expected one of "
                       f"{sorted(known)} ('<model>/tflite_<format>').")
    files[key] = known[key]
  if log is not None:
    log(f"speed-ups, interleaved ({config.pair_rounds} rounds, {config.num_threads} threads):")
  return pairs_lib.measure_pairs(files, pairs, config.batch_sizes, pixels, config.num_threads,
                                 config.pair_rounds, config.pair_round_seconds,
                                 config.pair_min_invokes, config.pair_max_invokes,
                                 max(config.warmup_runs, 1), log=log)


# What benchmark.json records of a model beside its artefacts (`describe_model`'s keys).
MODEL_FIELDS = ("params", "size_mb", "macs", "image_size")


def describe_model(model_dir: Optional[str], export_dir: Optional[str] = None) -> Dict[str, Any]:
  """Size, MACs, input and classes of a model dir, whatever made it.

  A SqueezeNet's figures come from its `spec.json` (analytic). Any other
  model dir the job writes (the MobileNetV3 baseline: `model.keras` and
  `metrics.json`, no spec) has them read off its Keras model: deployed
  parameters (batch norm folded), their float32 size, and the MACs of its
  convolutions and dense layers. With no Keras model either, the first
  .tflite file of `export_dir` gives the input size and classes; params and
  MACs are then unknown (None).

  Args:
    model_dir: a model directory, or None when only an export is benchmarked.
    export_dir: its export directory, or None.

  Returns:
    {"params", "size_mb", "macs", "image_size": [H, W, C], "num_classes",
     "source": "spec.json" | "model.keras" | a .tflite path | None}.

  Raises:
    ValueError: `model_dir` does not exist, or neither it nor `export_dir`
      holds a model (the message lists what it holds).
  """
  unknown: Dict[str, Any] = {"params": None, "size_mb": None, "macs": None, "image_size": None,
                             "num_classes": None, "source": None}
  if model_dir is not None:
    if not os.path.isdir(model_dir):
      model_io.read_spec(model_dir)  # raises: the directory does not exist, and what to pass
    if os.path.isfile(os.path.join(model_dir, model_io.SPEC_FILE)):
      spec = model_io.read_spec(model_dir)
      return {"params": spec.params(), "size_mb": spec.size_mb(), "macs": spec.macs(),
              "image_size": list(spec.input_shape), "num_classes": spec.num_classes,
              "source": model_io.SPEC_FILE}
    keras_path = os.path.join(model_dir, model_io.MODEL_FILE)
    if os.path.isfile(keras_path):
      return _describe_keras(keras_path)
  tflite = sorted(path for name, path in (_exported_files(export_dir) or {}).items()
                  if name.startswith("tflite_"))
  if tflite:
    preferred = [path for path in tflite if artefact_name(path) == "tflite_fp32"]
    runner = litert_lib.LiteRTRunner((preferred or tflite)[0], num_threads=1)
    return dict(unknown, image_size=list(runner.input_shape),
                num_classes=int(runner.output_details["shape"][-1]),
                source=(preferred or tflite)[0])
  if model_dir is None:
    return unknown
  raise ValueError(f"{model_dir!r} holds no model: expected {model_io.MODEL_FILE} (with "
                   f"{model_io.SPEC_FILE} for a SqueezeNet), or an export directory with .tflite "
                   f"files; it holds {sorted(os.listdir(model_dir))}. Pass a model dir the job "
                   "wrote (ancestor/, squishednet/, generations/gen_NNN/cand_MM/, "
                   "baselines/<name>/), or re-run the command that makes it.")


def _describe_keras(path: str) -> Dict[str, Any]:
  """`describe_model` of a Keras model that is not a NetSpec (e.g. keras.applications)."""
  import keras  # pylint: disable=g-import-not-at-top
  from squish_tf import baselines as baselines_lib  # pylint: disable=g-import-not-at-top

  model = keras.models.load_model(path, compile=False)
  params = baselines_lib.deployed_params(model)
  return {"params": params, "size_mb": metrics_lib.size_mb(params),
          "macs": baselines_lib._keras_macs(model),  # pylint: disable=protected-access
          "image_size": [int(v) for v in model.input_shape[1:]],
          "num_classes": int(model.output_shape[-1]), "source": model_io.MODEL_FILE}


def settings(config: BenchmarkConfig, eval_images: Optional[int] = None) -> Dict[str, Any]:
  """The benchmark's settings and the machine it ran on."""
  out = dataclasses.asdict(config)
  out["batch_sizes"] = list(config.batch_sizes)
  out["formats"] = None if config.formats is None else list(config.formats)
  out["eval_images"] = eval_images
  out["machine"] = machine_info()
  return out


def machine_info() -> Dict[str, Any]:
  """Platform, CPU and library versions: what a timing depends on."""
  info: Dict[str, Any] = {
      "platform": platform.platform(),
      "machine": platform.machine(),
      "processor": _cpu_model() or platform.processor() or None,
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
  }
  if hasattr(os, "sched_getaffinity"):
    info["usable_cpus"] = len(os.sched_getaffinity(0))
  if hasattr(os, "getloadavg"):
    # A load above the CPU count means other work shared the cores: noisy timings.
    info["load_average_1min"] = os.getloadavg()[0]
  for package in ("tensorflow", "keras", "ai-edge-litert"):
    try:
      info[package.replace("-", "_")] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      info[package.replace("-", "_")] = None
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
  except ImportError:
    pass
  return info


def _cpu_model() -> Optional[str]:
  try:
    with open("/proc/cpuinfo", "r", encoding="utf-8") as handle:
      for line in handle:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


# -- writing and showing -----------------------------------------------------------


def write_benchmark(path: str, result: Mapping[str, Any]) -> None:
  """Writes a benchmark dict as JSON, atomically."""
  model_io.write_json(path, result)


def read_benchmark(path: str) -> Dict[str, Any]:
  return model_io.read_json(path)


def litert_fields(result: Mapping[str, Any], artefact: str = "tflite_fp32",
                  reference: str = "ancestor",
                  statistic: str = "images_per_sec",
                  reference_artefact: str = REFERENCE_ARTEFACT) -> Dict[str, Dict[str, Any]]:
  """Per model, the results.json fields a benchmark provides.

  Speed-ups come from the interleaved pairs ("pairs": `artefact` of the model
  vs `reference_artefact` of `reference`), never from dividing two separately
  timed speeds: a model whose pair was not measured has None. The reference's
  own file is 1.0 by definition.

  Args:
    result: a benchmark dict (`benchmark_models`).
    artefact: whose speed counts as "LiteRT images/sec".
    reference: the model speed-ups are relative to.
    statistic: "images_per_sec" (throughput over all timed runs) or
      "images_per_sec_p50" (the median run's; robust on a busy machine).
    reference_artefact: the reference's file speed-ups are over (fp32: the
      int8 speed-up is over the fp32 ancestor).

  Returns:
    {model: {"tflite_fp32_bytes", "tflite_int8_bytes",
             "litert_images_per_sec": {"1": ...},
             "speedup_vs_ancestor": {"1": median of the per-round ratios},
             "speedup_vs_ancestor_range": {"1": {"min", "max", "rounds"}},
             "speedup_at_resolution": {"224": {"1": median}},
             "speedup_at_resolution_range": {"224": {"1": {"min", "max", "rounds"}}},
             "litert_images_per_sec_at_resolution": {"224": {"1": median over rounds}}}}
    (None where a figure is missing). The `_at_resolution` fields are the
    pairs of "resolutions" (fp32 only; empty for other artefacts), each
    resolution's images/s the median of its interleaved rounds.
  """
  if statistic not in ("images_per_sec", "images_per_sec_p50"):
    raise ValueError(f"statistic must be 'images_per_sec' or 'images_per_sec_p50', got "
                     f"{statistic!r}.")
  models = result.get("models", {})
  base = artefact_key(reference, reference_artefact)

  def speed(name: str) -> Dict[str, Optional[float]]:
    batches = ((models.get(name) or {}).get("artefacts", {}).get(artefact) or {}).get(
        "batches", {})
    return {size: stats.get(statistic) for size, stats in batches.items()}

  out: Dict[str, Dict[str, Any]] = {}
  for name, entry in models.items():
    artefacts = entry.get("artefacts", {})
    own = speed(name)
    subject = artefact_key(name, artefact)
    speedups: Dict[str, Optional[float]] = {}
    ranges: Dict[str, Optional[Dict[str, Any]]] = {}
    for size in own:
      if subject == base:
        speedups[size], ranges[size] = (1.0 if own[size] else None), None
        continue
      stats = pairs_lib.pair_stats(result, subject, base, size)
      speedups[size] = None if stats is None else stats["ratio_median"]
      ranges[size] = None if stats is None else {"min": stats["ratio_min"],
                                                 "max": stats["ratio_max"],
                                                 "rounds": stats["rounds"]}
    out[name] = {
        "tflite_fp32_bytes": (artefacts.get("tflite_fp32") or {}).get("bytes"),
        "tflite_int8_bytes": (artefacts.get("tflite_int8") or {}).get("bytes"),
        "litert_images_per_sec": own,
        "speedup_vs_ancestor": speedups,
        "speedup_vs_ancestor_range": ranges,
        **_resolution_fields(result, subject, base),
    }
  return out


def _resolution_fields(result: Mapping[str, Any], subject: str, base: str) -> Dict[str, Any]:
  """A file's speed-ups and images/s at the extra resolutions, from their interleaved pairs."""
  speedups: Dict[str, Dict[str, Optional[float]]] = {}
  ranges: Dict[str, Dict[str, Optional[Dict[str, Any]]]] = {}
  speeds: Dict[str, Dict[str, Optional[float]]] = {}
  for image_size, measured in (result.get("resolutions") or {}).items():
    sessions = (measured.get("interleaved") or {}).get("batches") or {}
    if subject not in (measured.get("files") or {}) and not any(
        pairs_lib.pair_key(subject, base) == name for name in measured.get("pairs") or {}):
      continue
    speedups[image_size], ranges[image_size], speeds[image_size] = {}, {}, {}
    for size in (str(b) for b in measured.get("batch_sizes") or RESOLUTION_BATCH_SIZES):
      timed = ((sessions.get(size) or {}).get("artefacts") or {}).get(subject)
      speeds[image_size][size] = None if timed is None else timed["images_per_sec"]["median"]
      if subject == base:
        speedups[image_size][size] = 1.0 if timed is not None else None
        ranges[image_size][size] = None
        continue
      stats = pairs_lib.pair_stats(result, subject, base, size, image_size=image_size)
      speedups[image_size][size] = None if stats is None else stats["ratio_median"]
      ranges[image_size][size] = None if stats is None else {
          "min": stats["ratio_min"], "max": stats["ratio_max"], "rounds": stats["rounds"]}
  return {"speedup_at_resolution": speedups, "speedup_at_resolution_range": ranges,
          "litert_images_per_sec_at_resolution": speeds}


def _artefact_line(name: str, result: Mapping[str, Any]) -> str:
  speeds = ", ".join(
      f"b{size} " + (f"{stats['images_per_sec']:.1f} img/s" if "images_per_sec" in stats
                     else "unsupported")
      for size, stats in result["batches"].items())
  top1 = "–" if result.get("top1") is None else f"{100 * result['top1']:.2f}%"
  return f"  {name:<16} {result['bytes'] / 1e6:8.3f} MB  top-1 {top1:>7}  {speeds}"


def format_table(result: Mapping[str, Any]) -> str:
  """A fixed-width text table of a benchmark dict (one row per artefact)."""
  batch_sizes = [str(b) for b in result.get("settings", {}).get("batch_sizes", [])]
  if not batch_sizes:
    batch_sizes = sorted({size for entry in result.get("models", {}).values()
                          for art in entry.get("artefacts", {}).values()
                          for size in art.get("batches", {})}, key=int)
  header = ["model", "artefact", "MB", "top-1", "agree"]
  for size in batch_sizes:
    header += [f"b{size} img/s", f"b{size} p50 ms", f"b{size} p99 ms"]
  rows = [header]
  for model_name, entry in result.get("models", {}).items():
    for name, art in entry.get("artefacts", {}).items():
      row = [model_name, name, _num(art.get("bytes"), 1e-6, ".3f"),
             _num(art.get("top1"), 100, ".2f"), _num(art.get("agreement"), 100, ".1f")]
      for size in batch_sizes:
        stats = art.get("batches", {}).get(size) or {}
        latency = stats.get("latency_ms") or {}
        if "error" in stats:
          row += ["unsupported", "–", "–"]
        else:
          row += [_num(stats.get("images_per_sec"), 1, ".1f"), _num(latency.get("p50"), 1, ".3f"),
                  _num(latency.get("p99"), 1, ".3f")]
      rows.append(row)
    for name in entry.get("missing", []):
      rows.append([model_name, name, "not exported"] + [""] * (len(header) - 3))
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = []
  for index, row in enumerate(rows):
    cells = [cell.ljust(width) if i < 2 else cell.rjust(width)
             for i, (cell, width) in enumerate(zip(row, widths))]
    lines.append("  ".join(cells).rstrip())
    if index == 0:
      lines.append("  ".join("-" * width for width in widths))
  return "\n".join(lines)


def _num(value: Optional[float], factor: float, fmt: str) -> str:
  return "–" if value is None else format(value * factor, fmt)


format_pairs = pairs_lib.format_pairs
