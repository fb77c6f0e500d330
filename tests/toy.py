"""A tiny, trivially learnable dataset and a tiny SqueezeNet-family spec for fast tests.

Three classes: mostly-red, mostly-green and mostly-blue noise images. A network
that learns at all gets them right, so tests can tell learning from chance in
a few seconds; shapes10 is for measuring, this is for testing plumbing.
"""

import keras
import numpy as np
import tensorflow as tf

from squish_tf.data import config as data_config_lib
from squish_tf.net import batch_norm
from squish_tf.net import spec as spec_lib

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
  """A data_fn: fresh (train_ds, val_ds, info) on every call; `stream` picks the shuffle order.

  Sets TensorFlow's global seed first, as data.load does: tf.data combines a
  shuffle's op seed with the global seed, so the order (and every model
  trained on it) would otherwise depend on what the process seeded before,
  that is on which tests ran earlier in the session.
  """
  tf.random.set_seed(0)
  train = tf.data.Dataset.from_tensor_slices((_IMAGES, _LABELS)).shuffle(
      SIZE, seed=int(stream)).batch(32)
  val = tf.data.Dataset.from_tensor_slices((_IMAGES, _LABELS)).batch(48)
  names = tuple(f"c{i}" for i in range(num_classes))
  return train, val, data_config_lib.DatasetInfo("toy", names, SIZE, SIZE, 32)


def randomize_batch_norm(model, images, seed=0):
  """Random gamma (some negative) and beta, statistics from `images`, then perturbed.

  Makes folding, slicing and exporting batch norm really tested: the
  statistics are estimated after gamma and beta are drawn, so activations keep
  their scale through the layers and the softmax does not saturate (one-hot
  probabilities would make any parity check pass).
  """
  rng = np.random.default_rng(seed)
  layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
  for layer in layers:
    _, _, mean, variance = layer.get_weights()
    n = len(mean)
    layer.set_weights([rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n, p=[0.2, 0.8]),
                       rng.normal(0.0, 0.5, n), mean, variance])
  batch_norm.recalibrate(model, [np.asarray(images, np.float32)])
  for layer in layers:
    gamma, beta, mean, variance = layer.get_weights()
    n = len(mean)
    layer.set_weights([gamma, beta, mean + rng.normal(0.0, 0.2, n) * np.sqrt(variance),
                       variance * rng.uniform(0.7, 1.4, n)])
  return model


class Stop(Exception):
  """Raised by `fit_that_dies_once` and stage hooks to stand for a killed process."""


def fit_that_dies_once(original, begun):
  """A `train_lib.fit` that records the epochs it begins and dies after its first finished one.

  Only the first call dies; later calls (the re-run) train normally, still recorded.
  """
  state = {"died": False}

  def fit(*args, callbacks=(), **kwargs):
    class Die(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None):
        begun.append(epoch)

      def on_epoch_end(self, epoch, logs=None):
        if not state["died"]:
          state["died"] = True
          raise Stop()
    return original(*args, callbacks=list(callbacks) + [Die()], **kwargs)

  return fit


def fake_ms(spec):
  """The fake LiteRT latency of a spec: its MACs in millions (deterministic, smaller is faster)."""
  return spec.macs() / 1e6


def fake_latency(monkeypatch):
  """Times candidates by `fake_ms` instead of ~1.3 s of LiteRT conversion per candidate: the
  'tflite' of a network is its spec's JSON, and measure_against reads the MACs off it."""
  from squish_tf.bench import latency as latency_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.evolve import evolution  # pylint: disable=g-import-not-at-top
  from squish_tf.net import spec as spec_lib  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(evolution, "_ANCESTOR_TFLITE", {})
  monkeypatch.setattr(latency_lib, "network_tflite",
                      lambda model, spec, fmt, **_: spec.to_json().encode())

  def measure_against(models, reference, threads=2, **_):
    ms = {name: fake_ms(spec_lib.NetSpec.from_json(model.decode()))
          for name, model in models.items()}
    return {name: {"latency_ms": value, "speedup": ms[reference] / value,
                   "speedup_min": ms[reference] / value, "speedup_max": ms[reference] / value}
            for name, value in ms.items()}

  monkeypatch.setattr(latency_lib, "measure_against", measure_against)
