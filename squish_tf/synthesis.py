"""The genetic encoding of deep evolutionary synthesis, in numpy.

Everything evolution decides before TensorFlow is involved lives here: filter
strengths and cluster probabilities, the environmental factor F_l of each
layer, the Bernoulli draw of surviving filters with its floors, the exact
expected size of a child, the child `NetSpec`, and the index map that tells
surgery which input channels every convolution keeps (see
design/SYNTHESIS.md for the method and the formulas).

The channel wiring of a SqueezeNet-family network (which layer's filters
become which input channels of which convolution) is computed once, as data,
by `channel_sources(spec)`. The index map, the filter costs and the expected
child size are all read off that table; nothing below hard-codes "fire3
feeds fire4". Pools and dropout act on each channel separately, so they pass
channels through and never appear in the table.

This module imports nothing from TensorFlow on purpose (a test checks it):
`squish_tf.surgery` is the TensorFlow edge that applies these decisions to a
Keras model.
"""

import dataclasses
import logging
import math
import numbers
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from squish_tf import spec as spec_lib

ENV_MODES = ("constant", "target", "cost_weighted")
COSTS = ("params", "macs", "latency")

# A fraction times a filter count is compared with this slack before `ceil`, so
# that 0.05 * 60 = 3.0000000000000004 asks for 3 filters, not 4.
_CEIL_SLACK = 1e-9
# The target-mode root search stops when the expected cost is within this
# fraction of the parent's cost from the target (~0.001 params on 1M params).
_TARGET_TOLERANCE = 1e-9
_MAX_ROOT_STEPS = 200
# F is an environmental factor in (0, 1]; a target at the floors exactly gives
# this instead of 0 (the expected cost is then the floors' to ~1e-9).
_MIN_FACTOR = 1e-12


# -- configuration --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
  """How offspring are drawn from a parent. Field names are the flag names.

  Attributes:
    env_mode: how the environmental factor F_l of each layer is set.
      "target" is the default: measured on shapes10, the paper's single
      constant F (0.8) removes ~45% of every layer's filters at once; the
      children start at chance and 2 fine-tuning epochs bring them back only
      to 9.5 and 20.8 points below the ancestor, so evolution stops at once.
      Steps of a set size (0.65-0.75x per generation, 4 epochs each) went
      from 2.9 MB to 0.57-0.72 MB within 3 points (BN-free ancestor).
      "constant": F_l = env_factor for every layer (the paper).
      "target": F solved per parent so that the EXPECTED child cost is
        `target_fraction` of the parent's; F_l = min(1, F * w_l), w_l from
        `target_gamma` (1 for every layer at target_gamma = 0).
      "cost_weighted": F_l = clip(env_factor * (mean_cost / cost_l)^gamma,
        f_min, 1): layers whose filters cost more face more pressure.
        cost_l is what one filter of layer l costs (`filter_costs`: its
        kernel and bias plus the input channel it feeds in each consumer);
        mean_cost is the average over all filters of the network, so the
        average filter faces exactly env_factor.
    env_factor: F in (0, 1]. 0.8 by default. The papers do not publish their
      F; 0.8 is the gentlest round value that still shrinks a network
      substantially in one generation: a filter survives with probability
      0.8 * P(c), between 0.29 (weakest) and 0.8 (strongest). With strengths as
      at He initialisation (L1 norms within a few % of each other) the
      expected child of squishednet_base has 0.55x its parameters (measured);
      trained layers, whose strengths spread more, are pruned harder. At
      that pace the 2.9 MB ten-class ancestor reaches the paper's ~1 MB
      SquishedNets in about two generations. env_mode="target" sets the
      pace exactly instead.
    target_fraction: for env_mode="target", the expected child cost as a
      fraction of the parent's, in (0, 1). 0.44 by default: two generations
      reach 0.19x (0.56 MB from the 10-class ancestor's 2.91 MB). F = 1 in
      every layer still removes about a third of each trained layer's
      filters (P(c) < 1 for all but the strongest), so a generation cannot
      shrink the network by less than ~0.55x; deeper cuts are where
      target_gamma can shape the child.
    target_gamma: for env_mode="target", how the pressure is shared between
      modules (conv1, each fire): F_l = min(1, F * (mean_cost / module_cost_l)
      ^ target_gamma) with F solved for the target, where module_cost_l is
      what a filter of l's module costs on average (`module_costs`). 0 gives
      every layer the same F (the paper's single environment); the default
      0.5 presses harder on the late fires, whose filters hold the
      parameters, and spares conv1 and the early fires, which are cheap in
      parameters but decide what the network sees. Measured on shapes10 at
      64 px: at 124k deployed parameters, trained from scratch for the same
      24 epochs, early layers at 0.67x and late fires at 0.33x width scored
      97.35% test top-1 against 96.20% for a uniform 0.41x.
    cost: what "target" and "cost_weighted" measure: "params" (model size),
      "macs" (compute at the spec's input size) or "latency" (LiteRT ms
      predicted by a measured table, `squish_tf.latency`; every cost function
      then takes the table as `latency=`).
    gamma: exponent of the cost weighting; 0 makes it constant, 1 (default)
      makes F_l inversely proportional to a filter's cost.
    f_min: lower clip of every cost-weighted F_l, in (0, 1]; 0.05 keeps even
      the costliest layer's strongest filters a 5% chance (plus the floors).
    min_filters: every layer keeps at least this many filters. 2 by default:
      a layer of one filter carries one ReLU map, and if that map is zero on
      an image the whole network's output is constant for it.
    min_fraction: every layer keeps at least ceil(min_fraction * n_l) of the
      parent's n_l filters, in [0, 1).
    channel_multiple: survivor counts are rounded UP to a multiple of this
      (never above n_l), for hardware-friendly widths; 1 turns it off.
  """

  env_mode: str = "target"
  env_factor: float = 0.8
  target_fraction: float = 0.44
  target_gamma: float = 0.5
  cost: str = "params"
  gamma: float = 1.0
  f_min: float = 0.05
  min_filters: int = 2
  min_fraction: float = 0.05
  channel_multiple: int = 1

  def __post_init__(self):
    if self.env_mode not in ENV_MODES:
      raise ValueError(f"--env_mode must be one of {ENV_MODES}, got {self.env_mode!r}.")
    _check_real("env_factor", self.env_factor)
    if not 0.0 < self.env_factor <= 1.0:
      raise ValueError(
          f"--env_factor must be in (0, 1], got {self.env_factor!r}; it scales every filter's "
          "survival probability, so 1 prunes least and values near 0 prune almost everything.")
    _check_real("target_fraction", self.target_fraction)
    if not 0.0 < self.target_fraction < 1.0:
      raise ValueError(
          f"--target_fraction must be in (0, 1), got {self.target_fraction!r}; it is the expected "
          "child size as a fraction of its parent's (e.g. 0.7 for a 30% smaller child).")
    if self.cost not in COSTS:
      raise ValueError(f"--cost must be one of {COSTS}, got {self.cost!r}.")
    _check_real("target_gamma", self.target_gamma)
    if self.target_gamma < 0:
      raise ValueError(f"--target_gamma must be >= 0, got {self.target_gamma!r}; 0 gives every "
                       "layer the same factor, larger values press harder on costly modules.")
    _check_real("gamma", self.gamma)
    if self.gamma < 0:
      raise ValueError(f"--gamma must be >= 0, got {self.gamma!r}; 0 gives every layer the same "
                       "factor, larger values press harder on layers with costly filters.")
    _check_real("f_min", self.f_min)
    if not 0.0 < self.f_min <= 1.0:
      raise ValueError(f"--f_min must be in (0, 1], got {self.f_min!r}.")
    if not _is_int(self.min_filters) or self.min_filters < 1:
      raise ValueError(f"--min_filters must be an integer >= 1, got {self.min_filters!r}; "
                       "every layer needs at least one filter.")
    _check_real("min_fraction", self.min_fraction)
    if not 0.0 <= self.min_fraction < 1.0:
      raise ValueError(f"--min_fraction must be in [0, 1), got {self.min_fraction!r}.")
    if not _is_int(self.channel_multiple) or self.channel_multiple < 1:
      raise ValueError(f"--channel_multiple must be an integer >= 1 (1 = off), got "
                       f"{self.channel_multiple!r}.")


def _is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_real(field: str, value: Any) -> None:
  if (not isinstance(value, numbers.Real) or isinstance(value, bool) or
      not math.isfinite(value)):
    raise ValueError(f"--{field} must be a finite number, got {value!r}.")


# -- channel wiring (the dependency graph, as data) ----------------------------


@dataclasses.dataclass(frozen=True)
class ChannelSource:
  """A contiguous block of a convolution's input channels and who produced it.

  Attributes:
    producer: the prunable layer whose filters are these channels, or None for
      the input image (never pruned).
    offset: index of the block's first channel in the consumer's input.
    channels: channels in the block (the producer's filters in the parent).
  """

  producer: Optional[str]
  offset: int
  channels: int


def channel_sources(spec: spec_lib.NetSpec) -> Dict[str, Tuple[ChannelSource, ...]]:
  """For every convolution (build order, conv10 last), where its input channels come from.

  This is the only place that knows how a SqueezeNet-family network is wired:
  a fire's expands read its squeeze; its concat is [expand1x1, expand3x3]
  (1x1 first, as `squish_tf.models.fire_module` builds it); the next squeeze
  (or conv10) reads that concat. Max pools and dropout sit in between but act
  per channel, so they pass channels through.
  """
  sources: Dict[str, Tuple[ChannelSource, ...]] = {
      "conv1": (ChannelSource(None, 0, spec.input_shape[2]),)}
  previous = (ChannelSource("conv1", 0, spec.conv1_filters),)
  for number, fire in spec.numbered_fires():
    prefix = f"fire{number}_"
    sources[prefix + "squeeze1x1"] = previous
    squeeze = (ChannelSource(prefix + "squeeze1x1", 0, fire.squeeze),)
    sources[prefix + "expand1x1"] = squeeze
    sources[prefix + "expand3x3"] = squeeze
    previous = (ChannelSource(prefix + "expand1x1", 0, fire.expand1x1),
                ChannelSource(prefix + "expand3x3", fire.expand1x1, fire.expand3x3))
  sources["conv10"] = previous
  return sources


def consumers(spec: spec_lib.NetSpec) -> Dict[str, List[str]]:
  """For every prunable layer, the convolutions that read its filters as input channels."""
  out: Dict[str, List[str]] = {name: [] for name, _ in spec.prunable_layers()}
  for consumer, blocks in channel_sources(spec).items():
    for block in blocks:
      if block.producer is not None:
        out[block.producer].append(consumer)
  return out


# -- strengths and probabilities -----------------------------------------------


def filter_strengths(kernel: np.ndarray) -> np.ndarray:
  """s_c = sum |W_c|: the L1 norm of each output filter (all taps and input channels).

  Args:
    kernel: a Conv2D kernel, [kernel_h, kernel_w, in_channels, filters].

  Returns:
    float64 array [filters].
  """
  kernel = np.asarray(kernel)
  if kernel.ndim != 4:
    raise ValueError(f"filter_strengths expects a Conv2D kernel [kh, kw, in, out], got shape "
                     f"{kernel.shape}.")
  strengths = np.abs(kernel.astype(np.float64)).sum(axis=(0, 1, 2))
  if not np.all(np.isfinite(strengths)):
    raise ValueError("kernel has NaN or infinite weights; the parent diverged, so its filter "
                     "strengths mean nothing. Retrain or pick an earlier checkpoint.")
  return strengths


def cluster_probabilities(strengths: np.ndarray) -> np.ndarray:
  """P(c) = exp(s_c / z_l - 1), z_l = max_c s_c; values in [1/e, 1].

  A layer whose filters are all zero (z_l = 0) gets P = 1 for every filter:
  it is the limit of a layer of equally strong filters, each of which is its
  layer's strongest. Its survival is then decided by F_l and the floors alone.
  """
  strengths = np.asarray(strengths, dtype=np.float64)
  if strengths.ndim != 1 or strengths.size == 0:
    raise ValueError(f"strengths must be a non-empty 1-D array (one per filter), got shape "
                     f"{strengths.shape}.")
  if not np.all(np.isfinite(strengths)) or np.any(strengths < 0):
    raise ValueError("strengths must be finite and >= 0 (L1 norms of filters); got "
                     f"min {strengths.min()!r}, max {strengths.max()!r}.")
  z = strengths.max()
  if z == 0:
    return np.ones_like(strengths)
  return np.exp(strengths / z - 1.0)


def _layer_probabilities(spec: spec_lib.NetSpec,
                         strengths: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  _check_keys("strengths", strengths, spec)
  out = {}
  for name, filters in spec.prunable_layers():
    values = np.asarray(strengths[name])
    if values.shape != (filters,):
      raise ValueError(
          f"strengths[{name!r}] has shape {values.shape}, but the spec's layer has {filters} "
          "filters; strengths must come from the model built from this spec "
          "(squish_tf.surgery.layer_strengths(model, spec)).")
    out[name] = cluster_probabilities(values)
  return out


def survival_probabilities(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                           factors: Mapping[str, float]) -> Dict[str, np.ndarray]:
  """F_l * P(c) for every filter of every prunable layer (before floors)."""
  probabilities = _layer_probabilities(spec, strengths)
  _check_factors(spec, factors)
  return {name: float(factors[name]) * p for name, p in probabilities.items()}


# -- floors -----------------------------------------------------------------------


def min_survivors(filters: int, config: SynthesisConfig) -> int:
  """The fewest filters a layer of `filters` filters can keep under `config`'s floors.

  max(min_filters, ceil(min_fraction * filters)), rounded up to a multiple of
  channel_multiple, never above `filters`.
  """
  floor = max(config.min_filters, math.ceil(config.min_fraction * filters - _CEIL_SLACK))
  return min(filters, _round_up(floor, config.channel_multiple))


def _round_up(count: int, multiple: int) -> int:
  return -(-count // multiple) * multiple


def _final_counts(drawn: np.ndarray, filters: np.ndarray, floors: np.ndarray,
                  multiple: int) -> np.ndarray:
  """Survivor counts after floors and rounding, for drawn counts (any array shape)."""
  counts = np.maximum(drawn, floors)
  counts = -(-counts // multiple) * multiple
  return np.minimum(counts, filters)


# -- costs --------------------------------------------------------------------------


class _CostModel:
  """params() and macs() of any child of `spec`, as a function of per-layer filter counts.

  Built once per parent from `channel_sources`, so that the target-mode
  root search can evaluate many candidate counts cheaply. With the
  parent's own counts it reproduces `spec.params()` and `spec.macs()`.
  """

  def __init__(self, spec: spec_lib.NetSpec, latency: Optional[Any] = None):
    self.spec = spec
    self.latency = latency
    sources = channel_sources(spec)
    self.terms = []  # (name, taps, pixels, fixed filters or None, sources)
    for layer in spec.layer_shapes():
      fixed = None if layer.prunable else layer.filters
      self.terms.append((layer.name, layer.kernel_size**2, layer.out_height * layer.out_width,
                         fixed, sources[layer.name]))

  def cost(self, counts: Mapping[str, float]) -> Tuple[float, float]:
    """(params, macs) for `counts` filters per prunable layer (floats for expectations).

    Exact for expectations too: a convolution's weights are taps * C_in * N,
    and C_in (its producers' counts) and N (its own) are independent, so
    E[C_in * N] = E[C_in] * E[N].
    """
    params = 0.0
    macs = 0.0
    for name, taps, pixels, fixed, blocks in self.terms:
      filters = counts[name] if fixed is None else fixed
      in_channels = sum(block.channels if block.producer is None else counts[block.producer]
                        for block in blocks)
      weights = taps * in_channels * filters
      params += weights + filters
      macs += pixels * weights
    return params, macs

  def measure(self, counts: Mapping[str, float], cost: str) -> float:
    """One cost of `counts`: params, MACs or predicted latency (ms)."""
    if cost == "latency":
      return _require_latency(cost, self.latency).predict_counts(self.spec, counts)
    params, macs = self.cost(counts)
    return params if cost == "params" else macs

  def parent(self, cost: str) -> float:
    """The parent's own cost."""
    return self.measure({name: float(n) for name, n in self.spec.prunable_layers()}, cost)


def _require_latency(cost: str, latency: Optional[Any]):
  if cost == "latency" and latency is None:
    raise ValueError("--cost=latency needs a measured latency table (squish_tf.latency); "
                     "pass latency=load_or_measure(...) or use --cost=params or macs.")
  return latency


def filter_costs(spec: spec_lib.NetSpec, cost: str = "params",
                 latency: Optional[Any] = None) -> Dict[str, float]:
  """What one filter of each prunable layer costs, in params, MACs or predicted ms.

  A filter's cost is everything that disappears with it: its own kernel and
  bias, and the input channel it feeds in every consumer (one k x k slice of
  each consumer filter). This is exactly spec.params() (or macs()) minus the
  same spec with one filter fewer in that layer (for latency, the table's
  prediction minus the same, `squish_tf.latency.filter_latency`).
  """
  if cost not in COSTS:
    raise ValueError(f"cost must be one of {COSTS}, got {cost!r}.")
  if cost == "latency":
    from squish_tf import latency as latency_lib  # pylint: disable=g-import-not-at-top

    return latency_lib.filter_latency(_require_latency(cost, latency), spec)
  shapes = {layer.name: layer for layer in spec.layer_shapes()}
  readers = consumers(spec)
  out = {}
  for name, _ in spec.prunable_layers():
    own = shapes[name]
    if cost == "params":
      value = own.kernel_size**2 * own.in_channels + 1
      value += sum(shapes[c].kernel_size**2 * shapes[c].filters for c in readers[name])
    else:
      value = own.out_height * own.out_width * own.kernel_size**2 * own.in_channels
      value += sum(shapes[c].out_height * shapes[c].out_width * shapes[c].kernel_size**2 *
                   shapes[c].filters for c in readers[name])
    out[name] = value
  return out


def module_of(layer: str) -> str:
  """The module a prunable layer belongs to: "conv1", or "fireN" for fireN's three convolutions."""
  return layer.split("_", 1)[0]


def module_costs(spec: spec_lib.NetSpec, cost: str = "params",
                 latency: Optional[Any] = None) -> Dict[str, float]:
  """For every prunable layer, what a filter of its module costs on average.

  The module's filters' `filter_costs`, averaged over its filters (conv1 is a
  module of its own). Within a fire the squeeze filters cost far more than the
  expand filters (each feeds both expands, nine taps of the 3x3 among them);
  pressing on layers by their own cost would starve the squeeze bottleneck,
  so target mode shares pressure between modules, and inside a module P(c)
  alone decides.
  """
  costs = filter_costs(spec, cost, latency)
  filters = dict(spec.prunable_layers())
  totals: Dict[str, float] = {}
  counts: Dict[str, int] = {}
  for name, n in filters.items():
    module = module_of(name)
    totals[module] = totals.get(module, 0.0) + costs[name] * n
    counts[module] = counts.get(module, 0) + n
  return {name: totals[module_of(name)] / counts[module_of(name)] for name in filters}


def module_weights(spec: spec_lib.NetSpec, cost: str, gamma: float,
                   latency: Optional[Any] = None) -> Dict[str, float]:
  """(mean_cost / module_cost_l) ^ gamma per prunable layer, the mean over all filters.

  A filter of average cost has weight 1; cheaper modules more, costlier less.
  """
  costs = module_costs(spec, cost, latency)
  filters = dict(spec.prunable_layers())
  mean = sum(costs[n] * filters[n] for n in filters) / sum(filters.values())
  return {name: float((mean / costs[name])**gamma) for name in filters}


@dataclasses.dataclass(frozen=True)
class ExpectedCost:
  """The expected size of a child before it is drawn.

  Attributes:
    params: expected parameters.
    macs: expected multiply-accumulates at the spec's input size.
    filters: expected surviving filters per prunable layer (floors included).
    latency_ms: the latency table's prediction at the expected counts (None
      without a table).
  """

  params: float
  macs: float
  filters: Dict[str, float]
  latency_ms: Optional[float] = None


def _expected_counts(spec: spec_lib.NetSpec, probabilities: Mapping[str, np.ndarray],
                     factors: Mapping[str, float], config: SynthesisConfig) -> Dict[str, float]:
  """E[survivor count] per layer, exactly, floors and channel rounding included.

  The drawn count X_l of a layer is Poisson-binomial (independent Bernoullis
  with p_c = F_l P(c)); the final count is g(X_l) = min(n_l, roundup(max(floor,
  X_l), k)). Its distribution comes from the textbook dynamic programme, run
  for all layers at once (rows padded with p = 0, which leaves a row's
  distribution unchanged). Without rounding only P(X_l < floor) is needed,
  E[max(floor, X)] = E[X] + sum_{j < floor} (floor - j) P(X = j), and the DP
  is truncated to those few entries (the low entries of the DP never depend
  on the high ones), which makes the target-mode root search cheap.
  """
  names = [name for name, _ in spec.prunable_layers()]
  filters = np.array([n for _, n in spec.prunable_layers()], dtype=np.int64)
  floors = np.array([min_survivors(int(n), config) for n in filters], dtype=np.int64)
  widest = int(filters.max())
  p = np.zeros((len(names), widest))
  for row, name in enumerate(names):
    p[row, :filters[row]] = float(factors[name]) * probabilities[name]
  multiple = config.channel_multiple
  support = int(floors.max()) if multiple == 1 else widest + 1
  pmf = np.zeros((len(names), support))
  pmf[:, 0] = 1.0
  for column in range(widest):
    q = p[:, column:column + 1]
    moved = pmf[:, :-1] * q
    pmf *= 1.0 - q
    pmf[:, 1:] += moved
  values = np.arange(support)
  if multiple == 1:
    deficit = np.maximum(floors[:, None] - values[None, :], 0)
    expected = p.sum(axis=1) + (deficit * pmf).sum(axis=1)
  else:
    counts = _final_counts(values[None, :], filters[:, None], floors[:, None], multiple)
    expected = (counts * pmf).sum(axis=1)
  return {name: float(value) for name, value in zip(names, expected)}


def expected_child_cost(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                        factors: Mapping[str, float],
                        config: Optional[SynthesisConfig] = None,
                        latency: Optional[Any] = None) -> ExpectedCost:
  """The exact expected params and MACs of a child drawn with `factors`, before drawing it.

  Exact, not a mean-field guess: survivor counts are computed from their full
  distribution including the floors and channel rounding (see
  `_expected_counts`), and the product terms factorise because different
  layers are drawn independently.

  Args:
    spec: the parent.
    strengths: filter strengths per prunable layer (`layer_strengths`).
    factors: F_l per prunable layer (`environment_factors`).
    config: the floors; defaults to `SynthesisConfig()`.
    latency: a `squish_tf.latency.LatencyTable`, to predict the latency too
      (the table read at the expected counts: exact within one grid cell,
      where the table is bilinear and layers are drawn independently).
  """
  config = config or SynthesisConfig()
  probabilities = _layer_probabilities(spec, strengths)
  _check_factors(spec, factors)
  counts = _expected_counts(spec, probabilities, factors, config)
  params, macs = _CostModel(spec).cost(counts)
  latency_ms = None if latency is None else latency.predict_counts(spec, counts)
  return ExpectedCost(params=params, macs=macs, filters=counts, latency_ms=latency_ms)


# -- environmental factors --------------------------------------------------------


def environment_factors(spec: spec_lib.NetSpec, config: SynthesisConfig,
                        strengths: Optional[Mapping[str, np.ndarray]] = None,
                        latency: Optional[Any] = None) -> Dict[str, float]:
  """F_l in (0, 1] for every prunable layer, by `config.env_mode`.

  Args:
    spec: the parent.
    config: the mode and its parameters.
    strengths: filter strengths per layer; required by "target" only.
    latency: the measured latency table; required by --cost=latency.

  Raises:
    ValueError: "target" without strengths, or a target below the floors.
  """
  names = [name for name, _ in spec.prunable_layers()]
  if config.env_mode == "constant":
    return {name: float(config.env_factor) for name in names}
  if config.env_mode == "target":
    if strengths is None:
      raise ValueError("--env_mode=target needs the parent's filter strengths to compute the "
                       "expected child size; pass strengths=layer_strengths(model, spec).")
    factor = target_env_factor(spec, strengths, config, latency)
    return _target_factors(spec, config, factor, latency)
  costs = filter_costs(spec, config.cost, latency)
  filters = dict(spec.prunable_layers())
  # The average filter (weighted by filter count) faces exactly env_factor.
  mean_cost = sum(costs[n] * filters[n] for n in names) / sum(filters.values())
  return {name: float(np.clip(config.env_factor * (mean_cost / costs[name])**config.gamma,
                              config.f_min, 1.0))
          for name in names}


def _target_factors(spec: spec_lib.NetSpec, config: SynthesisConfig, factor: float,
                    latency: Optional[Any] = None,
                    weights: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
  """F_l = min(1, F * w_l) for target mode (w_l = 1 for every layer when target_gamma = 0)."""
  if weights is None:
    weights = module_weights(spec, config.cost, config.target_gamma, latency)
  # 1 - 1e-12 and above is 1: F_max * w_l for the costliest module rounds to 0.9999999999999999.
  return {name: 1.0 if factor * weight >= 1.0 - 1e-12 else float(max(_MIN_FACTOR,
                                                                      factor * weight))
          for name, weight in weights.items()}


def _max_target_factor(spec: spec_lib.NetSpec, config: SynthesisConfig,
                       latency: Optional[Any] = None) -> float:
  """The F at which every layer's F_l reaches 1 (1 when target_gamma = 0)."""
  return 1.0 / min(module_weights(spec, config.cost, config.target_gamma, latency).values())


def target_env_factor(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                      config: SynthesisConfig, latency: Optional[Any] = None) -> float:
  """The F for which the expected child cost is target_fraction of the parent's.

  Every layer then faces F_l = min(1, F * w_l) (`module_weights`; with
  target_gamma = 0 one F for all). The expected cost grows monotonically
  with F (every survival probability does), so a bracketing root finder on
  [0, F_max] finds it, F_max being where every F_l reaches 1. When even that
  leaves the child below the target (P(c) < 1 prunes some filters
  regardless), F_max is returned with a logged warning: the encoding cannot
  prune less.

  Raises:
    ValueError: the target is below the smallest child the floors allow;
      the message states that size in params and MB.
  """
  probabilities = _layer_probabilities(spec, strengths)
  model = _CostModel(spec, _require_latency(config.cost, latency))
  names = [name for name, _ in spec.prunable_layers()]
  parent = model.parent(config.cost)
  target = config.target_fraction * parent
  weights = module_weights(spec, config.cost, config.target_gamma, latency)

  f_max = 1.0 / min(weights.values())

  def expected(factor: float) -> float:
    counts = _expected_counts(spec, probabilities, _target_factors(
        spec, config, factor, weights=weights) if factor > 0 else dict.fromkeys(names, 0.0),
                              config)
    return model.measure(counts, config.cost)

  smallest = expected(0.0)  # F -> 0: every layer at its floor, deterministically
  if target < smallest * (1.0 - 1e-12):
    floor_spec = smallest_child_spec(spec, config)
    what = {"params": f"{target:,.0f} params ({target * 4 / 1e6:.3f} MB)",
            "macs": f"{target:,.0f} MACs",
            "latency": f"{target:.4f} ms (predicted)"}[config.cost]
    raise ValueError(
        f"--target_fraction={config.target_fraction} asks for an expected child of {what}, "
        f"but the floors (--min_filters={config.min_filters}, --min_fraction="
        f"{config.min_fraction}, --channel_multiple={config.channel_multiple}) keep at least "
        f"{floor_spec.params():,} params ({floor_spec.size_mb():.3f} MB, {floor_spec.macs():,} "
        f"MACs), {smallest / parent:.4f} of this parent's {config.cost}. Raise --target_fraction "
        f"to at least {smallest / parent:.4f} or lower the floors.")
  at_most = expected(f_max)
  if at_most <= target:
    logging.getLogger(__name__).warning(
        "--target_fraction=%s is above what the encoding can keep: even F_l = 1 in every "
        "layer gives an expected child of %.3f of the parent's %s (weak filters have "
        "P(c) < 1). Using F_l = 1.", config.target_fraction, at_most / parent, config.cost)
    return f_max
  # Regula falsi with the Illinois fix: E(F) is smooth and monotone, so this
  # keeps the root bracketed like bisection but needs ~6-10 evaluations
  # instead of ~27 (each one a DP over every filter).
  low, high = 0.0, f_max
  f_low, f_high = smallest - target, at_most - target
  side = 0
  factor = f_max
  for _ in range(_MAX_ROOT_STEPS):
    factor = (low * f_high - high * f_low) / (f_high - f_low)
    if not low < factor < high:  # degenerate secant: fall back to bisection
      factor = 0.5 * (low + high)
    f_factor = expected(factor) - target
    if abs(f_factor) <= _TARGET_TOLERANCE * parent or high - low < _MIN_FACTOR:
      break
    if f_factor > 0:
      high, f_high = factor, f_factor
      if side == -1:
        f_low *= 0.5
      side = -1
    else:
      low, f_low = factor, f_factor
      if side == 1:
        f_high *= 0.5
      side = 1
  return max(factor, _MIN_FACTOR)


# -- sampling ---------------------------------------------------------------------


def sample_survivors(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                     factors: Mapping[str, float], rng: np.random.Generator,
                     config: Optional[SynthesisConfig] = None) -> Dict[str, np.ndarray]:
  """Draws which filters of every prunable layer survive.

  keep_c ~ Bernoulli(F_l P(c)) independently, one `rng.random(n_l)` per layer
  in build order (so a seed reproduces the masks). Then the floors: when
  fewer than `min_survivors(n_l)` survive, or the count is not a multiple of
  channel_multiple, the strongest non-survivors are added back (ties: lower
  index first).

  Args:
    spec: the parent.
    strengths: filter strengths per prunable layer.
    factors: F_l per prunable layer.
    rng: the run's seeded generator, e.g. np.random.default_rng(seed).
    config: the floors; defaults to `SynthesisConfig()`.

  Returns:
    {layer name: sorted int64 array of kept filter indices} for every prunable layer.
  """
  config = config or SynthesisConfig()
  if not isinstance(rng, np.random.Generator):
    raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got "
                     f"{type(rng).__name__}.")
  probabilities = survival_probabilities(spec, strengths, factors)
  survivors = {}
  for name, filters in spec.prunable_layers():
    keep = rng.random(filters) < probabilities[name]
    drawn = int(keep.sum())
    wanted = int(_final_counts(drawn, filters, min_survivors(filters, config),
                               config.channel_multiple))
    if wanted > drawn:
      strongest_first = np.argsort(-np.asarray(strengths[name], dtype=np.float64), kind="stable")
      missing = strongest_first[~keep[strongest_first]][:wanted - drawn]
      keep[missing] = True
    survivors[name] = np.flatnonzero(keep)
  return survivors


# -- children ---------------------------------------------------------------------


def child_spec(parent_spec: spec_lib.NetSpec, survivors: Mapping[str, Any],
               name: Optional[str] = None) -> spec_lib.NetSpec:
  """The dense child: every prunable layer as wide as its survivor list.

  Args:
    parent_spec: the parent.
    survivors: kept filter indices per prunable layer.
    name: the child's name; defaults to the parent's name with "_evolved"
      appended once (a label for humans, not part of the architecture).
  """
  kept = check_survivors(parent_spec, survivors)
  return _spec_with_counts(parent_spec, {k: len(v) for k, v in kept.items()}, name)


def smallest_child_spec(spec: spec_lib.NetSpec, config: SynthesisConfig) -> spec_lib.NetSpec:
  """The child with every layer at its floor: the smallest size `config` can reach."""
  counts = {name: min_survivors(filters, config) for name, filters in spec.prunable_layers()}
  return _spec_with_counts(spec, counts, None)


def _spec_with_counts(spec: spec_lib.NetSpec, counts: Mapping[str, int],
                      name: Optional[str]) -> spec_lib.NetSpec:
  fires = tuple(
      spec_lib.FireSpec(counts[f"fire{number}_squeeze1x1"], counts[f"fire{number}_expand1x1"],
                        counts[f"fire{number}_expand3x3"])
      for number, _ in spec.numbered_fires())
  if name is None:
    name = spec.name if spec.name.endswith("_evolved") else spec.name + "_evolved"
  return spec.replace(conv1_filters=counts["conv1"], fires=fires, name=name)


def input_channel_map(parent_spec: spec_lib.NetSpec,
                      survivors: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """For every convolution, the parent's input channels it keeps, in the child's order.

  Read off `channel_sources`: a block produced by a prunable layer keeps
  offset + that layer's survivors, the image block keeps everything. So the
  expands keep the squeeze survivors, and the next squeeze (or conv10) keeps
  kept_e1 followed by n_e1 + kept_e3, the order of the child's concat.
  """
  kept = check_survivors(parent_spec, survivors)
  out = {}
  for consumer, blocks in channel_sources(parent_spec).items():
    parts = [np.arange(block.channels) if block.producer is None
             else block.offset + kept[block.producer] for block in blocks]
    out[consumer] = np.concatenate(parts).astype(np.int64)
  return out


def output_channel_map(parent_spec: spec_lib.NetSpec,
                       survivors: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """For every convolution, the parent's output filters it keeps (conv10 keeps all)."""
  kept = check_survivors(parent_spec, survivors)
  out = dict(kept)
  out["conv10"] = np.arange(parent_spec.num_classes, dtype=np.int64)
  return out


def check_survivors(spec: spec_lib.NetSpec, survivors: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """Validates survivor lists against `spec`; returns sorted int64 arrays.

  Raises:
    ValueError: a layer is missing or unknown, a list is empty, has repeats or
      an index outside the layer.
  """
  _check_keys("survivors", survivors, spec)
  out = {}
  for name, filters in spec.prunable_layers():
    values = np.asarray(survivors[name])
    if values.ndim != 1 or values.size == 0:
      raise ValueError(f"survivors[{name!r}] must be a non-empty list of filter indices, got "
                       f"shape {values.shape}; every layer keeps at least one filter.")
    if not np.issubdtype(values.dtype, np.integer):
      raise ValueError(f"survivors[{name!r}] must hold integer filter indices, got dtype "
                       f"{values.dtype}.")
    values = np.sort(values.astype(np.int64))
    if values[0] < 0 or values[-1] >= filters:
      bad = values[0] if values[0] < 0 else values[-1]
      raise ValueError(f"survivors[{name!r}] lists filter {bad}, but the parent layer has "
                       f"{filters} filters (valid 0..{filters - 1}); survivors must be drawn "
                       "from this parent's spec.")
    if np.any(np.diff(values) == 0):
      raise ValueError(f"survivors[{name!r}] lists a filter twice: {values.tolist()}.")
    out[name] = values
  return out


def survivors_to_json(survivors: Mapping[str, Any]) -> Dict[str, List[int]]:
  """Survivor arrays as plain lists of ints (for lineage.json)."""
  return {name: [int(i) for i in np.asarray(values).ravel()] for name, values in survivors.items()}


def survivors_from_json(data: Mapping[str, Any],
                        spec: Optional[spec_lib.NetSpec] = None) -> Dict[str, np.ndarray]:
  """Inverse of `survivors_to_json`; validated against `spec` when given."""
  if not isinstance(data, Mapping):
    raise ValueError(f"survivors must be a JSON object {{layer: [indices]}}, got "
                     f"{type(data).__name__}.")
  out = {name: np.asarray(values) for name, values in data.items()}
  if spec is not None:
    return check_survivors(spec, out)
  for name, values in out.items():
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
      raise ValueError(f"survivors[{name!r}] must be a list of integer filter indices, got "
                       f"{data[name]!r}.")
  return {name: values.astype(np.int64) for name, values in out.items()}


# -- one call -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Offspring:
  """One drawn child, before any TensorFlow is involved.

  Attributes:
    survivors: kept filter indices per prunable layer of the parent.
    spec: the dense child spec.
    factors: the F_l it was drawn with.
    expected_params: expected child params under `factors` (before the draw).
    expected_macs: expected child MACs under `factors`.
    expected_latency_ms: expected predicted latency under `factors` (None
      without a latency table).
    predicted_latency_ms: the table's prediction for the drawn child.
  """

  survivors: Dict[str, np.ndarray]
  spec: spec_lib.NetSpec
  factors: Dict[str, float]
  expected_params: float
  expected_macs: float
  expected_latency_ms: Optional[float] = None
  predicted_latency_ms: Optional[float] = None

  def to_json(self) -> Dict[str, Any]:
    """JSON-friendly record for lineage.json."""
    data = {
        "survivors": survivors_to_json(self.survivors),
        "env_factors": {name: float(value) for name, value in self.factors.items()},
        "expected_params": self.expected_params,
        "expected_macs": self.expected_macs,
        "params": self.spec.params(),
        "macs": self.spec.macs(),
    }
    if self.expected_latency_ms is not None:
      data["expected_latency_ms"] = self.expected_latency_ms
      data["predicted_latency_ms"] = self.predicted_latency_ms
    return data


def sample_offspring(parent_spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                     config: SynthesisConfig, rng: np.random.Generator,
                     factors: Optional[Mapping[str, float]] = None,
                     name: Optional[str] = None, latency: Optional[Any] = None) -> Offspring:
  """Factors, expected size, survivors and child spec in one call.

  Args:
    parent_spec: the parent.
    strengths: its filter strengths (`squish_tf.surgery.layer_strengths`).
    config: the synthesis configuration.
    rng: the candidate's seeded generator.
    factors: F_l per layer when already computed for this parent; they depend
      on the parent only, and in "target" mode finding them takes a root
      search (~30-150 ms for SqueezeNet v1.1), so a generation computes them
      once with `environment_factors` and passes them to every candidate.
    name: the child's name (see `child_spec`).
    latency: a measured `squish_tf.latency.LatencyTable` (required by
      --cost=latency); the offspring then records its expected and predicted
      latency.
  """
  if factors is None:
    factors = environment_factors(parent_spec, config, strengths, latency)
  factors = dict(factors)
  expected = expected_child_cost(parent_spec, strengths, factors, config, latency)
  survivors = sample_survivors(parent_spec, strengths, factors, rng, config)
  child = child_spec(parent_spec, survivors, name)
  return Offspring(survivors=survivors, spec=child, factors=factors,
                   expected_params=expected.params, expected_macs=expected.macs,
                   expected_latency_ms=expected.latency_ms,
                   predicted_latency_ms=None if latency is None else latency.predict(child))


# -- validation helpers -------------------------------------------------------------


def _check_keys(what: str, mapping: Mapping[str, Any], spec: spec_lib.NetSpec) -> None:
  if not isinstance(mapping, Mapping):
    raise ValueError(f"{what} must be a dict {{layer name: values}}, got {type(mapping).__name__}.")
  expected = [name for name, _ in spec.prunable_layers()]
  missing = [name for name in expected if name not in mapping]
  unknown = sorted(set(mapping) - set(expected))
  if missing or unknown:
    raise ValueError(f"{what} must have one entry per prunable layer of spec {spec.name!r}; "
                     f"missing {missing}, unknown {unknown}. The prunable layers are "
                     f"{expected} (conv10 is never pruned).")


def _check_factors(spec: spec_lib.NetSpec, factors: Mapping[str, float]) -> None:
  _check_keys("factors", factors, spec)
  for name, _ in spec.prunable_layers():
    value = factors[name]
    if not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
      raise ValueError(f"factors[{name!r}] must be an environmental factor in (0, 1], got "
                       f"{value!r}.")
