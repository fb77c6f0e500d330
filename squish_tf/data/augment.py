"""Training augmentation: per-batch stateless seeds and the Keras layer that shifts
(reflected edges) and optionally flips every image (`DataConfig.augment`)."""

from typing import Optional

import keras
import tensorflow as tf

from squish_tf.data.config import DEFAULT_AUGMENT, TRANSLATION_FACTOR, AugmentSpec, parse_augment


def batch_seeds(seed: int) -> tf.data.Dataset:
  """Stateless seeds ([2] int64), one per training batch: a fresh sequence on every pass.

  `Dataset.random` with `rerandomize_each_iteration`: pass k of a pipeline
  draws the same sequence for the same seed, whatever earlier passes consumed.
  """
  return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def augmentation_layer(seed: int, augmentations: AugmentSpec = DEFAULT_AUGMENT
                       ) -> Optional["RandomFlipTranslation"]:
  """The training augmentation: per-image random translation and/or horizontal flip.

  Horizontal flips are label-safe for every shapes10 class (each has a mirror
  axis) and for most natural images, but not for classes that depend on
  orientation (digits, text, arrows), hence opt-in; vertical flips are not
  offered.

  Args:
    seed: seeds the layer's own draws (calls without a per-batch seed).
    augmentations: which augmentations, any spelling `parse_augment` accepts.

  Returns:
    The layer, called on image batches [B, H, W, 3] (uint8 or float) with
    training=True and optionally a per-batch seed; None for no augmentations.
  """
  names = parse_augment(augmentations)
  if not names:
    return None
  return RandomFlipTranslation(TRANSLATION_FACTOR if "translate" in names else 0.0, seed=seed,
                               flip="flip" in names)


class RandomFlipTranslation(keras.layers.Layer):
  """Random horizontal flip and/or translation of each image, in one resampling.

  With flip on, the same augmentation as `keras.layers.RandomFlip("horizontal")`
  followed by `keras.layers.RandomTranslation(factor, factor,
  fill_mode="reflect", interpolation="nearest")`: every image gets its own coin
  flip and whole-pixel shift, and edges are filled by reflection. Both are
  composed into one affine transform per image, so a batch is resampled once;
  the stock pair resamples and then selects between two full copies, which
  takes twice the CPU, and on a small CPU host every millisecond of
  augmentation is taken from training (see benchmarks/train_throughput.py).
  Works on uint8 as well as float images. `flip=False` never mirrors and
  `factor=0` never shifts; the random draws are the same either way, so for a
  given seed the shifts do not depend on whether flips are on.

  Args:
    factor: largest shift as a fraction of the image side, in [0, 1); 0 turns
      translation off.
    seed: seeds the flips and shifts of calls that give no per-batch seed.
    flip: whether to mirror a random half of the images.
  """

  def __init__(self, factor: float, seed: Optional[int] = None, flip: bool = True, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= factor < 1.0:
      raise ValueError(f"translation factor must be in [0, 1), got {factor}.")
    self.factor = factor
    self.seed = seed
    self.flip = bool(flip)
    self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, images, training=True, seed=None):
    """`seed`: a [2] integer tensor drawing this batch statelessly (the training
    pipeline's per-batch seeds); None draws from the layer's seed generator."""
    if not training:
      return images
    ops = keras.ops
    shape = ops.shape(images)
    height, width = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")
    if seed is not None:
      draws = tf.random.stateless_uniform(tf.stack([shape[0], 3]), seed=seed)
    else:
      draws = keras.random.uniform((shape[0], 3), seed=self.seed_generator)
    if self.flip:
      scale = ops.where(draws[:, 0] < 0.5, -1.0, 1.0)  # -1: mirrored
    else:
      scale = ops.ones_like(draws[:, 0])
    shift_x = ops.round((2.0 * draws[:, 1] - 1.0) * self.factor * width)
    shift_y = ops.round((2.0 * draws[:, 2] - 1.0) * self.factor * height)
    zeros, ones = ops.zeros_like(scale), ops.ones_like(scale)
    # Output pixel (x, y) reads input pixel (scale * x + offset, y - shift_y).
    offset = (1.0 - scale) / 2.0 * (width - 1.0) - shift_x
    transform = ops.stack([scale, zeros, offset, zeros, ones, -shift_y, zeros, zeros], axis=1)
    return ops.image.affine_transform(images, transform, interpolation="nearest",
                                      fill_mode="reflect")

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "factor": self.factor, "seed": self.seed, "flip": self.flip}
