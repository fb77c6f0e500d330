"""`Targets`: what evolution stops at, each target in its own unit, resolved once.

The options name a size (MB), MACs, a latency (ms) and a speed-up over the ancestor. Once the
latency table is known (or not needed), `check_targets` turns them into a `TargetFamily`
(a speed-up becomes predicted milliseconds here, `Targets.of`, with the table's prediction for
the ancestor) and refuses the targets the floors cannot reach. A family is the list of budgets
of --targets ("1.5x,2x,3x", "0.8MB", "5ms"), one `Targets` per member, walked in order; the
--target_* options make a family of one. Evolution receives the family: it steers each
generation towards the first member no chosen offspring has met yet (`goals`), marks which
members a chosen offspring meets (`met`), and stops once every member is met.
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import target_list
from squish_tf.evolve.config import EvolutionConfig
from squish_tf.net import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Targets:
  """The targets of a run (None: not set).

  Attributes:
    size_mb: the most MB (float32 weights) a chosen offspring may have.
    macs: the most MACs.
    latency_ms: the most predicted LiteRT ms (the tighter of --target_latency_ms and the
      ancestor's predicted ms / --target_speedup); a measured record meets it at a speed-up
      of ancestor_ms / latency_ms (`met`).
    ancestor_ms: the latency table's prediction for the ancestor (None without a table).
  """

  size_mb: Optional[float] = None
  macs: Optional[int] = None
  latency_ms: Optional[float] = None
  ancestor_ms: Optional[float] = None
  label: Optional[str] = None

  @classmethod
  def of(cls, config: EvolutionConfig, ancestor_ms: Optional[float] = None,
         label: Optional[str] = None) -> "Targets":
    """`config`'s --target_* options, a speed-up over an ancestor of `ancestor_ms` predicted ms
    in ms (named `label`; None: after the options set)."""
    return cls(size_mb=config.target_size_mb, macs=config.target_macs,
               latency_ms=config.latency_target_ms(ancestor_ms), ancestor_ms=ancestor_ms,
               label=label if label is not None else _label_of(config))

  @property
  def speedup(self) -> Optional[float]:
    """The latency target as a speed-up over the ancestor's predicted ms (None without both)."""
    if self.latency_ms and self.ancestor_ms:
      return self.ancestor_ms / self.latency_ms
    return None

  @property
  def any(self) -> bool:
    return self.size_mb is not None or self.macs is not None or self.latency_ms is not None

  def met(self, record: Mapping[str, Any]) -> bool:
    """True when every target that was set is met by `record` (False when none was set).

    A latency target is judged on the speed-up the record was measured at on the table's own
    clock (`measured_speedup`: interleaved with the ancestor, as the benchmark times the
    members), as the speed-up the target asks over the ancestor's predicted ms. A record not
    measured on that clock (a profile of another device) is judged on the table's prediction.
    The table errs most on the thinnest children, and a budget met on a prediction that low
    sent the next generation past every budget, too thin to recover.
    """
    if not self.any:
      return False
    return ((self.size_mb is None or record["size_mb"] <= self.size_mb)
            and (self.macs is None or record["macs"] <= self.macs)
            and (self.latency_ms is None or self._latency_met(record)))

  def _latency_met(self, record: Mapping[str, Any]) -> bool:
    measured = measured_speedup(record)
    if measured is not None and self.ancestor_ms:
      return measured >= self.ancestor_ms / self.latency_ms
    predicted = record.get("predicted_latency_ms")
    return predicted is not None and predicted <= self.latency_ms

  def goals(self, parent: spec_lib.NetSpec,
            table: Optional[latency_table_lib.LatencyTable] = None,
            parent_speedup: Optional[float] = None) -> Dict[str, float]:
    """Each target as a fraction of `parent`'s cost in its unit ("params", "macs",
    "latency": the last with a table only; from the parent's `parent_speedup` over the
    ancestor measured on the table's clock when given, as `met` judges, else predicted)."""
    goals = {}
    if self.size_mb is not None:
      goals["params"] = self.size_mb * 1e6 / 4 / parent.params()
    if self.macs is not None:
      goals["macs"] = self.macs / parent.macs()
    if table is not None and self.latency_ms is not None:
      if parent_speedup and self.ancestor_ms:
        goals["latency"] = parent_speedup * self.latency_ms / self.ancestor_ms
      else:
        goals["latency"] = self.latency_ms / table.predict(parent)
    return goals


def measured_speedup(record: Mapping[str, Any]) -> Optional[float]:
  """`record`'s speed-up over the ancestor measured on the latency table's own clock (the
  median of its interleaved rounds), or None: not measured, or on another clock than the
  table's (no `speedup_error` was recorded then)."""
  if "speedup_error" not in record:
    return None
  return (record.get("measured_speedup") or {}).get("median")


def member_config(config: EvolutionConfig, budget: target_list.Budget) -> EvolutionConfig:
  """`config` with `budget` as its only target."""
  cleared = {name: None for name in target_list.TARGET_OPTIONS}
  value = int(budget.value) if budget.option == "target_macs" else budget.value
  return dataclasses.replace(config, targets=None, **dict(cleared, **{budget.option: value}))


def _label_of(config: EvolutionConfig) -> Optional[str]:
  """A name for the --target_* options set ("2x", "0.6MB", "2x+0.6MB"), None for none."""
  parts = [target_list.label(option, getattr(config, option))
           for option in ("target_speedup", "target_size_mb", "target_latency_ms", "target_macs")
           if getattr(config, option) is not None]
  return "+".join(parts) or None


@dataclasses.dataclass(frozen=True)
class TargetFamily:
  """The run's members' targets, in the order evolution walks them (none: no target).

  Attributes:
    members: one `Targets` per member (each with its label).
  """

  members: Tuple[Targets, ...] = ()

  @classmethod
  def of(cls, config: EvolutionConfig, ancestor_ms: Optional[float] = None) -> "TargetFamily":
    """--targets' members, or the --target_* options' one, or none."""
    if config.targets:
      return cls(tuple(Targets.of(member_config(config, budget), ancestor_ms, budget.label)
                       for budget in target_list.parse_targets(config.targets)))
    one = Targets.of(config, ancestor_ms)
    return cls((one,) if one.any else ())

  @property
  def any(self) -> bool:
    return bool(self.members)

  @property
  def labels(self) -> Tuple[str, ...]:
    return tuple(str(member.label) for member in self.members)

  @property
  def last(self) -> Targets:
    """The last member's targets (no target: `Targets()`)."""
    return self.members[-1] if self.members else Targets()

  @property
  def speedup(self) -> Optional[float]:
    """The highest speed-up any member aims at (None: none aims at one with a table)."""
    return max((m.speedup for m in self.members if m.speedup), default=None)

  def met(self, record: Mapping[str, Any]) -> List[str]:
    """The labels of the members `record` meets."""
    return [member.label for member in self.members if member.met(record)]

  def unmet(self, chosen: Sequence[Mapping[str, Any]]) -> List[int]:
    """The members no record of `chosen` meets, by index."""
    return [i for i, member in enumerate(self.members)
            if not any(member.met(record) for record in chosen)]

  def done(self, chosen: Sequence[Mapping[str, Any]]) -> bool:
    """Every member is met by some record of `chosen` (a family of none is never done)."""
    return self.any and not self.unmet(chosen)

  def members_of(self, chosen: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Each member's network among the chosen offspring `chosen` (in generation order): the
    highest validation top-1 of those that meet it (ties: the earlier, wider one, so that a
    budget met in two generations keeps a member of its own), or None.

    Returns:
      [{"label", "id" (None: unmet), "met"}], one per member in order.
    """
    out = []
    for member in self.members:
      meeting = [(r["top1"], -i, r["id"]) for i, r in enumerate(chosen) if member.met(r)]
      best = max(meeting)[2] if meeting else None
      out.append({"label": member.label, "id": best, "met": best is not None})
    return out


def check_targets(ancestor: spec_lib.NetSpec, config: EvolutionConfig,
                  synth: synthesis.SynthesisConfig,
                  latency: Optional[latency_table_lib.LatencyTable] = None) -> TargetFamily:
  """`config`'s targets resolved (`TargetFamily.of`), each member refused when below what the
  floors let synthesis reach, and microcontroller budgets the floors cannot fit
  (`micro_budget.MicroBudget.check_floors`). A latency target needs the table (`latency`)."""
  micro_budget_lib.MicroBudget.of(config).check_floors(ancestor, synth)
  family = TargetFamily.of(config, None if latency is None else latency.predict(ancestor))
  for targets in family.members:
    _check_member(ancestor, synth, targets, latency, bool(config.targets))
  return family


def _check_member(ancestor: spec_lib.NetSpec, synth: synthesis.SynthesisConfig,
                  targets: Targets, latency: Optional[latency_table_lib.LatencyTable],
                  listed: bool) -> None:
  """Refuses one member's targets below what the floors reach (`listed`: from --targets)."""
  smallest = synthesis.smallest_child_spec(ancestor, synth)
  floors = (f"every layer at its floor: --min_filters={synth.min_filters}, "
            f"--min_fraction={synth.min_fraction}, --channel_multiple={synth.channel_multiple}")
  named = {"size": f"--targets item {targets.label}" if listed else
           f"--target_size_mb={targets.size_mb}",
           "macs": f"--targets item {targets.label}" if listed else
           f"--target_macs={targets.macs:,}" if targets.macs is not None else ""}
  if targets.size_mb is not None and smallest.size_mb() > targets.size_mb:
    raise ValueError(
        f"{named['size']} is below the smallest reachable size "
        f"{smallest.size_mb():.4f} MB ({smallest.params():,} params, {floors}). Raise the target "
        "or lower the floors.")
  if targets.macs is not None and smallest.macs() > targets.macs:
    raise ValueError(
        f"{named['macs']} is below the smallest reachable "
        f"{smallest.macs():,} MACs ({floors}). Raise the target or lower the floors.")
  if latency is not None and targets.latency_ms is not None:
    ancestor_ms, target = targets.ancestor_ms, targets.latency_ms
    fastest = latency.predict(smallest)
    if fastest > target:
      raise ValueError(
          f"The latency target {targets.label} ({target:.4f} ms, {ancestor_ms / target:.2f}x the "
          f"ancestor's predicted {ancestor_ms:.4f} ms) is below the fastest reachable child: "
          f"{fastest:.4f} ms predicted ({ancestor_ms / fastest:.2f}x, {floors}). Raise "
          + (f"the --targets item {targets.label}" if listed
             else "--target_latency_ms, lower --target_speedup") + " or lower the floors.")
