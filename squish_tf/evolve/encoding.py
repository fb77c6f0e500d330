"""The genetic encoding of deep evolutionary synthesis, in numpy.

Everything evolution decides before TensorFlow is involved lives here: filter
strengths and cluster probabilities, the environmental factor F_l of each
layer, the Bernoulli draw of surviving filters with its floors, the exact
expected size of a child, the child `NetSpec`, and the index map that tells
surgery which input channels every convolution keeps (see docs/method.md for
the method and the formulas).

The channel wiring of a SqueezeNet-family network (which layer's filters
become which input channels of which convolution) is computed once, as data,
by `channel_sources(spec)`. The index map, the filter costs and the expected
child size are all read off that table; nothing below hard-codes "fire3
feeds fire4". Pools and dropout act on each channel separately, so they pass
channels through and never appear in the table.

This module imports nothing from TensorFlow on purpose (a test checks it):
`squish_tf.evolve.surgery` is the TensorFlow edge that applies these decisions to a
Keras model.
"""

import dataclasses
import math
import numbers
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from squish_tf import fields as fields_lib
from squish_tf.net import spec as spec_lib
from squish_tf.net.wiring import channel_sources, spec_with_counts

ENV_MODES = ("constant", "target", "cost_weighted")
COSTS = ("params", "macs", "latency")


# A fraction times a filter count is compared with this slack before `ceil`, so
# that 0.05 * 60 = 3.0000000000000004 asks for 3 filters, not 4.
_CEIL_SLACK = 1e-9
# The target-mode root search stops when the expected cost is within this
# fraction of the parent's cost from the target (~0.001 params on 1M params).
TARGET_TOLERANCE = 1e-9
MAX_ROOT_STEPS = 200
# F is an environmental factor in (0, 1]; a target at the floors exactly gives
# this instead of 0 (the expected cost is then the floors' to ~1e-9).
MIN_FACTOR = 1e-12


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
  """How offspring are drawn from a parent. Field names are the flag names.

  Attributes:
    env_mode: how the environmental factor F_l of each layer is set.
      "target" is the default: on shapes10 the paper's single constant F
      removes so many of every layer's filters at once that the children
      start at chance and short fine-tunes do not bring them back within the
      accuracy budget, so evolution stops at once; steps of a set size
      recover between generations.
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
      at He initialisation (L1 norms close to each other) the expected child
      of squishednet_base keeps a little over half its parameters; trained
      layers, whose strengths spread more, are pruned harder. At that pace
      the ten-class ancestor reaches the paper's SquishedNet sizes in about
      two generations. env_mode="target" sets the
      pace exactly instead.
    target_fraction: for env_mode="target", the expected child cost as a
      fraction of the parent's, in (0, 1). 0.44 by default: two generations
      reach 0.44^2 = 0.19x of the ancestor. F = 1 in
      every layer still removes about a third of each trained layer's
      filters (P(c) < 1 for all but the strongest), so a generation cannot
      shrink a trained network gently at survival_temperature 1
      (a higher temperature reaches gentler fractions); deeper cuts are
      where target_gamma can shape the child.
    target_gamma: for env_mode="target", how the pressure is shared between
      modules (conv1, each fire): F_l = min(1, F * (mean_cost / module_cost_l)
      ^ target_gamma) with F solved for the target, where module_cost_l is
      what a filter of l's module costs on average (`module_costs`). 0 gives
      every layer the same F (the paper's single environment); the default
      0.5 presses harder on the late fires, whose filters hold the
      parameters, and spares conv1 and the early fires, which are cheap in
      parameters but decide what the network sees (at equal deployed size,
      wide early layers and thin late fires beat a uniform width on shapes10:
      docs/method.md).
    cost: what "target" and "cost_weighted" measure: "params" (model size),
      "macs" (compute at the spec's input size) or "latency" (LiteRT ms
      predicted by a measured table, `squish_tf.bench.latency`; every cost function
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
    survival_temperature: T > 0 in P(c) = exp((s_c / z_l - 1) / T). 1 (the
      default) is the paper's P(c) in [1/e, 1], exactly as before the
      temperature existed; T > 1 flattens it to [exp(-1/T), 1], so F = 1
      removes fewer filters and a generation can be gentler
      (target mode then reaches larger --target_fraction values); T < 1
      sharpens it, pruning weak filters harder.
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  env_mode: str = dataclasses.field(default="target", metadata=dict(enum_values=ENV_MODES, help=(
      "Environmental factor: constant (one F, the paper), target (F bisected per generation to "
      "hit --target_fraction) or cost_weighted (costlier layers, more pressure).")))
  env_factor: float = dataclasses.field(default=0.8, metadata=dict(
      help="F in (0, 1]: a filter survives with probability F * P(c).", greater_than=0.0,
      upper_bound=1.0))
  # The encoding's own: set per generation by evolution (EvolutionConfig.target_fraction is the
  # option).
  target_fraction: float = dataclasses.field(default=0.44, metadata=dict(
      greater_than=0.0, less_than=1.0))
  target_gamma: float = dataclasses.field(default=0.5, metadata=dict(help=(
      "env_mode=target: how pressure is shared between modules, F_l = min(1, F * (mean cost / "
      "module cost)^target_gamma); 0 = one F for every layer, larger values press harder on the "
      "parameter-heavy late fires and spare conv1 and the early fires."), lower_bound=0.0))
  cost: str = dataclasses.field(default="params", metadata=dict(enum_values=COSTS, help=(
      "What env_mode=target and cost_weighted measure: params, macs or latency (LiteRT ms from a "
      "table measured once on this machine and cached in the run dir).")))
  gamma: float = dataclasses.field(default=1.0, metadata=dict(
      help="cost_weighted exponent: F_l = clip(F * (mean_cost / cost_l)^gamma, f_min, 1).",
      lower_bound=0.0))
  f_min: float = dataclasses.field(default=0.05, metadata=dict(
      help="cost_weighted lower clip of F_l.", greater_than=0.0, upper_bound=1.0))
  min_filters: int = dataclasses.field(default=2, metadata=dict(
      help="Every layer keeps at least this many filters.", lower_bound=1))
  min_fraction: float = dataclasses.field(default=0.05, metadata=dict(
      help="Every layer keeps at least this fraction of its parent's filters.", lower_bound=0.0,
      less_than=1.0))
  channel_multiple: int = dataclasses.field(default=1, metadata=dict(help=(
      "Round survivor counts up to a multiple of this (1 = off, the default: rounding up adds "
      "filters, and in LiteRT it ran no faster; benchmarks/channel_multiple.py)."), lower_bound=1))
  survival_temperature: float = dataclasses.field(default=1.0, metadata=dict(help=(
      "Temperature T > 0 of the cluster probability P(c) = exp((s_c / z_l - 1) / T): 1 is the "
      "paper's (P(c) in [1/e, 1]); T > 1 keeps weak filters more often (P(c) >= exp(-1/T)), so "
      "generations can be gentler; T < 1 prunes weak filters harder."), greater_than=0.0))

  def __post_init__(self):
    fields_lib.check(self)  # every bound and choice declared above


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


def cluster_probabilities(strengths: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """P(c) = exp((s_c / z_l - 1) / T), z_l = max_c s_c; values in [exp(-1/T), 1].

  T = 1 (the paper's, values in [1/e, 1]) computes exactly the expression it
  always did, so its floats, and every mask drawn from them, are unchanged.

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
  if not temperature > 0:
    raise ValueError(f"--survival_temperature must be > 0, got {temperature!r}.")
  z = strengths.max()
  if z == 0:
    return np.ones_like(strengths)
  if temperature == 1:
    return np.exp(strengths / z - 1.0)
  return np.exp((strengths / z - 1.0) / temperature)


def layer_probabilities(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                        config: Optional[SynthesisConfig] = None) -> Dict[str, np.ndarray]:
  """P(c) for every filter of every prunable layer, at `config`'s survival_temperature (1
  without a config)."""
  temperature = 1.0 if config is None else config.survival_temperature
  _check_keys("strengths", strengths, spec)
  out = {}
  for name, filters in spec.prunable_layers():
    values = np.asarray(strengths[name])
    if values.shape != (filters,):
      raise ValueError(
          f"strengths[{name!r}] has shape {values.shape}, but the spec's layer has {filters} "
          "filters; strengths must come from the model built from this spec "
          "(squish_tf.evolve.surgery.layer_strengths(model, spec)).")
    out[name] = cluster_probabilities(values, temperature)
  return out


def survival_probabilities(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                           factors: Mapping[str, float],
                           config: Optional[SynthesisConfig] = None) -> Dict[str, np.ndarray]:
  """F_l * P(c) for every filter of every prunable layer (before floors), P(c) at `config`'s
  survival_temperature."""
  probabilities = layer_probabilities(spec, strengths, config)
  check_factors(spec, factors)
  return {name: float(factors[name]) * p for name, p in probabilities.items()}


def min_survivors(filters: int, config: SynthesisConfig) -> int:
  """The fewest filters a layer of `filters` filters can keep under `config`'s floors.

  max(min_filters, ceil(min_fraction * filters)), rounded up to a multiple of
  channel_multiple, never above `filters`.
  """
  floor = max(config.min_filters, math.ceil(config.min_fraction * filters - _CEIL_SLACK))
  return min(filters, spec_lib.round_channels(floor, config.channel_multiple))


def final_counts(drawn: np.ndarray, filters: np.ndarray, floors: np.ndarray,
                  multiple: int) -> np.ndarray:
  """Survivor counts after floors and rounding, for drawn counts (any array shape)."""
  counts = spec_lib.round_channels(np.maximum(drawn, floors), multiple)
  return np.minimum(counts, filters)


def sample_survivors(spec: spec_lib.NetSpec, strengths: Mapping[str, np.ndarray],
                     factors: Mapping[str, float], rng: np.random.Generator,
                     config: Optional[SynthesisConfig] = None) -> Dict[str, np.ndarray]:
  """Draws which filters of every prunable layer survive.

  keep_c ~ Bernoulli(F_l P(c)) independently (P(c) at config.survival_temperature),
  one `rng.random(n_l)` per layer in build order (so a seed reproduces the
  masks). Then the floors: when
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
  probabilities = survival_probabilities(spec, strengths, factors, config)
  survivors = {}
  for name, filters in spec.prunable_layers():
    keep = rng.random(filters) < probabilities[name]
    drawn = int(keep.sum())
    wanted = int(final_counts(drawn, filters, min_survivors(filters, config),
                               config.channel_multiple))
    if wanted > drawn:
      strongest_first = np.argsort(-np.asarray(strengths[name], dtype=np.float64), kind="stable")
      missing = strongest_first[~keep[strongest_first]][:wanted - drawn]
      keep[missing] = True
    survivors[name] = np.flatnonzero(keep)
  return survivors


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
  return spec_with_counts(parent_spec, {k: len(v) for k, v in kept.items()}, name)


def smallest_child_spec(spec: spec_lib.NetSpec, config: SynthesisConfig) -> spec_lib.NetSpec:
  """The child with every layer at its floor: the smallest size `config` can reach."""
  counts = {name: min_survivors(filters, config) for name, filters in spec.prunable_layers()}
  return spec_with_counts(spec, counts, None)


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


def _survivors_from_json(data: Mapping[str, Any],
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


def check_factors(spec: spec_lib.NetSpec, factors: Mapping[str, float]) -> None:
  _check_keys("factors", factors, spec)
  for name, _ in spec.prunable_layers():
    value = factors[name]
    if not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
      raise ValueError(f"factors[{name!r}] must be an environmental factor in (0, 1], got "
                       f"{value!r}.")
