"""Training: strategies, the model dir it writes, resume, refusal of another spec."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import toy

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib

TINY = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=3, conv1_filters=8,
                        fires=(spec_lib.FireSpec(4, 8, 8), spec_lib.FireSpec(4, 8, 8)),
                        pool_after=(1, 2), dropout_rate=0.0, classifier_activation="linear",
                        kernel_initializer="he_uniform", classifier_initializer="normal_0.01")


def _toy_data(n=96, batch=16, seed=0):
  """Three trivially separable classes: mostly-red, mostly-green, mostly-blue images."""
  images, labels = toy.arrays(n, seed)
  ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
  info = data_config_lib.DatasetInfo("toy", ("red", "green", "blue"), n, n, 32)
  return ds, info


def test_strategy_names():
  assert isinstance(train_lib.get_distribution_strategy("off"), tf.distribute.Strategy)
  assert isinstance(train_lib.get_distribution_strategy("one_device"),
                    tf.distribute.OneDeviceStrategy)
  with pytest.raises(ValueError, match=r"--distribution_strategy must be one of .* got 'nccl'"):
    train_lib.get_distribution_strategy("nccl")


def test_mirrored_strategy_trains_on_two_logical_cpus():
  strategy = train_lib.get_distribution_strategy("mirrored")
  assert strategy.num_replicas_in_sync == 2  # conftest splits the CPU in two
  ds, info = _toy_data()
  result = train_lib.fit(lambda: models.build_model(TINY, seed=0), ds, ds,
                         train_config_lib.TrainConfig(epochs=3, learning_rate=3e-3), strategy=strategy,
                         images_per_epoch=info.train_count, verbose=0)
  assert not result.diverged
  assert result.history["val_top1"][-1] > 0.6
  assert result.train_images_per_sec > 0


def test_train_model_dir_writes_files_and_skips_when_complete(tmp_path):
  ds, info = _toy_data()
  model_dir = str(tmp_path / "ancestor")
  config = train_config_lib.TrainConfig(epochs=2, learning_rate=3e-3)
  metrics = train_lib.train_model_dir(model_dir, TINY, data_config_lib.DataConfig(image_size=32), config,
                                      ds, ds, info, seed=1, flags_text="--seed=1\n", verbose=0)
  for name in ("model.keras", "spec.json", "metrics.json", "flags.txt"):
    assert os.path.isfile(os.path.join(model_dir, name)), name
  assert os.path.isdir(os.path.join(model_dir, "logs"))
  assert not os.path.exists(os.path.join(model_dir, "backup"))
  on_disk = json.load(open(os.path.join(model_dir, "metrics.json")))
  assert on_disk["params"] == TINY.params()
  assert on_disk["macs"] == TINY.macs()
  assert on_disk["size_mb"] == pytest.approx(TINY.params() * 4 / 1e6)
  for key in ("top1", "loss", "train_images_per_sec", "netscore"):
    assert key in on_disk
  assert "top5" not in on_disk  # 3 classes: top-5 is meaningless
  model, spec, _ = model_io.load_model_dir(model_dir)
  assert spec == TINY
  x = np.zeros((1, 32, 32, 3), np.float32)
  assert model(x).shape == (1, 3)
  # A complete dir of the same spec is not retrained.
  mtime = os.path.getmtime(os.path.join(model_dir, "model.keras"))
  again = train_lib.train_model_dir(model_dir, TINY, data_config_lib.DataConfig(image_size=32), config,
                                    ds, ds, info, seed=1, verbose=0)
  assert again == metrics
  assert os.path.getmtime(os.path.join(model_dir, "model.keras")) == mtime


def test_model_dir_of_another_spec_is_refused_before_writing(tmp_path):
  ds, info = _toy_data(n=32)
  model_dir = str(tmp_path / "m")
  os.makedirs(model_dir)
  files_lib.write_text(os.path.join(model_dir, "spec.json"), TINY.to_json())
  other = TINY.replace(conv1_filters=16)
  before = sorted(os.listdir(model_dir))
  with pytest.raises(ValueError, match=r"holds a model of another spec \(conv1_filters: 8 there, 16 asked\)"):
    train_lib.train_model_dir(model_dir, other, data_config_lib.DataConfig(image_size=32),
                              train_config_lib.TrainConfig(epochs=1), ds, ds, info, verbose=0)
  assert sorted(os.listdir(model_dir)) == before


class _KillAfterEpoch(keras.callbacks.Callback):
  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise KeyboardInterrupt("killed")


def test_killed_fit_resumes_from_last_epoch(tmp_path, backup_every_epoch):
  ds, info = _toy_data()
  work = str(tmp_path / "work")
  config = train_config_lib.TrainConfig(epochs=4, learning_rate=3e-3)
  epochs_seen = []

  class Record(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      epochs_seen.append(epoch)

  with pytest.raises(KeyboardInterrupt):
    train_lib.fit(lambda: models.build_model(TINY, seed=0), ds, ds, config, work_dir=work,
                  callbacks=[Record(), _KillAfterEpoch(1)], verbose=0)
  assert os.path.isdir(os.path.join(work, "backup"))
  epochs_seen.clear()
  result = train_lib.fit(lambda: models.build_model(TINY, seed=0), ds, ds, config, work_dir=work,
                         callbacks=[Record()], verbose=0)
  assert epochs_seen == [2, 3]  # resumed after the two finished epochs
  assert result.model.optimizer.iterations.numpy() == 4 * 6


def test_a_backup_waits_its_period_and_a_resumed_fit_starts_after_it(tmp_path):
  """`PeriodicBackup` at a 10 s period on a fake clock that moves 4 s an epoch: the first backup
  follows epoch 2 (12 s), so a fit killed after epoch 4 resumes at epoch 3, not 5."""
  ds, _ = _toy_data()
  work = str(tmp_path / "work")
  now = [0.0]

  class Clock(keras.callbacks.Callback):  # before the backup: the epoch's time has passed
    def on_epoch_end(self, epoch, logs=None):
      now[0] += 4.0

  def backup():
    return train_lib.PeriodicBackup(os.path.join(work, "backup"), 10.0, clock=lambda: now[0])

  def fit(epochs, *extra):
    model = models.build_model(TINY, seed=0)
    train_lib.compile_model(model, train_config_lib.TrainConfig(epochs=epochs))
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[Clock(), backup(), record, *extra])
    return seen

  with pytest.raises(KeyboardInterrupt):
    fit(7, _KillAfterEpoch(4))
  metadata = json.load(open(os.path.join(work, "backup", "training_metadata.json")))
  assert metadata["epoch"] == 3  # epochs 0-2 backed up at 12 s; epoch 3 ended at 16 s, too soon
  assert fit(7) == [3, 4, 5, 6]


def test_train_config_validation():
  with pytest.raises(ValueError, match="--train_epochs must be an integer >= 1, got 0"):
    train_config_lib.TrainConfig(epochs=0)
  with pytest.raises(ValueError, match="optimizer must be one of"):
    train_config_lib.TrainConfig(optimizer="lbfgs")
  with pytest.raises(ValueError, match="warmup_epochs must be >= 0, got -1"):
    train_config_lib.TrainConfig(warmup_epochs=-1)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_learning_rate_warms_up_linearly_then_follows_the_schedule(schedule):
  model = models.build_model(TINY)
  train_lib.compile_model(model, train_config_lib.TrainConfig(epochs=8, learning_rate=1e-3,
                                                       lr_schedule=schedule, warmup_epochs=1),
                          steps_per_epoch=10)
  rate = model.optimizer._learning_rate  # pylint: disable=protected-access  (the schedule)
  at = lambda step: float(rate(step))
  assert at(0) == 0.0 and at(5) == pytest.approx(5e-4) and at(10) == pytest.approx(1e-3)
  if schedule == "cosine":
    assert at(45) == pytest.approx(5e-4, rel=1e-3) and at(80) == pytest.approx(0.0, abs=1e-9)
  else:
    assert at(45) == pytest.approx(1e-3) and at(80) == pytest.approx(1e-3)
  # At most a quarter of the fit: 1 epoch of a 2-epoch fit warms up for 5 of 20 steps.
  short = models.build_model(TINY)
  train_lib.compile_model(short, train_config_lib.TrainConfig(epochs=2, learning_rate=1e-3,
                                                       warmup_epochs=1),
                          steps_per_epoch=10)
  short_rate = short.optimizer._learning_rate  # pylint: disable=protected-access
  assert float(short_rate(5)) == pytest.approx(1e-3)


def test_ancestor_at_chance_is_refused_with_what_to_try():
  train_lib.check_learned({"top1": 0.40}, 3, "m")  # above chance: fine
  with pytest.raises(ValueError, match=r"did not learn: validation top-1 10\.0% against 10\.0% "
                                       r"chance for 10 classes.*--warmup_epochs"):
    train_lib.check_learned({"top1": 0.1}, 10, "saved_models/demo/ancestor")


def test_tiny_shapes10_ancestor_beats_chance_by_a_wide_margin():
  """The few-class base trains from scratch on shapes10: 32 px, 1500 images, 6 epochs."""
  config = data_config_lib.DataConfig(dataset="shapes10", image_size=32, batch_size=32,
                               shapes10_train_size=1500, shapes10_validation_size=500, seed=0)
  train_ds, val_ds, _ = data_lib.load(config)
  keras.utils.set_random_seed(0)
  spec = spec_lib.squishednet_base(10, (32, 32, 3))
  result = train_lib.fit(lambda: models.build_model(spec, seed=0), train_ds, None,
                         train_config_lib.TrainConfig(epochs=6), verbose=0)
  assert train_lib.evaluate(result.model, val_ds)["top1"] > 0.25  # chance is 0.10
