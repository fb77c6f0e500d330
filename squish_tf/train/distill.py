"""Knowledge distillation with Keras' own machinery (Hinton et al., 2015).

  loss = (1 - alpha) * CE(y, p_s) + alpha * T^2 * KL(p_t^T || p_s^T)

where p^T = softmax(logits / T), the student is the model being trained and
the teacher a trained model on the same classes (the ancestor, or the
offspring's parent). `Distiller` is a `keras.Model` whose `compute_loss` adds
the distillation term, as in the Keras knowledge-distillation example, so
`fit`, callbacks (BackupAndRestore, TensorBoard, progress), metrics and
tf.distribute strategies work unchanged; training it trains the student's
own layers in place.

The teacher is frozen (`trainable = False`) and runs in inference mode:
otherwise its weights would be trainable variables of the wrapper and the KL
term would pull the teacher towards the student, and the student down with
it.

With alpha = 0 the teacher is never called and the loss is exactly the
hard-label cross-entropy a plain `fit` of the student computes (the same op
on the same logits; tested).
"""

import os
from typing import Any, Callable, Dict, Optional

import keras

from squish_tf.net import batch_norm as bn_lib
from squish_tf.net import model_io, models
from squish_tf.train.config import DistillConfig


def logits_view(model):
  """A model over the same layers that ends at the logits (layer `avgpool`).

  Works for any model built by `squish_tf.net.models.build_model`; a model that
  already ends in logits comes back as it is.
  """
  if not any(layer.name == "softmax" for layer in model.layers):
    return model
  return keras.Model(model.input, model.get_layer(models.LOGITS_NAME).output,
                     name=f"{model.name}_logits")


class Distiller(keras.Model):
  """Trains `student` on hard labels and on `teacher`'s softened predictions.

  Compile it like any model with `loss=SparseCategoricalCrossentropy(
  from_logits=True)` (the hard-label term) and metrics; it calls the student
  and returns the student's logits, so accuracy metrics read them directly.

  Args:
    student: the model to train (softmax or logits head); trained in place.
    teacher: a trained model with the same classes; frozen here.
    config: alpha and temperature.
  """

  def __init__(self, student, teacher, config: DistillConfig = DistillConfig(),
               name: Optional[str] = None):
    super().__init__(name=name or f"{student.name}_distilled")
    if int(teacher.output_shape[-1]) != int(student.output_shape[-1]):
      raise ValueError(f"The teacher {teacher.name!r} has {teacher.output_shape[-1]} classes but "
                       f"the student {student.name!r} has {student.output_shape[-1]}; distil "
                       "from a model trained on the same data.")
    self.student = student
    self.config = config
    self.student_logits = logits_view(student)
    teacher.trainable = False
    self.teacher = teacher
    self.teacher_logits = logits_view(teacher)
    self.distillation_loss = keras.losses.KLDivergence(name="distillation")

  def call(self, inputs, training=None):
    return self.student_logits(inputs, training=training)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    hard = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                training=training)
    alpha = self.config.alpha
    if alpha == 0:
      return hard
    temperature = self.config.temperature
    teacher = self.teacher_logits(x, training=False)
    soft = self.distillation_loss(keras.ops.softmax(teacher / temperature, axis=-1),
                                  keras.ops.softmax(y_pred / temperature, axis=-1))
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


_TEACHERS: Dict[str, Any] = {}  # per process: model dir -> its deployed (BN-folded) model


def load_teacher(model_dir: str, cached: bool = True):
  """The model of `model_dir` with batch norm folded: the same predictions (to float
  rounding), fewer operations on every distillation step.

  Every teacher is loaded here. `cached`: the process keeps one loaded copy
  (the last directory asked for); False loads a fresh one each call (inside a
  strategy's scope, where its variables must be made).
  """
  if not cached:
    model, spec, _ = model_io.load_model_dir(model_dir)
    return bn_lib.deployed_model(model, spec)
  model_dir = os.path.abspath(model_dir)
  if model_dir not in _TEACHERS:
    _TEACHERS.clear()
    _TEACHERS[model_dir] = load_teacher(model_dir, cached=False)
  return _TEACHERS[model_dir]


def teacher_fn(teacher_dir: Optional[str], strategy) -> Optional[Callable[[], Any]]:
  """Loads the teacher inside the fit's strategy scope (a strategy's variables live there);
  without a strategy the process keeps one loaded copy."""
  if teacher_dir is None:
    return None
  return lambda: load_teacher(teacher_dir, cached=strategy is None)
