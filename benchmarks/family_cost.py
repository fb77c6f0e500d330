r"""What runs trained, independent of the machine's load: a family run against a one-member run.

Reads only what finished runs recorded: the ancestor's metrics.json, lineage.json's candidates
(each fine-tune and deeper fine-tune, discarded ones included), the final stage's trainings of
every member (`final/*/` and `family/<label>/final/*/`: scratch and inherit) and every
baseline's metrics.json. A training costs its images x the network's MACs x 3 (a forward pass
and a backward pass of about twice its cost), plus a forward pass of its teacher per image
when it was distilled (the teacher's MACs: the ancestor's, or the candidate's it names).
Validation and test passes are left out.

Prints per run and stage the trainings, images and tera-MACs, and for a family run the same
less its other members' final stage (`family/`): what a one-member run trains when its
evolution draws, keeps and stops at the same candidates (the draws follow the seed; whether
the generations' shrink targets make them so is the caller's to check). With two runs or
more, each run over the last one, per stage and in total, with and without the baselines (a
ladder spans the run's deepest budget, so a family and a one-member run train about the same
ladder).

  python benchmarks/family_cost.py --runs=/tmp/ff2/seed_0,/tmp/ff_one/seed_0
"""

import glob
import json
import os
from typing import Dict, List, Mapping, Optional

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", [], "Finished run dirs; with two or more, each is compared with the "
                  "last one.")

STAGES = ("ancestor", "synthesis", "polish", "baselines")
# A training step: the forward pass and a backward pass of about twice its cost.
PASSES = 3


def _read(path: str) -> Optional[Dict]:
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as handle:
    return json.load(handle)


def training(stage: str, name: str, images: int, macs: float,
             teacher_macs: float = 0.0) -> Dict:
  """One training's record: its MACs are images x (PASSES x its own + its teacher's)."""
  return {"stage": stage, "name": name, "images": int(images),
          "macs": float(images) * (PASSES * float(macs) + float(teacher_macs))}


def trainings(run_dir: str) -> List[Dict]:
  """Every training a finished run recorded (`training` records), in stage order."""
  ancestor = _read(os.path.join(run_dir, "ancestor", "metrics.json"))
  if ancestor is None:
    raise ValueError(f"{run_dir!r} holds no ancestor/metrics.json: pass a run dir of a run "
                     "whose ancestor stage finished.")
  lineage = _read(os.path.join(run_dir, "lineage.json")) or {}
  candidates = lineage.get("candidates") or []
  macs_of = {c["id"]: c.get("macs") or 0 for c in candidates}
  macs_of["ancestor"] = ancestor["macs"]

  def teacher(record: Mapping) -> float:
    return macs_of.get(record.get("teacher"), 0) if record.get("teacher") else 0

  out = [training("ancestor", "ancestor", ancestor.get("train_images") or 0, ancestor["macs"])]
  for c in candidates:
    out.append(training("synthesis", c["id"], c.get("train_images") or 0, c.get("macs") or 0,
                        teacher(c)))
    if c.get("deep_train_images"):
      out.append(training("synthesis", c["id"] + " (deeper)", c["deep_train_images"],
                          c.get("macs") or 0, teacher(c)))
  finals = sorted(glob.glob(os.path.join(run_dir, "final", "*", "metrics.json")) +
                  glob.glob(os.path.join(run_dir, "family", "*", "final", "*", "metrics.json")))
  for path in finals:
    record = _read(path)
    out.append(training("polish", os.path.relpath(os.path.dirname(path), run_dir),
                        record.get("train_images") or 0, record["macs"], teacher(record)))
  for path in sorted(glob.glob(os.path.join(run_dir, "baselines", "*", "metrics.json"))):
    record = _read(path)
    out.append(training("baselines", os.path.basename(os.path.dirname(path)),
                        record.get("train_images") or 0, record["macs"], teacher(record)))
  return out


def by_stage(records: List[Dict]) -> Dict[str, Dict]:
  """{stage: {"trainings", "images", "macs"}} for every stage, plus "total" and
  "total_without_baselines"."""
  out = {stage: {"trainings": 0, "images": 0, "macs": 0.0} for stage in STAGES}
  for record in records:
    entry = out[record["stage"]]
    entry["trainings"] += 1
    entry["images"] += record["images"]
    entry["macs"] += record["macs"]
  for name, stages in (("total", STAGES), ("total_without_baselines", STAGES[:-1])):
    out[name] = {key: sum(out[s][key] for s in stages) for key in ("trainings", "images", "macs")}
  return out


def without_other_members(records: List[Dict]) -> List[Dict]:
  """`records` less the final stage of the family's members besides the winner (`family/`)."""
  return [r for r in records if not (r["stage"] == "polish" and r["name"].startswith("family"))]


def ratios(run: Mapping[str, Dict], reference: Mapping[str, Dict]) -> Dict[str, Optional[float]]:
  """`run`'s MACs over `reference`'s, per `by_stage` entry (None where the reference has none)."""
  return {name: (run[name]["macs"] / reference[name]["macs"] if reference[name]["macs"] else None)
          for name in run}


def main(argv):
  del argv
  if not FLAGS.runs:
    raise app.UsageError("--runs needs a run dir or more.")
  costs, shares = {}, {}
  for run_dir in FLAGS.runs:
    records = trainings(run_dir)
    costs[run_dir] = by_stage(records)
    shares[run_dir] = by_stage(without_other_members(records))
  for run_dir, stages in costs.items():
    print(f"{run_dir}:")
    _print_stages(stages)
    if shares[run_dir]["polish"]["trainings"] < stages["polish"]["trainings"]:
      print("  less the other members' final stage:")
      _print_stages(shares[run_dir])
      print("  the run over that:")
      _print_ratios(ratios(stages, shares[run_dir]))
  reference = FLAGS.runs[-1]
  for run_dir in FLAGS.runs[:-1]:
    print(f"{run_dir} over {reference}:")
    _print_ratios(ratios(costs[run_dir], costs[reference]))


def _print_stages(stages: Mapping[str, Dict]) -> None:
  for name, entry in stages.items():
    print(f"  {name:>24}: {entry['trainings']:3d} trainings, {entry['images']:9,d} images, "
          f"{entry['macs'] / 1e12:8.3f} T MACs")


def _print_ratios(by_name: Mapping[str, Optional[float]]) -> None:
  for name, ratio in by_name.items():
    print(f"  {name:>24}: " + ("n/a" if ratio is None else f"{ratio:.2f}x"))


if __name__ == "__main__":
  app.run(main)
