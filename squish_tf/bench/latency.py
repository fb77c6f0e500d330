"""A measured latency model: NetAdapt's lookup tables for LiteRT on this machine.

Parameters sit in the late fires, time in the early layers, so a size target
does not aim at speed. `--cost=latency` makes synthesis aim at milliseconds:

  table = measure_table(ancestor_spec, fmt="fp32", threads=2)  # once, cached in the run dir
  table.predict(child_spec)                                     # ms, before anything is built

The table holds, for every convolution of the ancestor (conv1, each fire's
three, conv10), its LiteRT latency at the run's resolution as a function of
its input and output channels: each convolution is converted alone (the
folded deployed form: conv + bias + ReLU) at a small grid of (C_in, C_out)
points, 1/4, 1/2 and all of the ancestor's, and timed interleaved with the
others (a tiny model's invoke overhead taken off each). A layer's nine
timings are smoothed by their least-squares fit of a + b C_in C_out
(`smooth_layer`: a fixed part and one proportional to the MACs; the late fires
at 64 px take microseconds, as little as one timing's noise); the raw timings
are kept beside. Between grid points the latency is bilinear in (C_in,
C_out); outside them it is extended linearly (never below 0). A network's
latency is

  predicted_ms = intercept_ms + slope * (sum_l table_l(pad(C_in_l), pad(C_out_l))
                                         + sum_m move_m(C_m))

where move_m is a max pool or expand concatenation (`latency_table.MoveOp`:
pool1 after conv1, the pools after fire3 and fire5, each fire's concat),
timed alone as a one-op model at 1/4, 1/2 and all of the ancestor's channels
at its input size (interleaved with the convolutions), smoothed by a line in
its channels and read linearly along it, at C_m, its producers' unpadded
channels: they move the largest activations, after conv1 and the early
fires, so a child thin there saves their time too, which pricing them as a
share of the convolutions would miss. pad(C) rounds C up to a multiple of
`channel_multiple`: LiteRT's XNNPACK kernels compute in channel tiles, so
33 channels cost about what 40 do. The grid points are multiples of 4 or
more of the ancestor's channels, so the
table alone prices an offspring's odd counts at what aligned ones cost, and
offspring ran slower than predicted; priced at the padded counts the error
drops (`benchmarks/latency_model.py`, RESULTS.md). The multiple
is chosen per table, among MULTIPLES, as the one under which the calibration
networks (uniform widths, which give aligned and odd counts) fit best.
Expectations (`predict_counts`, synthesis's float filter counts) are priced
unpadded: an expectation's rounding is unknown, and the difference of two
padded predictions (a filter's cost, `filter_latency`) would be a step.

The intercept and slope are a least-squares line (`fit_network_line`) through
whole networks timed together: the ancestor at widths of CALIBRATION_WIDTHS.
It maps the layers timed alone to a network's milliseconds: the slope what
is left (the invoke, global pooling, softmax), the intercept, usually
negative, the part of the layers' fixed costs per invoke (waking threads,
dispatch) that a network running them back to back does not pay, which
changes from one timing session to the next and is most of a thin
network's sum. Through the origin (`fit_network`) a session whose small
layers timed slow priced thin children far slower than they ran. Below the
thinnest calibration network the prediction is that network's, scaled by
the layer sum (`LatencyTable.network_ms`).

The prediction is an exact function of the table (tested with a fake one).
A child's expected latency is the table at its expected filter counts; the
report compares predictions with each chosen offspring's measured latency.

Pure numpy at the core (`LatencyTable`); TensorFlow and LiteRT only in the
measuring functions.
"""

import importlib.metadata
import logging
import os
import platform
import tempfile
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from squish_tf import files as files_lib
from squish_tf.bench import device_measure
from squish_tf.bench.latency_table import (  # scaled_spec: re-exported for callers
  CALIBRATION_WIDTHS,
  FORMATS,
  GRID_FRACTIONS,
  MULTIPLES,
  OVERHEAD_SIGNATURE,
  LatencyTable,
  Measurements,
  build_table,
  calibration_specs,
  move_signatures,
  probe_signatures,
  scaled_spec,
)
from squish_tf.net import spec as spec_lib
from squish_tf.runtime import native_log

# Interleaved rounds and seconds per model per round when measuring.
TABLE_ROUNDS = 7
TABLE_ROUND_SECONDS = 0.02
NETWORK_ROUNDS = 11
NETWORK_ROUND_SECONDS = 0.1


def table_key(spec: spec_lib.NetSpec, fmt: str, threads: int) -> Dict[str, Any]:
  """What a table depends on: the architecture, format, threads, machine and libraries."""
  from squish_tf.runtime import machine as machine_lib  # pylint: disable=g-import-not-at-top

  versions = {}
  for package in ("tensorflow", "ai-edge-litert"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {"architecture": spec.architecture_key(), "format": fmt,
          "threads": int(threads), "processor": machine_lib.machine_info().get("processor"),
          "machine": platform.machine(), "cpu_count": os.cpu_count(), **versions,
          "grid": list(GRID_FRACTIONS), "calibration_widths": list(CALIBRATION_WIDTHS),
          "multiples": list(MULTIPLES)}


def load_or_measure(path: str, spec: spec_lib.NetSpec, fmt: str = "fp32",
                    threads: int = 2, progress: Optional[Callable[[str], None]] = print
                    ) -> LatencyTable:
  """The table cached at `path` when its key matches, else a new measurement written there."""
  key = files_lib.json_round_trip(table_key(spec, fmt, threads))
  cached = files_lib.optional_read_json(path)
  if cached is not None:
    try:
      table = LatencyTable.from_json(cached)
      if table.key == key:
        return table
    except (KeyError, ValueError, TypeError):
      pass
    if progress:
      progress(f"latency table {path} was measured for another network, machine or format: "
               "measuring again.")
  table = measure_table(spec, fmt, threads, progress=progress)
  files_lib.write_json(path, table.to_json())
  return table


def _check_format(fmt: str) -> None:
  if fmt not in FORMATS:
    raise ValueError(f"--latency_format must be one of {FORMATS}, got {fmt!r}.")


def conv_tflite(signature: Tuple[Any, ...], fmt: str, seed: int = 0) -> bytes:
  """A one-convolution .tflite (conv + bias + activation, random weights)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  kernel_size, strides, padding, height, width, in_channels, filters, activation = signature
  rng = np.random.default_rng(seed)
  kernel = tf.constant(rng.normal(0, 0.1, (kernel_size, kernel_size, in_channels, filters))
                       .astype(np.float32))
  bias = tf.constant(rng.normal(0, 0.1, filters).astype(np.float32))

  @tf.function(input_signature=[tf.TensorSpec([1, height, width, in_channels], tf.float32)])
  def conv(x):
    y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides, padding.upper()), bias)
    return tf.nn.relu(y) if activation == "relu" else y

  module = tf.Module()
  module.conv = conv
  converter = tf.lite.TFLiteConverter.from_concrete_functions([conv.get_concrete_function()],
                                                              module)
  if fmt == "int8":
    _full_integer(converter, rng.uniform(0, 1, (8, height, width, in_channels)))
  with native_log.captured():  # the quantizer's settings line goes to the run's log
    return converter.convert()


def move_tflite(signature: Tuple[Any, ...], fmt: str, seed: int = 0) -> bytes:
  """A one-op .tflite of a `latency_table.MoveOp` signature: a 3x3/2 valid max pool of
  `channels`, or a concatenation of two halves of channels // 2 (its input twice)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  kind, height, width, channels = signature
  in_channels = channels if kind == "max_pool" else channels // 2

  @tf.function(input_signature=[tf.TensorSpec([1, height, width, in_channels], tf.float32)])
  def move(x):
    if kind == "max_pool":
      return tf.nn.max_pool2d(x, spec_lib.POOL_SIZE, spec_lib.POOL_STRIDE, "VALID")
    return tf.concat([x, x], axis=-1)

  module = tf.Module()
  module.move = move
  converter = tf.lite.TFLiteConverter.from_concrete_functions([move.get_concrete_function()],
                                                              module)
  if fmt == "int8":
    rng = np.random.default_rng(seed)
    _full_integer(converter, rng.uniform(0, 1, (8, height, width, in_channels)))
  with native_log.captured():
    return converter.convert()


def _full_integer(converter, images: np.ndarray) -> None:
  from squish_tf.export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top

  tflite_lib.set_full_integer(converter, images.astype(np.float32))


def network_tflite(model, spec: spec_lib.NetSpec, fmt: str,
                   representative: Optional[np.ndarray] = None) -> bytes:
  """The .tflite the export would make of (model, spec): batch norm folded, float signature.

  int8 without representative images calibrates on random ones: the timing
  does not depend on the calibration.
  """
  from squish_tf.export import saved_model as saved_model_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import batch_norm  # pylint: disable=g-import-not-at-top

  _check_format(fmt)
  model, spec = batch_norm.for_export(model, spec)
  if fmt == "int8" and representative is None:
    representative = np.random.default_rng(0).integers(
        0, 256, (8,) + tuple(spec.input_shape)).astype(np.uint8)
  with tempfile.TemporaryDirectory(prefix="latency_") as work:
    saved = os.path.join(work, saved_model_lib.DIRECTORY)
    saved_model_lib.write_saved_model(model, spec, saved)
    return tflite_lib.convert_saved_model(saved, fmt, representative)


def spec_tflite(spec: spec_lib.NetSpec, fmt: str, seed: int = 0) -> bytes:
  """The deployed .tflite of `spec` with random weights (for timing only)."""
  from squish_tf.net import (
    batch_norm,  # pylint: disable=g-import-not-at-top
    models,  # pylint: disable=g-import-not-at-top
  )

  deployed = batch_norm.deployed_spec(spec)
  return network_tflite(models.build_model(deployed, seed=seed), deployed, fmt)


def _runner_call(model: bytes, threads: int) -> Callable[[], Any]:
  """The model's invoke alone, its input set once: a layer timed alone pays no copy of its
  input and output tensors, which inside a network it does not pay either."""
  from squish_tf.runtime import litert  # pylint: disable=g-import-not-at-top

  runner = litert.LiteRTRunner(model, num_threads=threads)
  shape = (1,) + tuple(runner.input_shape)
  runner.set_input(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32))
  return runner.invoke


def _device_call(model: bytes, threads: int, runtime: str) -> Callable[[], Any]:
  """The model's invoke on `runtime`: LiteRT (`_runner_call`) or TFLite-Micro's reference
  kernels (`device_measure.micro_call`, single-threaded: `threads` does not apply)."""
  if runtime == device_measure.MICRO_RUNTIME:
    return device_measure.micro_call(model)
  if runtime != device_measure.LITERT_RUNTIME:
    raise ValueError(f"runtime must be {device_measure.LITERT_RUNTIME!r} or "
                     f"{device_measure.MICRO_RUNTIME!r} to time here, got {runtime!r}.")
  return _runner_call(model, threads)


def _time_calls(calls: Mapping[str, Callable[[], Any]], rounds: int,
                round_seconds: float) -> Dict[str, Any]:
  """One interleaved session over `calls`, each call's invokes per round calibrated to take
  ~round_seconds: `timing.time_interleaved`'s result."""
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  invokes = timing.calibrate_invokes(calls, round_seconds=round_seconds)
  return timing.time_interleaved(calls, rounds=rounds, invokes=invokes)


def _median_ms(calls: Mapping[str, Callable[[], Any]], rounds: int,
               round_seconds: float) -> Dict[str, float]:
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  result = _time_calls(calls, rounds, round_seconds)
  return {name: float(np.median(timing.seconds_per_invoke(result, name)) * 1e3)
          for name in calls}


def measure_table(spec: spec_lib.NetSpec, fmt: str = "fp32", threads: int = 2,
                  progress: Optional[Callable[[str], None]] = print) -> LatencyTable:
  """Measures every convolution's grid and fits the network terms (tens of seconds):
  `measure` here, then `latency_table.build_table` (the same build a device profile takes)."""
  measured = measure(spec, fmt, threads, progress)
  table = build_table(spec, fmt, threads, measured,
                      key=files_lib.json_round_trip(table_key(spec, fmt, threads)))
  (progress or (lambda _: None))(
      f"latency table: convolutions priced at multiples of {table.channel_multiple} "
      "channels; " + ", ".join(
          f"width {c['width']:g} measured {c['measured_ms']:.3f} ms, predicted "
          f"{c['predicted_ms']:.3f}" for c in table.calibration))
  logging.getLogger(__name__).info("latency fit: %.4f ms + %.3f x layers", table.intercept_ms,
                                   table.slope)
  return table


def measure(spec: spec_lib.NetSpec, fmt: str = "fp32", threads: int = 2,
            progress: Optional[Callable[[str], None]] = print) -> Measurements:
  """Converts and times, in this process with LiteRT, what the table of `spec` reads.

  Grid points shared by several layers (the same kernel, stride, input size
  and channels) are converted and timed once; so are the max pools' and
  concatenations' (timed in the same session as the convolutions).
  """
  _check_format(fmt)
  log = progress or (lambda _: None)
  signatures = probe_signatures(spec)
  moves = move_signatures(spec)
  networks = calibration_specs(spec)
  log(f"latency table ({fmt}, {threads} threads, {spec.input_shape[0]} px): converting "
      f"{len(signatures)} single convolutions, {len(moves)} max pools and concatenations and "
      f"{len(networks)} networks ...")
  op_calls = {f"op{index}": _runner_call(conv_tflite(signature, fmt), threads)
              for index, signature in enumerate(signatures)}
  op_calls.update({f"move{index}": _runner_call(move_tflite(signature, fmt), threads)
                   for index, signature in enumerate(moves)})
  net_calls = {f"net{width:g}": _runner_call(spec_tflite(scaled, fmt), threads)
               for width, scaled in networks.items()}
  # A model of one tiny convolution: what every invoke costs whatever it runs.
  # Each grid point is timed alone, so this is taken off each of them.
  op_calls["op_overhead"] = _runner_call(conv_tflite(OVERHEAD_SIGNATURE, fmt), threads)
  log(f"latency table: timing {len(op_calls) + len(net_calls)} models interleaved ...")
  op_ms = _median_ms(op_calls, TABLE_ROUNDS, TABLE_ROUND_SECONDS)
  net_ms = _median_ms(net_calls, NETWORK_ROUNDS, NETWORK_ROUND_SECONDS)
  return Measurements(
      op_ms={signature: op_ms[f"op{index}"] for index, signature in enumerate(signatures)},
      overhead_ms=op_ms["op_overhead"],
      network_ms={width: net_ms[f"net{width:g}"] for width in networks},
      move_ms={signature: op_ms[f"move{index}"] for index, signature in enumerate(moves)})


def time_models(models: Mapping[str, bytes], threads: int = 2, rounds: int = NETWORK_ROUNDS,
                round_seconds: float = NETWORK_ROUND_SECONDS,
                runtime: str = device_measure.LITERT_RUNTIME) -> Dict[str, Any]:
  """One interleaved timing session (A B C ... A B C ..., `rounds` rounds) of .tflite `models`.

  Each model runs in its own interpreter of `runtime` (LiteRT on `threads`
  threads, or TFLite-Micro), its input set once (random images); its invokes
  per round take ~round_seconds.

  Returns:
    `squish_tf.runtime.timing.time_interleaved`'s result, {name: ...} per
    round: read it with `timing.seconds_per_invoke` and `timing.ratio_stats`.
  """
  calls = {name: _device_call(model, threads, runtime) for name, model in models.items()}
  return _time_calls(calls, rounds, round_seconds)


def measure_against(models: Mapping[str, bytes], reference: str, threads: int = 2,
                    rounds: int = NETWORK_ROUNDS,
                    round_seconds: float = NETWORK_ROUND_SECONDS,
                    runtime: str = device_measure.LITERT_RUNTIME) -> Dict[str, Dict[str, float]]:
  """Each model's latency and its speed-up over `reference`, timed interleaved together
  (one `time_models` session on `runtime`).

  Returns:
    {name: {"latency_ms": median, "speedup": median per-round ratio,
            "speedup_min", "speedup_max"}}.
  """
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  if reference not in models:
    raise ValueError(f"reference {reference!r} is not among the models {sorted(models)}.")
  result = time_models(models, threads, rounds, round_seconds, runtime)
  out = {}
  for name in models:
    stats = timing.ratio_stats(result, name, reference)
    out[name] = {"latency_ms": float(np.median(timing.seconds_per_invoke(result, name)) * 1e3),
                 "speedup": stats["ratio_median"], "speedup_min": stats["ratio_min"],
                 "speedup_max": stats["ratio_max"]}
  return out
