"""Training: compile + fit with Keras callbacks under a tf.distribute strategy.

Nothing here is a hand-written loop: Keras `fit` trains and shows progress,
`BackupAndRestore` makes a killed run resume from its last backed-up epoch (`PeriodicBackup`),
`TensorBoard` logs, `TerminateOnNaN` stops a diverging offspring. With a
teacher, `fit` trains a `squish_tf.train.distill.Distiller` around the student,
the same Keras `fit` with a distillation term in its loss.
"""

import dataclasses
import math
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.net import batch_norm as bn_lib
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.train import distill as distill_lib
from squish_tf.train import progress as progress_lib
from squish_tf.train.config import DISTRIBUTION_STRATEGIES, DistillConfig, TrainConfig


def images_per_epoch(train_ds: tf.data.Dataset, info: data_config_lib.DatasetInfo) -> int:
  """Images one epoch trains on: full batches only when the pipeline drops the remainder."""
  return _epoch_images(train_ds, int(info.train_count))


def _epoch_images(train_ds: tf.data.Dataset, otherwise: Optional[int]) -> Optional[int]:
  """steps x batch when both are static (drop_remainder: the exact count an epoch trains),
  else `otherwise` (the split's image count)."""
  steps = _cardinality(train_ds)
  batch = train_ds.element_spec[0].shape[0]
  return steps * int(batch) if steps and batch else otherwise


BACKUP_DIR = "backup"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"  # under LOG_DIR: one row per epoch (keras.callbacks.CSVLogger)
# Training batches that re-estimate batch-norm statistics at the end of a fit.
RECALIBRATION_BATCHES = 16
# The least seconds between two backups of a fit (`PeriodicBackup`): a kill loses at most this
# much training, and an epoch of a few hundred images (a second or two) does not pay for a
# backup of the weights and optimizer state every time.
BACKUP_SECONDS = 30.0


class PeriodicBackup(keras.callbacks.BackupAndRestore):
  """Keras' `BackupAndRestore`, backing up at the end of an epoch only once `seconds` have passed
  since the fit started or last backed up (0: every epoch, Keras' own behaviour). A resumed fit
  starts after the last epoch backed up, exactly as Keras resumes."""

  def __init__(self, backup_dir: str, seconds: float = BACKUP_SECONDS,
               clock: Callable[[], float] = time.monotonic):
    super().__init__(backup_dir)
    self.seconds, self._clock = seconds, clock
    self._last_backup = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self._last_backup = self._clock()

  def on_epoch_end(self, epoch, logs=None):
    now = self._clock()
    if now - self._last_backup >= self.seconds:
      super().on_epoch_end(epoch, logs)  # records the epoch and backs up
      self._last_backup = now


@dataclasses.dataclass
class FitResult:
  model: Any
  history: Dict[str, list]
  train_images_per_sec: float
  diverged: bool


def get_distribution_strategy(name: str = "off", tpu_address: str = "") -> tf.distribute.Strategy:
  """Model Garden's strategy names -> a tf.distribute strategy.

  Args:
    name: off (the default strategy), one_device (first GPU, else CPU),
      mirrored (all GPUs, else all logical CPU devices), multi_worker_mirrored
      (cluster from the TF_CONFIG environment variable), tpu.
    tpu_address: TPU name or grpc address for `tpu` ("" = local / from env).
  """
  if name not in DISTRIBUTION_STRATEGIES:
    raise ValueError(f"--distribution_strategy must be one of {DISTRIBUTION_STRATEGIES}, "
                     f"got {name!r}.")
  gpus = tf.config.list_logical_devices("GPU")
  if name == "off":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def check_learned(metrics: Dict[str, Any], num_classes: int, model_dir: str) -> None:
  """Raises ValueError when a trained model's validation top-1 is at chance.

  Evolution shrinks what the parent learned; a parent at chance (every ReLU
  dead, or data without signal) would only produce a run of chance-level
  offspring, so the main job stops here and says what to try.
  """
  chance = 1.0 / num_classes
  if metrics["top1"] <= 1.2 * chance:
    raise ValueError(
        f"the ancestor in {model_dir} did not learn: validation top-1 {metrics['top1']:.1%} "
        f"against {chance:.1%} chance for {num_classes} classes. Delete that directory and "
        "re-run with a lower --learning_rate, a longer --warmup_epochs or more --train_epochs, "
        "or check that the labels match the images.")


def compile_model(model, config: TrainConfig = TrainConfig(),
                  steps_per_epoch: Optional[int] = None, from_logits: bool = False) -> None:
  """Optimizer, cross-entropy, top-1 (and top-5) accuracy.

  `from_logits` for a model that ends in logits (a `Distiller`); a model
  ending in softmax gets the same cross-entropy op on the same logits, since
  Keras reads the logits under its softmax.
  """
  learning_rate: Any = config.learning_rate
  total_steps = (steps_per_epoch or 0) * config.epochs
  warmup_steps = min(int(round(config.warmup_epochs * (steps_per_epoch or 0))), total_steps // 4)
  if config.lr_schedule == "cosine" and steps_per_epoch:
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else config.learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=config.learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
  elif warmup_steps:  # constant after the warm-up (alpha=1: no decay)
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=1, alpha=1.0, warmup_target=config.learning_rate,
        warmup_steps=warmup_steps)
  if config.optimizer == "adam":
    if config.weight_decay:
      optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    else:
      optimizer = keras.optimizers.Adam(learning_rate)
  else:
    optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9,
                                     weight_decay=config.weight_decay or None)
  num_classes = int(getattr(model, "student", model).output_shape[-1])  # a Distiller: its student
  metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1")]
  if num_classes > 5:
    metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                metrics=metrics)


def fit(model_fn: Callable[[], Any],
        train_ds: tf.data.Dataset,
        val_ds: Optional[tf.data.Dataset],
        config: TrainConfig,
        strategy: Optional[tf.distribute.Strategy] = None,
        work_dir: Optional[str] = None,
        images_per_epoch: Optional[int] = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: Any = "auto",
        teacher_fn: Optional[Callable[[], Any]] = None,
        distill: DistillConfig = DistillConfig(),
        label: Optional[str] = None) -> FitResult:
  """Builds (under the strategy's scope), compiles and fits a model.

  Args:
    model_fn: returns the model to train; called inside `strategy.scope()`.
    train_ds: batched training pipeline of (pixels, labels).
    val_ds: validation pipeline, evaluated after each epoch (None to skip).
    config: epochs, optimizer, learning rate.
    strategy: a tf.distribute strategy (default: the current one).
    work_dir: where `backup/` (BackupAndRestore), `logs/` (TensorBoard) and
      `logs/history.csv` (CSVLogger) go; None trains without them. A re-run
      with the same work_dir resumes after the last epoch backed up (`PeriodicBackup`).
    images_per_epoch: training images per epoch, for the images/sec figure.
    callbacks: more Keras callbacks.
    verbose: Keras verbosity ("auto": a progress bar on a terminal, one line
      per epoch elsewhere; 0: silent).
    teacher_fn: returns a trained teacher (called inside the scope); the
      student then trains through a `Distiller` with `distill`'s settings.
    distill: alpha and temperature of distillation (with `teacher_fn`).
    label: what is training ("gen_002/cand_01"); progress lines start with it.

  Returns:
    The trained model, its history, the measured training images/sec and
    whether the loss diverged (NaN or inf).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if verbose == "auto":  # a progress bar on a terminal, one line per epoch in a log file
    verbose = 1 if sys.stdout.isatty() else 2
  steps = _cardinality(train_ds)
  images_per_epoch = _epoch_images(train_ds, images_per_epoch)
  with strategy.scope():
    model = model_fn()
    trainer = model
    if teacher_fn is not None:
      trainer = distill_lib.Distiller(model, teacher_fn(), distill)
      trainer.build((None,) + tuple(model.input_shape[1:]))  # BackupAndRestore needs it built
    compile_model(trainer, config, steps_per_epoch=steps, from_logits=trainer is not model)
    # The optimizer's slots, made now rather than on the first step: variables created
    # while `fit` traces its step make tf.function trace it a second time.
    trainer.optimizer.build(trainer.trainable_variables)
  meter = ThroughputMeter(images_per_epoch)
  all_callbacks = [meter, keras.callbacks.TerminateOnNaN()]
  if work_dir:
    # Before the caller's callbacks, so they run on an epoch that is already backed up.
    all_callbacks.append(PeriodicBackup(os.path.join(work_dir, BACKUP_DIR), BACKUP_SECONDS))
    all_callbacks.append(keras.callbacks.TensorBoard(os.path.join(work_dir, LOG_DIR),
                                                     write_graph=False, profile_batch=0))
    # Every epoch's figures as text, whatever the console shows (a resumed fit appends).
    os.makedirs(os.path.join(work_dir, LOG_DIR), exist_ok=True)
    all_callbacks.append(keras.callbacks.CSVLogger(
        os.path.join(work_dir, LOG_DIR, HISTORY_FILE), append=True))
  if verbose and label:
    # Keras' own progress bar on a terminal, one line per epoch elsewhere, each
    # starting with the label (worker processes share the console).
    all_callbacks.append(progress_lib.Progress(label, steps, tty=verbose == 1))
    verbose = 0
  all_callbacks.extend(callbacks)
  history = trainer.fit(train_ds, validation_data=val_ds, epochs=config.epochs, shuffle=False,
                        callbacks=all_callbacks, verbose=verbose)
  # Moving averages (momentum 0.99) lag the weights: after a short fine-tune at a
  # high rate a quarter of them still describe the weights of two epochs ago,
  # and validation falls below training accuracy. Re-estimating them with the
  # final weights ("precise BN") costs a few forward passes.
  bn_lib.recalibrate(model, train_ds, RECALIBRATION_BATCHES)
  losses = history.history.get("loss", [])
  diverged = any(not math.isfinite(v) for v in losses)
  return FitResult(model, dict(history.history), meter.images_per_sec(), diverged)


def evaluate(model, val_ds: tf.data.Dataset) -> Dict[str, float]:
  """Validation loss, top-1 and (more than 5 classes) top-5, as floats."""
  compile_model(model)
  results = model.evaluate(val_ds, return_dict=True, verbose=0)
  return {key: float(value) for key, value in results.items() if key in ("loss", "top1", "top5")}


def evaluate_per_image(model, dataset: tf.data.Dataset
                       ) -> Tuple[Dict[str, float], np.ndarray, np.ndarray]:
  """`evaluate`'s figures from one pass over a batched (image, label) split, with whether the
  top-1 is right on each image and the labels, in the split's order: (figures, bool [n],
  int64 [n]). The model is called eagerly: a traced function costs more than a test split's
  few batches."""
  scores, labels = [], []
  for images, batch_labels in dataset:
    scores.append(np.asarray(model(images, training=False), np.float32))
    labels.append(np.asarray(batch_labels).reshape(-1).astype(np.int64))
  if not labels:
    raise ValueError("The split is empty: the data pipeline yielded no images; check the data "
                     "flags.")
  scores, labels = np.concatenate(scores), np.concatenate(labels)
  correct = np.argmax(scores, axis=-1) == labels
  losses = keras.losses.sparse_categorical_crossentropy(labels, scores)
  figures = {"loss": float(np.mean(np.asarray(losses))), "top1": float(np.mean(correct))}
  if scores.shape[-1] > 5:  # as `compile_model`'s metrics
    figures["top5"] = float(np.mean(np.asarray(keras.ops.in_top_k(labels, scores, 5))))
  return figures, correct, labels


def train_model_dir(model_dir: str,
                    spec: spec_lib.NetSpec,
                    data_config: data_config_lib.DataConfig,
                    train_config: TrainConfig,
                    train_ds: tf.data.Dataset,
                    val_ds: tf.data.Dataset,
                    info: data_config_lib.DatasetInfo,
                    strategy: Optional[tf.distribute.Strategy] = None,
                    seed: int = 0,
                    flags_text: Optional[str] = None,
                    verbose: Any = "auto",
                    label: Optional[str] = None) -> Dict[str, Any]:
  """Trains `spec` from scratch into `model_dir`; resumes or skips what is done.

  Writes flags.txt (when given), TensorBoard logs, then model.keras,
  spec.json and metrics.json. A complete directory of the same spec is not
  retrained; one of another spec is refused before anything is written.

  Returns:
    The metrics written to metrics.json.
  """
  model_io.check_same_spec(model_dir, spec)
  if model_io.is_complete(model_dir):
    return files_lib.read_json(os.path.join(model_dir, model_io.METRICS_FILE))
  os.makedirs(model_dir, exist_ok=True)
  files_lib.write_text(os.path.join(model_dir, model_io.SPEC_FILE), spec.to_json())
  if flags_text is not None:
    files_lib.write_text(os.path.join(model_dir, model_io.FLAGS_FILE), flags_text)
  keras.utils.set_random_seed(seed)
  start = time.time()
  result = fit(lambda: models.build_model(spec, seed=seed), train_ds, val_ds, train_config,
               strategy=strategy, work_dir=model_dir, images_per_epoch=info.train_count,
               verbose=verbose, label=label or os.path.basename(os.path.normpath(model_dir)))
  if result.diverged:
    raise RuntimeError(f"Training diverged (loss became NaN or inf) with learning_rate "
                       f"{train_config.learning_rate}; lower --learning_rate and re-run.")
  evaluation = evaluate(result.model, val_ds)
  metrics = metrics_lib.model_metrics(spec, evaluation)
  metrics.update({
      "train_images_per_sec": result.train_images_per_sec,
      "train_epochs": train_config.epochs,
      "train_images": train_config.epochs * images_per_epoch(train_ds, info),
      "keras_params": spec.keras_params(),
      "train_seconds": time.time() - start,
      "dataset": info.name,
      "image_size": data_config.image_size,
      "train_count": info.train_count,
      "validation_count": info.validation_count,
      "class_names": list(info.class_names),
  })
  model_io.write_model_dir(model_dir, result.model, spec, metrics)
  shutil.rmtree(os.path.join(model_dir, BACKUP_DIR), ignore_errors=True)
  return metrics


class ThroughputMeter(keras.callbacks.Callback):
  """Training images/sec, from the time between epoch start and validation start.

  The first epoch (graph tracing) is left out when there are more.
  """

  def __init__(self, images_per_epoch: Optional[int]):
    super().__init__()
    self._images = images_per_epoch
    self._start = None
    self._durations = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_test_begin(self, logs=None):
    self._stop()

  def on_epoch_end(self, epoch, logs=None):
    self._stop()

  def _stop(self):
    if self._start is not None:
      self._durations.append(time.perf_counter() - self._start)
      self._start = None

  def images_per_sec(self) -> float:
    if not self._images or not self._durations:
      return float("nan")
    durations = self._durations[1:] if len(self._durations) > 1 else self._durations
    return self._images * len(durations) / sum(durations)


def _cardinality(dataset: tf.data.Dataset) -> Optional[int]:
  count = int(dataset.cardinality().numpy())
  return count if count > 0 else None
