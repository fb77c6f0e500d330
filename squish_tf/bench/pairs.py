"""Speed-ups of .tflite files over each other, measured interleaved in one process.

  files = {"ancestor/tflite_fp32": "a.tflite", "squishednet/tflite_fp32": "s.tflite"}
  result = measure_pairs(files, [("squishednet/tflite_fp32", "ancestor/tflite_fp32")],
                         batch_sizes=(1, 8))
  result["pairs"]["squishednet/tflite_fp32 vs ancestor/tflite_fp32"]["1"]["ratio_median"]

Every file named in a pair is loaded once into the shared LiteRT runner
(`squish_tf.runtime.litert`), with the same threads; then, per batch size, all of
them run in one interleaved session (`squish_tf.runtime.timing.time_interleaved`:
each round runs every file in turn, ~`round_seconds` of invokes each), so a
file and its reference are timed within the same second, round after round.
A pair's ratio is the subject's speed over the reference's: the median of
the per-round ratios, with min-max (`squish_tf.runtime.timing.ratio_stats`).

The result is what benchmark.json keeps under "interleaved" and "pairs"
(the shape is in `squish_tf.bench.benchmark`'s docstring).

Other resolutions. SqueezeNet-family networks (and the baselines) are fully
convolutional, so the same weights run at any input size: `tflite_at_size`
rebuilds a model directory's network at another square size (224 px, the
paper's and most cameras') and converts it to fp32 TFLite the way the export
does, and `measure_pairs` times those files as it times the exported ones.
"""

import contextlib
import io
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from squish_tf.runtime import litert as litert_lib
from squish_tf.runtime import timing as timing_lib

SEPARATOR = " vs "
# Told of progress as it happens: an event dict, {"event": <kind>, ...fields} (the
# benchmark's kinds: model, artefact, pairs, pair, rebuild_error).
Listener = Callable[[Dict[str, Any]], None]


def artefact_key(model: str, artefact: str) -> str:
  """"squishednet", "tflite_fp32" -> "squishednet/tflite_fp32"."""
  return f"{model}/{artefact}"


def pair_key(subject: str, reference: str) -> str:
  """The pair's name in benchmark.json: "<subject> vs <reference>"."""
  return f"{subject}{SEPARATOR}{reference}"


def timing_batch(pixels: Optional[np.ndarray], batch_size: int,
                 input_size: Tuple[Optional[int], Optional[int]]) -> np.ndarray:
  """A batch of the images when they fit the input (repeated if too few), else seeded noise."""
  if pixels is not None and len(pixels) and (
      None in input_size or tuple(pixels.shape[1:3]) == tuple(input_size)):
    indices = np.arange(batch_size) % len(pixels)
    return pixels[indices]
  if None in input_size:
    raise ValueError("The model accepts any image size, so timing it needs example images; "
                     "pass images.")
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (batch_size, *input_size, 3), dtype=np.uint8)


def measure_pairs(files: Mapping[str, Any], pairs: Sequence[Tuple[str, str]],
                  batch_sizes: Sequence[int] = (1,), pixels: Optional[np.ndarray] = None,
                  num_threads: int = litert_lib.DEFAULT_NUM_THREADS,
                  rounds: int = timing_lib.DEFAULT_ROUNDS,
                  round_seconds: float = timing_lib.DEFAULT_ROUND_SECONDS,
                  min_invokes: int = timing_lib.DEFAULT_MIN_INVOKES,
                  max_invokes: int = timing_lib.DEFAULT_MAX_INVOKES, warmup_invokes: int = 3,
                  listener: Optional[Listener] = None,
                  clock: timing_lib.Clock = time.perf_counter) -> Dict[str, Any]:
  """Times the files of `pairs` interleaved and returns each pair's speed-up.

  Args:
    files: {key: .tflite path or bytes}; keys are the names pairs use (e.g.
      "ancestor/tflite_fp32"). The same path under two keys is loaded twice
      (a file against itself: the noise floor, ratio ~1).
    pairs: (subject key, reference key) pairs; ratio = subject's speed over
      the reference's.
    batch_sizes: one interleaved session per batch size.
    pixels: uint8 [N, H, W, 3] images to time on (noise when None or of
      another size: LiteRT's speed does not depend on the pixel values).
    num_threads: LiteRT threads of every runner.
    rounds, round_seconds, min_invokes, max_invokes, warmup_invokes: see
      `squish_tf.runtime.timing.time_interleaved` and `calibrate_invokes`.
    listener: called with {"event": "pair", "batch_size", "pair", "stats"} as each pair
      is measured (`squish_tf.report.console.benchmark_listener` words it).
    clock: the timer (tests pass a fake one).

  Returns:
    {"interleaved": {"rounds", "round_seconds", "num_threads",
                     "batches": {"1": {"invokes", "load_average", "seconds", "errors",
                                       "artefacts": {key: throughput stats}}}},
     "pairs": {"<subject> vs <reference>": {"1": ratio stats or {"error": ...}}}}.
  """
  missing = sorted({key for pair in pairs for key in pair} - set(files))
  if missing:
    raise ValueError(f"Pairs name files that were not given: {missing}; given {sorted(files)}.")
  keys: List[str] = []
  for pair in pairs:
    for key in (pair[1], pair[0]):  # each reference before its subjects
      if key not in keys:
        keys.append(key)
  runners = {key: litert_lib.LiteRTRunner(files[key], num_threads=num_threads) for key in keys}
  if pixels is not None:
    pixels = np.asarray(pixels)
  interleaved: Dict[str, Any] = {"rounds": rounds, "round_seconds": round_seconds,
                                 "num_threads": num_threads, "batches": {}}
  out_pairs: Dict[str, Dict[str, Any]] = {pair_key(*pair): {} for pair in pairs}
  for batch_size in batch_sizes:
    size = str(batch_size)
    calls: Dict[str, Callable[[], Any]] = {}
    errors: Dict[str, str] = {}
    for key, runner in runners.items():
      try:
        calls[key] = runner.prepare(timing_batch(pixels, batch_size, runner.input_size))
      except litert_lib.UnsupportedBatch as error:
        errors[key] = str(error)
    begin = clock()
    session: Dict[str, Any] = {"errors": errors, "artefacts": {}}
    timing = None
    if calls:
      invokes = timing_lib.calibrate_invokes(calls, round_seconds, min_invokes, max_invokes,
                                             clock=clock)
      timing = timing_lib.time_interleaved(calls, rounds, invokes, warmup_invokes, clock=clock)
      session.update(invokes=timing["invokes"], load_average=timing["load_average"])
      session["artefacts"] = {key: timing_lib.throughput_stats(timing, key, batch_size)
                              for key in calls}
    session["seconds"] = clock() - begin
    interleaved["batches"][size] = session
    for subject, reference in pairs:
      name = pair_key(subject, reference)
      failed = [key for key in (subject, reference) if key in errors]
      if failed:
        out_pairs[name][size] = {"error": "; ".join(errors[key] for key in failed)}
        continue
      stats = timing_lib.ratio_stats(timing, subject, reference)
      out_pairs[name][size] = stats
      if listener is not None:
        listener({"event": "pair", "batch_size": size, "pair": name, "stats": stats})
  return {"interleaved": interleaved, "pairs": out_pairs}


def pair_stats(result: Mapping[str, Any], subject: str, reference: str,
               batch_size: Any, image_size: Optional[Any] = None) -> Optional[Dict[str, Any]]:
  """A pair's ratio stats at one batch size from a benchmark dict, or None if not measured.

  Args:
    result: a benchmark dict.
    subject, reference: the pair's keys.
    batch_size: e.g. 1 or "1".
    image_size: None for the files as exported (the run's resolution), or one
      of the sizes under "resolutions" (e.g. 224).
  """
  if image_size is not None:
    result = (result.get("resolutions") or {}).get(str(image_size)) or {}
  stats = ((result.get("pairs") or {}).get(pair_key(subject, reference)) or {}).get(
      str(batch_size))
  if not stats or stats.get("ratio_median") is None:
    return None
  return stats


class _InputShape:
  """What `export.saved_model.write_saved_model` reads of a foreign model's spec: its input."""

  def __init__(self, input_shape: Tuple[int, int, int]):
    self.input_shape = tuple(input_shape)


def resized_model(model, spec, image_size: int):
  """(model, spec) of the deployed network at image_size x image_size, with the same weights.

  Args:
    model: a Keras 3 functional model, fully convolutional (any input size
      gives the same output shape): a SqueezeNet of `squish_tf.net.models`, or a
      baseline such as MobileNetV3Small.
    spec: its NetSpec (batch norm is folded first, as every export does), or
      None for a foreign model, which is taken as it is.
    image_size: the new square input size.

  Returns:
    (the Keras clone on a new image_size input, with `model`'s weights; its
    spec, or a stand-in holding `input_shape` for a foreign model).

  Raises:
    ValueError: the network cannot take that size (a layer fixed to the old
      one, or a spec whose pools leave nothing at the new size).
  """
  import keras  # pylint: disable=g-import-not-at-top

  from squish_tf.net import batch_norm  # pylint: disable=g-import-not-at-top

  if spec is not None:
    model, spec = batch_norm.for_export(model, spec)
  channels = int(model.input_shape[-1])
  shape = (int(image_size), int(image_size), channels)
  if spec is not None:
    spec = spec.replace(input_shape=shape)  # validates: the pools must leave >= 1x1
  try:
    resized = keras.models.clone_model(model, input_tensors=keras.Input(shape))
    resized.set_weights(model.get_weights())
  except Exception as error:  # Keras raises many kinds for a layer fixed to a size
    raise ValueError(f"{model.name!r} cannot be rebuilt at {image_size}x{image_size}: {error}. "
                     "Only fully convolutional models run at another resolution; leave this "
                     "size out of --pair_resolutions.") from None
  if tuple(resized.output_shape) != tuple(model.output_shape):
    raise ValueError(f"{model.name!r} at {image_size}x{image_size} gives outputs of shape "
                     f"{resized.output_shape}, not {model.output_shape}: it is not fully "
                     "convolutional; leave this size out of --pair_resolutions.")
  return resized, spec if spec is not None else _InputShape(shape)


def tflite_at_size(model_dir: str, image_size: int) -> bytes:
  """The fp32 .tflite of a model directory's network at image_size x image_size, same weights.

  Made as the export makes `model_fp32.tflite` (a SavedModel of the deployed
  network, batch norm folded, converted from its float signature, by
  `squish_tf.bench.latency.network_tflite`), only at another input size
  (`resized_model`): what that network costs on a camera of that resolution.

  Raises:
    ValueError: no model in `model_dir`, or one that cannot take that size.
  """
  from squish_tf.bench import latency as latency_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  model, spec, _ = model_io.load_model_dir(model_dir, require_spec=False)
  resized, resized_spec = resized_model(model, spec, image_size)
  with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its options
    # Batch norm is folded already (`resized_model`): the conversion takes it as it is.
    return latency_lib.network_tflite(resized, resized_spec, "fp32")
