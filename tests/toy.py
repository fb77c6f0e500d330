"""A tiny, trivially learnable dataset and a tiny SqueezeNet-family spec for fast tests.

Three classes: mostly-red, mostly-green and mostly-blue noise images. A network
that learns at all gets them right, so tests can tell learning from chance in
a few seconds; shapes10 is for measuring, this is for testing plumbing.
"""

import os

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


def fake_measure(model_dirs, reference, fmt="fp32", threads=2, runtime="ai-edge-litert"):
  """`evolution.measure_model_dirs` by `fake_ms`: no conversion (~1.3 s of LiteRT per model),
  the latency of a model dir read off its spec."""
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  del fmt, threads, runtime
  ms = {name: fake_ms(model_io.read_spec(directory)) for name, directory in model_dirs.items()}
  return {name: {"latency_ms": value, "speedup": ms[reference] / value,
                 "speedup_min": ms[reference] / value, "speedup_max": ms[reference] / value}
          for name, value in ms.items()}


def fake_latency(monkeypatch):
  """Times candidates by `fake_ms`: `evolve`'s default `measure` (the seam every evolve call
  without its own `measure=` goes through, the main job's too) becomes `fake_measure`.
  Nothing else is faked: what converts or times anything else does it for real."""
  from squish_tf.evolve import evolution  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(evolution, "measure_model_dirs", fake_measure)


def one_worker_process(monkeypatch):
  """A pool of worker processes (`runtime.workers.WorkerPool`, --workers > 1) starts one
  process, whatever its number of workers: what would run side by side runs one after the
  other there. A test of what worker processes make (the same as this process makes) needs
  one, not the start-up of two."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top

  from squish_tf.runtime import workers  # pylint: disable=g-import-not-at-top

  made = []
  original = concurrent.futures.ProcessPoolExecutor

  def one_process(max_workers=None, **kwargs):
    del max_workers
    made.append(original(max_workers=1, **kwargs))
    return made[-1]

  monkeypatch.setattr(workers.concurrent.futures, "ProcessPoolExecutor", one_process)
  return made


def tree(directory):
  """Every path under `directory`, sorted: a file with its mtime and bytes, a directory with
  None (a directory's changes show in its entries); None when `directory` does not exist."""
  if not os.path.exists(directory):
    return None
  found = []
  for root, dirs, files in os.walk(directory):
    for name in dirs:
      found.append((os.path.relpath(os.path.join(root, name), directory), None))
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as handle:
        found.append((os.path.relpath(path, directory), (os.path.getmtime(path), handle.read())))
  return sorted(found, key=lambda entry: entry[0])


def table_after(markdown: str, heading: str):
  """The first Markdown table after `heading` in a report: (header cells, {first cell: {column:
  cell}})."""
  lines = markdown[markdown.index(heading):].splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("|"))
  table = []
  for line in lines[start:]:
    if not line.startswith("|"):
      break
    table.append([c.strip() for c in line.strip().strip("|").split("|")])
  header, rows = table[0], table[2:]
  return header, {row[0]: dict(zip(header, row)) for row in rows}


def fixed_step_costs(monkeypatch):
  """The plan before every job (`job.estimate.measure_costs`) builds and traces the ancestor
  and a quarter-size network, and times an epoch of the data: seconds per job call, which only
  the plan reads. Fixed costs instead (conftest.fixed_step_costs gives them to every test; a
  module- or session-scoped fixture that runs the job, set up before any test's fixtures, asks
  for them itself)."""
  from squish_tf.job import estimate  # pylint: disable=g-import-not-at-top

  costs = estimate.StepCosts(ancestor_train=0.05, ancestor_eval=0.02, small_train=0.02,
                             small_eval=0.01, ancestor_trace=1.0, small_trace=0.5)
  monkeypatch.setattr(estimate, "measure_costs", lambda *args, **kwargs: costs)
