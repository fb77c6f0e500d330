r"""Trains the few-class SqueezeNet v1.1 ancestor from scratch.

  squish-train --model_dir=saved_models/ancestor            # shapes10, 64 px
  squish-train --dataset=folder --data_dir=~/photos --image_size=128 \
      --model_dir=saved_models/photos --distribution_strategy=mirrored

Writes model.keras, spec.json, metrics.json, flags.txt and TensorBoard logs
into --model_dir. --train_epochs follows the same budget rule as `squish`
(--min_train_steps, --max_minutes: docs/budgets.md), said before training.
Re-running the same command resumes a killed run from its last finished
epoch; a finished one is not retrained, nor its steps timed for a plan: the
re-run says "[ancestor] already complete, skipped".
"""

from absl import flags

import dataclasses
import functools
import os

import pipelines
from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.job import flags as flag_defs
from squish_tf.job import preflight
from squish_tf.net import model_io

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flag_defs.define_train_flags()
flag_defs.define_budget_flags()
flags.DEFINE_string("model_dir", None, "Where the trained model and its files go.")
flags.mark_flag_as_required("model_dir")
# --help lists the shared flags too (they are defined in flag_defs, not in this module).
flags.adopt_module_key_flags(flag_defs)

def main(argv):
  del argv
  # The data's indexes and disk caches live beside the model (--cache=disk works here too).
  data_config = data_config_lib.in_run(flag_defs.data_config_from_flags(), FLAGS.model_dir)
  preflight.check_options(data_config, min_image_size=preflight.ancestor_min_image_size())
  train_config = flag_defs.train_config_from_flags()
  budget = flag_defs.budget_config_from_flags()
  model_config = flag_defs.model_config_from_flags()
  pipelines.import_tensorflow()  # the flags are checked: now the libraries that need it
  # pylint: disable=g-import-not-at-top
  from squish_tf.data import pipeline as data_lib
  from squish_tf.job import budget as budget_lib
  from squish_tf.job import estimate as estimate_lib
  from squish_tf.train import trainer as train_lib
  # pylint: enable=g-import-not-at-top

  strategy = flag_defs.strategy_from_flags()
  train_ds, val_ds, info = data_lib.load(data_config)
  spec = model_config.ancestor_spec(info.num_classes, data_config.image_size)
  if model_io.is_complete(FLAGS.model_dir):  # a re-run: nothing to plan or train
    model_io.check_same_spec(FLAGS.model_dir, spec)
    print("[ancestor] already complete, skipped", flush=True)
    _print_metrics(files_lib.read_json(os.path.join(FLAGS.model_dir, model_io.METRICS_FILE)))
    return
  # The budget rule of `squish`: a batch that fits the data, then the floor of steps.
  batch = budget_lib.batch_for(data_config.batch_size, info.train_count, budget.min_train_steps)
  given_batch = data_config.batch_size
  if batch != given_batch:
    data_config = dataclasses.replace(data_config, batch_size=batch)
    train_ds, val_ds, info = data_lib.load(data_config)
  budgets = budget_lib.budgets_for(train_config, evolve_config_lib.EvolutionConfig(),
                                   int(train_ds.cardinality()), budget.min_train_steps, batch,
                                   given_batch)
  budgets, plan = estimate_lib.plan_budgets(
      spec, batch, budgets, int(val_ds.cardinality()), budget.max_minutes, FLAGS.model_dir,
      stages=("ancestor",), data_fn=functools.partial(data_lib.load, data_config))
  train_config = budgets.train_config
  if budget.max_minutes is not None:  # a re-run keeps the epochs cut (estimate.plan_budgets)
    model_io.check_same_spec(FLAGS.model_dir, spec)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    estimate_lib.write_plan(FLAGS.model_dir, budgets, plan, budget.max_minutes)
  print(budgets.describe(("train_epochs",)), flush=True)
  print(plan.describe(), flush=True)
  _print_metrics(train_lib.train_model_dir(
      FLAGS.model_dir, spec, data_config, train_config, train_ds, val_ds, info,
      strategy=strategy, seed=FLAGS.seed, flags_text=flag_defs.flags_text(["model_dir"])))


def _print_metrics(metrics):
  print(f"{FLAGS.model_dir}: val top-1 {metrics['top1']:.4f}, {metrics['params']:,} params, "
        f"{metrics['size_mb']:.3f} MB, {metrics['macs']:,} MACs")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
