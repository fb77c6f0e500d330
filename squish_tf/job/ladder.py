"""The width ladder of a run (--baselines=ladder): which uniform widths train, chosen once after
evolution and kept in baselines/ladder.json, so a resumed run trains the same rungs.

The rungs span the SquishedNet's budget: from 1.25x over the ancestor to past
the faster of its target speed-up and its winner's speed-up (the latency
model's prediction, or the speed-up measured during evolution when there is
one; `squish_tf.net.ladder`). Every rung's channel counts are multiples of the
device's tile: the run's latency table's channel multiple when it has a table
that found one (above 1), else `ladder.TILE`. The same latency model prices the
rungs: the table, else MACs.
"""

import dataclasses
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from squish_tf import files as files_lib
from squish_tf.bench import matching as matching_lib
from squish_tf.bench.latency_table import LatencyTable
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.job.context import Run
from squish_tf.layout import LADDER_FILE
from squish_tf.net import ladder as ladder_lib
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.train import baseline_registry
from squish_tf.train import baselines as baselines_lib


def wants_ladder(names: Sequence[str]) -> bool:
  """Some baseline asked for trains a ladder (`Baseline.rungs`)."""
  return any(baseline_registry.lookup(name).rungs for name in names)


def plan_ladder(ancestor: spec_lib.NetSpec, winner: spec_lib.NetSpec,
                table: Optional[LatencyTable], target_speedup: Optional[float] = None,
                measured_speedup: Optional[float] = None) -> Dict[str, Any]:
  """The ladder's rungs for a SquishedNet of `winner`'s widths (baselines/ladder.json).

  Args:
    ancestor: the ancestor's spec (speed-up 1).
    winner: the evolved winner's (the SquishedNet's widths).
    table: the run's latency table, or None (MACs price the widths).
    target_speedup: the run's speed-up target, if any.
    measured_speedup: the winner's speed-up measured during evolution, if any.

  Returns:
    {"tile", "cost" ("table" or "macs"), "reach" (the speed-up the ladder spans to, before
    `ladder.MARGIN`), "winner_predicted_speedup", "winner_measured_speedup",
    "target_speedup", "speedups" (aimed at), "rungs": [{"width_multiplier",
    "predicted_speedup"}, widest first]}.
  """
  cost = table.predict if table is not None else matching_lib.macs_model
  tile = (table.channel_multiple if table is not None and table.channel_multiple > 1
          else ladder_lib.TILE)
  predicted = cost(ancestor) / cost(winner)
  reach = max(v for v in (target_speedup, predicted, measured_speedup, 1.0) if v)
  speedups = ladder_lib.ladder_speedups(reach)
  rungs = ladder_lib.ladder_rungs(ancestor, speedups, cost, tile)
  if not rungs:
    raise ValueError(f"No width of the ancestor aligned to {tile} channels is predicted faster "
                     "than the ancestor, so --baselines=ladder has no rung to train; leave "
                     "'ladder' out of --baselines for this network.")
  return {"tile": tile, "cost": "table" if table is not None else "macs", "reach": reach,
          "winner_predicted_speedup": predicted, "winner_measured_speedup": measured_speedup,
          "target_speedup": target_speedup, "speedups": list(speedups),
          "rungs": [dataclasses.asdict(rung) for rung in rungs]}


def winner_measured_speedup(lineage: Mapping[str, Any], winner: Optional[str]
                            ) -> Optional[float]:
  """The winner's speed-up over the ancestor as evolution measured it (median), or None."""
  for record in lineage.get("candidates") or []:
    if record.get("id") == winner and isinstance(record.get("measured_speedup"), Mapping):
      return record["measured_speedup"].get("median")
  return None


def target_speedup(run: Run) -> Optional[float]:
  """The run's speed-up target: the highest of its members' (--targets, --target_speedup, or a
  latency target over the ancestor's predicted ms when the targets were resolved with a
  table)."""
  targets = run.targets
  if targets is not None and targets.speedup:
    return targets.speedup
  return run.evolution_config.target_speedup


def with_ladder(run: Run, result: lineage_lib.EvolutionResult,
                budget: baselines_lib.BaselineBudget,
                table: Callable[[], Optional[LatencyTable]]) -> baselines_lib.BaselineBudget:
  """`budget` with the ladder's rungs and tile when --baselines asks for a ladder.

  Chosen once (`plan_ladder`; `table()` gives the run's latency table, or None) and kept in
  baselines/ladder.json: a resumed run reads them back.
  """
  if not wants_ladder(run.config.baselines):
    return budget
  plan = run.ladder
  if plan is None:
    plan = plan_ladder(run.spec, model_io.read_spec(result.winner_dir), table(),
                       target_speedup(run),
                       winner_measured_speedup(result.lineage, result.winner_id))
    files_lib.write_json(os.path.join(run.run_dir, "baselines", LADDER_FILE), plan)
    run.set_ladder(plan)
    run.log(f"width ladder: {len(plan['rungs'])} rungs aligned to {plan['tile']} channels, "
            + ", ".join(f"x{r['width_multiplier']:.2f} ({r['predicted_speedup']:.2f}x "
                        f"predicted)" for r in plan["rungs"]))
  return dataclasses.replace(budget, ladder=tuple(r["width_multiplier"] for r in plan["rungs"]),
                             tile=int(plan["tile"]))
