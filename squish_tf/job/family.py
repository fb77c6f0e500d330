"""A run's family (--targets): one SquishedNet per member, all from one lineage.

Evolution records, per member of the family, the chosen offspring that is its network
(`lineage.json`'s `family`: the best on validation of the chosen offspring meeting its
budget). The winner, the last chosen, is the run's SquishedNet as in a one-target run:
`squishednet/`, `export/`. Every other member's network gets the same final stage and export
under `family/<label>/` (`squishednet/`, `export/`), named `squishednet_<label>` in
evaluation.json, benchmark.json and results.json. A member whose budget evolution did not
reach has no network of its own; the report says so beside the deepest one.
"""

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.layout import EXPORT_DIR

FAMILY_DIR = "family"
PRIMARY = "squishednet"


@dataclasses.dataclass(frozen=True)
class Member:
  """One network of the family.

  Attributes:
    name: "squishednet" (the winner: the run's SquishedNet) or "squishednet_<label>".
    labels: the budgets it is the member for, in --targets' order (the winner's may be ()).
    candidate: its chosen offspring's lineage id (the ancestor's when nothing beat it).
    root: the run dir of its final stage (the run's own for the winner).
    result: the lineage up to its generation, with it as the winner (what the final stage
      reads: its widths; trained from scratch, it takes the whole run's epochs).
  """

  name: str
  labels: Tuple[str, ...]
  candidate: str
  root: str
  result: lineage_lib.EvolutionResult

  @property
  def primary(self) -> bool:
    return self.name == PRIMARY

  def squishednet_dir(self, config: evolve_config_lib.EvolutionConfig) -> str:
    """Where its final stage leaves it (the candidate's own dir when nothing polishes)."""
    return polish_lib.squishednet_dir(self.root, self.result, config)

  @property
  def export_dir(self) -> str:
    return os.path.join(self.root, EXPORT_DIR)


def member_result(result: lineage_lib.EvolutionResult,
                  candidate: str) -> lineage_lib.EvolutionResult:
  """`result` cut at `candidate`'s generation, `candidate` its winner (pure)."""
  if candidate == result.winner_id:
    return result
  lineage = result.lineage
  generation = next(r["generation"] for r in lineage["candidates"] if r["id"] == candidate)
  cut = dict(lineage, winner=candidate, stop_reason="family_member",
             generations=[g for g in lineage["generations"] if g["generation"] <= generation],
             candidates=[r for r in lineage["candidates"] if r["generation"] <= generation])
  return lineage_lib.EvolutionResult(
      result.run_dir, candidate, lineage_lib.model_dir_of(result.run_dir, candidate, lineage),
      "family_member", cut)


def members(run_dir: str, result: lineage_lib.EvolutionResult) -> List[Member]:
  """The family's networks in lineage order, the winner last (a lineage without `family`,
  or with no member met: the winner alone)."""
  by_candidate: Dict[str, List[str]] = {}
  for entry in result.lineage.get("family") or []:
    if entry.get("id"):
      by_candidate.setdefault(entry["id"], []).append(entry["label"])
  winner = result.winner_id
  order = [r["id"] for r in result.lineage["candidates"] if r["id"] in by_candidate]
  out = [Member(f"{PRIMARY}_{labels[0]}", tuple(labels), candidate,
                os.path.join(run_dir, FAMILY_DIR, labels[0]), member_result(result, candidate))
         for candidate in order if candidate != winner
         for labels in (by_candidate[candidate],)]
  out.append(Member(PRIMARY, tuple(by_candidate.get(winner, ())), winner, run_dir, result))
  return out


def others(family: List[Member]) -> List[Member]:
  """The members besides the winner (their final stages and exports are the family's extra)."""
  return [member for member in family if not member.primary]


def unmet(lineage: Mapping[str, Any]) -> List[str]:
  """The budgets evolution did not reach, by label."""
  return [entry["label"] for entry in lineage.get("family") or [] if not entry.get("id")]


def describe(family: List[Member], lineage: Mapping[str, Any]) -> Optional[str]:
  """One console line naming the members (None for a family of one that met its budget)."""
  missing = unmet(lineage)
  if len(family) == 1:
    return None if not missing else (
        f"target {', '.join(missing)} not reached within the accuracy budget: the SquishedNet "
        f"is {family[0].candidate}, the deepest chosen offspring.")
  parts = [f"{'+'.join(m.labels) or 'deepest'}: {m.candidate}" for m in family]
  line = f"family: {len(family)} member(s), " + ", ".join(parts)
  if missing:
    line += f"; not reached within the accuracy budget: {', '.join(missing)}"
  return line
