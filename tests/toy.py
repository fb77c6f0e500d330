"""A tiny, trivially learnable dataset and a tiny SqueezeNet-family spec for fast tests.

Three classes: mostly-red, mostly-green and mostly-blue noise images. A network
that learns at all gets them right, so tests can tell learning from chance in
a few seconds; shapes10 is for measuring, this is for testing plumbing.
"""

import numpy as np
import tensorflow as tf

from squish_tf import data as data_lib
from squish_tf import spec as spec_lib

TINY = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=3, conv1_filters=16,
                        fires=(spec_lib.FireSpec(8, 16, 16), spec_lib.FireSpec(8, 16, 16),
                               spec_lib.FireSpec(12, 24, 24)),
                        pool_after=(1, 3), dropout_rate=0.0, classifier_activation="linear",
                        kernel_initializer="he_uniform", classifier_initializer="normal_0.01",
                        name="tiny")
SIZE = 96


def arrays(n: int = SIZE, seed: int = 0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n).astype(np.int32)
  images = rng.uniform(0, 80, (n, 32, 32, 3)).astype(np.float32)
  images[np.arange(n), :, :, labels] += 150.0
  return images, labels


_IMAGES, _LABELS = arrays()


def data(num_classes: int = 3, stream: int = 0):
  """A data_fn: fresh (train_ds, val_ds, info) on every call; `stream` picks the shuffle order."""
  train = tf.data.Dataset.from_tensor_slices((_IMAGES, _LABELS)).shuffle(
      SIZE, seed=int(stream)).batch(32)
  val = tf.data.Dataset.from_tensor_slices((_IMAGES, _LABELS)).batch(48)
  names = tuple(f"c{i}" for i in range(num_classes))
  return train, val, data_lib.DatasetInfo("toy", names, SIZE, SIZE, 32)
