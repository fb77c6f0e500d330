"""Distillation: alpha = 0 is hard-label training, the teacher stays frozen, the KL term acts."""


import keras
import numpy as np
import pytest
import tensorflow as tf
import toy

from squish_tf.net import batch_norm, models
from squish_tf.net import spec as spec_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import distill, progress
from squish_tf.train import trainer as train_lib

STUDENT = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=3, conv1_filters=8,
                           fires=(spec_lib.FireSpec(4, 8, 8), spec_lib.FireSpec(4, 8, 8)),
                           pool_after=(1, 2), dropout_rate=0.0, classifier_activation="linear",
                           kernel_initializer="he_uniform", classifier_initializer="normal_0.01",
                           batch_norm=True)
CONFIG = train_config_lib.TrainConfig(epochs=2, learning_rate=3e-3, warmup_epochs=0.5)


def _data():
  images, labels = toy.arrays(64, seed=1)
  return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16, drop_remainder=True)


@pytest.fixture(scope="module")
def teacher():
  model = models.build_model(STUDENT.replace(fires=(spec_lib.FireSpec(6, 12, 12),) * 2), seed=4)
  train_lib.fit(lambda: model, _data(), None, CONFIG, verbose=0)
  return model


def _fit(alpha, teacher_model):
  keras.utils.set_random_seed(0)
  teacher_fn = None if alpha is None else (lambda: teacher_model)
  result = train_lib.fit(lambda: models.build_model(STUDENT, seed=0), _data(), None, CONFIG,
                         verbose=0, teacher_fn=teacher_fn,
                         distill=distill.DistillConfig(alpha=alpha or 0.0, temperature=4.0))
  return result


@pytest.fixture(scope="module")
def plain():
  """The student trained on hard labels alone (what the distilled fits are compared with)."""
  return _fit(None, None)


def test_alpha_zero_trains_exactly_like_hard_labels(teacher, plain):
  distilled = _fit(0.0, teacher)
  for a, b in zip(plain.model.get_weights(), distilled.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(plain.history["loss"], distilled.history["loss"])


def test_distillation_moves_the_student_and_never_the_teacher(teacher, plain):
  before = [w.copy() for w in teacher.get_weights()]
  distilled = _fit(0.9, teacher)
  assert not all(np.array_equal(a, b) for a, b in
                 zip(plain.model.get_weights(), distilled.model.get_weights()))
  for a, b in zip(before, teacher.get_weights()):  # BN statistics included
    np.testing.assert_array_equal(a, b)
  assert not teacher.trainable


def test_distillation_loss_is_the_formula(teacher):
  student = models.build_model(STUDENT, seed=2)
  config = distill.DistillConfig(alpha=0.7, temperature=3.0)
  trainer = distill.Distiller(student, teacher, config)
  trainer.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  images, labels = toy.arrays(8, seed=3)
  x = tf.constant(images)
  y = tf.constant(labels)
  logits = trainer(x, training=False)
  loss = float(trainer.compute_loss(x=x, y=y, y_pred=logits, training=False))
  s = np.asarray(logits, np.float64)
  t = np.asarray(distill.logits_view(teacher)(x, training=False), np.float64)

  def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

  ce = -np.mean(np.log(softmax(s)[np.arange(8), labels]))
  pt, ps = softmax(t / 3.0), softmax(s / 3.0)
  kl = np.mean(np.sum(pt * np.log(pt / ps), axis=1))
  assert loss == pytest.approx(0.3 * ce + 0.7 * 9.0 * kl, rel=1e-4)


def test_distiller_refuses_other_classes_and_bad_settings(teacher):
  other = models.build_model(STUDENT.replace(num_classes=4), seed=0)
  with pytest.raises(ValueError, match="same data"):
    distill.Distiller(other, teacher)
  with pytest.raises(ValueError, match="--distill_alpha"):
    distill.DistillConfig(alpha=1.5)
  with pytest.raises(ValueError, match="--distill_temperature"):
    distill.DistillConfig(temperature=0.5)


def test_distilled_fit_resumes_with_backup_and_restore(teacher, tmp_path, backup_every_epoch):
  work = str(tmp_path / "work")

  class Stop(Exception):
    pass

  class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      if epoch == 0:
        raise Stop()

  config = train_config_lib.TrainConfig(epochs=3, learning_rate=3e-3, warmup_epochs=0)
  with pytest.raises(Stop):
    train_lib.fit(lambda: models.build_model(STUDENT, seed=0), _data(), None, config,
                  work_dir=work, verbose=0, teacher_fn=lambda: teacher,
                  callbacks=[StopAfterFirstEpoch()])
  epochs = []
  recorder = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
  train_lib.fit(lambda: models.build_model(STUDENT, seed=0), _data(), None, config,
                work_dir=work, verbose=0, teacher_fn=lambda: teacher, callbacks=[recorder])
  assert epochs == [1, 2]


def test_progress_prints_one_labelled_line_per_epoch(teacher, capsys):
  train_lib.fit(lambda: models.build_model(STUDENT, seed=0), _data(), None, CONFIG, verbose=2,
                teacher_fn=lambda: teacher, label="gen_002/cand_01")
  lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
  assert len(lines) == CONFIG.epochs
  for epoch, line in enumerate(lines, start=1):
    assert line.startswith(f"gen_002/cand_01 epoch {epoch}/{CONFIG.epochs} - ")
    assert " loss " in line and " top1 " in line
  assert progress.format_epoch("polish", 0, 4, 2.4, {"loss": 0.5, "top1": 0.75}) == (
      "polish epoch 1/4 - 2s - loss 0.5000 - top1 0.7500")


def test_deployed_model_matches_after_training(teacher):
  images, _ = toy.arrays(8, seed=5)
  spec = STUDENT.replace(fires=(spec_lib.FireSpec(6, 12, 12),) * 2)
  deployed = batch_norm.deployed_model(teacher, spec)
  assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in deployed.layers)
  assert deployed.count_params() == spec.params()
  np.testing.assert_allclose(np.asarray(deployed(images)), np.asarray(teacher(images)),
                             rtol=1e-4, atol=1e-5)


def test_a_fit_ends_with_batch_norm_statistics_of_its_final_weights(plain):
  trained = [layer.moving_mean.numpy().copy() for layer in plain.model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
  # Re-estimating again from the same (unshuffled) batches changes nothing: the
  # moving statistics already describe the final weights, not a lagging average.
  model = keras.models.clone_model(plain.model)  # the fit's model stays as it ended
  model.set_weights(plain.model.get_weights())
  batch_norm.recalibrate(model, _data(), train_lib.RECALIBRATION_BATCHES)
  again = [layer.moving_mean.numpy() for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
  assert len(trained) == len(STUDENT.prunable_layers())
  for a, b in zip(trained, again):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
