"""What training is asked for, without TensorFlow: `TrainConfig` (the recipe), `ModelConfig`
(the ancestor's architecture choices), `DistillConfig`, and the names of the strategies,
optimizers, teachers and baselines the options take.

`squish_tf.train.trainer`, `squish_tf.train.distill` and `squish_tf.train.baselines` do the
training; the options (`squish_tf.job.options`) read these declarations.
"""

import dataclasses
from typing import Tuple

from squish_tf import fields as fields_lib
from squish_tf.net import spec as spec_lib
# The --baselines names and parser: the baselines' registry (TensorFlow-free).
from squish_tf.train.baseline_registry import (  # noqa: F401
  BASELINES,
  DEFAULT_BASELINES,
  parse_names,
)

DISTRIBUTION_STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "constant")
# Whom offspring distil from (EvolutionConfig.teacher).
TEACHERS = ("ancestor", "parent")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to fit; mirrors the training flags.

  Attributes:
    epochs: passes over the training split.
    learning_rate: peak learning rate. 4e-3 by default: with batch norm the
      ancestor trains at rates the BN-free network could not take, and
      higher rates scored higher on shapes10 up to about this one
      (RESULTS.md, "Why the defaults").
    optimizer: "adam" or "sgd" (momentum 0.9).
    lr_schedule: "cosine" (decay to 0 over the run) or "constant".
    weight_decay: decoupled weight decay (AdamW / SGD); 0 disables.
    warmup_epochs: linear learning-rate warm-up from 0 at the start of the fit,
      in epochs (at most a quarter of the fit); 0 disables. The BN-free
      SqueezeNet trained from scratch can lose every ReLU to the first
      full-size Adam steps (on shapes10 a data order sat at chance without
      warm-up and trained normally with one epoch of it).
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  epochs: int = dataclasses.field(default=6, metadata=dict(
      flag="train_epochs", help="Epochs of training from scratch.", lower_bound=1))
  learning_rate: float = dataclasses.field(default=4e-3, metadata=dict(
      help="Peak learning rate.", greater_than=0.0))
  optimizer: str = dataclasses.field(default="adam", metadata=dict(
      enum_values=OPTIMIZERS, help="Optimizer."))
  lr_schedule: str = dataclasses.field(default="cosine", metadata=dict(
      enum_values=LR_SCHEDULES, help="Learning-rate schedule over each fit."))
  weight_decay: float = dataclasses.field(default=0.0, metadata=dict(
      help="Decoupled weight decay; 0 disables.", lower_bound=0.0))
  warmup_epochs: float = dataclasses.field(default=1.0, metadata=dict(help=(
      "Linear learning-rate warm-up at the start of training from scratch (at most a quarter of "
      "the run); 0 disables."), lower_bound=0.0))

  def __post_init__(self):
    fields_lib.check(self)  # every bound and choice declared above

  def fine_tune(self, epochs: int, learning_rate: float, warmup_epochs: float) -> "TrainConfig":
    """The same recipe (optimizer, schedule, weight decay) for a fine-tune of `epochs`.

    Offspring, the final polish and the baselines all train with the user's
    training flags; only the length, the peak rate and the warm-up differ.
    """
    return dataclasses.replace(self, epochs=epochs, learning_rate=learning_rate,
                               warmup_epochs=warmup_epochs)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The ancestor's architecture choices beside the data's classes and image size."""

  # Options as on TrainConfig (squish_tf/job/options.py).
  classifier_activation: str = dataclasses.field(default="linear", metadata=dict(
      enum_values=spec_lib.CLASSIFIER_ACTIVATIONS,
      help="Activation on conv10: linear (squish_tf's default) or relu (as published)."))
  dropout_rate: float = dataclasses.field(default=0.5, metadata=dict(
      help="Dropout before conv10.", lower_bound=0.0, upper_bound=0.99))
  batch_norm: bool = dataclasses.field(default=True, metadata=dict(help=(
      "Batch normalisation after conv1 and every fire convolution of the ancestor (folded into "
      "the convolutions in every export).")))

  def __post_init__(self):
    fields_lib.check(self)

  def ancestor_spec(self, num_classes: int, image_size: int) -> spec_lib.NetSpec:
    """The ancestor: SqueezeNet's base widths at the data's classes and image size."""
    return spec_lib.squishednet_base(
        num_classes=num_classes, input_shape=(image_size, image_size, 3),
        dropout_rate=self.dropout_rate, classifier_activation=self.classifier_activation,
        batch_norm=self.batch_norm)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """How students learn from a teacher. Field names follow the flags.

  Attributes:
    alpha: weight of the distillation term in [0, 1]; 0 is plain hard-label
      training. 0.5 by default: on shapes10 it did better than TAS's 0.9,
      both in a polish of an evolved network and in an offspring's short
      recovery (RESULTS.md, "Why the defaults").
    temperature: softening temperature T >= 1 (4, as in TAS).
  """

  alpha: float = 0.5
  temperature: float = 4.0

  def __post_init__(self):
    if not 0.0 <= self.alpha <= 1.0:
      raise ValueError(f"--distill_alpha must be in [0, 1] (0 = hard labels only), got "
                       f"{self.alpha!r}.")
    if not self.temperature >= 1.0:
      raise ValueError(f"--distill_temperature must be >= 1 (1 = unsoftened), got "
                       f"{self.temperature!r}.")
