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

  predicted_ms = intercept_ms + slope * sum_l table_l(pad(C_in_l), pad(C_out_l))

where pad(C) rounds C up to a multiple of `channel_multiple`: LiteRT's XNNPACK
kernels compute in channel tiles, so 33 channels cost about what 40 do. The
grid points are multiples of 4 or more of the ancestor's channels, so the
table alone prices an offspring's odd counts at what aligned ones cost:
measured on ten latency-drawn offspring of the 64 px ancestor (fp32, 2
threads, AMD EPYC AVX-512), every one ran slower than predicted, by 12% in
median (1.6-19%), and the predicted speed-ups were 20% too high; priced at
multiples of 8 the median error was 7.6% and the speed-ups 6.6%. The multiple
is chosen per table, among MULTIPLES, as the one under which the calibration
networks (uniform widths, which give aligned and odd counts) fit best.
Expectations (`predict_counts`, synthesis's float filter counts) are priced
unpadded: an expectation's rounding is unknown, and the difference of two
padded predictions (a filter's cost, `filter_latency`) would be a step.

where the slope is fitted (least squares through the origin, so intercept_ms
is 0; see `fit_network`) on whole networks timed together: the ancestor at
widths 1, 0.7, 0.5, 0.35 and 0.25. It scales the layers timed alone to a
network's milliseconds (pools, concatenations, the invoke); a predicted
speed-up is the ratio of two layer sums.

The prediction is an exact function of the table (tested with a fake one).
A child's expected latency is the table at its expected filter counts; the
report compares predictions with each chosen offspring's measured latency.

Pure numpy at the core (`LatencyTable`); TensorFlow and LiteRT only in the
measuring functions.
"""

import dataclasses
import importlib.metadata
import logging
import os
import platform
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from squish_tf import model_io
from squish_tf import spec as spec_lib

FORMATS = ("fp32", "int8")
TABLE_VERSION = 2
# Grid points per dimension, as fractions of the ancestor's channels.
GRID_FRACTIONS = (0.25, 0.5, 1.0)
# Uniform widths of the whole networks the intercept and slope are fitted on.
CALIBRATION_WIDTHS = (1.0, 0.7, 0.6, 0.5, 0.35, 0.3, 0.25)
# The channel multiples a table may price convolutions at (`LatencyTable.channel_multiple`).
MULTIPLES = (1, 2, 4, 8, 16)
# Interleaved rounds and seconds per model per round when measuring.
TABLE_ROUNDS = 7
TABLE_ROUND_SECONDS = 0.02
NETWORK_ROUNDS = 11
NETWORK_ROUND_SECONDS = 0.1


def table_file(fmt: str) -> str:
  """The cache file name of a table, in the run dir."""
  return f"latency_table_{fmt}.json"


@dataclasses.dataclass(frozen=True)
class ConvOp:
  """One convolution of a network, as the latency table sees it.

  Attributes:
    name: layer name (stable from the ancestor to every descendant).
    kernel_size: k of the k x k kernel.
    strides: the stride.
    padding: "valid" or "same".
    in_height, in_width: its input's spatial size.
    in_channels, filters: C_in and C_out.
    activation: "relu" or "linear" (conv10 follows --classifier_activation).
  """

  name: str
  kernel_size: int
  strides: int
  padding: str
  in_height: int
  in_width: int
  in_channels: int
  filters: int
  activation: str

  def signature(self, in_channels: int, filters: int) -> Tuple[Any, ...]:
    """What a single-convolution model at (in_channels, filters) depends on."""
    return (self.kernel_size, self.strides, self.padding, self.in_height, self.in_width,
            int(in_channels), int(filters), self.activation)


def conv_ops(spec: spec_lib.NetSpec) -> List[ConvOp]:
  """Every convolution of `spec` in build order, with its input size and channels."""
  ops = []
  height, width = spec.input_shape[0], spec.input_shape[1]
  for layer in spec.layer_shapes():
    if layer.name == "conv1":
      ops.append(ConvOp(layer.name, layer.kernel_size, spec.conv1_strides, "valid", height, width,
                        layer.in_channels, layer.filters, "relu"))
    else:
      activation = "relu" if layer.name != "conv10" else (
          "relu" if spec.classifier_activation == "relu" else "linear")
      padding = "same" if layer.kernel_size > 1 else "valid"
      ops.append(ConvOp(layer.name, layer.kernel_size, 1, padding, layer.out_height,
                        layer.out_width, layer.in_channels, layer.filters, activation))
  return ops


def grid_points(channels: int, fractions: Sequence[float] = GRID_FRACTIONS) -> List[int]:
  """Sorted distinct channel counts max(1, round(f * channels)) for f in `fractions`."""
  return sorted({max(1, int(round(f * channels))) for f in fractions})


def _axis_weights(grid: Sequence[float], value: float) -> Tuple[int, int, float]:
  """(i, j, t): value = (1 - t) grid[i] + t grid[j], t outside [0, 1] when extrapolating."""
  if len(grid) == 1:
    return 0, 0, 0.0
  k = int(np.searchsorted(grid, value, side="right")) - 1
  k = min(max(k, 0), len(grid) - 2)
  low, high = float(grid[k]), float(grid[k + 1])
  return k, k + 1, (float(value) - low) / (high - low)


def interpolate(in_grid: Sequence[float], out_grid: Sequence[float], ms: Any,
                in_channels: float, filters: float) -> float:
  """Bilinear in (C_in, C_out) between grid points, linear beyond them, never below 0.

  With one point along an axis (conv1's three input channels, conv10's
  classes) that axis is constant.
  """
  values = np.asarray(ms, np.float64)
  i0, i1, s = _axis_weights(in_grid, in_channels)
  j0, j1, t = _axis_weights(out_grid, filters)
  value = ((1 - s) * (1 - t) * values[i0, j0] + (1 - s) * t * values[i0, j1] +
           s * (1 - t) * values[i1, j0] + s * t * values[i1, j1])
  return max(0.0, float(value))


@dataclasses.dataclass
class LatencyTable:
  """Per-convolution latency tables and the network-level fit.

  Attributes:
    format: "fp32" or "int8" (the LiteRT model the table times).
    threads: LiteRT threads.
    input_shape: the run's input (the resolution the table holds).
    layers: {layer name: {"in_grid": [C_in], "out_grid": [C_out],
      "ms": [[ms at (in_grid[i], out_grid[j])]]}}.
    intercept_ms, slope: predicted = intercept_ms + slope * sum of layers.
    calibration: the whole networks the fit was made on:
      [{"width", "layers_ms", "measured_ms"}].
    key: what the table depends on (`table_key`); a cache with another key
      is measured again.
    invoke_overhead_ms: what invoking a one-convolution model costs whatever
      it computes, taken off every grid point (each is timed alone).
    channel_multiple: `predict` prices every convolution at its channel
      counts rounded up to a multiple of this (1: as they are).
  """

  format: str
  threads: int
  input_shape: Tuple[int, int, int]
  layers: Dict[str, Dict[str, Any]]
  intercept_ms: float = 0.0
  slope: float = 1.0
  calibration: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  key: Dict[str, Any] = dataclasses.field(default_factory=dict)
  invoke_overhead_ms: float = 0.0
  channel_multiple: int = 1

  def layer_ms(self, name: str, in_channels: float, filters: float) -> float:
    """One convolution's table latency at (in_channels, filters)."""
    if name not in self.layers:
      raise ValueError(f"The latency table has no layer {name!r} (it has "
                       f"{sorted(self.layers)}); it was measured for another architecture. "
                       "Delete the table file to measure it again.")
    entry = self.layers[name]
    return interpolate(entry["in_grid"], entry["out_grid"], entry["ms"], in_channels, filters)

  def layers_ms(self, spec: spec_lib.NetSpec, multiple: Optional[int] = None) -> float:
    """The sum of the per-convolution latencies of `spec` (before the network fit), each at
    its channel counts rounded up to `multiple` (default: the table's channel_multiple)."""
    m = self.channel_multiple if multiple is None else int(multiple)
    return sum(self.layer_ms(op.name, pad_channels(op.in_channels, m), pad_channels(op.filters, m))
               for op in conv_ops(spec))

  def predict(self, spec: spec_lib.NetSpec) -> float:
    """Predicted LiteRT latency of `spec`, ms per image at batch 1."""
    self._check_resolution(spec)
    return self.network_ms(self.layers_ms(spec))

  def predict_counts(self, spec: spec_lib.NetSpec, counts: Mapping[str, float]) -> float:
    """Predicted latency of the child of `spec` with `counts` filters per prunable layer.

    Counts may be expectations (floats): the table is then read at the
    expected widths, unpadded (see the module's docstring), so this is what
    synthesis compares expectations with, not `predict`'s figure.
    """
    from squish_tf import synthesis  # pylint: disable=g-import-not-at-top

    self._check_resolution(spec)
    sources = synthesis.channel_sources(spec)
    total = 0.0
    for op in conv_ops(spec):
      filters = counts.get(op.name, op.filters)
      in_channels = sum(block.channels if block.producer is None else counts[block.producer]
                        for block in sources[op.name])
      total += self.layer_ms(op.name, in_channels, filters)
    return self.network_ms(total)

  def network_ms(self, layers_ms: float) -> float:
    return float(self.intercept_ms + self.slope * layers_ms)

  def _check_resolution(self, spec: spec_lib.NetSpec) -> None:
    if tuple(spec.input_shape) != tuple(self.input_shape):
      raise ValueError(f"The latency table was measured at input {tuple(self.input_shape)}, "
                       f"not {tuple(spec.input_shape)}; measure one at this resolution.")

  def to_json(self) -> Dict[str, Any]:
    return {"version": TABLE_VERSION, "format": self.format, "threads": self.threads,
            "input_shape": list(self.input_shape), "intercept_ms": self.intercept_ms,
            "slope": self.slope, "calibration": self.calibration, "key": self.key,
            "invoke_overhead_ms": self.invoke_overhead_ms,
            "channel_multiple": self.channel_multiple, "layers": self.layers}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "LatencyTable":
    if data.get("version") != TABLE_VERSION:
      raise ValueError(f"latency table version {data.get('version')!r}, expected "
                       f"{TABLE_VERSION}.")
    return cls(format=data["format"], threads=int(data["threads"]),
               input_shape=tuple(data["input_shape"]), layers=dict(data["layers"]),
               intercept_ms=float(data["intercept_ms"]), slope=float(data["slope"]),
               calibration=list(data.get("calibration", [])), key=dict(data.get("key", {})),
               invoke_overhead_ms=float(data.get("invoke_overhead_ms", 0.0)),
               channel_multiple=int(data.get("channel_multiple", 1)))


def pad_channels(channels: float, multiple: int) -> float:
  """`channels` rounded up to a multiple of `multiple` (1: unchanged)."""
  if multiple <= 1:
    return channels
  return float(np.ceil(float(channels) / multiple - 1e-9) * multiple)


def choose_multiple(layers_ms_by_multiple: Mapping[int, Sequence[float]],
                    measured_ms: Sequence[float]) -> int:
  """The multiple whose through-origin fit has the smallest median relative error.

  Args:
    layers_ms_by_multiple: {multiple: each calibration network's layer sum,
      its convolutions priced at that multiple}.
    measured_ms: the networks' measured latencies.

  Ties go to the smaller multiple.
  """
  y = np.asarray(measured_ms, np.float64)
  best, best_error = None, None
  for multiple in sorted(layers_ms_by_multiple):
    x = np.asarray(layers_ms_by_multiple[multiple], np.float64)
    _, slope = fit_network(x, y)
    error = float(np.median(np.abs(slope * x / y - 1.0)))
    if best_error is None or error < best_error - 1e-12:
      best, best_error = multiple, error
  return int(best)


def fit_network(layers_ms: Sequence[float], measured_ms: Sequence[float]) -> Tuple[float, float]:
  """(0, slope) of measured = slope * layers, by least squares through the origin.

  No intercept: a speed-up predicted by the table is then the ratio of two
  layer sums, which the calibration networks' noise does not enter. Measured
  on six random-width children of the 64 px ancestor: a fitted intercept
  (negative, from five noisily timed uniform widths) put the predicted
  speed-ups 13% (median) above the measured ones; the ratio of layer sums was
  within 2.4%.
  """
  x = np.asarray(layers_ms, np.float64)
  y = np.asarray(measured_ms, np.float64)
  if not np.sum(x) > 0:
    raise ValueError("The per-convolution latencies sum to nothing above the invoke overhead: "
                     "the machine was too busy to time them. Delete the latency table and run "
                     "again on a quieter machine.")
  return 0.0, float(np.dot(x, y) / np.dot(x, x))


def smooth_layer(in_grid: Sequence[int], out_grid: Sequence[int], ms: Any) -> List[List[float]]:
  """The grid's least-squares fit of ms = a + b C_in C_out (a, b >= 0), at the grid points.

  A convolution at a fixed input size costs a fixed part plus a part
  proportional to its MACs (k^2 H W C_in C_out). The late fires at 64 px run
  in a few microseconds, where one timing's noise is as large as the
  difference between grid points; the fit uses all nine points of a layer
  for each value, keeps the table monotone, and is itself bilinear, so the
  interpolation between grid points is exact for it.
  """
  x = np.array([[float(c) * float(n) for n in out_grid] for c in in_grid]).ravel()
  y = np.asarray(ms, np.float64).ravel()
  if np.ptp(x) > 0:
    b, a = np.polyfit(x, y, 1)
    if b < 0:
      a, b = float(np.mean(y)), 0.0
    elif a < 0:
      a, b = 0.0, float(np.dot(x, y) / np.dot(x, x))
  else:
    a, b = float(np.mean(y)), 0.0
  return [[float(a + b * c * n) for n in out_grid] for c in in_grid]


def filter_latency(table: LatencyTable, spec: spec_lib.NetSpec) -> Dict[str, float]:
  """What one filter of each prunable layer costs in predicted ms (removing it saves that).

  The difference of two predictions, so it includes the filter's share of its
  consumers (their input channel) as `synthesis.filter_costs` does for
  params and MACs. Floored at a tiny positive value: a filter the table
  prices at nothing still costs something to keep.
  """
  counts = {name: float(n) for name, n in spec.prunable_layers()}
  full = table.predict_counts(spec, counts)
  out = {}
  for name, n in spec.prunable_layers():
    fewer = dict(counts)
    fewer[name] = n - 1.0
    out[name] = max(full - table.predict_counts(spec, fewer), 1e-9 * max(full, 1e-9))
  return out


# -- measuring (TensorFlow and LiteRT from here on) ---------------------------------


def table_key(spec: spec_lib.NetSpec, fmt: str, threads: int) -> Dict[str, Any]:
  """What a table depends on: the architecture, format, threads, machine and libraries."""
  from squish_tf import benchmark  # pylint: disable=g-import-not-at-top

  versions = {}
  for package in ("tensorflow", "ai-edge-litert"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {"architecture": spec.architecture_key(), "format": fmt,
          "threads": int(threads), "processor": benchmark.machine_info().get("processor"),
          "machine": platform.machine(), "cpu_count": os.cpu_count(), **versions,
          "grid": list(GRID_FRACTIONS), "calibration_widths": list(CALIBRATION_WIDTHS),
          "multiples": list(MULTIPLES)}


def load_or_measure(path: str, spec: spec_lib.NetSpec, fmt: str = "fp32",
                    threads: int = 2, progress: Optional[Callable[[str], None]] = print
                    ) -> LatencyTable:
  """The table cached at `path` when its key matches, else a new measurement written there."""
  key = model_io.json_round_trip(table_key(spec, fmt, threads))
  cached = model_io.optional_read_json(path)
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
  model_io.write_json(path, table.to_json())
  return table


def _check_format(fmt: str) -> None:
  if fmt not in FORMATS:
    raise ValueError(f"--latency_format must be one of {FORMATS}, got {fmt!r}.")


def _conv_tflite(signature: Tuple[Any, ...], fmt: str, seed: int = 0) -> bytes:
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
  from squish_tf import batch_norm  # pylint: disable=g-import-not-at-top
  from squish_tf.export import saved_model as saved_model_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top

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
  from squish_tf import batch_norm  # pylint: disable=g-import-not-at-top
  from squish_tf import models  # pylint: disable=g-import-not-at-top

  deployed = batch_norm.deployed_spec(spec)
  return network_tflite(models.build_model(deployed, seed=seed), deployed, fmt)


def scaled_spec(spec: spec_lib.NetSpec, width: float) -> spec_lib.NetSpec:
  """`spec` with every prunable layer at round(width * filters) (at least 1)."""
  from squish_tf import synthesis  # pylint: disable=g-import-not-at-top

  counts = {name: max(1, int(round(width * n))) for name, n in spec.prunable_layers()}
  return synthesis._spec_with_counts(spec, counts, f"{spec.name}_x{width:g}")  # pylint: disable=protected-access


def _runner_call(model: bytes, threads: int) -> Callable[[], Any]:
  """The model's invoke alone, its input set once: a layer timed alone pays no copy of its
  input and output tensors, which inside a network it does not pay either."""
  from squish_tf import litert  # pylint: disable=g-import-not-at-top

  runner = litert.LiteRTRunner(model, num_threads=threads)
  shape = (1,) + tuple(runner.input_shape)
  runner.set_input(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32))
  return runner.invoke


def _median_ms(calls: Mapping[str, Callable[[], Any]], rounds: int,
               round_seconds: float) -> Dict[str, float]:
  from squish_tf import timing  # pylint: disable=g-import-not-at-top

  invokes = timing.calibrate_invokes(calls, round_seconds=round_seconds)
  result = timing.time_interleaved(calls, rounds=rounds, invokes=invokes)
  return {name: float(np.median(timing.seconds_per_invoke(result, name)) * 1e3)
          for name in calls}


def measure_table(spec: spec_lib.NetSpec, fmt: str = "fp32", threads: int = 2,
                  progress: Optional[Callable[[str], None]] = print) -> LatencyTable:
  """Measures every convolution's grid and fits the network terms (tens of seconds).

  Grid points shared by several layers (the same kernel, stride, input size
  and channels) are converted and timed once.
  """
  _check_format(fmt)
  log = progress or (lambda _: None)
  ops = conv_ops(spec)
  grids = {}
  for op in ops:
    in_grid = [op.in_channels] if op.name == "conv1" else grid_points(op.in_channels)
    out_grid = [op.filters] if op.name == "conv10" else grid_points(op.filters)
    grids[op.name] = (op, in_grid, out_grid)
  signatures = sorted({op.signature(c, n) for op, in_grid, out_grid in grids.values()
                       for c in in_grid for n in out_grid})
  log(f"latency table ({fmt}, {threads} threads, {spec.input_shape[0]} px): converting "
      f"{len(signatures)} single convolutions and {len(CALIBRATION_WIDTHS)} networks ...")
  calls = {}
  for index, signature in enumerate(signatures):
    calls[f"op{index}"] = _runner_call(_conv_tflite(signature, fmt), threads)
  networks = {}
  for width in CALIBRATION_WIDTHS:
    scaled = spec if width == 1.0 else scaled_spec(spec, width)
    networks[f"net{width:g}"] = (width, scaled)
    calls[f"net{width:g}"] = _runner_call(spec_tflite(scaled, fmt), threads)
  # A model of one tiny convolution: what every invoke costs whatever it runs.
  # Each grid point is timed alone, so this is taken off each of them.
  overhead = (1, 1, "valid", 1, 1, 1, 1, "linear")
  calls["op_overhead"] = _runner_call(_conv_tflite(overhead, fmt), threads)
  log(f"latency table: timing {len(calls)} models interleaved ...")
  op_calls = {name: call for name, call in calls.items() if name.startswith("op")}
  net_calls = {name: call for name, call in calls.items() if name.startswith("net")}
  op_ms = _median_ms(op_calls, TABLE_ROUNDS, TABLE_ROUND_SECONDS)
  net_ms = _median_ms(net_calls, NETWORK_ROUNDS, NETWORK_ROUND_SECONDS)
  invoke_ms = op_ms["op_overhead"]
  by_signature = {signature: max(0.0, op_ms[f"op{index}"] - invoke_ms)
                  for index, signature in enumerate(signatures)}
  layers = {}
  for name, (op, in_grid, out_grid) in grids.items():
    raw = [[by_signature[op.signature(c, n)] for n in out_grid] for c in in_grid]
    layers[name] = {"in_grid": in_grid, "out_grid": out_grid,
                    "ms": smooth_layer(in_grid, out_grid, raw), "measured_ms": raw}
  table = LatencyTable(format=fmt, threads=threads, input_shape=tuple(spec.input_shape),
                       layers=layers, key=model_io.json_round_trip(table_key(spec, fmt, threads)))
  by_multiple = {m: [table.layers_ms(scaled, m) for _, scaled in networks.values()]
                 for m in MULTIPLES}
  table.channel_multiple = choose_multiple(by_multiple, [net_ms[name] for name in networks])
  calibration = [{"width": width, "layers_ms": layers_ms, "measured_ms": net_ms[name]}
                 for (name, (width, _)), layers_ms in zip(networks.items(),
                                                          by_multiple[table.channel_multiple])]
  table.intercept_ms, table.slope = fit_network([c["layers_ms"] for c in calibration],
                                                [c["measured_ms"] for c in calibration])
  table.calibration = calibration
  table.invoke_overhead_ms = invoke_ms
  for point in calibration:
    point["predicted_ms"] = table.network_ms(point["layers_ms"])
  log(f"latency table: convolutions priced at multiples of {table.channel_multiple} "
      "channels; " + ", ".join(
      f"width {c['width']:g} measured {c['measured_ms']:.3f} ms, predicted "
      f"{c['predicted_ms']:.3f}" for c in calibration))
  logging.getLogger(__name__).info("latency fit: %.4f ms + %.3f x layers", table.intercept_ms,
                                   table.slope)
  return table


def measure_against(models: Mapping[str, bytes], reference: str, threads: int = 2,
                    rounds: int = NETWORK_ROUNDS,
                    round_seconds: float = NETWORK_ROUND_SECONDS) -> Dict[str, Dict[str, float]]:
  """Each model's latency and its speed-up over `reference`, timed interleaved together.

  Returns:
    {name: {"latency_ms": median, "speedup": median per-round ratio,
            "speedup_min", "speedup_max"}}.
  """
  from squish_tf import timing  # pylint: disable=g-import-not-at-top

  if reference not in models:
    raise ValueError(f"reference {reference!r} is not among the models {sorted(models)}.")
  calls = {name: _runner_call(model, threads) for name, model in models.items()}
  invokes = timing.calibrate_invokes(calls, round_seconds=round_seconds)
  result = timing.time_interleaved(calls, rounds=rounds, invokes=invokes)
  out = {}
  for name in models:
    stats = timing.ratio_stats(result, name, reference)
    out[name] = {"latency_ms": float(np.median(timing.seconds_per_invoke(result, name)) * 1e3),
                 "speedup": stats["ratio_median"], "speedup_min": stats["ratio_min"],
                 "speedup_max": stats["ratio_max"]}
  return out
