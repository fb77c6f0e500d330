r"""Does evolution beat plain width scaling at equal size? Test top-1 over several seeds.

For every seed: trains the ancestor with the main job's flags (the demo's
budgets by default), evolves it and makes the winner the SquishedNet (by default
its widths trained from scratch for the lineage's budget), trains every
baseline at the SquishedNet's deployed size with the same recipe and total
epochs, runs the ablations, and scores everything on the held-out test split
(nothing here selects or tunes on it). Prints each model's test top-1 as the
mean over seeds with its min-max, the per-seed differences that the goals are
about, and writes `<run_dir>/summary.json`.

  python benchmarks/evolution_vs_width.py --seeds=0,1,2
  python benchmarks/evolution_vs_width.py --seeds=0 --ablations=no_polish

Ablations (`--ablations`, comma-separated, default all):
  no_bn           the whole pipeline without batch norm (ancestor, evolution, polish), at
                  --no_bn_learning_rate (1e-3, from scratch and fine-tuning): the batch-norm
                  rates (4e-3, 3e-3) leave the BN-free ancestor at chance
  no_distill      evolution and the final stage from the same ancestor, hard labels only
  no_polish       the evolved winner as evolved, before any final stage (costs nothing)
  polish_inherit  the winner's inherited weights polished for --final_epochs, distilled
                  (--final_init=inherit): what the scratch training replaces
  scratch_widths  the evolved widths trained from scratch with the same recipe and
                  total epochs (Liu et al., 2019: did the search find a better
                  architecture, or only better weights?); skipped when the
                  SquishedNet is that already (--final_init=scratch)
  uniform_pressure  evolution and polish with --target_gamma=0: the same F in every
                  layer instead of the pressure shared by module cost

Every stage resumes (model dirs are written atomically), so a re-run only prints.
"""

import dataclasses
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf import files as files_lib  # noqa: E402
from squish_tf.data import pipeline as data_lib  # noqa: E402
from squish_tf.evolve import evolution, polish  # noqa: E402
from squish_tf.job import budget as budget_lib  # noqa: E402
from squish_tf.job import flags as flag_defs  # noqa: E402
from squish_tf.job import run as job  # noqa: E402
from squish_tf.net import model_io  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402
from squish_tf.report import console as console_lib  # noqa: E402
from squish_tf.train import baselines  # noqa: E402
from squish_tf.train import trainer as train_lib  # noqa: E402

ABLATIONS = ("no_bn", "no_distill", "no_polish", "polish_inherit", "scratch_widths",
             "uniform_pressure")
ROWS = ("ancestor", "squishednet", "width_scaled", "width_scaled_distilled", "magnitude_pruned",
        "mobilenet_v3_small", "no_bn", "no_distill", "no_polish", "polish_inherit",
        "scratch_widths", "uniform_pressure")
LABELS = {
    "ancestor": "ancestor",
    "squishednet": "SquishedNet",
    "width_scaled": "width_scaled",
    "width_scaled_distilled": "width_scaled_distilled",
    "magnitude_pruned": "magnitude_pruned",
    "mobilenet_v3_small": "MobileNetV3Small",
    "no_bn": "ablation: no batch norm",
    "no_distill": "ablation: no distillation",
    "no_polish": "ablation: the winner as evolved",
    "polish_inherit": "ablation: inherited weights polished",
    "scratch_widths": "ablation: evolved widths from scratch",
    "uniform_pressure": "ablation: one F for all layers",
}

FLAGS = flags.FLAGS
flag_defs.define_data_flags()
flag_defs.define_train_flags()
flag_defs.define_synthesis_flags()
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: each trains everything anew (data, weights, "
                  "draws).")
flags.DEFINE_list("ablations", list(ABLATIONS), f"Ablations to run, from {', '.join(ABLATIONS)}.")
flags.DEFINE_list("baseline_names", list(baselines.BASELINES), "Baselines to train.")
flags.DEFINE_string("run_dir", "saved_models/evo_vs_width", "Where the runs go (resumable).")
flags.DEFINE_float("no_bn_learning_rate", 1e-3, "Peak learning rate of the no_bn ablation, "
                   "from scratch and fine-tuning (squish_tf's rates before batch norm).")


def run_pipeline(root: str, data_config, train_config, config, synth, batch_norm: bool, log):
  """Ancestor -> evolution -> polish in `root`; returns (ancestor_dir, result, squishednet_dir)."""
  data_fn = functools.partial(data_lib.load, data_config)
  train_ds, val_ds, info = data_fn()
  spec = spec_lib.squishednet_base(info.num_classes, (data_config.image_size,) * 2 + (3,),
                                   dropout_rate=FLAGS.dropout_rate,
                                   classifier_activation=FLAGS.classifier_activation,
                                   batch_norm=batch_norm)
  ancestor_dir = os.path.join(root, "ancestor")
  start = time.time()
  train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info,
                            seed=data_config.seed, label=f"{os.path.basename(root)} ancestor")
  log(f"{root}: ancestor {time.time() - start:.0f} s")
  start = time.time()
  result = evolution.evolve(ancestor_dir, root, config, synth, data_fn,
                            listeners=[console_lib.console_listener], verbose="auto",
                            train_config=train_config)
  log(f"{root}: evolution {time.time() - start:.0f} s, winner {result.winner_id}")
  start = time.time()
  final = polish.polish(root, result, config, data_fn, train_config)
  log(f"{root}: polish {time.time() - start:.0f} s")
  return ancestor_dir, result, final


def run_seed(seed: int, log) -> dict:
  """Every model of one seed, scored on the test split: {row: {top1, params, size_mb, ...}}."""
  root = os.path.join(FLAGS.run_dir, f"seed_{seed}")
  data_config = dataclasses.replace(flag_defs.data_config_from_flags(), seed=seed)
  train_config = flag_defs.train_config_from_flags()
  config = dataclasses.replace(flag_defs.evolution_config_from_flags(), seed=seed)
  synth = flag_defs.synthesis_config_from_flags()
  data_fn = functools.partial(data_lib.load, data_config)
  ancestor_dir, result, final = run_pipeline(root, data_config, train_config, config, synth,
                                             FLAGS.batch_norm, log)
  budget = budget_lib.baseline_budget(final, result, config, train_config, seed)
  start = time.time()
  dirs = {"ancestor": ancestor_dir, "squishednet": final}
  dirs.update(baselines.run_baselines(root, ancestor_dir, budget, data_fn,
                                      names=FLAGS.baseline_names, workers=config.workers,
                                      verbose="auto"))
  log(f"{root}: baselines {time.time() - start:.0f} s ({budget.total_epochs} epochs each)")
  ablations = set(FLAGS.ablations)
  if "no_polish" in ablations:
    dirs["no_polish"] = result.winner_dir
  if "no_distill" in ablations:
    no_distill = dataclasses.replace(config, distill=False)
    sub = os.path.join(root, "no_distill")
    ablated = evolution.evolve(ancestor_dir, sub, no_distill, synth, data_fn,
                               listeners=[console_lib.console_listener], verbose="auto",
                               train_config=train_config)
    dirs["no_distill"] = polish.polish(sub, ablated, no_distill, data_fn, train_config)
  if "uniform_pressure" in ablations:
    uniform = dataclasses.replace(synth, target_gamma=0.0)
    sub = os.path.join(root, "uniform_pressure")
    ablated = evolution.evolve(ancestor_dir, sub, config, uniform, data_fn,
                               listeners=[console_lib.console_listener], verbose="auto",
                               train_config=train_config)
    dirs["uniform_pressure"] = polish.polish(sub, ablated, config, data_fn, train_config)
  if "no_bn" in ablations:
    rate = FLAGS.no_bn_learning_rate
    dirs["no_bn"] = run_pipeline(
        os.path.join(root, "no_bn"), data_config,
        dataclasses.replace(train_config, learning_rate=rate), dataclasses.replace(
            config, offspring_learning_rate=rate), synth, not FLAGS.batch_norm, log)[2]
  if "polish_inherit" in ablations and config.final_init != "inherit":
    inherit = dataclasses.replace(config, final_init="inherit")
    dirs["polish_inherit"] = polish.polish(os.path.join(root, "polish_inherit"), result, inherit,
                                           data_fn, train_config)
  if "scratch_widths" in ablations and config.final_init == "scratch":
    log(f"{root}: scratch_widths skipped: the SquishedNet is its widths trained from scratch")
  elif "scratch_widths" in ablations:
    widths = model_io.read_spec(final).replace(name="scratch_widths")
    directory = os.path.join(root, "scratch_widths")
    train_ds, val_ds, info = data_fn()
    train_lib.train_model_dir(directory, widths, data_config, budget.scratch_config(), train_ds,
                              val_ds, info, seed=seed, label="scratch_widths")
    dirs["scratch_widths"] = directory
  test_ds, _ = data_lib.load_test(data_config)
  scores = job.evaluate_on_test(dirs, test_ds, log=log)["models"]
  out = {}
  for name, directory in dirs.items():
    metrics = files_lib.read_json(os.path.join(directory, model_io.METRICS_FILE))
    out[name] = {"top1": scores[name]["top1"], "params": metrics.get("params"),
                 "size_mb": metrics.get("size_mb"), "validation_top1": metrics.get("top1"),
                 "dir": directory}
  out["squishednet"]["total_epochs"] = budget.total_epochs
  return out


def summarise(per_seed: dict) -> dict:
  """Mean and min-max of every row's test top-1 over seeds, and the differences."""
  summary = {}
  for row in ROWS:
    values = [seed[row]["top1"] for seed in per_seed.values() if row in seed]
    if values:
      summary[row] = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                      "max": float(np.max(values)), "seeds": len(values)}
  for other in ("width_scaled", "width_scaled_distilled", "ancestor"):
    gaps = [seed["squishednet"]["top1"] - seed[other]["top1"] for seed in per_seed.values()
            if other in seed]
    if gaps:
      summary[f"squishednet_minus_{other}"] = {
          "mean": float(np.mean(gaps)), "min": float(np.min(gaps)), "max": float(np.max(gaps)),
          "per_seed": [float(g) for g in gaps]}
  return summary


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.ablations) - set(ABLATIONS))
  if unknown:
    raise app.UsageError(f"Unknown ablations {unknown}; known: {', '.join(ABLATIONS)}.")
  lines = []

  def log(line):
    lines.append(line)
    print(line, flush=True)

  start = time.time()
  per_seed = {int(seed): run_seed(int(seed), log) for seed in FLAGS.seeds}
  summary = summarise(per_seed)
  files_lib.write_json(os.path.join(FLAGS.run_dir, "summary.json"),
                      {"per_seed": per_seed, "summary": summary,
                       "flags": flag_defs.flags_text().splitlines()})
  print(f"\nshapes10 at {FLAGS.image_size} px, {FLAGS.shapes10_train_size} training images, "
        f"seeds {','.join(FLAGS.seeds)}; test top-1 on {FLAGS.shapes10_test_size} held-out "
        f"images per seed; {time.time() - start:.0f} s in all")
  print(f"{'model':<40} {'params':>9} {'MB':>7} {'test top-1 mean':>16} {'min-max':>15}")
  first = next(iter(per_seed.values()))
  for row in ROWS:
    if row not in summary:
      continue
    s = summary[row]
    size = first[row]
    print(f"{LABELS[row]:<40} {size['params'] or 0:>9,} {size['size_mb'] or 0:>7.3f} "
          f"{100 * s['mean']:>15.2f}% {100 * s['min']:>6.2f}-{100 * s['max']:.2f}")
  for other in ("width_scaled", "width_scaled_distilled", "ancestor"):
    gap = summary.get(f"squishednet_minus_{other}")
    if gap:
      per = ", ".join(f"{100 * g:+.2f}" for g in gap["per_seed"])
      print(f"SquishedNet - {other}: {100 * gap['mean']:+.2f} points mean ({per} per seed)")
  for seed, rows in per_seed.items():
    squished = rows["squishednet"]["params"]
    for name in ("width_scaled", "width_scaled_distilled", "magnitude_pruned",
                 "mobilenet_v3_small"):
      if name in rows and rows[name]["params"]:
        params = rows[name].get("params")
        if name == "magnitude_pruned":
          params = files_lib.read_json(os.path.join(rows[name]["dir"], model_io.METRICS_FILE)).get(
              "nonzero_params", params)
        print(f"seed {seed}: {name} {params:,} params vs SquishedNet {squished:,} "
              f"({100 * (params / squished - 1):+.1f}%)")


if __name__ == "__main__":
  app.run(main)
