r"""SquishedNets against the width multiplier at equal measured latency, and the multiplier's ladder.

For every seed:

1. for every speed target (default 2x and 3x over the ancestor, LiteRT fp32,
   batch 1, the run's resolution), the main job (`squish_tf.run`, the demo's
   budgets) with --cost=latency and --target_speedup, training the baselines
   `width_scaled` (the multiplier of the SquishedNet's size) and
   `width_scaled_latency` (the multiplier of its measured latency, matched by
   the job: latency table, then confirmed interleaved). The targets share the
   seed's ancestor and latency table (copied into the later run dirs, which
   the job then skips);
2. the ladder: the uniform width multipliers --ladder trained with the same
   recipe and total epochs as the baselines of the first target, scored on
   the test split;
3. one interleaved timing session (A B C ... A B C ..., --rounds rounds) of
   every model's fp32 .tflite, the ancestor's included, so every speed ratio
   printed comes from the same session: median per-round ratio [min-max].

Prints per seed and target the SquishedNet's test top-1 and speed-up, the
latency-matched multiplier's test top-1 and its speed relative to the
SquishedNet (equal latency is within 5%), the size-matched one's, and the
ladder interpolated at the SquishedNet's latency; then the means over seeds
with min-max. Each run resumes (the job's stages are resumable); the ladder
and the timing are redone. Writes `<run_dir>/summary.json`, and adds the
ladder to each run's results.json (re-rendering its report and frontier.png).

  python benchmarks/speed_frontier.py --seeds=0
  python benchmarks/speed_frontier.py --seeds=0,1,2 --extra=survival_temperature=2
"""

import functools
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
flags.DEFINE_list("seeds", ["0"], "Seeds: each trains its own ancestor, runs and ladder.")
flags.DEFINE_list("targets", ["2", "3"], "--target_speedup of the runs, one run per value.")
flags.DEFINE_list("ladder", ["0.3", "0.4", "0.5", "0.6", "0.75"],
                  "Uniform width multipliers trained with the baselines' recipe and epochs.")
flags.DEFINE_string("run_dir", "saved_models/speed_frontier", "Where the runs go (resumable).")
flags.DEFINE_integer("generations", 4, "--generations of the runs (the most; a run stops once "
                     "its target is met).")
flags.DEFINE_integer("rounds", 21, "Interleaved timing rounds of the final session.")
flags.DEFINE_float("round_seconds", 0.2, "Seconds per model per round.")
flags.DEFINE_list("extra", [], "More job options as name=value (e.g. survival_temperature=2).")

THREADS = 2
TOLERANCE = 0.05


def _options(seed: int, target: str, run_dir: str) -> dict:
  options = dict(run_name=os.path.basename(run_dir), run_dir=run_dir, seed=seed, cost="latency",
                 target_speedup=float(target), generations=FLAGS.generations,
                 baselines="width_scaled,width_scaled_latency", formats="fp32",
                 pair_resolutions="run", batch_sizes="1", min_train_steps=0)
  return summary.extra_options(options, FLAGS.extra)


def _train_ladder(seed: int, first_run: str, root: str) -> dict:
  """{multiplier: model dir}: each width trained like the first run's width_scaled."""
  from squish_tf import api  # pylint: disable=g-import-not-at-top
  from squish_tf import data as data_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.data import config as data_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import baselines  # pylint: disable=g-import-not-at-top

  plan = api.plan(check_ancestor=False, **_options(seed, FLAGS.targets[0], first_run))
  with open(os.path.join(first_run, "baselines", "width_scaled", "metrics.json")) as f:
    epochs = json.load(f)["total_epochs"]
  out = {}
  ancestor = os.path.join(first_run, "ancestor")
  data = data_config_lib.in_run(plan.data, first_run, 2)  # the run's data caches
  data_fn = functools.partial(data_lib.load, data)
  for value in FLAGS.ladder:
    multiplier = float(value)
    directory = os.path.join(root, f"w{multiplier:g}")
    budget = baselines.BaselineBudget(
        target_params=1, total_epochs=epochs, fine_tune_epochs=1, train_config=plan.train,
        seed=seed, latency_multiplier=multiplier, latency_match={"ladder": multiplier})
    # One at a time in worker processes (2 workers: one per core, as the job's baselines).
    baselines.run_baselines(directory, ancestor, budget, data_fn, names=("width_scaled_latency",),
                            workers=2, verbose=0)
    out[multiplier] = os.path.join(directory, "baselines", "width_scaled_latency")
  return out, data


def _ratio(result, subject, reference) -> dict:
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  stats = timing.ratio_stats(result, subject, reference)
  return {"median": stats["ratio_median"], "min": stats["ratio_min"], "max": stats["ratio_max"]}


def run_seed(seed: int) -> dict:
  import squish_tf  # pylint: disable=g-import-not-at-top
  from squish_tf import data as data_lib  # pylint: disable=g-import-not-at-top
  from squish_tf import files as files_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import latency  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import latency_table  # pylint: disable=g-import-not-at-top
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top
  from squish_tf.report import frontier  # pylint: disable=g-import-not-at-top
  from squish_tf.report import markdown  # pylint: disable=g-import-not-at-top

  start = time.time()
  root = os.path.join(FLAGS.run_dir, f"seed_{seed}")
  runs = {}
  for target in FLAGS.targets:
    run_dir = os.path.join(root, f"x{target}")
    if runs:
      summary.share_ancestor(next(iter(runs.values())), run_dir,
                             [latency_table.table_file("fp32")])
    squish_tf.run(**_options(seed, target, run_dir))
    runs[target] = run_dir
  first = runs[FLAGS.targets[0]]
  ladder_dirs, data = _train_ladder(seed, first, os.path.join(root, "ladder"))
  test = job.evaluate_on_test({f"w{m:g}": d for m, d in ladder_dirs.items()},
                              data_lib.load_test(data)[0], log=lambda line: None)["models"]
  # Every model's fp32 file in one session: the ancestor, each run's SquishedNet and
  # baselines, and the ladder (converted here as the export converts).
  files = {"ancestor": _read(os.path.join(first, "ancestor", "export", "model_fp32.tflite"))}
  results = {}
  for target, run_dir in runs.items():
    results[target] = files_lib.read_json(os.path.join(run_dir, "results.json"))
    for name in ("squishednet", "width_scaled", "width_scaled_latency"):
      if name in results[target]["models"]:
        path = (os.path.join(run_dir, "export", "model_fp32.tflite") if name == "squishednet"
                else os.path.join(run_dir, "baselines", name, "export", "model_fp32.tflite"))
        files[f"x{target}/{name}"] = _read(path)
  for multiplier, directory in ladder_dirs.items():
    model, spec, _ = model_io.load_model_dir(directory)
    files[f"w{multiplier:g}"] = latency.network_tflite(model, spec, "fp32")
  # One interleaved session over every file: {name: seconds per invoke, per round}.
  timed = latency.time_models(files, THREADS, FLAGS.rounds, FLAGS.round_seconds)
  out = {"targets": {}, "ladder": [], "wall_seconds": None}
  for multiplier, directory in ladder_dirs.items():
    metrics = files_lib.read_json(os.path.join(directory, "metrics.json"))
    speed = _ratio(timed, f"w{multiplier:g}", "ancestor")
    out["ladder"].append({"width_multiplier": multiplier, "top1": test[f"w{multiplier:g}"]["top1"],
                          "size_mb": metrics.get("size_mb"), "speedup": speed["median"],
                          "speedup_min": speed["min"], "speedup_max": speed["max"]})
  # The ladder in latency relative to the ancestor's (the ancestor's = 1).
  ladder_curve = [{"name": f"w{p['width_multiplier']:g}", "latency_ms": 1.0 / p["speedup"],
                   "top1": p["top1"]} for p in out["ladder"]]
  for target, run_dir in runs.items():
    models = results[target]["models"]
    row = {"winner": results[target].get("winner"),
           "stop_reason": results[target].get("stop_reason")}
    for name in ("squishednet", "width_scaled", "width_scaled_latency"):
      if name not in models:
        continue
      row[name] = {"top1": models[name]["top1"], "size_mb": models[name].get("size_mb"),
                   "speedup": _ratio(timed, f"x{target}/{name}", "ancestor")}
      if name != "squishednet":
        # > 1: the multiplier runs faster than the SquishedNet.
        row[name]["speed_vs_squishednet"] = _ratio(timed, f"x{target}/{name}",
                                                   f"x{target}/squishednet")
    match = files_lib.optional_read_json(os.path.join(run_dir, "baselines", "latency_match.json"))
    row["latency_match"] = match and {k: match.get(k) for k in (
        "width_multiplier", "ratio", "ratio_min", "ratio_max", "size_ratio", "trained")}
    relative_ms = 1.0 / row["squishednet"]["speedup"]["median"]
    # The best ladder width at least as fast as the SquishedNet (no interpolation).
    verdict = frontier.ladder_verdict({"latency_ms": relative_ms}, ladder_curve)
    rival = verdict and verdict["rival"]
    row["ladder_best_at_least_as_fast"] = rival and {"name": rival["name"], "top1": rival["top1"]}
    out["targets"][target] = row
    # The ladder into the run's results.json: the frontier figure draws it as a curve.
    ancestor_run_ms = frontier.ancestor_latency_ms(models)
    results[target]["ladder"] = [
        {"name": f"width {p['width_multiplier']:g}", "kind": "ladder",
         "width_multiplier": p["width_multiplier"], "top1": p["top1"], "size_mb": p["size_mb"],
         "speedup": p["speedup"], "speedup_min": p["speedup_min"],
         "speedup_max": p["speedup_max"],
         "latency_ms": ancestor_run_ms / p["speedup"] if ancestor_run_ms else None}
        for p in out["ladder"]]
    files_lib.write_json(os.path.join(run_dir, "results.json"), results[target])
    markdown.write_report(run_dir, results[target])
  out["wall_seconds"] = time.time() - start
  return out


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


_pct, _speed = summary.percent, summary.speed_of


def main(argv):
  del argv
  summary.quiet_logging()
  start = time.time()
  per_seed = {}
  for seed in FLAGS.seeds:
    per_seed[int(seed)] = run_seed(int(seed))
    _report(per_seed, start)


def _report(per_seed, start):
  """Prints the seeds done so far and writes summary.json (after every seed)."""
  print(f"\nspeed_frontier: --targets={','.join(FLAGS.targets)} --generations="
        f"{FLAGS.generations} --extra={','.join(FLAGS.extra)}; LiteRT fp32, batch 1, "
        f"{THREADS} threads, {FLAGS.rounds} interleaved rounds")
  gaps = {target: [] for target in FLAGS.targets}
  for seed, r in per_seed.items():
    print(f"seed {seed} ({r['wall_seconds'] / 60:.1f} min)")
    print("  ladder: " + ", ".join(f"w{p['width_multiplier']:g} {_pct(p['top1'])} at "
                                   f"{p['speedup']:.2f}x" for p in r["ladder"]))
    for target, row in r["targets"].items():
      sq = row["squishednet"]
      print(f"  target {target}x: SquishedNet {_pct(sq['top1'])}, {sq['size_mb']:.3f} MB, "
            f"{_speed(sq['speedup'])} over the ancestor ({row['stop_reason']})")
      for name, what in (("width_scaled_latency", "equal latency"), ("width_scaled", "equal size")):
        if name in row:
          b = row[name]
          print(f"    {name} ({what}): {_pct(b['top1'])}, {b['size_mb']:.3f} MB, runs "
                f"{_speed(b['speed_vs_squishednet'])} the SquishedNet's speed; SquishedNet "
                f"{100 * (sq['top1'] - b['top1']):+.2f} points")
      rival = row.get("width_scaled_latency") or row.get("width_scaled")
      if rival is not None:
        gaps[target].append(sq["top1"] - rival["top1"])
      best = row.get("ladder_best_at_least_as_fast")
      print("    best ladder width at least as fast: "
            + (f"{best['name']} {_pct(best['top1'])}; SquishedNet "
               f"{100 * (sq['top1'] - best['top1']):+.2f} points" if best else "none"))
  for target, values in gaps.items():
    if values:
      print(f"target {target}x: SquishedNet - latency-matched multiplier, mean "
            f"{100 * np.mean(values):+.2f} points [{100 * min(values):+.2f} to "
            f"{100 * max(values):+.2f}] over {len(values)} seed(s)")
  print(f"wall time {(time.time() - start) / 60:.1f} min")
  summary.write_summary(FLAGS.run_dir, {"targets": FLAGS.targets, "ladder": FLAGS.ladder,
                                        "generations": FLAGS.generations, "extra": FLAGS.extra},
                        per_seed)


if __name__ == "__main__":
  app.run(main)
