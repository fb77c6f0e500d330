"""`Targets`: what evolution stops at, each target in its own unit, resolved once.

The options name a size (MB), MACs, a latency (ms) and a speed-up over the ancestor. Once the
latency table is known (or not needed), `check_targets` turns them into one `Targets` value
(a speed-up becomes predicted milliseconds here, `Targets.of`, with the table's prediction for
the ancestor) and refuses the targets the floors cannot reach. Evolution receives that value:
it steers each generation towards it (`goals`) and stops once a chosen offspring meets it
(`met`).
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional

from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve.config import EvolutionConfig
from squish_tf.net import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Targets:
  """The targets of a run (None: not set).

  Attributes:
    size_mb: the most MB (float32 weights) a chosen offspring may have.
    macs: the most MACs.
    latency_ms: the most predicted LiteRT ms (the tighter of --target_latency_ms and the
      ancestor's predicted ms / --target_speedup).
    ancestor_ms: the latency table's prediction for the ancestor (None without a table).
  """

  size_mb: Optional[float] = None
  macs: Optional[int] = None
  latency_ms: Optional[float] = None
  ancestor_ms: Optional[float] = None

  @classmethod
  def of(cls, config: EvolutionConfig, ancestor_ms: Optional[float] = None) -> "Targets":
    """`config`'s targets, a speed-up over an ancestor of `ancestor_ms` predicted ms in ms."""
    return cls(size_mb=config.target_size_mb, macs=config.target_macs,
               latency_ms=config.latency_target_ms(ancestor_ms), ancestor_ms=ancestor_ms)

  @property
  def any(self) -> bool:
    return self.size_mb is not None or self.macs is not None or self.latency_ms is not None

  def met(self, record: Mapping[str, Any]) -> bool:
    """True when every target that was set is met by `record` (False when none was set).

    A latency target is judged on the table's prediction for the record (an exact function
    of its widths, where a measurement would vary run to run).
    """
    if not self.any:
      return False
    predicted = record.get("predicted_latency_ms")
    return ((self.size_mb is None or record["size_mb"] <= self.size_mb)
            and (self.macs is None or record["macs"] <= self.macs)
            and (self.latency_ms is None or (predicted is not None
                                             and predicted <= self.latency_ms)))

  def goals(self, parent: spec_lib.NetSpec,
            table: Optional[latency_table_lib.LatencyTable] = None) -> Dict[str, float]:
    """Each target as a fraction of `parent`'s cost in its unit ("params", "macs",
    "latency": the last with a table only)."""
    goals = {}
    if self.size_mb is not None:
      goals["params"] = self.size_mb * 1e6 / 4 / parent.params()
    if self.macs is not None:
      goals["macs"] = self.macs / parent.macs()
    if table is not None and self.latency_ms is not None:
      goals["latency"] = self.latency_ms / table.predict(parent)
    return goals


def check_targets(ancestor: spec_lib.NetSpec, config: EvolutionConfig,
                  synth: synthesis.SynthesisConfig,
                  latency: Optional[latency_table_lib.LatencyTable] = None) -> Targets:
  """`config`'s targets resolved (`Targets.of`), refused when below what the floors let
  synthesis reach, and microcontroller budgets the floors cannot fit
  (`micro_budget.MicroBudget.check_floors`). A latency target needs the table (`latency`)."""
  micro_budget_lib.MicroBudget.of(config).check_floors(ancestor, synth)
  targets = Targets.of(config, None if latency is None else latency.predict(ancestor))
  smallest = synthesis.smallest_child_spec(ancestor, synth)
  floors = (f"every layer at its floor: --min_filters={synth.min_filters}, "
            f"--min_fraction={synth.min_fraction}, --channel_multiple={synth.channel_multiple}")
  if targets.size_mb is not None and smallest.size_mb() > targets.size_mb:
    raise ValueError(
        f"--target_size_mb={targets.size_mb} is below the smallest reachable size "
        f"{smallest.size_mb():.4f} MB ({smallest.params():,} params, {floors}). Raise the target "
        "or lower the floors.")
  if targets.macs is not None and smallest.macs() > targets.macs:
    raise ValueError(
        f"--target_macs={targets.macs:,} is below the smallest reachable "
        f"{smallest.macs():,} MACs ({floors}). Raise the target or lower the floors.")
  if latency is not None and targets.latency_ms is not None:
    ancestor_ms, target = targets.ancestor_ms, targets.latency_ms
    fastest = latency.predict(smallest)
    if fastest > target:
      raise ValueError(
          f"The latency target ({target:.4f} ms, {ancestor_ms / target:.2f}x the ancestor's "
          f"predicted {ancestor_ms:.4f} ms) is below the fastest reachable child: "
          f"{fastest:.4f} ms predicted ({ancestor_ms / fastest:.2f}x, {floors}). Raise "
          "--target_latency_ms, lower --target_speedup or lower the floors.")
  return targets
