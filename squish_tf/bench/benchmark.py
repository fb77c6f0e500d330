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

TFLite files run in `squish_tf.runtime.litert.LiteRTRunner`, the runner the export's
parity and the latency model use too (`ai_edge_litert`; TensorFlow's own
`tf.lite.Interpreter` is deprecated), with `num_threads` threads. TensorFlow's
thread pool cannot be resized once its runtime has started; the pipeline main
sets it before anything else, and `settings` records what TensorFlow used.

Speed-ups are measured, not divided. The per-artefact figures above are each
timed alone, and on a shared CPU two of them drift apart by more than the
differences worth measuring; so
the .tflite files that are compared (`comparison_pairs`: every model's fp32
and int8 file against the reference model's fp32 file) are timed again
together, interleaved (`squish_tf.runtime.timing.time_interleaved`: A B C A B C ...,
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
takes many times a 64 px one, so each round holds fewer invokes: the same
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
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from squish_tf import files as files_lib
from squish_tf.bench import pairs as pairs_lib
from squish_tf.bench.artefacts import (
  ARTEFACT_ORDER,
  MODEL_FIELDS,
  artefact_bytes,
  describe_model,
  find_artefacts,
)
from squish_tf.bench.comparisons import comparison_pairs, measure_model_pairs
from squish_tf.bench.config import BenchmarkConfig
from squish_tf.bench.runners import load_runner, predict_classes
from squish_tf.data import images as images_lib
from squish_tf.runtime import litert as litert_lib
from squish_tf.runtime import timing as timing_lib
from squish_tf.runtime.machine import machine_info

BENCHMARK_FILE = "benchmark.json"
# 2: "interleaved" and "pairs" (speed-ups measured interleaved); 3: "resolutions" (the
# fp32 pairs again at 224 px).
BENCHMARK_VERSION = 3


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
  runner = load_runner(name, path, config.num_threads)
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
      classes = predict_classes(runner, pixels, config.eval_batch_size)
    except litert_lib.UnsupportedBatch:
      classes = predict_classes(runner, pixels, 1)  # fixed-batch graphs still run one by one
    if labels is not None:
      result["top1"] = float(np.mean(classes == np.asarray(labels).reshape(-1)))
    if reference_classes is not None:
      result["agreement"] = float(np.mean(classes == reference_classes))
  batches: Dict[str, Any] = {}
  for batch_size in config.batch_sizes:
    try:
      feed = runner.feed(pairs_lib.timing_batch(pixels, batch_size, runner.input_size))
      latencies = timing_lib.time_runs(lambda feed=feed: runner.invoke(feed), config.min_seconds,
                            config.min_runs, config.warmup_runs)
    except litert_lib.UnsupportedBatch as error:
      batches[str(batch_size)] = {"error": str(error)}
      continue
    batches[str(batch_size)] = timing_lib.latency_stats(latencies, batch_size)
  result["batches"] = batches
  return result, classes


def benchmark_model(model_dir: Optional[str],
                    export_dir: Optional[str] = None,
                    images: Optional[np.ndarray] = None,
                    labels: Optional[np.ndarray] = None,
                    config: BenchmarkConfig = BenchmarkConfig(),
                    listener: Optional[pairs_lib.Listener] = None) -> Dict[str, Any]:
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
    listener: called with {"event": "artefact", "name", "result"} as each artefact
      finishes (`squish_tf.report.console.benchmark_listener(print)` prints a line).

  Returns:
    {"model_dir", "export_dir", "params", "size_mb", "macs", "image_size",
     "artefacts": {name: {...}}, "missing": [standard names not found]}.

  Raises:
    ValueError: nothing to benchmark, a missing export dir, images of the
      wrong size or count.
  """
  pixels = images_lib.as_pixels(images) if images is not None else None
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
    if listener is not None:
      listener({"event": "artefact", "name": name, "result": result})
  entry["reference_artefact"] = next(iter(results)) if pixels is not None else None
  entry["artefacts"] = results
  expected = ARTEFACT_ORDER if export_dir is not None else ("keras",)
  entry["missing"] = [name for name in expected if name not in artefacts and
                      (config.formats is None or
                       any(fnmatch.fnmatchcase(name, p) for p in config.formats))]
  return entry


def benchmark_models(model_dirs: Mapping[str, Union[str, Mapping[str, Any]]],
                     images: Optional[np.ndarray] = None,
                     labels: Optional[np.ndarray] = None,
                     config: BenchmarkConfig = BenchmarkConfig(),
                     listener: Optional[pairs_lib.Listener] = None,
                     pairs: Union[str, Sequence[Tuple[str, str]],
                                  Callable[[Dict[str, Any]], Sequence[Tuple[str, str]]],
                                  None] = "auto",
                     run_settings: Optional[Dict[str, Any]] = None
                    ) -> Dict[str, Any]:
  """Benchmarks several models on the same images: the benchmark.json dict.

  Args:
    model_dirs: {name: model_dir} (Keras model only) or {name: {"model_dir":
      ..., "export_dir": ..., "formats": ...}}, e.g. {"ancestor": {...},
      "squishednet": {...}}; a model's "formats", when given, replaces
      `config.formats` for that model (None: every artefact).
    images, labels, config: as in `benchmark_model`.
    listener: told as it goes: {"event": "model", "name"} before each model, then its
      artefacts (`benchmark_model`), the pair sessions and pairs (`measure_model_pairs`).
    pairs: the .tflite files to time interleaved, as (subject, reference)
      keys ("squishednet/tflite_fp32", "ancestor/tflite_fp32"); "auto": every
      .tflite file against the first model's fp32 file (`comparison_pairs`);
      a callable: chooses them from the "models" measured (the main job's:
      `comparison_pairs` against the ancestor); None: none.
    run_settings: the settings to record, as given (the main job adds the
      split its images are from); default `settings(config, eval_images)`,
      taken before the first timing, with the machine's load average at the
      end added.

  Returns:
    {"version", "settings": {...}, "models": {name: benchmark_model(...)},
     "interleaved": {...}, "pairs": {...}} (see the module docstring).
  """
  if not model_dirs:
    raise ValueError("No models to benchmark; pass {name: model_dir}.")
  given_settings = run_settings is not None
  if run_settings is None:
    # Settings (and the machine's load) before the first timing.
    run_settings = settings(config, eval_images=None if images is None else len(images))
  models: Dict[str, Any] = {}
  for name, where in model_dirs.items():
    if isinstance(where, str):
      where = {"model_dir": where, "export_dir": None}
    unknown = sorted(set(where) - {"model_dir", "export_dir", "formats"})
    if unknown:
      raise ValueError(f"Model {name!r}: unknown keys {unknown}; expected model_dir, "
                       "export_dir and formats.")
    model_config = (dataclasses.replace(config, formats=where["formats"]) if "formats" in where
                    else config)
    if listener is not None:
      listener({"event": "model", "name": name})
    models[name] = benchmark_model(where.get("model_dir"), where.get("export_dir"), images,
                                   labels, model_config, listener=listener)
  result = {"version": BENCHMARK_VERSION, "settings": run_settings, "models": models}
  if isinstance(pairs, str):
    if pairs != "auto":
      raise ValueError(f"pairs must be 'auto', None, a callable or a list of (subject, "
                       f"reference) keys, got {pairs!r}.")
    pairs = comparison_pairs(models, reference=next(iter(models)), artefacts=None)
  elif callable(pairs):
    pairs = pairs(models)
  if pairs:
    pixels = images_lib.as_pixels(images) if images is not None else None
    result.update(measure_model_pairs(models, pairs, pixels, config, listener=listener))
  if not given_settings and hasattr(os, "getloadavg"):
    run_settings["machine"]["load_average_1min_end"] = os.getloadavg()[0]
  return result


def settings(config: BenchmarkConfig, eval_images: Optional[int] = None) -> Dict[str, Any]:
  """The benchmark's settings and the machine it ran on."""
  out = dataclasses.asdict(config)
  out["batch_sizes"] = list(config.batch_sizes)
  out["formats"] = None if config.formats is None else list(config.formats)
  out["eval_images"] = eval_images
  out["machine"] = machine_info()
  return out


def write_benchmark(path: str, result: Mapping[str, Any]) -> None:
  """Writes a benchmark dict as JSON, atomically."""
  files_lib.write_json(path, result)


