"""The environment of synthesis: what a filter costs (parameters, MACs or predicted latency),
the per-module environmental factors that press where the cost is, the expected cost of a
child, the factor that reaches a size or speed target, and `sample_offspring`. numpy only."""

import dataclasses
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from squish_tf.bench.latency_table import LatencyTable
from squish_tf.evolve import registries
from squish_tf.evolve.encoding import (
  MAX_ROOT_STEPS,
  MIN_FACTOR,
  TARGET_TOLERANCE,
  SynthesisConfig,
  check_factors,
  child_spec,
  final_counts,
  layer_probabilities,
  min_survivors,
  sample_survivors,
  smallest_child_spec,
  survivors_to_json,
)
from squish_tf.net import spec as spec_lib
from squish_tf.net.wiring import channel_sources, consumers


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
    """One cost of `counts` (`registries.costs`): params, MACs or predicted latency (ms)."""
    return registries.costs.lookup(cost).count(self, counts)

  def parent(self, cost: str) -> float:
    """The parent's own cost."""
    return self.measure({name: float(n) for name, n in self.spec.prunable_layers()}, cost)


def _require_latency(cost: str, latency: Optional[Any]):
  if cost == "latency" and latency is None:
    raise ValueError("--cost=latency needs a measured latency table (squish_tf.bench.latency); "
                     "pass latency=load_or_measure(...) or use --cost=params or macs.")
  return latency


def params_of_counts(model: "_CostModel", counts: Mapping[str, float]) -> float:
  """--cost=params of a child with `counts` filters per prunable layer."""
  return model.cost(counts)[0]


def macs_of_counts(model: "_CostModel", counts: Mapping[str, float]) -> float:
  """--cost=macs of a child with `counts` filters per prunable layer."""
  return model.cost(counts)[1]


def latency_of_counts(model: "_CostModel", counts: Mapping[str, float]) -> float:
  """--cost=latency: the table's predicted ms of a child with `counts` filters per layer."""
  return _require_latency("latency", model.latency).predict_counts(model.spec, counts)


def filter_costs(spec: spec_lib.NetSpec, cost: str = "params",
                 latency: Optional[Any] = None) -> Dict[str, float]:
  """What one filter of each prunable layer costs, in params, MACs or predicted ms.

  A filter's cost is everything that disappears with it: its own kernel and
  bias, and the input channel it feeds in every consumer (one k x k slice of
  each consumer filter). This is exactly spec.params() (or macs()) minus the
  same spec with one filter fewer in that layer (for latency, the table's
  prediction minus the same, `squish_tf.bench.latency.filter_latency`).
  """
  return registries.costs.lookup(cost).filter_costs(spec, latency)


def params_per_filter(spec: spec_lib.NetSpec, latency: Optional[Any] = None) -> Dict[str, float]:
  """--cost=params of one filter per prunable layer (`filter_costs`)."""
  del latency
  return _per_filter(spec, lambda layer: 1, bias=1)


def macs_per_filter(spec: spec_lib.NetSpec, latency: Optional[Any] = None) -> Dict[str, float]:
  """--cost=macs of one filter per prunable layer (`filter_costs`)."""
  del latency
  return _per_filter(spec, lambda layer: layer.out_height * layer.out_width, bias=0)


def latency_per_filter(spec: spec_lib.NetSpec, latency: Optional[Any] = None
                       ) -> Dict[str, float]:
  """--cost=latency of one filter per prunable layer (`filter_costs`)."""
  return filter_latency(_require_latency("latency", latency), spec)


def _per_filter(spec: spec_lib.NetSpec, pixels: Callable[[Any], int],
                bias: int) -> Dict[str, float]:
  """Its kernel (and bias) and the slice it feeds in every consumer, each weight times the
  output pixels it runs at (`pixels(layer)`: 1 for params)."""
  shapes = {layer.name: layer for layer in spec.layer_shapes()}
  readers = consumers(spec)
  out = {}
  for name, _ in spec.prunable_layers():
    own = shapes[name]
    value = pixels(own) * own.kernel_size**2 * own.in_channels + bias
    value += sum(pixels(shapes[c]) * shapes[c].kernel_size**2 * shapes[c].filters
                 for c in readers[name])
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
    counts = final_counts(values[None, :], filters[:, None], floors[:, None], multiple)
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
    latency: a `squish_tf.bench.latency.LatencyTable`, to predict the latency too
      (the table read at the expected counts: exact within one grid cell,
      where the table is bilinear and layers are drawn independently).
  """
  config = config or SynthesisConfig()
  probabilities = layer_probabilities(spec, strengths, config)
  check_factors(spec, factors)
  counts = _expected_counts(spec, probabilities, factors, config)
  params, macs = _CostModel(spec).cost(counts)
  latency_ms = None if latency is None else latency.predict_counts(spec, counts)
  return ExpectedCost(params=params, macs=macs, filters=counts, latency_ms=latency_ms)


def floor_fraction(spec: spec_lib.NetSpec, config: SynthesisConfig,
                   latency: Optional[Any] = None) -> float:
  """The least cost fraction target mode accepts: every layer at its floor, measured as
  `target_env_factor` measures (a latency unpadded, unlike `LatencyTable.predict`)."""
  model = _CostModel(spec, _require_latency(config.cost, latency))
  floors = {name: float(min_survivors(n, config)) for name, n in spec.prunable_layers()}
  return model.measure(floors, config.cost) / model.parent(config.cost)


def environment_factors(spec: spec_lib.NetSpec, config: SynthesisConfig,
                        strengths: Optional[Mapping[str, np.ndarray]] = None,
                        latency: Optional[Any] = None) -> Dict[str, float]:
  """F_l in (0, 1] for every prunable layer of the parent `spec`, by `config.env_mode`;
  "target" needs the filter `strengths`, --cost=latency the measured table (`latency`).

  Raises:
    ValueError: "target" without strengths, or a target below the floors.
  """
  return registries.env_modes.lookup(config.env_mode).factors_of(spec, config, strengths,
                                                                  latency)


def constant_factors(spec: spec_lib.NetSpec, config: SynthesisConfig,
                     strengths: Optional[Mapping[str, np.ndarray]] = None,
                     latency: Optional[Any] = None) -> Dict[str, float]:
  """--env_mode=constant: F_l = env_factor for every layer (the paper)."""
  del strengths, latency
  return {name: float(config.env_factor) for name, _ in spec.prunable_layers()}


def target_factors(spec: spec_lib.NetSpec, config: SynthesisConfig,
                   strengths: Optional[Mapping[str, np.ndarray]] = None,
                   latency: Optional[Any] = None) -> Dict[str, float]:
  """--env_mode=target: F solved so that the expected child cost is target_fraction of the
  parent's, shared between modules by their cost (`target_env_factor`)."""
  if strengths is None:
    raise ValueError("--env_mode=target needs the parent's filter strengths to compute the "
                     "expected child size; pass strengths=layer_strengths(model, spec).")
  factor = target_env_factor(spec, strengths, config, latency)
  return _target_factors(spec, config, factor, latency)


def cost_weighted_factors(spec: spec_lib.NetSpec, config: SynthesisConfig,
                          strengths: Optional[Mapping[str, np.ndarray]] = None,
                          latency: Optional[Any] = None) -> Dict[str, float]:
  """--env_mode=cost_weighted: F_l = clip(env_factor * (mean_cost / cost_l)^gamma, f_min, 1)."""
  del strengths
  names = [name for name, _ in spec.prunable_layers()]
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
  return {name: 1.0 if factor * weight >= 1.0 - 1e-12 else float(max(MIN_FACTOR,
                                                                      factor * weight))
          for name, weight in weights.items()}


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
  probabilities = layer_probabilities(spec, strengths, config)
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

  smallest = floor_fraction(spec, config, latency) * parent  # F -> 0: every layer at its floor
  if target < smallest * (1.0 - 1e-12):
    floor_spec = smallest_child_spec(spec, config)
    what = registries.costs.lookup(config.cost).amount(target)
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
        "P(c) < 1 at --survival_temperature=%s; a higher temperature keeps more). Using "
        "F_l = 1.", config.target_fraction, at_most / parent, config.cost,
        config.survival_temperature)
    return f_max
  # Regula falsi with the Illinois fix: E(F) is smooth and monotone, so this
  # keeps the root bracketed like bisection but needs ~6-10 evaluations
  # instead of ~27 (each one a DP over every filter).
  low, high = 0.0, f_max
  f_low, f_high = smallest - target, at_most - target
  side = 0
  factor = f_max
  for _ in range(MAX_ROOT_STEPS):
    factor = (low * f_high - high * f_low) / (f_high - f_low)
    if not low < factor < high:  # degenerate secant: fall back to bisection
      factor = 0.5 * (low + high)
    f_factor = expected(factor) - target
    if abs(f_factor) <= TARGET_TOLERANCE * parent or high - low < MIN_FACTOR:
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
  return max(factor, MIN_FACTOR)


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
    strengths: its filter strengths (`squish_tf.evolve.surgery.layer_strengths`).
    config: the synthesis configuration.
    rng: the candidate's seeded generator.
    factors: F_l per layer when already computed for this parent (they depend on it alone,
      and target mode's take a root search: a generation computes them once).
    name: the child's name (see `child_spec`).
    latency: a measured `squish_tf.bench.latency.LatencyTable` (required by --cost=latency);
      the offspring then records its expected and predicted latency.
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
