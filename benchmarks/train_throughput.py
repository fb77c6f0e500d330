"""Does the input pipeline starve training? Images/sec through `data.load` vs from memory.

Trains the 10-class ancestor, `squishednet_base(10, (S, S, 3))`, with the real
training set-up (`train.compile_model`: Adam, cosine schedule, metrics) fed two
ways, and prints images/sec for each and their ratio:

  pipeline   `data.load` on shapes10 with augmentation on: shuffle, batch,
             Keras augmentation layers, prefetch (what `pipelines/train.py` uses);
  in memory  the same number of batches, made once and held as tensors
             (`from_tensor_slices` over pre-made batches): no input work at all.

A ratio near 1 means the pipeline keeps up. The two feeds are measured in
alternating rounds (pipeline, memory, pipeline, memory, ...) so that other load
on the machine hits both alike; warm-up steps (tracing, cache fill) are excluded.

  python benchmarks/train_throughput.py --image_sizes=64,128 --steps=150
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.data import config as data_config_lib  # noqa: E402
from squish_tf.data import pipeline as data  # noqa: E402
from squish_tf.net import models  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402
from squish_tf.train import config as train_config_lib  # noqa: E402
from squish_tf.train import trainer as train  # noqa: E402

_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["64", "128"], "Square image sizes to measure.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Global batch size.", lower_bound=1)
_STEPS = flags.DEFINE_integer(
    "steps", 150, "Timed training steps per round at 64 px; larger images get proportionally "
    "fewer (at least --min_steps), so every size takes about as long.", lower_bound=1)
_MIN_STEPS = flags.DEFINE_integer("min_steps", 40, "Fewest timed steps per round.", lower_bound=1)
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 15,
                                     "Untimed steps before each round (tracing, caches).",
                                     lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds per feed.", lower_bound=1)
_TRAIN_SIZE = flags.DEFINE_integer("train_size", 6000, "shapes10 training images.",
                                   lower_bound=64)
_MEMORY_BATCHES = flags.DEFINE_integer("memory_batches", 16,
                                       "Distinct pre-made batches for the in-memory feed.",
                                       lower_bound=1)


class _StepTimer(keras.callbacks.Callback):
  """Wall time from the end of the warm-up steps to the end of the last step."""

  def __init__(self, warmup_steps: int):
    super().__init__()
    self._warmup = warmup_steps
    self.start = self.stop = None

  def on_train_batch_end(self, batch, logs=None):
    if batch + 1 == self._warmup:
      self.start = time.perf_counter()
    self.stop = time.perf_counter()


def _images_per_sec(model, dataset: tf.data.Dataset, steps: int, batch_size: int) -> float:
  timer = _StepTimer(_WARMUP_STEPS.value)
  model.fit(dataset, epochs=1, steps_per_epoch=_WARMUP_STEPS.value + steps, callbacks=[timer],
            shuffle=False, verbose=0)
  return steps * batch_size / (timer.stop - timer.start)


def _in_memory_batches(train_ds: tf.data.Dataset, count: int) -> tf.data.Dataset:
  images, labels = [], []
  for batch_images, batch_labels in train_ds.take(count):
    images.append(batch_images)
    labels.append(batch_labels)
  return tf.data.Dataset.from_tensor_slices((tf.stack(images), tf.stack(labels))).repeat()


def _measure(size: int) -> None:
  batch_size = _BATCH_SIZE.value
  steps = max(_MIN_STEPS.value, round(_STEPS.value * (64 / size) ** 2))
  config = data_config_lib.DataConfig(dataset="shapes10", image_size=size, batch_size=batch_size,
                           augment=True, seed=0, shapes10_train_size=_TRAIN_SIZE.value,
                           shapes10_validation_size=10)
  start = time.perf_counter()
  train_ds, _, info = data.load(config)
  load_seconds = time.perf_counter() - start
  pipeline = train_ds.repeat()
  memory = _in_memory_batches(train_ds, _MEMORY_BATCHES.value)

  # The pipeline alone, without a model: how much headroom it has.
  iterator = iter(pipeline)
  for _ in range(5):
    next(iterator)
  start = time.perf_counter()
  for _ in range(50):
    next(iterator)
  pipeline_alone = 50 * batch_size / (time.perf_counter() - start)

  keras.utils.set_random_seed(0)
  spec = spec_lib.squishednet_base(info.num_classes, (size, size, 3))
  model = models.build_model(spec, seed=0)
  train.compile_model(model, train_config_lib.TrainConfig(), steps_per_epoch=len(train_ds))
  rates = {"pipeline": [], "memory": []}
  for _ in range(_ROUNDS.value):
    rates["pipeline"].append(_images_per_sec(model, pipeline, steps, batch_size))
    rates["memory"].append(_images_per_sec(model, memory, steps, batch_size))
  ratios = [p / m for p, m in zip(rates["pipeline"], rates["memory"])]
  pipeline_rate = statistics.median(rates["pipeline"])
  memory_rate = statistics.median(rates["memory"])
  print(f"{size:4d} px  batch {batch_size}  {steps} timed steps x {_ROUNDS.value} rounds per feed")
  print(f"        load() (generate {info.train_count} images + build): {load_seconds:6.1f} s")
  print(f"        pipeline alone (no model):  {pipeline_alone:8.0f} images/s")
  print(f"        training, load() pipeline:  {pipeline_rate:8.0f} images/s  "
        f"(rounds: {', '.join(f'{r:.0f}' for r in rates['pipeline'])})")
  print(f"        training, in-memory:        {memory_rate:8.0f} images/s  "
        f"(rounds: {', '.join(f'{r:.0f}' for r in rates['memory'])})")
  print(f"        ratio pipeline / memory:    {pipeline_rate / memory_rate:8.3f}  "
        f"(per round: {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)


def main(argv):
  del argv
  print(f"CPUs: {os.cpu_count()}  load average at start: "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
  for size in _IMAGE_SIZES.value:
    _measure(int(size))
  print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
  app.run(main)
