"""Image helpers shared by every source: decode any JPEG/PNG/BMP/GIF to RGB, resize, the
seeded stratified hold-out counts, and pixels out of a pipeline (`take_images`, `as_pixels`)."""

from typing import Tuple

import numpy as np
import tensorflow as tf


def decode_image(contents: tf.Tensor) -> tf.Tensor:
  """Any JPEG/PNG/BMP/GIF (first frame) -> uint8 RGB; grayscale and RGBA become RGB."""
  return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Grayscale (1 channel) and RGBA (4) TFDS images -> RGB, by their static shape."""
  channels = image.shape[-1]
  if channels == 1:
    return tf.image.grayscale_to_rgb(image)
  if channels == 4:
    return image[..., :3]
  return image


def resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """-> uint8 [S, S, 3]. Antialiasing keeps large downscales from aliasing."""
  resized = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
  return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def held_out_counts(count: int, validation_fraction: float,
                     test_fraction: float) -> Tuple[int, int]:
  """(validation, test) images to hold out of `count`; at least one image stays for training.

  A positive fraction holds out at least one image whenever that still leaves
  one for training (validation first, then test), so small classes keep a
  validation image before they get a test image.
  """
  validation = 0
  if validation_fraction > 0 and count >= 2:
    validation = min(max(int(round(count * validation_fraction)), 1), count - 1)
  rest = count - validation
  test = 0
  if test_fraction > 0 and rest >= 2:
    test = min(max(int(round(count * test_fraction)), 1), rest - 1)
  return validation, test


def stratified_parts(labels: np.ndarray, num_classes: int, validation_fraction: float,
                      test_fraction: float, seed: int) -> np.ndarray:
  """Assigns examples to 0 (train), 1 (validation), 2 (test), per class and seeded.

  One seeded permutation per class (class order): its first images are the
  validation hold-out and the next ones the test hold-out (`_held_out_counts`),
  so the two are disjoint, and the validation hold-out does not depend on
  test_fraction (it is the one chosen before there were test splits).

  Args:
    labels: int [N], each in [0, num_classes).
    num_classes: how many classes.
    validation_fraction, test_fraction: the share of each class to hold out.
    seed: seeds the permutations.

  Returns:
    int8 [N] part per example.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  parts = np.zeros(len(labels), np.int8)
  for label in range(num_classes):
    indices = np.flatnonzero(labels == label)
    validation, test = held_out_counts(len(indices), validation_fraction, test_fraction)
    order = indices[rng.permutation(len(indices))]
    parts[order[:validation]] = 1
    parts[order[validation:validation + test]] = 2
  return parts


def as_pixels(images: np.ndarray) -> np.ndarray:
  """[N, H, W, 3] images in [0, 255] -> uint8 pixels (rounded, clipped), as a camera gives them."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be [N, height, width, 3], got shape {images.shape}.")
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round(images.astype(np.float32)), 0, 255).astype(np.uint8)


def take_images(dataset: tf.data.Dataset, count: int) -> Tuple[np.ndarray, np.ndarray]:
  """The first `count` (image, label) pairs of a batched split, as numpy.

  Returns:
    (uint8 pixels [n, H, W, 3], int32 labels [n]) with n = min(count, the
    split's size).

  Raises:
    ValueError: count < 1, or a split that yields nothing.
  """
  if count < 1:
    raise ValueError(f"image count must be >= 1, got {count}.")
  images, labels, have = [], [], 0
  for batch_images, batch_labels in dataset:
    images.append(as_pixels(np.asarray(batch_images)))
    labels.append(np.asarray(batch_labels).reshape(-1).astype(np.int32))
    have += len(images[-1])
    if have >= count:
      break
  if not images:
    raise ValueError("The split is empty: the data pipeline yielded no images; check the data "
                     "flags.")
  return np.concatenate(images)[:count], np.concatenate(labels)[:count]
