r"""Trains the few-class SqueezeNet v1.1 ancestor from scratch.

  squish-train --model_dir=saved_models/ancestor            # shapes10, 64 px
  squish-train --dataset=folder --data_dir=~/photos --image_size=128 \
      --model_dir=saved_models/photos --distribution_strategy=mirrored

Writes model.keras, spec.json, metrics.json, flags.txt and TensorBoard logs
into --model_dir. Re-running the same command resumes a killed run from its
last finished epoch; a finished one is not retrained.
"""

from absl import flags

from squish_tf.data import config as data_config_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.job import flags as flag_defs
from squish_tf.job import preflight
from squish_tf.train import trainer as train_lib

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flag_defs.define_train_flags()
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
  strategy = flag_defs.strategy_from_flags()
  train_ds, val_ds, info = data_lib.load(data_config)
  spec = flag_defs.model_config_from_flags().ancestor_spec(info.num_classes,
                                                            data_config.image_size)
  metrics = train_lib.train_model_dir(
      FLAGS.model_dir, spec, data_config, train_config, train_ds, val_ds, info,
      strategy=strategy, seed=FLAGS.seed, flags_text=flag_defs.flags_text(["model_dir"]))
  print(f"{FLAGS.model_dir}: val top-1 {metrics['top1']:.4f}, {metrics['params']:,} params, "
        f"{metrics['size_mb']:.3f} MB, {metrics['macs']:,} MACs")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
