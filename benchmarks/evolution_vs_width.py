r"""Does evolution beat plain width scaling at equal size? Measured in one run.

Trains the default ancestor on shapes10 (or reuses --run_dir/ancestor), evolves
it with the given synthesis flags, then trains a uniformly width-scaled
SqueezeNet of the SquishedNet's parameter count from scratch for the same
total epochs (ancestor epochs + fine-tuning epochs along the chosen lineage),
and prints both, with the smallest candidate within the accuracy budget.

  python benchmarks/evolution_vs_width.py --run_dir=saved_models/evo_vs_width

Every stage resumes (it is the main job without exports, benchmarks and the
other baselines), so a re-run only prints.
"""

import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from squish_tf import baselines  # noqa: E402
from squish_tf import data as data_lib  # noqa: E402
from squish_tf import evolution  # noqa: E402
from squish_tf import flag_defs  # noqa: E402
from squish_tf import model_io  # noqa: E402
from squish_tf import spec as spec_lib  # noqa: E402
from squish_tf import train as train_lib  # noqa: E402

FLAGS = flags.FLAGS
flag_defs.define_data_flags()
flag_defs.define_train_flags()
flag_defs.define_synthesis_flags()
flags.DEFINE_string("run_dir", "saved_models/evo_vs_width", "Where the run goes (resumable).")


def main(argv):
  del argv
  data_config = flag_defs.data_config_from_flags()
  train_config = flag_defs.train_config_from_flags()
  config = flag_defs.evolution_config_from_flags()
  synth = flag_defs.synthesis_config_from_flags()
  data_fn = functools.partial(data_lib.load, data_config)  # picklable for --workers
  train_ds, val_ds, info = data_fn()
  spec = spec_lib.squishednet_base(info.num_classes, (data_config.image_size,) * 2 + (3,))
  ancestor_dir = os.path.join(FLAGS.run_dir, "ancestor")
  start = time.time()
  train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info,
                            seed=data_config.seed, verbose=0)
  ancestor_seconds = time.time() - start
  start = time.time()
  result = evolution.evolve(ancestor_dir, FLAGS.run_dir, config, synth, data_fn,
                            listeners=[evolution.console_listener])
  evolution_seconds = time.time() - start
  lineage = result.lineage
  ancestor = lineage["ancestor"]
  winner = model_io.read_json(os.path.join(result.winner_dir, model_io.METRICS_FILE))
  lineage_epochs = sum(1 for g in lineage["generations"] if g["chosen"]) * config.offspring_epochs
  budget = baselines.BaselineBudget(
      target_params=int(winner["params"]), total_epochs=train_config.epochs + lineage_epochs,
      fine_tune_epochs=max(1, lineage_epochs), learning_rate=train_config.learning_rate,
      seed=data_config.seed)
  start = time.time()
  dirs = baselines.run_baselines(FLAGS.run_dir, ancestor_dir, budget, data_fn,
                                 names=("width_scaled",), workers=config.workers)
  width_seconds = time.time() - start
  width = model_io.read_json(os.path.join(dirs["width_scaled"], model_io.METRICS_FILE))
  within = [r for r in lineage["candidates"] if r["status"] == "ok"
            and ancestor["top1"] - r["top1"] <= config.max_accuracy_drop]
  smallest = min(within, key=lambda r: r["params"]) if within else None

  print(f"\nshapes10 at {data_config.image_size} px, {info.train_count} training images; "
        f"wall time: ancestor {ancestor_seconds:.0f} s, evolution {evolution_seconds:.0f} s "
        f"({len(lineage['generations'])} generations, {len(lineage['candidates'])} candidates), "
        f"width-scaled {width_seconds:.0f} s (0 s = reused)")
  rows = [("ancestor", ancestor), (f"SquishedNet {result.winner_id}", winner),
          (f"width-scaled ({budget.total_epochs} epochs from scratch)", width)]
  if smallest is not None and smallest["id"] != result.winner_id:
    rows.insert(2, (f"smallest within budget {smallest['id']}", smallest))
  print(f"{'model':<44} {'params':>9} {'MB':>7} {'M MACs':>8} {'top-1':>7}")
  for name, m in rows:
    print(f"{name:<44} {m['params']:>9,} {m['size_mb']:>7.3f} {m['macs'] / 1e6:>8.2f} "
          f"{m['top1']:>7.4f}")
  print(f"evolution - width scaling at {winner['params']:,} vs {width['params']:,} params: "
        f"{100 * (winner['top1'] - width['top1']):+.2f} points top-1")


if __name__ == "__main__":
  app.run(main)
