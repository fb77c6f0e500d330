r"""The family verdicts again, every seed's members and rungs timed in one quiet session.

`benchmarks/family_frontier.py` reads each member against the ladder on its own job's
benchmark, taken while the job's machine was as busy as it was then. This script reads the
finished runs' fp32 .tflite files (the ancestor's, each member's, each rung's), times all of a
run's models interleaved with its ancestor in one LiteRT session (`latency.measure_against`,
batch 1, 2 threads, --rounds rounds: median per-round speed-up with min-max), one run after the
other, and prints per run and budget the member's test top-1 (results.json), its speed-up, the
best ladder network at least as fast in this session (`report.frontier.ladder_verdict`,
no interpolation) and the points between them, with their 95% interval and McNemar p when
the runs kept per-image test outcomes (`report.paired`); then per budget the mean over the runs
and its intervals.

  python benchmarks/family_retime.py --runs=/tmp/ffeq0/seed_0,/tmp/ffeq1/seed_1,/tmp/ffeq2/seed_2
  python benchmarks/family_retime.py --runs=... --timings=/tmp/family_retime.json  # no timing
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", [], "Finished family runs (run dirs with results.json and a ladder).")
flags.DEFINE_integer("rounds", 21, "Interleaved rounds per session.")
flags.DEFINE_string("out", "", "Where to write the figures as JSON (default: none).")
flags.DEFINE_string("timings", "", "Do not time: read each run's timings from this --out JSON "
                    "of an earlier session (its runs' keys are the same run dirs), to print its "
                    "verdicts again, e.g. with the intervals of runs re-evaluated since "
                    "(`family_frontier.py --reevaluate`).")

FP32 = os.path.join("export", "model_fp32.tflite")


def _files(run_dir: str, results: dict) -> dict:
  """{model name: its fp32 .tflite path}: the ancestor, the members, the rungs."""
  files = {"ancestor": os.path.join(run_dir, "ancestor", FP32)}
  for member in results["family"]["members"]:
    name = member["name"]
    if name == "squishednet":
      files[name] = os.path.join(run_dir, FP32)
    else:
      files[name] = os.path.join(run_dir, "family", name.split("_", 1)[1], FP32)
  for name in results["models"]:
    if name.startswith("ladder_"):
      files[name] = os.path.join(run_dir, "baselines", name, FP32)
  missing = [path for path in files.values() if not os.path.isfile(path)]
  if missing:
    raise SystemExit(f"error: {run_dir} lacks {missing[0]}: give finished family runs with "
                     "--baselines=ladder.")
  return files


def _verdicts(results: dict, measured: dict) -> list:
  """Per budget, the member against the ladder in this session's timings
  (`report.frontier.ladder_verdict`: the best rung at most as slow, no interpolation)."""
  from squish_tf.report import frontier as frontier_lib  # pylint: disable=g-import-not-at-top
  models = results["models"]

  def point(name):
    return {"name": name, "latency_ms": measured[name]["latency_ms"], "top1": models[name]["top1"]}

  ladder = [point(name) for name in measured if name.startswith("ladder_")]
  rows = []
  for member in results["family"]["members"]:
    verdict = frontier_lib.ladder_verdict(point(member["name"]), ladder,
                                          results.get("test_correct"))
    rival = (verdict or {}).get("rival")
    for label in member["labels"]:
      rows.append({"budget": label, "member": member["name"], "top1": verdict["top1"],
                   "speedup": measured[member["name"]]["speedup"],
                   "rival": None if rival is None else rival["name"],
                   "rival_top1": None if rival is None else rival["top1"],
                   "rival_speedup": None if rival is None else measured[rival["name"]]["speedup"],
                   "points": verdict["points"], "paired": verdict["paired"]})
  return rows


def main(argv):
  del argv
  import pipelines  # pylint: disable=g-import-not-at-top
  pipelines.import_tensorflow()
  from squish_tf.bench import latency  # pylint: disable=g-import-not-at-top
  from squish_tf.report import paired as paired_lib  # pylint: disable=g-import-not-at-top
  recorded = {}
  if FLAGS.timings:
    with open(FLAGS.timings) as f:
      recorded = json.load(f)
  out = {}
  for run_dir in FLAGS.runs:
    with open(os.path.join(run_dir, "results.json")) as f:
      results = json.load(f)
    if FLAGS.timings:
      load, measured = recorded[run_dir]["load_before"], recorded[run_dir]["measured"]
    else:
      files = _files(run_dir, results)
      models = {}
      for name, path in files.items():
        with open(path, "rb") as f:
          models[name] = f.read()
      load = os.getloadavg()
      measured = latency.measure_against(models, "ancestor", threads=2, rounds=FLAGS.rounds)
    rows = _verdicts(results, measured)
    out[run_dir] = {"rows": rows, "load_before": load, "measured": measured}
    print(f"{run_dir} (load before {load[0]:.1f}, {FLAGS.rounds} rounds):")
    for name in sorted(measured, key=lambda n: measured[n]["speedup"]):
      m = measured[name]
      print(f"  {name:18s} {m['speedup']:.2f}x [{m['speedup_min']:.2f}-{m['speedup_max']:.2f}] "
            f"{m['latency_ms']:.3f} ms  test {100 * results['models'][name]['top1']:.2f}%")
    for row in rows:
      verdict = ("no ladder network at least as fast" if row["rival"] is None else
                 f"vs {row['rival']} ({100 * row['rival_top1']:.2f}%, {row['rival_speedup']:.2f}x):"
                 f" {row['points']:+.2f} points" + paired_lib.bracket_text(row["paired"]))
      print(f"  {row['budget']:>5s}: {row['member']} {100 * row['top1']:.2f}% at "
            f"{row['speedup']:.2f}x; {verdict}")
  budgets = sorted({row["budget"] for run in out.values() for row in run["rows"]},
                   key=lambda b: float(b.rstrip("x")))
  print("member test top-1 minus the best ladder network at least as fast, mean [min, max]:")
  for budget in budgets:
    points = [row["points"] for run in out.values() for row in run["rows"]
              if row["budget"] == budget and row["points"] is not None]
    if points:
      print(f"  {budget:>5s}: {np.mean(points):+.2f} [{min(points):+.2f}, {max(points):+.2f}] "
            f"over {len(points)}")
    said = paired_lib.mean_text(paired_lib.mean_over_seeds(
        [row["paired"] for run in out.values() for row in run["rows"]
         if row["budget"] == budget and row.get("paired")]))
    if said:
      print(f"         {said}")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(out, f, indent=1, default=float)


if __name__ == "__main__":
  app.run(main)
