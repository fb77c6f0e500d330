"""The open sets of evolution: costs (--cost), environmental modes (--env_mode) and selection
rules (--select), one small record each, in one registry each.

A record says what a member is called (the option's value), how a reader calls it and
which function does its work; the options' allowed values are the registries' names.
Adding one is one `register(...)`. This module imports nothing but the registry: the
members name their functions in `squish_tf.evolve.environment` and
`squish_tf.evolve.selection` by reference, loaded when first used.
"""

import dataclasses
from typing import Any, Callable

from squish_tf import registry as registry_lib

ENVIRONMENT = "squish_tf.evolve.environment"
SELECTION = "squish_tf.evolve.selection"


@dataclasses.dataclass(frozen=True)
class Cost:
  """What synthesis measures a network by (--cost).

  Attributes:
    name: the --cost value.
    label: what it counts, in words.
    per_filter: `(spec, latency table or None) -> {prunable layer: what one of its filters
      costs}` (`environment.filter_costs`).
    of_counts: `(cost model: environment.CostModel, {layer: filter count}) -> the cost of
      the network with those counts` (the expected child's, in the target search).
    amount: `(a cost) -> str`, the amount in words ("1,234 params (0.005 MB)").
    needs_latency: it reads a measured latency table.
  """

  name: str
  label: str
  per_filter: registry_lib.Reference
  of_counts: registry_lib.Reference
  amount: Callable[[float], str]
  needs_latency: bool = False

  def filter_costs(self, spec, latency) -> Any:
    return registry_lib.load(self.per_filter)(spec, latency)

  def count(self, cost_model, counts) -> float:
    return registry_lib.load(self.of_counts)(cost_model, counts)


@dataclasses.dataclass(frozen=True)
class EnvMode:
  """How the environmental factor F_l of each layer is set (--env_mode).

  Attributes:
    name: the --env_mode value.
    label: what it does, in words.
    factors: `(parent spec, SynthesisConfig, filter strengths or None, latency table or
      None) -> {prunable layer: F_l in (0, 1]}` (`environment.environment_factors`).
  """

  name: str
  label: str
  factors: registry_lib.Reference

  def factors_of(self, spec, config, strengths, latency) -> Any:
    return registry_lib.load(self.factors)(spec, config, strengths, latency)


@dataclasses.dataclass(frozen=True)
class SelectionRule:
  """How a generation's candidate is chosen among those within the accuracy budget (--select).

  Attributes:
    name: the --select value.
    label: what it prefers, in words.
    choose: `(eligible records, parent's validation top-1, parent's measured speed-up)
      -> the chosen record` (`evolution.select`; the records are within the budget).
  """

  name: str
  label: str
  choose: registry_lib.Reference

  def chosen(self, eligible, parent_top1, parent_speedup) -> Any:
    return registry_lib.load(self.choose)(eligible, parent_top1, parent_speedup)


costs: registry_lib.Registry[Cost] = registry_lib.Registry("cost", "--cost")
env_modes: registry_lib.Registry[EnvMode] = registry_lib.Registry("env mode", "--env_mode")
selections: registry_lib.Registry[SelectionRule] = registry_lib.Registry("selection rule",
                                                                         "--select")


def _params_amount(value: float) -> str:
  return f"{value:,.0f} params ({value * 4 / 1e6:.3f} MB)"


def _macs_amount(value: float) -> str:
  return f"{value:,.0f} MACs"


def _latency_amount(value: float) -> str:
  return f"{value:.4f} ms (predicted)"


costs.register(Cost("params", "deployed parameters (model size)",
                    f"{ENVIRONMENT}:params_per_filter", f"{ENVIRONMENT}:params_of_counts",
                    _params_amount))
costs.register(Cost("macs", "multiply-accumulates", f"{ENVIRONMENT}:macs_per_filter",
                    f"{ENVIRONMENT}:macs_of_counts", _macs_amount))
costs.register(Cost("latency", "LiteRT milliseconds predicted by a measured table",
                    f"{ENVIRONMENT}:latency_per_filter", f"{ENVIRONMENT}:latency_of_counts",
                    _latency_amount, needs_latency=True))

env_modes.register(EnvMode("constant", "one F for every layer (the paper)",
                           f"{ENVIRONMENT}:constant_factors"))
env_modes.register(EnvMode("target", "F solved per parent for an expected child cost",
                           f"{ENVIRONMENT}:target_factors"))
env_modes.register(EnvMode("cost_weighted", "costlier layers, more pressure",
                           f"{ENVIRONMENT}:cost_weighted_factors"))

selections.register(SelectionRule("top1", "the highest validation top-1 (ties: fewer params)",
                                  f"{SELECTION}:by_top1"))
selections.register(SelectionRule(
    "top1_per_ms", "the least validation top-1 lost per millisecond saved",
    f"{SELECTION}:by_top1_per_ms"))
