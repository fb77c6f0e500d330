"""shapes10: determinism, independent seeds and splits, balance, resolution, distinct classes."""

import numpy as np
import pytest

from squish_tf.data import shapes10


@pytest.fixture(scope="module")
def train_32():
  return shapes10.generate(200, 32, seed=0, split="train")


def test_same_seed_gives_bitwise_identical_images_and_labels(train_32):
  images, labels = shapes10.generate(200, 32, seed=0, split="train")
  np.testing.assert_array_equal(images, train_32[0])
  np.testing.assert_array_equal(labels, train_32[1])


def test_other_seed_gives_other_images(train_32):
  images, labels = shapes10.generate(200, 32, seed=1, split="train")
  assert not np.array_equal(labels, train_32[1])
  differing = np.any(images != train_32[0], axis=(1, 2, 3))
  assert differing.all()


@pytest.mark.parametrize("first,second", [("train", "validation"), ("train", "test"),
                                          ("validation", "test")])
def test_splits_are_different_draws(train_32, first, second):
  draw = lambda split: train_32[0] if split == "train" else shapes10.generate(
      200, 32, seed=0, split=split)[0]
  # No image of one split equals any image of another.
  first_flat = draw(first).reshape(200, -1)
  second_flat = draw(second).reshape(200, -1)
  matches = (second_flat[:, None, :] == first_flat[None, :, :]).all(axis=2)
  assert not matches.any()


def test_test_split_is_balanced_deterministic_and_sized():
  images, labels = shapes10.generate(53, 16, seed=2, split="test")
  assert images.shape == (53, 16, 16, 3) and labels.shape == (53,)
  counts = np.bincount(labels, minlength=shapes10.NUM_CLASSES)
  assert counts.max() - counts.min() <= 1
  again_images, again_labels = shapes10.generate(53, 16, seed=2, split="test")
  np.testing.assert_array_equal(images, again_images)
  np.testing.assert_array_equal(labels, again_labels)
  assert shapes10.SPLITS == ("train", "validation", "test")


def test_dtypes_shapes_and_full_pixel_range(train_32):
  images, labels = train_32
  assert images.dtype == np.uint8 and images.shape == (200, 32, 32, 3)
  assert labels.dtype == np.int32 and labels.shape == (200,)
  assert labels.min() == 0 and labels.max() == shapes10.NUM_CLASSES - 1
  # Colours span the range and images are not flat.
  assert images.min() < 20 and images.max() > 235
  assert images.reshape(200, -1).std(axis=1).min() > 5


def test_labels_are_balanced_and_shuffled():
  _, labels = shapes10.generate(1003, 8, seed=3, split="train")
  counts = np.bincount(labels, minlength=shapes10.NUM_CLASSES)
  assert counts.max() - counts.min() <= 1
  assert not np.array_equal(labels[:20], np.arange(20) % shapes10.NUM_CLASSES)


@pytest.mark.parametrize("size", [16, 48, 64])
def test_resolution_is_honoured_and_renders_the_same_scenes(size):
  images, labels = shapes10.generate(30, size, seed=5, split="validation")
  assert images.shape == (30, size, size, 3)
  reference_images, reference_labels = shapes10.generate(30, 32, seed=5, split="validation")
  np.testing.assert_array_equal(labels, reference_labels)
  # Same scene at another resolution: the mean colour agrees closely (noise and
  # anti-aliasing differ), while another scene's does not.
  mean = images.reshape(30, -1, 3).mean(axis=1)
  reference_mean = reference_images.reshape(30, -1, 3).mean(axis=1)
  same = np.abs(mean - reference_mean).max(axis=1)
  other = np.abs(mean - np.roll(reference_mean, 1, axis=0)).max(axis=1)
  assert np.median(same) < 4.0
  assert np.median(other) > 15.0


def test_class_names_are_human_readable_and_distinct():
  assert len(shapes10.CLASS_NAMES) == shapes10.NUM_CLASSES == 10
  assert len(set(shapes10.CLASS_NAMES)) == 10
  assert all(name.isalpha() and name.islower() for name in shapes10.CLASS_NAMES)


@pytest.mark.parametrize("label", range(shapes10.NUM_CLASSES))
def test_every_outline_fits_the_unit_disc_with_its_inside_negative(label):
  # A sign error would paint the whole scene but the shape.
  grid = np.linspace(-1.5, 1.5, 301, dtype=np.float32)
  u, v = np.meshgrid(grid, grid)
  for proportion in (0.0, 0.5, 0.999):
    inside = shapes10._SHAPES[label](u[None], v[None], np.full((1, 1, 1), proportion,
                                                               np.float32))[0] < 0
    assert np.hypot(u[inside], v[inside]).max() <= 1.0
    area = inside.mean() * 3.0**2
    assert 0.12 * np.pi < area < 0.8 * np.pi, (shapes10.CLASS_NAMES[label], proportion, area)


@pytest.mark.parametrize("label", range(shapes10.NUM_CLASSES))
def test_every_outline_is_mirror_symmetric_so_horizontal_flips_keep_the_label(label):
  # Mirror-symmetric about the local u axis: a flipped image of a shape at
  # angle a is the same shape at angle -a, which uniform rotation draws as
  # often. This is what makes RandomFlip("horizontal") label-safe.
  rng = np.random.default_rng(label)
  u, v = rng.uniform(-1.2, 1.2, (2, 1, 64, 64)).astype(np.float32)
  proportion = np.full((1, 1, 1), 0.3, np.float32)
  shape = shapes10._SHAPES[label]
  np.testing.assert_allclose(shape(u, -v, proportion), shape(u, v, proportion), atol=1e-5)


def test_shapes_are_lighter_than_their_background_by_the_contrast():
  rng = np.random.default_rng(0)
  colour = rng.uniform(0, 255, (500, 3)).astype(np.float32)
  background = rng.uniform(0, 150, (500, 3)).astype(np.float32)
  contrast = rng.uniform(40, 150, 500).astype(np.float32)
  lit = shapes10._lit_colour(colour, background, contrast)
  luma = lambda c: c @ shapes10._LUMA
  assert (lit >= colour - 1e-3).all() and (lit <= 255.0 + 1e-3).all()
  target = np.minimum(luma(background) + contrast, 255.0)
  assert (luma(lit) >= target - 0.01).all()
  # Colours already bright enough are left alone.
  enough = luma(colour) >= luma(background) + contrast
  np.testing.assert_allclose(lit[enough], colour[enough], atol=1e-3)


def test_each_class_draws_its_own_shape():
  # Same scene (background, position, size, colour), clutter and noise off:
  # only the label changes, and every pair of classes must differ in a good
  # number of pixels, or two labels would be the same picture.
  params = shapes10._draw_scenes(np.random.default_rng(0), 1)
  images = []
  for label in range(shapes10.NUM_CLASSES):
    scene = dict(params, label=np.array([label]), noise_sigma=np.zeros(1, np.float32),
                 stroke_on=np.zeros_like(params["stroke_on"]),
                 blob_on=np.zeros_like(params["blob_on"]))
    images.append(shapes10._render(scene, 48, np.random.default_rng(0))[0].astype(int))
  for a in range(10):
    for b in range(a + 1, 10):
      differing = (np.abs(images[a] - images[b]).sum(axis=2) > 30).sum()
      assert differing > 25, (shapes10.CLASS_NAMES[a], shapes10.CLASS_NAMES[b], differing)


def test_bad_arguments_are_refused_with_the_value():
  with pytest.raises(ValueError, match="image_size.*0"):
    shapes10.generate(10, 0)
  with pytest.raises(ValueError, match="num_images.*-1"):
    shapes10.generate(-1, 32)
  with pytest.raises(ValueError, match="split.*'dev'"):
    shapes10.generate(10, 32, split="dev")
  images, labels = shapes10.generate(0, 32)
  assert images.shape == (0, 32, 32, 3) and labels.shape == (0,)
