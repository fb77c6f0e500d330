"""absl flag definitions shared by every main, with the same names everywhere.

Each `define_*` function registers a group of flags once (safe to call from
several mains in one process) and records their names, so `flags_text()` can
write exactly the flags that matter into `flags.txt`, re-runnable with
`--flagfile`. `*_config_from_flags()` turn parsed flags into the library's
config dataclasses; the mains stay thin.
"""

import sys
import traceback
from typing import Callable, List

from absl import app
from absl import flags
from absl import logging

from squish_tf import data as data_lib

FLAGS = flags.FLAGS
_DEFINED: List[str] = []


def _define(kind: Callable, name: str, default, help_text: str, **kwargs) -> None:
  if name in FLAGS:
    return
  kind(name, default, help_text, **kwargs)
  _DEFINED.append(name)


def define_data_flags() -> None:
  """--dataset, --data_dir, --image_size, --batch_size, ... (shared by every main)."""
  defaults = data_lib.DataConfig()
  _define(flags.DEFINE_string, "dataset", defaults.dataset,
          "Data source: shapes10 (built-in, offline), folder (class sub-folders under "
          "--data_dir), tfds:NAME (any TFDS image-classification dataset) or imagenet10.")
  _define(flags.DEFINE_string, "data_dir", defaults.data_dir,
          "Image folder for --dataset=folder; TFDS data dir for tfds:NAME and imagenet10.")
  _define(flags.DEFINE_integer, "image_size", defaults.image_size,
          "Images are resized to image_size x image_size.", lower_bound=1)
  _define(flags.DEFINE_integer, "batch_size", defaults.batch_size,
          "Global batch size (split across replicas).", lower_bound=1)
  _define(flags.DEFINE_float, "validation_split", defaults.validation_split,
          "Fraction held out for validation when the source has no validation split.",
          lower_bound=0.0, upper_bound=0.9)
  _define(flags.DEFINE_boolean, "augment", defaults.augment,
          "Random crop and horizontal flip on the training split.")
  _define(flags.DEFINE_boolean, "skip_bad_images", defaults.skip_bad_images,
          "Skip and count unreadable images instead of stopping with an error.")
  _define(flags.DEFINE_integer, "shapes10_train_size", defaults.shapes10_train_size,
          "Training images generated for --dataset=shapes10.", lower_bound=10)
  _define(flags.DEFINE_integer, "shapes10_validation_size", defaults.shapes10_validation_size,
          "Validation images generated for --dataset=shapes10.", lower_bound=10)
  _define(flags.DEFINE_integer, "seed", 0,
          "Seed for data generation, shuffling, initial weights and synthesis.")


def define_train_flags() -> None:
  """--train_epochs, --learning_rate, --optimizer, ... and the distribution flags."""
  from squish_tf import train as train_lib  # pylint: disable=g-import-not-at-top

  defaults = train_lib.TrainConfig()
  _define(flags.DEFINE_integer, "train_epochs", defaults.epochs,
          "Epochs of training from scratch.", lower_bound=1)
  _define(flags.DEFINE_float, "learning_rate", defaults.learning_rate,
          "Peak learning rate.", lower_bound=0.0)
  _define(flags.DEFINE_enum, "optimizer", defaults.optimizer, list(train_lib.OPTIMIZERS),
          "Optimizer.")
  _define(flags.DEFINE_enum, "lr_schedule", defaults.lr_schedule, ["cosine", "constant"],
          "Learning-rate schedule over each fit.")
  _define(flags.DEFINE_float, "weight_decay", defaults.weight_decay,
          "Decoupled weight decay; 0 disables.", lower_bound=0.0)
  define_distribution_flags()


def define_distribution_flags() -> None:
  from squish_tf import train as train_lib  # pylint: disable=g-import-not-at-top

  _define(flags.DEFINE_enum, "distribution_strategy", "off",
          list(train_lib.DISTRIBUTION_STRATEGIES),
          "tf.distribute strategy: off, one_device, mirrored, multi_worker_mirrored "
          "(cluster from TF_CONFIG) or tpu.")
  _define(flags.DEFINE_string, "tpu", "", "TPU name or address for --distribution_strategy=tpu.")


def data_config_from_flags() -> data_lib.DataConfig:
  return data_lib.DataConfig(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, image_size=FLAGS.image_size,
      batch_size=FLAGS.batch_size, validation_split=FLAGS.validation_split, seed=FLAGS.seed,
      augment=FLAGS.augment, skip_bad_images=FLAGS.skip_bad_images,
      shapes10_train_size=FLAGS.shapes10_train_size,
      shapes10_validation_size=FLAGS.shapes10_validation_size)


def train_config_from_flags(epochs_flag: str = "train_epochs"):
  from squish_tf import train as train_lib  # pylint: disable=g-import-not-at-top

  return train_lib.TrainConfig(epochs=getattr(FLAGS, epochs_flag),
                               learning_rate=FLAGS.learning_rate, optimizer=FLAGS.optimizer,
                               lr_schedule=FLAGS.lr_schedule, weight_decay=FLAGS.weight_decay)


def strategy_from_flags():
  from squish_tf import train as train_lib  # pylint: disable=g-import-not-at-top

  return train_lib.get_distribution_strategy(FLAGS.distribution_strategy, FLAGS.tpu)


def defined_flag_names() -> List[str]:
  """The squish_tf flags registered so far, in definition order."""
  return [name for name in _DEFINED if name in FLAGS]


def flags_text(names: List[str] = None) -> str:
  """The current values of squish_tf's flags, one per line, as --flagfile reads them."""
  lines = []
  for name in names or defined_flag_names():
    flag = FLAGS[name]
    if flag.value is None:
      continue
    lines.append(flag.serialize())
  return "\n".join(lines) + "\n"


def run(main: Callable[[List[str]], None]) -> None:
  """app.run(main), printing input errors as one clear line instead of a traceback.

  A ValueError (bad flag combination, missing data, wrong model dir) becomes
  `error: <message>` on stderr and exit status 2; `--verbosity=1` adds the
  traceback.
  """

  def guarded(argv):
    try:
      return main(argv)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
      if logging.get_verbosity() >= logging.DEBUG:
        traceback.print_exc()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)

  app.run(guarded)
