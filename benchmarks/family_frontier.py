r"""A family from one run against the width ladder, per seed (issue: "A family from one run").

For every seed, one main job (`squish_tf.run`, the demo's budgets: --min_train_steps=0
--cost=latency) with --targets (default 1.5x,2x,3x) and --baselines=ladder: one evolution
walks the budgets, every member gets the final stage and the export, and the ladder's uniform
widths (every channel a multiple of the tile) train with the same recipe and epochs. The job's
benchmark times every model's fp32 .tflite interleaved with the ancestor's in one session, so
each latency below is the ancestor's benchmark latency over the model's interleaved speed-up.

Prints per seed and budget: the member (or "not reached"), its test top-1 and speed-up, the best
ladder network at least as fast (`report.frontier.ladder_verdict`: no interpolation) and the
points between them, with their 95% interval on the test split and McNemar's p
(`report.paired`); then, per budget, the mean over seeds with min-max and two 95% intervals of
the mean (the test splits' noise alone; the seeds' spread); the job's wall time
and its stages' (a ladder trains within the final stage's). Runs resume (the job's stages are
resumable). Writes `<run_dir>/summary.json`.

  python benchmarks/family_frontier.py --seeds=0,1,2
  python benchmarks/family_frontier.py --seeds=0,1,2 --reevaluate  # finished runs: intervals
  python benchmarks/family_frontier.py --seeds=0,1,2 --reevaluate --judge_at=224
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import summary  # noqa: E402
import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0"], "Seeds: each one run (its own ancestor, family and ladder).")
flags.DEFINE_list("targets", ["1.5x", "2x", "3x"], "The family's budgets (--targets).")
flags.DEFINE_string("run_dir", "saved_models/family_frontier", "Where the runs go (resumable).")
flags.DEFINE_integer("generations", 4, "--generations (the most; a run stops once every budget "
                     "is met).")
flags.DEFINE_list("baselines", ["ladder"], "--baselines of the runs.")
flags.DEFINE_list("extra", [], "More job options as name=value (e.g. population=3).")
flags.DEFINE_string("judge_at", "run", "The speeds the verdicts read: 'run' (the frontier's, at "
                    "the run's resolution) or a --pair_resolutions size such as 224 (each "
                    "model's fp32 batch-1 speed-up at that size, timed in the job's benchmark).")
flags.DEFINE_bool("reevaluate", False, "Do not run the jobs: read each seed's finished run "
                  "under --run_dir, score its ancestor, members and rungs image by image on its "
                  "test split again (runs written before evaluation.json kept per-image "
                  "outcomes), add them to its evaluation.json and results.json, and print the "
                  "verdicts with their intervals. The timings are the run's own.")


def _options(seed: int) -> dict:
  options = dict(run_dir=os.path.join(FLAGS.run_dir, f"seed_{seed}"), seed=seed,
                 min_train_steps=0, cost="latency", targets=",".join(FLAGS.targets),
                 generations=FLAGS.generations, baselines=",".join(FLAGS.baselines))
  return summary.extra_options(options, FLAGS.extra)


def _flagfile_options(path: str) -> dict:
  """A run's flags.txt as squish_tf.plan options (--name=value, --name, --noname)."""
  options = {}
  with open(path) as handle:
    for line in handle:
      line = line.strip()
      if not line.startswith("--"):
        continue
      name, has_value, value = line[2:].partition("=")
      if has_value:
        options[name] = value
      elif name.startswith("no"):
        options[name[2:]] = False
      else:
        options[name] = True
  return options


def _reevaluated(run_dir: str) -> dict:
  """A finished run's results.json with its models' per-image test outcomes added (and
  written back, with evaluation.json's): the job's own evaluation, on the run's test split."""
  import squish_tf  # pylint: disable=g-import-not-at-top
  from squish_tf import files as files_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.data import pipeline as data_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import results as results_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top
  results = files_lib.read_json(os.path.join(run_dir, "results.json"))
  if set(results["models"]) <= set((results.get("test_correct") or {}).get("models") or {}):
    return results  # scored image by image already
  plan = squish_tf.plan(check_ancestor=False,
                        **_flagfile_options(os.path.join(run_dir, "flags.txt")))
  dirs = {}
  for name, model in results["models"].items():
    if name in ("ancestor", "squishednet"):
      dirs[name] = os.path.join(run_dir, name)
    elif model.get("kind") == "member":
      dirs[name] = os.path.join(run_dir, "family", name.split("_", 1)[1], "squishednet")
    elif model.get("kind") == "baseline":
      dirs[name] = os.path.join(run_dir, "baselines", name)
  fresh = job.evaluate_on_test(dirs, data_lib.load_test(plan.data)[0], log=lambda line: None)
  path = os.path.join(run_dir, "evaluation.json")
  evaluation = files_lib.read_json(path)
  for name, figures in fresh["models"].items():
    recorded = evaluation["models"][name]["top1"]
    if abs(figures["top1"] - recorded) > 1e-6:
      raise RuntimeError(f"{run_dir}: {name} scores {figures['top1']:.4f} now against "
                         f"{recorded:.4f} in its evaluation.json: not the run's test split.")
    evaluation["models"][name]["correct"] = figures["correct"]
  evaluation.update(images=fresh["images"], labels=fresh["labels"])
  files_lib.write_json(path, evaluation)
  results["test_correct"] = results_lib.test_correct(evaluation, results["models"])
  files_lib.write_json(os.path.join(run_dir, "results.json"), results)
  return results


def _rows(results: dict) -> list:
  """Per budget: the member's figures and its ladder verdict."""
  from squish_tf.report import frontier as frontier_lib  # pylint: disable=g-import-not-at-top
  family = results.get("family") or {}
  points = {p["name"]: p for p in frontier_lib.frontier_of(results)}
  ladder = frontier_lib.ladder_of(results)
  if FLAGS.judge_at != "run":  # latencies in units of the ancestor's, at that size
    at = {name: (m.get("speedup_at_resolution") or {}).get(FLAGS.judge_at, {}).get("1")
          for name, m in results["models"].items()}
    if not any(at.values()):
      raise SystemExit(f"error: no model of {results.get('run_name')} was timed at "
                       f"{FLAGS.judge_at} px (--pair_resolutions).")
    points = {name: dict(p, speedup=at.get(name), latency_ms=1 / at[name])
              for name, p in points.items() if at.get(name)}
    ladder = sorted((points[p["name"]] for p in ladder if p["name"] in points),
                    key=lambda p: p["latency_ms"])
  ancestor = results["models"]["ancestor"]
  rows = []
  for label in family.get("targets") or []:
    member = next((m for m in family.get("members") or [] if label in m.get("labels", [])), None)
    row = {"budget": label, "member": None}
    if member is not None and member["name"] in points:
      point = points[member["name"]]
      verdict = frontier_lib.ladder_verdict(point, ladder, results.get("test_correct")) or {}
      rival = verdict.get("rival")
      row.update(member=member["name"], candidate=member["candidate"], top1=point["top1"],
                 speedup=point.get("speedup"), latency_ms=point["latency_ms"],
                 size_mb=point.get("size_mb"),
                 rival=None if rival is None else {k: rival.get(k) for k in (
                     "name", "top1", "latency_ms", "speedup", "width_multiplier")},
                 points=verdict.get("points"), paired=verdict.get("paired"),
                 drop=100 * (ancestor["top1"] - point["top1"]))
    rows.append(row)
  return rows


def _spread(values):
  values = [v for v in values if v is not None]
  if not values:
    return "n/a"
  return f"{np.mean(values):+.2f} [{min(values):+.2f}, {max(values):+.2f}] over {len(values)}"


def main(argv):
  del argv
  summary.quiet_logging()
  import squish_tf  # pylint: disable=g-import-not-at-top
  from squish_tf.report import paired as paired_lib  # pylint: disable=g-import-not-at-top
  per_seed = {}
  for seed in map(int, FLAGS.seeds):
    start = time.time()
    if FLAGS.reevaluate:
      results = _reevaluated(_options(seed)["run_dir"])
    else:
      results = squish_tf.run(**_options(seed)).results
    wall = results.get("wall_seconds") or {}
    per_seed[seed] = {"rows": _rows(results), "wall_seconds": wall,
                      "this_call_seconds": time.time() - start,
                      "load_average_after": os.getloadavg(),
                      "ancestor_top1": results["models"]["ancestor"]["top1"]}
    # A ladder trains beside the final stage (in its time), so it may have no stage of its own.
    stages = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in wall.items()
                       if name != "total")
    print(f"\nseed {seed}: ancestor test top-1 {100 * per_seed[seed]['ancestor_top1']:.2f}%, "
          f"job {wall.get('total', 0) / 60:.1f} min ({stages} min)")
    for row in per_seed[seed]["rows"]:
      if row["member"] is None:
        print(f"  {row['budget']:>6}: not reached within the accuracy budget")
        continue
      rival = row["rival"]
      noise = paired_lib.bracket_text(row.get("paired"))
      against = ("no ladder network at least as fast" if rival is None else
                 f"vs {rival['name']} ({100 * rival['top1']:.2f}%, {rival['latency_ms']:.3f}"
                 f"{' ms' if FLAGS.judge_at == 'run' else ''})"
                 f": {row['points']:+.2f} points{noise}")
      unit = " ms" if FLAGS.judge_at == "run" else f" of the ancestor's at {FLAGS.judge_at} px"
      print(f"  {row['budget']:>6}: {row['member']} ({row['candidate']}) "
            f"{100 * row['top1']:.2f}% test, {row['latency_ms']:.3f}{unit} "
            f"({row['speedup'] or float('nan'):.2f}x), {row['size_mb']:.3f} MB, "
            f"{-row['drop']:+.2f} points against the ancestor; {against}")
  print(f"\nfamily_frontier: --targets={','.join(FLAGS.targets)} --generations="
        f"{FLAGS.generations} --baselines={','.join(FLAGS.baselines)} seeds {FLAGS.seeds}")
  print("member test top-1 minus the best ladder network at least as fast (points), "
        "mean [min, max]:")
  for label in FLAGS.targets:
    gaps = [r["points"] for s in per_seed.values() for r in s["rows"]
            if r["budget"] == label and r.get("points") is not None]
    reached = sum(1 for s in per_seed.values() for r in s["rows"]
                  if r["budget"] == label and r["member"] is not None)
    print(f"  {label:>6}: {_spread(gaps)}; reached in {reached} of {len(per_seed)} seeds")
    said = paired_lib.mean_text(paired_lib.mean_over_seeds(
        [r["paired"] for s in per_seed.values() for r in s["rows"]
         if r["budget"] == label and r.get("paired")]))
    if said:
      print(f"          {said}")
  summary.write_summary(FLAGS.run_dir, {"targets": FLAGS.targets,
                                        "generations": FLAGS.generations,
                                        "baselines": FLAGS.baselines, "extra": FLAGS.extra},
                        per_seed)


if __name__ == "__main__":
  app.run(main)
