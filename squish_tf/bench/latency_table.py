"""The latency table: measured LiteRT latency per convolution (in/out channels on a grid),
interpolated between grid points, with the channel rounding (`squish_tf.net.spec.round_channels`,
the multiple chosen per table by `choose_multiple`) that XNNPACK's tiles make real, and per max
pool and expand concatenation (`MoveOp`: channels on a grid, interpolated along it).
`build_table` makes a table from measurements, a pure function of them: measured in-process
(`squish_tf.bench.latency`) or on a device (`squish_tf.bench.profile`). Evolution reads tables
through `squish_tf.evolve.environment`."""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from squish_tf.net import spec as spec_lib

FORMATS = ("fp32", "int8")
TABLE_VERSION = 3
# Grid points per dimension, as fractions of the ancestor's channels.
GRID_FRACTIONS = (0.25, 0.5, 1.0)
# Uniform widths of the whole networks the intercept and slope are fitted on.
CALIBRATION_WIDTHS = (1.0, 0.7, 0.6, 0.5, 0.35, 0.3, 0.25)
# The channel multiples a table may price convolutions at (`LatencyTable.channel_multiple`).
MULTIPLES = (1, 2, 4, 8, 16)


def table_file(fmt: str) -> str:
  """The cache file name of a table, in the run dir."""
  return f"latency_table_{fmt}.json"


def clock_name(table: "LatencyTable") -> str:
  """What a run names its latency clock by: the device of a profile's table, else the cache
  file of the table measured here."""
  return str(table.key.get("clock") or table_file(table.format))


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


@dataclasses.dataclass(frozen=True)
class MoveOp:
  """A max pool or an expand concatenation: an op that moves activations, priced per layer.

  Attributes:
    name: "pool1", "fire2_concat", "pool3", ... (stable from the ancestor to every descendant).
    kind: "max_pool" (3x3, stride 2, valid) or "concat" (a fire's two expands).
    height, width: its input's size.
    producers: the convolutions whose filters are its channels (summed).
    channels: its channels in the spec (a pool's input, a concatenation's output).
  """

  name: str
  kind: str
  height: int
  width: int
  producers: Tuple[str, ...]
  channels: int

  def signature(self, channels: int) -> Tuple[Any, ...]:
    """Its one-op model at `channels` (a concatenation's joins two halves: its grid is even)."""
    return (self.kind, self.height, self.width, int(channels))

  def channels_of(self, filters: Mapping[str, float]) -> float:
    """Its channels when its producers have `filters` (missing ones: as in the spec)."""
    return sum(float(filters[name]) for name in self.producers)


def move_ops(spec: spec_lib.NetSpec) -> List[MoveOp]:
  """Every max pool and expand concatenation of `spec` in build order."""
  shapes = {layer.name: layer for layer in spec.layer_shapes()}
  conv1 = shapes["conv1"]
  ops = []
  if 1 in spec.pool_after:
    ops.append(MoveOp("pool1", "max_pool", conv1.out_height, conv1.out_width, ("conv1",),
                      conv1.filters))
  for number, fire in spec.numbered_fires():
    expands = (f"fire{number}_expand1x1", f"fire{number}_expand3x3")
    shape = shapes[expands[0]]
    ops.append(MoveOp(f"fire{number}_concat", "concat", shape.out_height, shape.out_width,
                      expands, fire.out_channels))
    if number in spec.pool_after:
      ops.append(MoveOp(f"pool{number}", "max_pool", shape.out_height, shape.out_width, expands,
                        fire.out_channels))
  return ops


def move_grid(op: MoveOp) -> List[int]:
  """The channels its probes are timed at: `grid_points`, even for a concatenation."""
  if op.kind == "concat":
    return [2 * c for c in grid_points(-(-op.channels // 2))]
  return grid_points(op.channels)


def move_signatures(spec: spec_lib.NetSpec) -> List[Tuple[Any, ...]]:
  """The distinct one-op models (`MoveOp.signature`) the table of `spec` times, sorted."""
  return sorted({op.signature(c) for op in move_ops(spec) for c in move_grid(op)})


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
    moves: {max pool or concatenation name (`MoveOp`): {"kind", "grid": [C],
      "ms": [ms at grid[i]]}}; empty from an older profile (then priced as a
      share of the convolutions).
    intercept_ms, slope: predicted = intercept_ms + slope * (sum of layers and moves)
      (`network_ms`).
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
  moves: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

  def layer_ms(self, name: str, in_channels: float, filters: float) -> float:
    """One convolution's table latency at (in_channels, filters)."""
    if name not in self.layers:
      raise ValueError(f"The latency table has no layer {name!r} (it has "
                       f"{sorted(self.layers)}); it was measured for another architecture. "
                       "Delete the table file to measure it again.")
    entry = self.layers[name]
    return interpolate(entry["in_grid"], entry["out_grid"], entry["ms"], in_channels, filters)

  def move_ms(self, name: str, channels: float) -> float:
    """One max pool's or concatenation's table latency at `channels`: linear along its grid,
    linear beyond it, never below 0."""
    if name not in self.moves:
      raise ValueError(f"The latency table has no max pool or concatenation {name!r} (it has "
                       f"{sorted(self.moves)}); it was measured for another architecture. "
                       "Delete the table file to measure it again.")
    entry = self.moves[name]
    return interpolate([0], entry["grid"], [entry["ms"]], 0, channels)

  def moves_ms(self, spec: spec_lib.NetSpec, filters: Optional[Mapping[str, float]] = None
               ) -> float:
    """The sum of `spec`'s max pools and concatenations (0 in a table without them), their
    producers at `filters` (default: the spec's), unpadded: activations are not tiled."""
    if not self.moves:
      return 0.0
    widths = dict(spec.prunable_layers())
    widths.update(filters or {})
    return sum(self.move_ms(op.name, op.channels_of(widths)) for op in move_ops(spec))

  def layers_ms(self, spec: spec_lib.NetSpec, multiple: Optional[int] = None) -> float:
    """The sum of the per-layer latencies of `spec` (before the network fit): every
    convolution at its channel counts rounded up to `multiple` (default: the table's
    channel_multiple), and every max pool and concatenation (`moves_ms`)."""
    m = self.channel_multiple if multiple is None else int(multiple)
    return sum(self.layer_ms(op.name, spec_lib.round_channels(op.in_channels, m),
                             spec_lib.round_channels(op.filters, m))
               for op in conv_ops(spec)) + self.moves_ms(spec)

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
    from squish_tf.net import wiring as wiring_lib  # pylint: disable=g-import-not-at-top

    self._check_resolution(spec)
    sources = wiring_lib.channel_sources(spec)
    total = 0.0
    for op in conv_ops(spec):
      filters = counts.get(op.name, op.filters)
      in_channels = sum(block.channels if block.producer is None else counts[block.producer]
                        for block in sources[op.name])
      total += self.layer_ms(op.name, in_channels, filters)
    return self.network_ms(total + self.moves_ms(spec, counts))

  def network_ms(self, layers_ms: float) -> float:
    """intercept_ms + slope * layers_ms; below the thinnest calibration network, with a
    negative intercept, that network's figure scaled by layers_ms (never 0 or below)."""
    thinnest = min((point["layers_ms"] for point in self.calibration), default=0.0)
    if self.intercept_ms < 0 and 0 < layers_ms < thinnest:
      return float((self.intercept_ms + self.slope * thinnest) * layers_ms / thinnest)
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
            "channel_multiple": self.channel_multiple, "layers": self.layers,
            "moves": self.moves}

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
               channel_multiple=int(data.get("channel_multiple", 1)),
               moves=dict(data.get("moves", {})))


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
  """(0, slope) of measured = slope * layers, by least squares through the origin: what
  `choose_multiple` compares multiples by, and `fit_network_line`'s fallback."""
  x = np.asarray(layers_ms, np.float64)
  y = np.asarray(measured_ms, np.float64)
  if not np.sum(x) > 0:
    raise ValueError("The per-convolution latencies sum to nothing above the invoke overhead: "
                     "the machine was too busy to time them. Delete the latency table and run "
                     "again on a quieter machine.")
  return 0.0, float(np.dot(x, y) / np.dot(x, x))


def fit_network_line(layers_ms: Sequence[float], measured_ms: Sequence[float]
                     ) -> Tuple[float, float]:
  """(intercept, slope) of measured = intercept + slope * layers, by least squares.

  Each layer timed alone pays per invoke a fixed cost (waking the threads, dispatch) that a
  network running its layers back to back pays less of, by an amount that changes from one
  timing session to the next; thin networks' sums are mostly such fixed parts. The
  calibration networks, timed in the same session, measure what the network pays as the
  line's intercept (negative when the layers alone paid more). `fit_network` (through the
  origin) where the line would not be increasing and positive over the networks.
  """
  origin = fit_network(layers_ms, measured_ms)
  x = np.asarray(layers_ms, np.float64)
  if len(x) < 3 or not np.ptp(x) > 0:
    return origin
  slope, intercept = np.polyfit(x, np.asarray(measured_ms, np.float64), 1)
  if not slope > 0 or not intercept + slope * np.min(x) > 0:
    return origin
  return float(intercept), float(slope)


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


# The one-convolution model every invoke's overhead is read from (1x1 on one 1x1 channel).
OVERHEAD_SIGNATURE = (1, 1, "valid", 1, 1, 1, 1, "linear")


def scaled_spec(spec: spec_lib.NetSpec, width: float) -> spec_lib.NetSpec:
  """`spec` with every prunable layer at round(width * filters) (at least 1): `scale_width`,
  named as the table's calibration networks are."""
  return spec_lib.scale_width(spec, width).replace(name=f"{spec.name}_x{width:g}")


def calibration_specs(spec: spec_lib.NetSpec) -> Dict[float, spec_lib.NetSpec]:
  """{width: the network timed whole at that width} for CALIBRATION_WIDTHS."""
  return {width: spec if width == 1.0 else scaled_spec(spec, width)
          for width in CALIBRATION_WIDTHS}


def layer_grids(spec: spec_lib.NetSpec) -> Dict[str, Tuple[ConvOp, List[int], List[int]]]:
  """{layer: (its ConvOp, C_in grid, C_out grid)}: conv1's three input channels and conv10's
  classes are not on a grid."""
  grids = {}
  for op in conv_ops(spec):
    in_grid = [op.in_channels] if op.name == "conv1" else grid_points(op.in_channels)
    out_grid = [op.filters] if op.name == "conv10" else grid_points(op.filters)
    grids[op.name] = (op, in_grid, out_grid)
  return grids


def probe_signatures(spec: spec_lib.NetSpec) -> List[Tuple[Any, ...]]:
  """The distinct single-convolution models the table of `spec` times (`ConvOp.signature`),
  sorted: grid points shared by several layers are timed once."""
  return sorted({op.signature(c, n) for op, in_grid, out_grid in layer_grids(spec).values()
                 for c in in_grid for n in out_grid})


@dataclasses.dataclass
class Measurements:
  """What a device measured for a table: everything `build_table` reads.

  Attributes:
    op_ms: {`ConvOp.signature`: median ms of its one-convolution model, the
      invoke included}.
    overhead_ms: median ms of the OVERHEAD_SIGNATURE model.
    network_ms: {calibration width: median ms of the whole network}.
    move_ms: {`MoveOp.signature`: median ms of its one-op model, the invoke
      included}; empty in a profile measured before packs held them.
  """

  op_ms: Dict[Tuple[Any, ...], float]
  overhead_ms: float
  network_ms: Dict[float, float]
  move_ms: Dict[Tuple[Any, ...], float] = dataclasses.field(default_factory=dict)


def build_table(spec: spec_lib.NetSpec, fmt: str, threads: int, measured: Measurements,
                key: Optional[Dict[str, Any]] = None) -> LatencyTable:
  """The table of `spec` from `measured`: a pure function of the measurements.

  Each grid point's ms less the invoke overhead, each layer's grid smoothed
  (`smooth_layer`; a max pool's or concatenation's by a line in its channels),
  the channel multiple chosen (`choose_multiple`) and the network line fitted
  (`fit_network_line`) on the calibration networks. Measurements without any
  max pool or concatenation (an older profile) give a table without them: the
  line prices them as a share of the convolutions.

  Raises:
    ValueError: a probe or calibration network of `spec` was not measured.
  """
  missing = [s for s in probe_signatures(spec) if s not in measured.op_ms]
  if measured.move_ms:
    missing += [s for s in move_signatures(spec) if s not in measured.move_ms]
  networks = calibration_specs(spec)
  missing_widths = [w for w in networks if w not in measured.network_ms]
  if missing or missing_widths:
    raise ValueError(
        f"The measurements lack {len(missing)} of the {len(probe_signatures(spec))} "
        f"convolutions (and {len(move_signatures(spec))} max pools and concatenations) and "
        f"{len(missing_widths)} of the calibration networks of this network "
        f"({spec.input_shape[0]} px, {spec.num_classes} classes): they were measured for "
        "another architecture. Pack and measure again for this one (squish-profile pack).")
  by_signature = {s: max(0.0, float(ms) - float(measured.overhead_ms))
                  for s, ms in measured.op_ms.items()}
  layers = {}
  for name, (op, in_grid, out_grid) in layer_grids(spec).items():
    raw = [[by_signature[op.signature(c, n)] for n in out_grid] for c in in_grid]
    layers[name] = {"in_grid": in_grid, "out_grid": out_grid,
                    "ms": smooth_layer(in_grid, out_grid, raw), "measured_ms": raw}
  moves = {}
  for op in move_ops(spec) if measured.move_ms else []:
    grid = move_grid(op)
    raw = [max(0.0, float(measured.move_ms[op.signature(c)]) - float(measured.overhead_ms))
           for c in grid]
    moves[op.name] = {"kind": op.kind, "grid": grid, "ms": smooth_layer([1], grid, [raw])[0],
                      "measured_ms": raw}
  table = LatencyTable(format=fmt, threads=int(threads), input_shape=tuple(spec.input_shape),
                       layers=layers, key=dict(key or {}), moves=moves)
  measured_ms = [float(measured.network_ms[w]) for w in networks]
  by_multiple = {m: [table.layers_ms(scaled, m) for scaled in networks.values()]
                 for m in MULTIPLES}
  table.channel_multiple = choose_multiple(by_multiple, measured_ms)
  calibration = [{"width": width, "layers_ms": layers_ms, "measured_ms": ms}
                 for width, layers_ms, ms in zip(networks, by_multiple[table.channel_multiple],
                                                 measured_ms)]
  table.intercept_ms, table.slope = fit_network_line([c["layers_ms"] for c in calibration],
                                                     measured_ms)
  for point in calibration:
    point["predicted_ms"] = table.network_ms(point["layers_ms"])
  table.calibration = calibration
  table.invoke_overhead_ms = float(measured.overhead_ms)
  return table
