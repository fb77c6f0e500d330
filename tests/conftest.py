"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices let the mirrored strategy run with two replicas on a
# CPU-only machine. This must happen before TensorFlow initialises its runtime,
# hence here, at collection time, for the whole session.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


@pytest.fixture(scope="session")
def toy_parent_dir(tmp_path_factory):
  """A model dir of toy.TINY trained on toy.data to ~100% (a parent for evolution and baselines)."""
  import toy  # pylint: disable=g-import-not-at-top
  from squish_tf import data as data_lib  # pylint: disable=g-import-not-at-top
  from squish_tf import train as train_lib  # pylint: disable=g-import-not-at-top

  directory = str(tmp_path_factory.mktemp("toy_parent") / "ancestor")
  train, val, info = toy.data()
  train_lib.train_model_dir(directory, toy.TINY, data_lib.DataConfig(image_size=32),
                            train_lib.TrainConfig(epochs=8, learning_rate=1e-2, warmup_epochs=0), train, val, info,
                            seed=0, verbose=0)
  return directory
