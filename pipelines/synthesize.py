r"""Deep evolutionary synthesis: evolves thinner SquishedNets from a trained parent.

  squish-synthesize --parent_dir=saved_models/ancestor --run_dir=saved_models/evo \
      --generations=4 --population=3 --env_mode=target --target_size_mb=0.6

Each generation draws --population offspring whose fire-module filters survive
with probability F * P(c), fine-tunes them (distilled from the teacher), and
keeps the fittest on the validation split as the next parent. The winner then
becomes the SquishedNet in <run_dir>/squishednet/: its widths trained from
scratch for the lineage's budget and its weights polished for --final_epochs,
the better on validation kept (--final_init=best, the default); or only one
of them (--final_init=scratch or inherit). Writes
generations/gen_NNN/cand_MM/, lineage.json and squishednet/ into --run_dir;
re-running the same command resumes after the last finished candidate (or
epoch of the final stage). --offspring_epochs and --final_epochs follow the
same budget rule as `squish` (--min_train_steps, --max_minutes, scaled from
--train_epochs on this data: docs/budgets.md), said before the first step.
"""

import dataclasses
import functools
import os

from absl import flags

import pipelines
from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.job import flags as flag_defs
from squish_tf.job import preflight
from squish_tf.layout import NATIVE_LOG_FILE
from squish_tf.net import model_io
from squish_tf.report import console as console_lib
from squish_tf.runtime import native_log

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flag_defs.define_train_flags()
flag_defs.define_synthesis_flags()
flag_defs.define_budget_flags()
flags.DEFINE_string("parent_dir", None, "A trained model dir (from squish-train or an earlier "
                    "synthesis) to evolve from.")
flags.DEFINE_string("run_dir", None, "Where generations/ and lineage.json go.")
flags.mark_flags_as_required(["parent_dir", "run_dir"])
# --help lists the shared flags too (they are defined in flag_defs, not in this module).
flags.adopt_module_key_flags(flag_defs)

def main(argv):
  del argv
  parent_spec = model_io.read_spec(FLAGS.parent_dir)
  if not FLAGS["image_size"].present:  # default to the parent's input size
    FLAGS.image_size = parent_spec.input_shape[0]
  config = flag_defs.evolution_config_from_flags()
  # The data's indexes and disk caches live in the run, shared by its worker processes.
  data_config = data_config_lib.in_run(flag_defs.data_config_from_flags(), FLAGS.run_dir, config.workers)
  synth = flag_defs.synthesis_config_from_flags()
  preflight.check_options(data_config, min_image_size=parent_spec.min_input_size())
  run_flags = flag_defs.flag_values(flag_defs.DATA_IDENTITY_FLAGS)
  train_config = flag_defs.train_config_from_flags()
  budget = flag_defs.budget_config_from_flags()
  pipelines.import_tensorflow()  # the flags are checked: now the libraries that need it
  # pylint: disable=g-import-not-at-top
  from squish_tf.data import pipeline as data_lib
  from squish_tf.evolve import evolution, polish
  from squish_tf.job import budget as budget_lib
  from squish_tf.job import estimate as estimate_lib
  # pylint: enable=g-import-not-at-top

  strategy = flag_defs.strategy_from_flags()
  # The budget rule of `squish`: a batch that fits the data, then every epoch budget scaled.
  train_ds, val_ds, info = data_lib.load(data_config)
  given_batch = data_config.batch_size
  batch = budget_lib.batch_for(given_batch, info.train_count, budget.min_train_steps)
  if batch != given_batch:
    data_config = dataclasses.replace(data_config, batch_size=batch)
    train_ds, val_ds, info = data_lib.load(data_config)
  budgets = budget_lib.budgets_for(train_config, config, int(train_ds.cardinality()),
                                   budget.min_train_steps, batch, given_batch)
  workers = config.workers if strategy is None else 1
  budgets, plan = estimate_lib.plan_budgets(
      parent_spec, batch, budgets, int(val_ds.cardinality()), budget.max_minutes, FLAGS.run_dir,
      workers=workers, stages=("synthesis", "polish"),
      data_fn=functools.partial(data_lib.load, data_config))
  del train_ds, val_ds
  train_config, config = budgets.train_config, budgets.evolution_config
  print(budgets.describe(), flush=True)
  print(plan.describe(), flush=True)
  data_fn = functools.partial(data_lib.load, data_config)
  if budget.max_minutes is not None:  # a re-run keeps the epochs cut (estimate.plan_budgets)
    os.makedirs(FLAGS.run_dir, exist_ok=True)
    estimate_lib.write_plan(FLAGS.run_dir, budgets, plan, budget.max_minutes)
  # The converter's and LiteRT's lines (latency timing) go to <run_dir>/native.log.
  with native_log.logging_to(os.path.join(FLAGS.run_dir, NATIVE_LOG_FILE)):
    result = evolution.evolve(
        FLAGS.parent_dir, FLAGS.run_dir, config, synth, data_fn=data_fn, strategy=strategy,
        run_flags=run_flags, listeners=[console_lib.console_listener], verbose="auto",
        train_config=train_config)
  flag_defs.write_flags_file(FLAGS.run_dir, ["parent_dir", "run_dir"])
  estimate_lib.write_plan(FLAGS.run_dir, budgets, plan, budget.max_minutes)
  winner = result.lineage["ancestor"] if result.winner_id == "ancestor" else next(
      r for r in result.lineage["candidates"] if r["id"] == result.winner_id and r["chosen"])
  print(f"winner {result.winner_id} ({result.stop_reason}): {winner['params']:,} params, "
        f"{winner['size_mb']:.3f} MB, validation top-1 {winner['top1']:.4f}; "
        f"{result.winner_dir}")
  final_dir = polish.polish(FLAGS.run_dir, result, config, data_fn, train_config,
                            strategy=strategy)
  if final_dir != result.winner_dir:
    final = files_lib.read_json(os.path.join(final_dir, model_io.METRICS_FILE))
    how = ("trained from scratch" if final.get("final_init") == "scratch" else "polished")
    print(f"{how} for {final['train_epochs']} epochs: validation top-1 {final['top1']:.4f}; "
          f"{final_dir}")
    if final.get("final_choice"):
      print(f"kept by --final_init=best: {final['final_choice']['reason']}")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
