"""data.load: every source's pipelines, the folder checks, TFDS and ImageNet-10 via mock_data."""

import dataclasses
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from squish_tf.data import augment as augment_lib
from squish_tf.data import cache as cache_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import folder as folder_lib
from squish_tf.data import pipeline as data
from squish_tf.data import shapes10
from squish_tf.data import tfds as tfds_lib

AUTO_SHARD_DATA = tf.data.experimental.AutoShardPolicy.DATA


def _batches(ds):
  return [(images.numpy(), labels.numpy()) for images, labels in ds]


def _stack(ds):
  batches = _batches(ds)
  return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _small_shapes10(**changes):
  settings = dict(image_size=32, batch_size=16, shapes10_train_size=120,
                  shapes10_validation_size=50, shapes10_test_size=40, augment=False)
  settings.update(changes)
  return data_config_lib.DataConfig(**settings)


# -- shapes10 -------------------------------------------------------------------


def test_shapes10_batches_dtypes_ranges_counts_and_info():
  train_ds, val_ds, info = data.load(_small_shapes10(augment=True))
  assert info == data_config_lib.DatasetInfo("shapes10", shapes10.CLASS_NAMES, 120, 50, 32, 0, test_count=40)
  assert info.num_classes == 10
  # Training drops the last partial batch (static shapes); validation keeps every image.
  assert int(train_ds.cardinality()) == 120 // 16
  assert int(val_ds.cardinality()) == 4
  assert train_ds.element_spec[0].shape.as_list() == [16, 32, 32, 3]
  for ds in (train_ds, val_ds):
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    assert ds.options().experimental_distribute.auto_shard_policy == AUTO_SHARD_DATA
  images, labels = _stack(train_ds)
  assert images.shape == (112, 32, 32, 3)
  assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200.0
  assert set(labels.tolist()) == set(range(10))
  val_images, val_labels = _stack(val_ds)
  assert val_images.shape == (50, 32, 32, 3)
  assert set(val_labels.tolist()) == set(range(10))


def test_shapes10_validation_is_the_generated_split_unshuffled_unaugmented():
  _, val_ds, _ = data.load(_small_shapes10(augment=True))
  expected_images, expected_labels = shapes10.generate(50, 32, seed=0, split="validation")
  for _ in range(2):  # and the same on every pass
    images, labels = _stack(val_ds)
    np.testing.assert_array_equal(images, expected_images.astype(np.float32))
    np.testing.assert_array_equal(labels, expected_labels)


def test_training_split_is_shuffled_per_epoch_and_holds_the_generated_images():
  train_ds, _, _ = data.load(_small_shapes10(shapes10_train_size=64))
  generated, generated_labels = shapes10.generate(64, 32, seed=0, split="train")
  first_images, first_labels = _stack(train_ds)
  _, second_labels = _stack(train_ds)
  assert not np.array_equal(first_labels, generated_labels)
  assert not np.array_equal(first_labels, second_labels)
  # Without augmentation an epoch is a permutation of the generated images.
  order = np.lexsort(first_images.reshape(64, -1).T)
  expected_order = np.lexsort(generated.reshape(64, -1).T.astype(np.float32))
  np.testing.assert_array_equal(first_images[order], generated[expected_order])
  np.testing.assert_array_equal(first_labels[order], generated_labels[expected_order])


def test_same_seed_same_training_stream_with_augmentation_other_seed_other():
  config = _small_shapes10(augment=True)
  first = _batches(data.load(config)[0])
  again = _batches(data.load(config)[0])
  other = _batches(data.load(_small_shapes10(augment=True, seed=1))[0])
  for (images, labels), (images_again, labels_again) in zip(first, again):
    np.testing.assert_array_equal(images, images_again)
    np.testing.assert_array_equal(labels, labels_again)
  assert not np.array_equal(first[0][1], other[0][1])


def test_training_stream_does_not_depend_on_what_the_process_seeded_before():
  config = _small_shapes10(augment=True)
  tf.random.set_seed(12345)  # e.g. a previous candidate's seed, or a notebook's
  first = _batches(data.load(config)[0])
  tf.random.set_seed(777)
  again = _batches(data.load(config)[0])
  for (images, labels), (images_again, labels_again) in zip(first, again):
    np.testing.assert_array_equal(labels, labels_again)
    np.testing.assert_array_equal(images, images_again)


def test_augmentation_changes_training_images_only():
  plain_train, plain_val, _ = data.load(_small_shapes10(augment=False))
  augmented_train, augmented_val, _ = data.load(_small_shapes10(augment=True))
  plain_images, plain_labels = _stack(plain_train)
  augmented_images, augmented_labels = _stack(augmented_train)
  # Same seed, same shuffle: the labels line up, the pixels do not.
  np.testing.assert_array_equal(plain_labels, augmented_labels)
  changed = np.any(plain_images != augmented_images, axis=(1, 2, 3))
  assert changed.mean() > 0.5
  # Augmented images stay within pixel range (reflect fill, no interpolation overshoot).
  assert augmented_images.min() >= 0.0 and augmented_images.max() <= 255.0
  np.testing.assert_array_equal(_stack(plain_val)[0], _stack(augmented_val)[0])


def _matching_shift(output, image, max_shift):
  """(mirrored, dx, dy) such that output is image (mirrored) shifted by (dx, dy), else None."""
  size = image.shape[0]
  for mirrored in (False, True):
    source = image[:, ::-1] if mirrored else image
    for dy in range(-max_shift, max_shift + 1):
      for dx in range(-max_shift, max_shift + 1):
        # Compare where the shifted source covers the output (the rest is reflection fill).
        out = output[max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)]
        src = source[max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
        if np.array_equal(out, src):
          return mirrored, dx, dy
  return None


def test_flip_translation_layer_mirrors_and_shifts_each_image_exactly():
  images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
  layer = augment_lib.RandomFlipTranslation(0.25, seed=3)
  outputs = layer(tf.constant(images), training=True).numpy()
  assert outputs.dtype == np.uint8 and outputs.shape == images.shape
  found = [_matching_shift(o, i, max_shift=4) for o, i in zip(outputs, images)]
  assert all(f is not None for f in found)
  mirrored = [f[0] for f in found]
  shifts = {f[1:] for f in found}
  assert 0 < sum(mirrored) < len(mirrored)  # a coin per image, not per batch
  assert len(shifts) > 5
  # The same seed repeats the draws; another seed does not; inference is the identity.
  again = augment_lib.RandomFlipTranslation(0.25, seed=3)(tf.constant(images), training=True).numpy()
  other = augment_lib.RandomFlipTranslation(0.25, seed=4)(tf.constant(images), training=True).numpy()
  np.testing.assert_array_equal(outputs, again)
  assert not np.array_equal(outputs, other)
  np.testing.assert_array_equal(layer(tf.constant(images), training=False).numpy(), images)
  with pytest.raises(ValueError, match="factor must be in"):
    augment_lib.RandomFlipTranslation(1.5)


def test_image_size_is_honoured():
  train_ds, val_ds, info = data.load(_small_shapes10(image_size=40))
  assert info.image_size == 40
  assert next(iter(train_ds))[0].shape == (16, 40, 40, 3)
  assert next(iter(val_ds))[0].shape == (16, 40, 40, 3)


def test_unknown_dataset_lists_the_known_ones():
  for name in ("mnist", "tfds:", "shapes100"):
    with pytest.raises(ValueError) as error:
      data.load(data_config_lib.DataConfig(dataset=name))
    message = str(error.value)
    assert repr(name) in message
    for known in ("shapes10", "folder", "tfds:NAME", "imagenet10"):
      assert known in message


def test_bad_config_values_are_refused():
  with pytest.raises(ValueError, match="validation_split must be in"):
    data.load(data_config_lib.DataConfig(validation_split=1.0))
  with pytest.raises(ValueError, match="image_size must be a positive integer, got 0"):
    data.load(data_config_lib.DataConfig(image_size=0))
  with pytest.raises(ValueError, match="shapes10_train_size"):
    data.load(data_config_lib.DataConfig(shapes10_train_size=0))


def test_bad_split_fractions_and_streams_are_refused():
  with pytest.raises(ValueError, match="test_split must be in"):
    data.load(data_config_lib.DataConfig(test_split=-0.1))
  with pytest.raises(ValueError, match=r"validation_split \+ test_split must be below 1.*0.6 \+ 0.4"):
    data.load_test(data_config_lib.DataConfig(validation_split=0.6, test_split=0.4))
  for stream in (-1, 1.5, True):
    with pytest.raises(ValueError, match="stream must be a non-negative integer"):
      data.load(_small_shapes10(), stream=stream)
  with pytest.raises(ValueError, match="shapes10_test_size"):
    data.load_test(_small_shapes10(shapes10_test_size=0))


# -- the test split -------------------------------------------------------------


@pytest.fixture
def generated_splits(monkeypatch):
  """Records the splits shapes10.generate is asked for (with the cache cleared)."""
  requested = []
  generate = shapes10.generate

  def recording(count, image_size, seed, split):
    requested.append(split)
    return generate(count, image_size, seed, split)

  monkeypatch.setattr(shapes10, "generate", recording)
  shapes10._shapes10_arrays.cache_clear()
  yield requested
  shapes10._shapes10_arrays.cache_clear()


def test_shapes10_load_never_generates_the_test_split(generated_splits):
  _, _, info = data.load(_small_shapes10())
  assert sorted(generated_splits) == ["train", "validation"]
  assert info.test_count == 40  # the configured size, without drawing it


def test_shapes10_test_split_is_its_own_draw_unshuffled_unaugmented(generated_splits):
  config = _small_shapes10(augment="flip,translate")
  test_ds, info = data.load_test(config)
  assert generated_splits == ["test"]
  assert info == data_config_lib.DatasetInfo("shapes10", shapes10.CLASS_NAMES, 120, 50, 32, 0, 40)
  assert int(test_ds.cardinality()) == 3  # ceil(40 / 16): every image
  assert test_ds.element_spec[0].dtype == tf.float32 and test_ds.element_spec[1].dtype == tf.int32
  assert test_ds.options().experimental_distribute.auto_shard_policy == AUTO_SHARD_DATA
  expected_images, expected_labels = shapes10.generate(40, 32, seed=0, split="test")
  images, labels = _stack(test_ds)
  np.testing.assert_array_equal(images, expected_images.astype(np.float32))
  np.testing.assert_array_equal(labels, expected_labels)
  val_images, _ = _stack(data.load(config)[1])
  same = (images.reshape(40, 1, -1) == val_images.reshape(1, 50, -1)).all(axis=2)
  assert not same.any()  # no test image is a validation image
  assert data.load_test(_small_shapes10(shapes10_test_size=25))[1].test_count == 25


# -- data streams ---------------------------------------------------------------


def _reference_epoch(config, images, labels):
  """Today's training pipeline by hand: global and op seed = config.seed."""
  tf.random.set_seed(config.seed)
  ds = tf.data.Dataset.from_tensor_slices((images, labels))
  ds = ds.shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True)
  return _batches(ds.batch(config.batch_size, drop_remainder=True))


def test_stream_zero_is_the_seeds_own_order_and_other_streams_reorder_the_same_images():
  config = _small_shapes10(shapes10_train_size=64)
  generated, generated_labels = shapes10.generate(64, 32, seed=0, split="train")
  reference = _reference_epoch(config, generated, generated_labels)
  default_stream = _batches(data.load(config)[0])
  stream_0, stream_1 = (_batches(data.load(config, stream=s)[0]) for s in (0, 1))
  for batches in (default_stream, stream_0):
    for (images, labels), (ref_images, ref_labels) in zip(batches, reference):
      np.testing.assert_array_equal(images, ref_images.astype(np.float32))
      np.testing.assert_array_equal(labels, ref_labels)
  first = np.concatenate([b[1] for b in stream_0])
  other = np.concatenate([b[1] for b in stream_1])
  assert not np.array_equal(first, other)
  images_1 = np.concatenate([b[0] for b in stream_1])
  images_0 = np.concatenate([b[0] for b in stream_0])
  # Same multiset of (image, label): the same training split in another order.
  key = lambda images: np.lexsort(images.reshape(len(images), -1).T)
  np.testing.assert_array_equal(images_1[key(images_1)], images_0[key(images_0)])
  np.testing.assert_array_equal(other[key(images_1)], first[key(images_0)])
  # Streams are reproducible, distinct, and leave validation alone.
  again = np.concatenate([b[1] for b in _batches(data.load(config, stream=1)[0])])
  np.testing.assert_array_equal(again, other)
  stream_2 = np.concatenate([b[1] for b in _batches(data.load(config, stream=2)[0])])
  assert not np.array_equal(stream_2, other)
  np.testing.assert_array_equal(_stack(data.load(config, stream=1)[1])[0],
                                _stack(data.load(config)[1])[0])


def test_stream_zero_augments_as_the_seeded_layer_and_streams_augment_differently():
  config = _small_shapes10(shapes10_train_size=32, augment=("translate", "flip"))
  assert config.augment == ("flip", "translate")
  generated, generated_labels = shapes10.generate(32, 32, seed=0, split="train")
  reference = _reference_epoch(config, generated, generated_labels)
  layer = augment_lib.RandomFlipTranslation(data_config_lib.TRANSLATION_FACTOR)
  seeds = list(augment_lib.batch_seeds(config.seed).take(2))  # the first pass's per-batch seeds
  stream_0 = _batches(data.load(config)[0])
  for (images, _), (ref_images, _), seed in zip(stream_0, reference, seeds):
    np.testing.assert_array_equal(images, layer(tf.constant(ref_images), seed=seed).numpy())
  assert data_config_lib.stream_seed(0, 0) == 0 and data_config_lib.stream_seed(7, 0) == 7
  seeds = {data_config_lib.stream_seed(seed, stream) for seed in range(3) for stream in range(1, 4)}
  assert len(seeds) == 9 and all(0 <= s < 2**31 - 1 for s in seeds)
  # Another stream also draws other augmentations for the same image.
  order = _stack(data.load(_small_shapes10(shapes10_train_size=32), stream=1)[0])[0]
  augmented = _stack(data.load(config, stream=1)[0])[0]
  seeds = list(augment_lib.batch_seeds(data_config_lib.stream_seed(0, 1)).take(2))
  expected = np.concatenate([layer(tf.constant(order[i:i + 16]), seed=seeds[i // 16]).numpy()
                             for i in (0, 16)])
  np.testing.assert_array_equal(augmented, expected)
  assert not np.array_equal(augmented, _stack(data.load(config)[0])[0])


def test_a_pass_augments_the_same_however_far_the_one_before_it_ran():
  # Batch-norm recalibration reads a few batches of the fine-tune's own pipeline
  # and stops; how far the prefetch ran ahead of it must not change the epochs after.
  config = _small_shapes10(shapes10_train_size=64, augment=("translate", "flip"))
  passes = []
  for stopped_after in (1, 3):
    train = data.load(config)[0]
    for index, _ in enumerate(train):
      if index + 1 == stopped_after:
        break
    passes.append([_stack(train)[0], _stack(train)[0]])
  for early, late in zip(*passes):
    np.testing.assert_array_equal(early, late)
  assert not np.array_equal(passes[0][0], passes[0][1])  # each pass draws anew


# -- augmentation names ---------------------------------------------------------


def test_augment_accepts_names_strings_and_booleans_and_refuses_unknown_names():
  assert data_config_lib.DataConfig().augment == ("translate",) == data_config_lib.DEFAULT_AUGMENT
  spellings = [
      (True, ("translate",)), (False, ()), (None, ()), ("none", ()), ("None", ()), ("", ()),
      ("flip,translate", ("flip", "translate")), (" translate , flip ", ("flip", "translate")),
      ("flip", ("flip",)), (("translate", "flip", "flip"), ("flip", "translate")),
      (["translate"], ("translate",)), ((), ()), (("none",), ())]
  for value, expected in spellings:
    config = data_config_lib.DataConfig(augment=value)
    assert config.augment == expected == data_config_lib.augment_names(config), value
    assert data_config_lib.parse_augment(value) == expected
  config = data_config_lib.DataConfig(augment="flip,translate")
  assert dataclasses.replace(config, augment=False).augment == ()
  assert dataclasses.replace(config, seed=3).augment == ("flip", "translate")
  with pytest.raises(ValueError, match=r"Unknown augmentation.*'rotate'.*flip, translate"):
    data_config_lib.DataConfig(augment="flip,rotate")
  with pytest.raises(ValueError, match="combines 'none'"):
    data_config_lib.DataConfig(augment=("none", "flip"))
  with pytest.raises(ValueError, match="augment must be.*got 3"):
    data_config_lib.DataConfig(augment=3)


def test_flip_off_never_mirrors_and_keeps_the_same_shifts():
  images = np.random.default_rng(1).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
  with_flips = augment_lib.RandomFlipTranslation(0.25, seed=3)(tf.constant(images)).numpy()
  without = augment_lib.RandomFlipTranslation(0.25, seed=3, flip=False)(tf.constant(images)).numpy()
  found_with = [_matching_shift(o, i, max_shift=4) for o, i in zip(with_flips, images)]
  found_without = [_matching_shift(o, i, max_shift=4) for o, i in zip(without, images)]
  assert all(f is not None and not f[0] for f in found_without)
  assert any(f[0] for f in found_with)
  # The same draws: the same shift (a mirrored image's shows in the mirrored frame).
  assert [f[1:] for f in found_without] == [(-dx if mirrored else dx, dy)
                                            for mirrored, dx, dy in found_with]
  # Translation factor 0 and no flip: the identity. Flip alone: mirrors or keeps.
  still = augment_lib.RandomFlipTranslation(0.0, seed=3, flip=False)(tf.constant(images)).numpy()
  np.testing.assert_array_equal(still, images)
  flipped = augment_lib.augmentation_layer(3, "flip")(tf.constant(images), training=True).numpy()
  mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(flipped, images)]
  kept = [np.array_equal(o, i) for o, i in zip(flipped, images)]
  assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < len(images)
  assert augment_lib.augmentation_layer(3, ()) is None  # no augmentations: nothing to apply
  assert augment_lib.RandomFlipTranslation(0.1, flip=False).get_config()["flip"] is False


def test_default_augmentation_translates_without_flipping():
  default = _stack(data.load(_small_shapes10(augment=True))[0])[0]
  translate = _stack(data.load(_small_shapes10(augment="translate"))[0])[0]
  both = _stack(data.load(_small_shapes10(augment="flip,translate"))[0])[0]
  np.testing.assert_array_equal(default, translate)
  assert not np.array_equal(default, both)


# -- folder ---------------------------------------------------------------------


def _write(path, pixels: np.ndarray) -> None:
  """Writes an image file in the format its extension names."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  extension = os.path.splitext(path)[1].lower()
  pixels = np.asarray(pixels, np.uint8)
  if extension == ".png":
    encoded = tf.io.encode_png(pixels if pixels.ndim == 3 else pixels[..., None]).numpy()
  elif extension in (".jpg", ".jpeg"):
    encoded = tf.io.encode_jpeg(pixels if pixels.ndim == 3 else pixels[..., None],
                                quality=100).numpy()
  else:  # BMP and GIF: TensorFlow decodes them but cannot encode them.
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(pixels).save(path)
    return
  with open(path, "wb") as handle:
    handle.write(encoded)


def _solid(value, size=(12, 9), channels=3):
  return np.full((*size, channels), value, np.uint8) if channels else np.full(size, value, np.uint8)


def _tree(root) -> set:
  return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def _folder(root, **changes):
  settings = dict(dataset="folder", data_dir=str(root), image_size=16, batch_size=4,
                  augment=False, validation_split=0.25)
  settings.update(changes)
  return data_config_lib.DataConfig(**settings)


def test_folder_every_format_and_channel_layout_becomes_rgb(tmp_path):
  # One class per format; each image a solid colour so conversions are exact.
  _write(tmp_path / "a_png_gray" / "g.png", _solid(100, channels=0))
  _write(tmp_path / "a_png_gray" / "g2.png", _solid(100, channels=0))
  # RGBA: alpha is dropped, whatever it is.
  for name, alpha in (("x.png", 7), ("y.png", 255)):
    _write(tmp_path / "b_png_rgba" / name,
           np.dstack([_solid((10, 200, 30)), _solid(alpha, channels=0)]))
  _write(tmp_path / "c_jpeg" / "j.jpg", _solid((200, 40, 90), size=(30, 20)))
  _write(tmp_path / "c_jpeg" / "k.JPEG", _solid((200, 40, 90), size=(8, 40)))
  _write(tmp_path / "d_bmp" / "b.bmp", _solid((5, 250, 120)))
  _write(tmp_path / "d_bmp" / "nested" / "c.bmp", _solid((5, 250, 120)))
  _write(tmp_path / "e_gif" / "f.gif", _solid((255, 0, 0)))
  _write(tmp_path / "e_gif" / "h.gif", _solid((255, 0, 0)))
  (tmp_path / "e_gif" / "notes.txt").write_text("not an image, ignored")
  before = _tree(tmp_path)
  # A batch larger than the split: nothing is dropped from training.
  train_ds, val_ds, info = data.load(_folder(tmp_path, validation_split=0.5, batch_size=8))
  assert info.class_names == ("a_png_gray", "b_png_rgba", "c_jpeg", "d_bmp", "e_gif")
  assert (info.train_count, info.validation_count, info.skipped_images) == (5, 5, 0)
  expected = {0: (100, 100, 100), 1: (10, 200, 30), 2: (200, 40, 90), 3: (5, 250, 120),
              4: (255, 0, 0)}
  for ds in (train_ds, val_ds):
    images, labels = _stack(ds)
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32
    assert sorted(labels.tolist()) == [0, 1, 2, 3, 4]  # stratified: one of each per split
    for image, label in zip(images, labels):
      np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), expected[label], atol=2.5)
  assert _tree(tmp_path) == before  # nothing written


def _numbered_tree(root, classes=("cat", "dog"), per_class=20):
  """Solid images whose red value is a unique index, so pixels identify files."""
  index = 0
  for name in classes:
    for i in range(per_class):
      _write(root / name / f"{i:03d}.png", _solid((index, 128, 128), size=(4, 4)))
      index += 1


def _held_out_indices(config):
  _, val_ds, _ = data.load(config)
  images, _ = _stack(val_ds)
  return sorted(np.rint(images[:, 0, 0, 0]).astype(int).tolist())


def test_folder_split_is_stratified_seeded_and_disjoint(tmp_path):
  _numbered_tree(tmp_path)
  config = _folder(tmp_path, validation_split=0.25, test_split=0.0, batch_size=8)
  train_ds, val_ds, info = data.load(config)
  assert (info.train_count, info.validation_count) == (30, 10)
  train_images, train_labels = _stack(train_ds)
  val_images, val_labels = _stack(val_ds)
  assert np.bincount(val_labels).tolist() == [5, 5]
  train_ids = set(np.rint(train_images[:, 0, 0, 0]).astype(int).tolist())
  val_ids = set(np.rint(val_images[:, 0, 0, 0]).astype(int).tolist())
  assert len(val_ids) == 10 and not train_ids & val_ids
  assert _held_out_indices(config) == sorted(val_ids)
  assert _held_out_indices(_folder(tmp_path, validation_split=0.25, test_split=0.0,
                                   seed=1)) != sorted(val_ids)


def test_folder_train_and_validation_layout(tmp_path):
  for split, count in (("train", 3), ("validation", 2)):
    for label, name in enumerate(("ant", "bee")):
      for i in range(count):
        _write(tmp_path / split / name / f"{i}.png", _solid((label * 100, 0, 0), size=(6, 6)))
  train_ds, val_ds, info = data.load(_folder(tmp_path, validation_split=0.5))
  assert info.class_names == ("ant", "bee")
  # No test/ folder: test_split (0.1, at least one per class) is held out of train/.
  assert (info.train_count, info.validation_count, info.test_count) == (4, 4, 2)
  _, val_labels = _stack(val_ds)
  assert val_labels.tolist() == [0, 0, 1, 1]  # unshuffled, class by class
  images, labels = _stack(train_ds.unbatch().batch(100))
  np.testing.assert_allclose(images[:, 0, 0, 0], labels * 100.0)


def test_folder_train_only_layout_splits_train(tmp_path):
  _numbered_tree(tmp_path / "train", per_class=4)
  _, _, info = data.load(_folder(tmp_path, validation_split=0.25))
  assert (info.train_count, info.validation_count, info.test_count) == (4, 2, 2)


def test_folder_unreadable_images_are_named_or_skipped_and_counted(tmp_path):
  _numbered_tree(tmp_path, per_class=4)
  (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  (tmp_path / "dog" / "empty.png").write_bytes(b"")
  # Without a test split, load reads every file.
  with pytest.raises(ValueError) as error:
    data.load(_folder(tmp_path, test_split=0.0))
  message = str(error.value)
  assert "broken.jpg" in message and "empty.png" in message and "--skip_bad_images" in message
  _, _, info = data.load(_folder(tmp_path, test_split=0.0, skip_bad_images=True))
  assert info.skipped_images == 2
  assert info.train_count + info.validation_count == 8
  # With one, load skips the bad files among train and validation, load_test
  # those held out for test: between them, every file once.
  config = _folder(tmp_path, test_split=0.2, skip_bad_images=True)
  _, _, info = data.load(config)
  _, test_info = data.load_test(config)
  assert info.skipped_images + test_info.skipped_images == 2
  assert info.train_count + info.validation_count + test_info.test_count == 8
  assert folder_lib.unreadable_images([str(tmp_path / "cat" / "000.png"),
                                 str(tmp_path / "cat" / "broken.jpg")]) == [
                                     str(tmp_path / "cat" / "broken.jpg")]


def test_a_bad_image_in_the_test_split_stops_load_and_leaves_no_index(tmp_path):
  _numbered_tree(tmp_path / "data" / "train", per_class=4)
  _numbered_tree(tmp_path / "data" / "test", per_class=2)
  (tmp_path / "data" / "test" / "dog" / "broken.png").write_bytes(b"\x89PNG truncated")
  config = _folder(tmp_path / "data", cache_dir=str(tmp_path / "cache"))
  with pytest.raises(ValueError, match="(?s)1 image file.*test/dog/broken.png.*skip_bad_images"):
    data.load(config)  # train and validation only: the test split's files are checked too
  assert not os.path.exists(tmp_path / "cache")
  skipping = dataclasses.replace(config, skip_bad_images=True)
  assert data.load(skipping)[2].skipped_images == 0  # nothing skipped in what load builds
  assert data.load_test(skipping)[1].skipped_images == 1


def test_folder_errors_say_what_is_wrong(tmp_path):
  with pytest.raises(ValueError, match="needs --data_dir"):
    data.load(data_config_lib.DataConfig(dataset="folder"))
  missing = tmp_path / "nowhere"
  with pytest.raises(ValueError, match="nowhere.*not a directory"):
    data.load(_folder(missing))
  not_a_dir = tmp_path / "file.txt"
  not_a_dir.write_text("x")
  with pytest.raises(ValueError, match="file.txt.*not a directory"):
    data.load(_folder(not_a_dir))

  one = tmp_path / "one"
  _write(one / "only" / "a.png", _solid(1))
  with pytest.raises(ValueError, match="1 class folder.*only.*at least 2"):
    data.load(_folder(one))

  empty = tmp_path / "empty"
  _write(empty / "full" / "a.png", _solid(1))
  os.makedirs(empty / "hollow" / "sub")
  (empty / "hollow" / "readme.txt").write_text("no images here")
  with pytest.raises(ValueError, match="hollow.*has no images"):
    data.load(_folder(empty))

  mismatch = tmp_path / "mismatch"
  for split, names in (("train", ("ant", "bee")), ("validation", ("ant", "wasp"))):
    for name in names:
      _write(mismatch / split / name / "a.png", _solid(1))
  with pytest.raises(ValueError, match=r"missing from validation: \['bee'\].*only in validation: "
                                       r"\['wasp'\]"):
    data.load(_folder(mismatch))

  all_bad = tmp_path / "all_bad"
  _write(all_bad / "good" / "a.png", _solid(1))
  _write(all_bad / "good" / "b.png", _solid(1))
  (all_bad / "bad").mkdir()
  (all_bad / "bad" / "x.png").write_bytes(b"junk")
  with pytest.raises(ValueError, match="bad.*no readable images"):
    data.load(_folder(all_bad, skip_bad_images=True))

  no_split = tmp_path / "no_split"
  _numbered_tree(no_split, per_class=2)
  with pytest.raises(ValueError, match="no validation/ folder.*validation_split"):
    data.load(_folder(no_split, validation_split=0.0))


def _ids(ds):
  images, labels = _stack(ds)
  return np.rint(images[:, 0, 0, 0]).astype(int), labels


def test_folder_flat_layout_holds_out_disjoint_stratified_validation_and_test(tmp_path):
  _numbered_tree(tmp_path, classes=("cat", "dog", "eel"), per_class=20)
  config = _folder(tmp_path, validation_split=0.25, test_split=0.15)
  train_ds, val_ds, info = data.load(config)
  test_ds, test_info = data.load_test(config)
  assert (info.train_count, info.validation_count, info.test_count) == (36, 15, 9)
  assert test_info == info  # the same split sizes whichever entry point asked
  (train_ids, _), (val_ids, _) = _ids(train_ds), _ids(val_ds)
  test_ids, test_labels = _ids(test_ds)
  assert test_labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3  # unshuffled, class by class
  assert test_ids.tolist() == sorted(test_ids.tolist())
  for ids, label in ((test_ids, test_labels), (_ids(val_ds)[0], _ids(val_ds)[1])):
    np.testing.assert_array_equal(ids // 20, label)  # each image under its own class
  splits = [set(train_ids.tolist()), set(val_ids.tolist()), set(test_ids.tolist())]
  assert [len(s) for s in splits] == [36, 15, 9]
  assert set.union(*splits) == set(range(60)) and sum(len(s) for s in splits) == 60
  # Validation is what it was without a test split; the test hold-out is seeded.
  assert sorted(val_ids.tolist()) == _held_out_indices(_folder(tmp_path, validation_split=0.25,
                                                               test_split=0.0))
  np.testing.assert_array_equal(_ids(data.load_test(config)[0])[0], test_ids)
  other = _ids(data.load_test(dataclasses.replace(config, seed=1))[0])[0]
  assert set(other.tolist()) != set(test_ids.tolist())
  # No test/ folder and no test_split: load works, load_test says what to do.
  no_test = dataclasses.replace(config, test_split=0.0)
  assert data.load(no_test)[2].test_count == 0
  with pytest.raises(ValueError, match="no test/ folder and test_split is 0.0.*--test_split > 0"):
    data.load_test(no_test)


def test_folder_test_folder_is_the_test_split_and_load_never_builds_it(tmp_path):
  # Green says the split (train 0, validation 50, test 150 + i).
  for split, green, count in (("train", 0, 3), ("validation", 50, 2), ("test", 150, 2)):
    for label, name in enumerate(("ant", "bee")):
      for i in range(count):
        _write(tmp_path / split / name / f"{i}.png",
               _solid((label * 100, green + (i if split == "test" else 0), 0), size=(6, 6)))
  (tmp_path / "test" / "bee" / "broken.png").write_bytes(b"not a png")
  # Every split is decode-checked before anything trains: the broken test file stops load.
  with pytest.raises(ValueError, match="(?s)test/bee/broken.png.*--skip_bad_images"):
    data.load(_folder(tmp_path))
  train_ds, val_ds, info = data.load(_folder(tmp_path, skip_bad_images=True))
  assert (info.train_count, info.validation_count, info.test_count) == (6, 4, 5)
  assert info.skipped_images == 0
  assert {int(v) for v in _stack(train_ds)[0][:, 0, 0, 1]} == {0}
  assert {int(v) for v in _stack(val_ds)[0][:, 0, 0, 1]} == {50}
  with pytest.raises(ValueError, match="(?s)broken.png.*--skip_bad_images"):
    data.load_test(_folder(tmp_path))
  test_ds, test_info = data.load_test(_folder(tmp_path, skip_bad_images=True))
  assert (test_info.test_count, test_info.skipped_images) == (4, 1)
  images, labels = _stack(test_ds)
  assert labels.tolist() == [0, 0, 1, 1]
  np.testing.assert_allclose(images[:, 0, 0, :2], [[0, 150], [0, 151], [100, 150], [100, 151]])

  (tmp_path / "test" / "bee" / "broken.png").unlink()
  os.rename(tmp_path / "test" / "bee", tmp_path / "test" / "wasp")
  for load in (data.load, data.load_test):
    with pytest.raises(ValueError, match=r"test.*differ.*missing from test: \['bee'\].*only in "
                                         r"test: \['wasp'\]"):
      load(_folder(tmp_path))


# -- TFDS and ImageNet-10 (no network: tfds.testing.mock_data) --------------------


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


def test_tfds_source_resizes_and_names_classes(tfds, tmp_path):
  requested = []

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
    del self, decoders, read_config, shuffle_files, kwargs
    requested.append(split)
    sizes = [(40, 30), (17, 60), (160, 213)] * 4  # imagenette images come in any size
    return tf.data.Dataset.from_generator(
        lambda: ({"image": np.full((*size, 3), 10 * i, np.uint8), "label": np.int64(i % 10)}
                 for i, size in enumerate(sizes)),
        output_signature={"image": tf.TensorSpec((None, None, 3), tf.uint8),
                          "label": tf.TensorSpec((), tf.int64)})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    train_ds, val_ds, info = data.load(data_config_lib.DataConfig(
        dataset="tfds:imagenette/160px-v2", data_dir=str(tmp_path), image_size=24, batch_size=5))
    names = tfds.builder("imagenette/160px-v2").info.features["label"].names
    images, labels = _stack(train_ds)
    val_images, val_labels = _stack(val_ds)
  assert info.name == "tfds:imagenette/160px-v2"
  assert info.class_names == tuple(names) and len(names) == 10
  assert (info.train_count, info.validation_count) == (12, 12)
  assert int(train_ds.cardinality()) == 2 and int(val_ds.cardinality()) == 3
  assert images.shape == (10, 24, 24, 3) and val_images.shape == (12, 24, 24, 3)
  assert images.dtype == np.float32 and labels.dtype == np.int32
  # Unshuffled validation: example i, solid value 10 * i, label i % 10, any input size.
  np.testing.assert_array_equal(val_labels, np.arange(12) % 10)
  np.testing.assert_allclose(val_images.mean(axis=(1, 2, 3)), 10.0 * np.arange(12), atol=0.5)
  # The mock knows no split names, so validation (20%) and test (10%) are a
  # seeded window of whole percents of train, and training is the rest of train.
  train_split, val_split = requested
  start, middle = (int(v[:-1]) for v in val_split[len("train["):-1].split(":"))
  assert middle - start == 20
  assert train_split == f"train[:{start}%]+train[{middle + 10}%:]"
  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    test_ds, test_info = data.load_test(data_config_lib.DataConfig(
        dataset="tfds:imagenette/160px-v2", data_dir=str(tmp_path), image_size=24, batch_size=5))
    test_images, test_labels = _stack(test_ds)
  assert requested[2:] == [f"train[{middle}%:{middle + 10}%]"]  # only the test window
  assert test_info.test_count == 12 and test_info.class_names == info.class_names
  np.testing.assert_array_equal(test_labels, np.arange(12) % 10)  # unshuffled
  assert test_images.shape == (12, 24, 24, 3) and test_images.dtype == np.float32


def test_tfds_grayscale_images_become_rgb(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    train_ds, _, info = data.load(data_config_lib.DataConfig(
        dataset="tfds:mnist", data_dir=str(tmp_path), image_size=32, batch_size=4))
    images, _ = _stack(train_ds)
  assert info.num_classes == 10
  assert images.shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(images[..., 0], images[..., 1])
  np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_unknown_tfds_name_is_refused_without_writing(tfds, tmp_path):
  data_dir = tmp_path / "tfds"
  with pytest.raises(ValueError, match="TFDS has no dataset 'no_such_dataset_xyz'"):
    data.load(data_config_lib.DataConfig(dataset="tfds:no_such_dataset_xyz", data_dir=str(data_dir)))
  assert not data_dir.exists()


def _fake_builder(splits):
  info = types.SimpleNamespace(splits={name: types.SimpleNamespace(num_examples=count)
                                       for name, count in splits.items()})
  return types.SimpleNamespace(info=info)


def _window(split):
  """"train[a:b]" -> (a, b)."""
  start, stop = split[len("train["):-1].split(":")
  return int(start.rstrip("%")), int(stop.rstrip("%"))


def test_tfds_split_rules_validation_and_test():
  pick = lambda splits, validation=0.2, test=0.1, seed=0: tfds_lib._tfds_splits(
      _fake_builder(splits), validation, test, seed, "x")
  # Both: as named; validation_split and test_split are not used.
  assert pick({"train": 100, "validation": 10, "test": 10}) == ("train", "validation", "test")
  assert pick({"train": 100, "validation": 10, "test": 10}, validation=0.0) == (
      "train", "validation", "test")
  # One of them: it is the test split, validation a seeded slice of train.
  for only in ("test", "validation"):
    train_split, val_split, test_split = pick({"train": 100, only: 10})
    start, stop = _window(val_split)
    assert stop - start == 20 and test_split == only
    assert train_split == f"train[:{start}]+train[{stop}:]"
  # Neither: disjoint validation (20%) and test (10%) windows, the rest trains.
  train_split, val_split, test_split = pick({"train": 100})
  (start, middle), (middle_again, stop) = _window(val_split), _window(test_split)
  assert (middle - start, middle_again, stop - middle) == (20, middle, 10)
  assert train_split == f"train[:{start}]+train[{stop}:]"
  assert pick({"train": 100}) == (train_split, val_split, test_split)  # seeded
  assert {pick({"train": 100}, seed=seed)[1] for seed in range(10)} != {val_split}
  # No test: the validation window is the one from before test splits existed.
  no_test = pick({"train": 100}, test=0.0)
  assert no_test[2] is None and _window(no_test[1])[1] - _window(no_test[1])[0] == 20
  assert pick({})[1].endswith("%]") and pick({})[2].endswith("%]")  # sizes unknown: percents
  with pytest.raises(ValueError, match="only a 'test' split.*validation_split is 0.0"):
    pick({"train": 100, "test": 10}, validation=0.0)
  with pytest.raises(ValueError, match="no validation or test split.*--validation_split > 0"):
    pick({"train": 100}, validation=0.0)


def _imagenet_mock(tfds, examples_by_split, requested):
  """An as_dataset_fn serving given (label, pixel value) examples per split."""

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
    del read_config, shuffle_files, kwargs
    requested.append(split)
    labels, values = zip(*examples_by_split[split])
    images = np.stack([_solid(value, size=(20, 30)) for value in values])
    ds = tf.data.Dataset.from_tensor_slices({
        "image": images, "label": np.asarray(labels, np.int64),
        "file_name": [f"{i}.JPEG" for i in range(len(labels))]})
    if decoders and isinstance(decoders.get("image"), tfds.decode.SkipDecoding):
      ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_jpeg(ex["image"], quality=100)})
    return ds

  return as_dataset


def test_imagenet10_keeps_only_the_ten_wnids_and_remaps_them(tfds, tmp_path):
  names = tfds.builder("imagenet2012", data_dir=str(tmp_path)).info.features["label"].names
  original = [names.index(wnid) for wnid, _ in tfds_lib.IMAGENET10_CLASSES]
  others = [0, 1, 500, 999]
  assert not set(others) & set(original)
  # Kept images carry the pixel value 20 * new label + (train: 10 + copy, test: 5);
  # dropped ones 255.
  train = [(label, 20 * new + 10 + copy) for new, label in enumerate(original)
           for copy in range(5)]
  train += [(label, 255) for label in others for _ in range(4)]
  validation = [(label, 20 * new + 5) for new, label in enumerate(original)]
  validation += [(label, 255) for label in others]
  rng = np.random.default_rng(0)
  train = [train[i] for i in rng.permutation(len(train))]
  requested = []
  mock = _imagenet_mock(tfds, {"train": train, "validation": validation}, requested)
  config = data_config_lib.DataConfig(dataset="imagenet10", data_dir=str(tmp_path), image_size=16,
                           batch_size=10, augment=False, validation_split=0.2)
  with tfds.testing.mock_data(as_dataset_fn=mock):
    train_ds, val_ds, info = data.load(config)
    images, labels = _stack(train_ds.unbatch().batch(100))
    val_images, val_labels = _stack(val_ds)
    assert set(requested) == {"train"}  # imagenet2012's validation split is the test split
    test_ds, test_info = data.load_test(config)
    test_images, test_labels = _stack(test_ds)
    again = _stack(data.load(config)[1])[0]
  assert set(requested) == {"train", "validation"}
  assert info.class_names == tuple(name for _, name in tfds_lib.IMAGENET10_CLASSES)
  assert info.class_names[0] == "king_penguin" and info.class_names[9] == "orange"
  # Validation: a stratified, seeded hold-out of the filtered training images.
  assert (info.train_count, info.validation_count, info.test_count) == (40, 10, 0)
  assert int(train_ds.cardinality()) == 4 and int(val_ds.cardinality()) == 1
  assert sorted(labels.tolist()) == sorted(list(range(10)) * 4)
  assert sorted(val_labels.tolist()) == list(range(10))
  np.testing.assert_array_equal(again, val_images)
  train_values = set(np.rint(images.mean(axis=(1, 2, 3))).astype(int).tolist())
  val_values = set(np.rint(val_images.mean(axis=(1, 2, 3))).astype(int).tolist())
  assert len(train_values) == 40 and len(val_values) == 10 and not train_values & val_values
  # Test: imagenet2012's validation split, filtered, in file order.
  assert test_info.test_count == 10 and int(test_ds.cardinality()) == 1
  assert test_labels.tolist() == list(range(10))
  for pixels, label, low, high in ((images, labels, 10, 14), (val_images, val_labels, 10, 14),
                                   (test_images, test_labels, 5, 5)):
    assert pixels.shape[1:] == (16, 16, 3)
    offset = pixels.mean(axis=(1, 2, 3)) - 20.0 * label
    assert (offset >= low - 2.0).all() and (offset <= high + 2.0).all()


def test_imagenet10_wnids_are_distinct_imagenet_classes(tfds, tmp_path):
  names = tfds.builder("imagenet2012", data_dir=str(tmp_path)).info.features["label"].names
  wnids = [wnid for wnid, _ in tfds_lib.IMAGENET10_CLASSES]
  assert len(set(wnids)) == 10 and all(wnid in names for wnid in wnids)
  assert wnids[0] == "n02056570" and wnids[-1] == "n07747607"


# -- prepared once: the readability index ---------------------------------------


@pytest.fixture
def decoder_checks(monkeypatch):
  """Records the files data.unreadable_images decodes (with this process's index forgotten)."""
  checked = []
  check = folder_lib.unreadable_images

  def recording(paths):
    checked.extend(paths)
    return check(paths)

  monkeypatch.setattr(folder_lib, "unreadable_images", recording)
  monkeypatch.setattr(folder_lib, "FOLDER_INDEXES", {})
  return checked


def _mixed_tree(root, per_class=6):
  """Three classes of tiny PNG and JPEG files; a PNG's red value is its unique index."""
  for label, name in enumerate(("ant", "bee", "cow")):
    for i in range(per_class):
      if i % 3 == 2:  # JPEG: lossy, so a solid mid-grey, not an index
        _write(root / name / f"{i:02d}.jpg", _solid((128, 128, 128), size=(5, 7)))
      else:
        _write(root / name / f"{i:02d}.png", _solid((label * per_class + i, 40, 40), size=(4, 4)))


def test_folder_index_is_written_on_first_load_and_read_on_the_second(tmp_path, decoder_checks,
                                                                      monkeypatch):
  _mixed_tree(tmp_path / "data")
  cache_dir = tmp_path / "cache"
  config = _folder(tmp_path / "data", test_split=0.2, cache_dir=str(cache_dir))
  _, _, info = data.load(config)
  # Every split is decode-checked by load, the test split's files too (nothing else is read).
  assert len(decoder_checks) == 18 and info.train_count + info.validation_count == 15
  index_path = folder_lib.folder_index_path(str(cache_dir), str(tmp_path / "data"))
  with open(index_path, encoding="utf-8") as handle:
    index = json.loads(handle.read(), parse_constant=_refuse_constant)
  assert index["root"] == str(tmp_path / "data") and index["unreadable"] == []
  assert len(index["files"]) == 18 and "ant/00.png" in index["files"]
  checked = sorted(name for name, (_, _, ok) in index["files"].items() if ok)
  assert len(checked) == 18
  size, mtime_ns, _ = index["files"]["ant/00.png"]
  assert size == os.path.getsize(tmp_path / "data" / "ant" / "00.png")
  assert mtime_ns == os.stat(tmp_path / "data" / "ant" / "00.png").st_mtime_ns

  decoder_checks.clear()
  folder_lib.FOLDER_INDEXES.clear()  # as in a new process: only the index file is left
  _, _, again = data.load(config)
  assert decoder_checks == [] and again == info
  _, test_info = data.load_test(config)
  assert decoder_checks == [] and test_info.test_count == 3  # checked by load already
  # The same folder reached by a relative path: the same index.
  monkeypatch.chdir(tmp_path)
  folder_lib.FOLDER_INDEXES.clear()
  assert data.load(dataclasses.replace(config, data_dir="data"))[2] == info
  assert decoder_checks == []
  # Without a cache_dir nothing is written; this process still remembers.
  plain = _folder(tmp_path / "data", test_split=0.2)
  before = _tree(tmp_path)
  data.load(plain)
  data.load(plain)
  assert decoder_checks == [] and _tree(tmp_path) == before


def _refuse_constant(constant):
  raise ValueError(f"{constant} is not JSON")


def test_folder_index_is_rebuilt_when_a_file_changes(tmp_path, decoder_checks):
  root = tmp_path / "data"
  _mixed_tree(root)
  config = _folder(root, test_split=0.0, cache_dir=str(tmp_path / "cache"))
  data.load(config)
  assert len(decoder_checks) == 18

  def reload():
    decoder_checks.clear()
    folder_lib.FOLDER_INDEXES.clear()
    return data.load(config)

  # Rewritten with another size: decoded again, alone.
  _write(root / "bee" / "01.png", _solid((9, 9, 9), size=(6, 6)))
  reload()
  assert decoder_checks == [str(root / "bee" / "01.png")]
  # The same size, a new mtime.
  path = root / "cow" / "03.png"
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  reload()
  assert decoder_checks == [str(path)]
  # A new file; a file gone.
  _write(root / "ant" / "new.png", _solid((1, 2, 3), size=(4, 4)))
  os.remove(root / "ant" / "00.png")
  _, _, info = reload()
  assert decoder_checks == [str(root / "ant" / "new.png")]
  assert info.train_count + info.validation_count == 18
  index = json.load(open(folder_lib.folder_index_path(config.cache_dir, str(root))))
  assert "ant/new.png" in index["files"] and "ant/00.png" not in index["files"]
  # A file broken in place is found, named, and (skipped) reported in the index.
  (root / "bee" / "04.png").write_bytes(b"not a png any more")
  with pytest.raises(ValueError, match="(?s)1 image file.*bee/04.png"):
    reload()
  skipping = dataclasses.replace(config, skip_bad_images=True)
  decoder_checks.clear()
  assert data.load(skipping)[2].skipped_images == 1
  assert decoder_checks == []  # this process remembered the failed check
  index = json.load(open(folder_lib.folder_index_path(config.cache_dir, str(root))))
  assert index["unreadable"] == ["bee/04.png"]


def test_folder_training_files_are_mixed_across_classes_before_decoding(tmp_path, monkeypatch):
  _numbered_tree(tmp_path, classes=("a", "b", "c", "d"), per_class=8)
  image_bytes = 16 * 16 * 3
  # A one-image shuffle window: the batches come in the training file order.
  monkeypatch.setattr(cache_lib, "SHUFFLE_BUFFER_BYTES", image_bytes)
  config = _folder(tmp_path, validation_split=0.25, test_split=0.0, batch_size=4, cache="none")
  train_ds, val_ds, info = data.load(config)
  assert cache_lib.shuffle_buffer_size(info.train_count, 16) == 1
  ids, labels = _ids(train_ds)
  assert sorted(ids.tolist()) == sorted(set(ids.tolist())) and len(ids) == 24
  np.testing.assert_array_equal(ids // 8, labels)
  # Every class in the first half of the epoch; the order is not class by class.
  assert set(labels[:12].tolist()) == {0, 1, 2, 3}
  assert np.count_nonzero(np.diff(labels)) > 8
  np.testing.assert_array_equal(_ids(data.load(config)[0])[0], ids)  # seeded
  assert not np.array_equal(_ids(data.load(dataclasses.replace(config, seed=1))[0])[0], ids)
  assert _ids(val_ds)[1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # validation stays in class order


# -- bounded memory: where decoded images are kept -------------------------------


def _epochs(ds, count=2):
  return [_stack(ds) for _ in range(count)]


def test_disk_cache_is_written_in_the_cache_dir_and_gives_the_same_batches(tmp_path, monkeypatch):
  _numbered_tree(tmp_path / "data", classes=("a", "b", "c"), per_class=10)
  # A shuffle window smaller than the split (8 of 24 images): the order is the
  # same for every placement anyway.
  monkeypatch.setattr(cache_lib, "SHUFFLE_BUFFER_BYTES", 8 * 16 * 16 * 3)
  cache_dir = tmp_path / "cache"
  base = _folder(tmp_path / "data", validation_split=0.2, test_split=0.0, augment="translate",
                 cache_dir=str(cache_dir))
  results = {}
  for mode in ("memory", "disk", "none"):
    train_ds, val_ds, info = data.load(dataclasses.replace(base, cache=mode), stream=3)
    assert dict(info.cache) == {"train": mode, "validation": mode}
    results[mode] = _epochs(train_ds) + [_stack(val_ds)]
  for mode in ("disk", "none"):
    for (images, labels), (ref_images, ref_labels) in zip(results[mode], results["memory"]):
      np.testing.assert_array_equal(labels, ref_labels)
      np.testing.assert_array_equal(images, ref_images)
  first, second = results["memory"][0][1], results["memory"][1][1]
  assert not np.array_equal(first, second)  # reshuffled per epoch
  names = sorted(os.listdir(cache_dir))
  indexes = [n for n in names if n.endswith(".index")]
  assert len(indexes) == 2 and all(n.split("-")[1] in ("train", "validation") for n in indexes)
  assert len([n for n in names if ".data-" in n]) == 2
  assert not [n for n in names if n.startswith(".") or "lockfile" in n or "tempstate" in n]
  # A second load reads the files as they are.
  stamps = {n: os.stat(cache_dir / n).st_mtime_ns for n in names}
  train_ds, _, _ = data.load(dataclasses.replace(base, cache="disk"), stream=3)
  np.testing.assert_array_equal(_stack(train_ds)[1], results["memory"][0][1])
  assert {n: os.stat(cache_dir / n).st_mtime_ns for n in os.listdir(cache_dir)} == stamps


def test_disk_cache_leaves_no_partial_files(tmp_path, monkeypatch):
  _numbered_tree(tmp_path / "data", per_class=6)
  cache_dir = tmp_path / "cache"
  config = _folder(tmp_path / "data", test_split=0.0, cache="disk", cache_dir=str(cache_dir))
  data.load(dataclasses.replace(config, cache="none"))  # indexed as readable
  # Broken in place with the same sizes and mtimes: the index still says
  # readable, so decoding fails while the first disk cache (train) is written.
  for path in (tmp_path / "data" / "dog").iterdir():
    stat = os.stat(path)
    path.write_bytes(b"x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  # A temporary of a process that died mid-write, and one of this live process.
  dead = cache_dir / ".folder_x-train-0123456789abcdef.tmp999999999-deadbeef.data-00000-of-00001"
  alive = cache_dir / f".folder_x-train-0123456789abcdef.tmp{os.getpid()}-cafe0000.index"
  dead.write_bytes(b"partial")
  alive.write_bytes(b"being written")
  with pytest.raises(tf.errors.InvalidArgumentError):
    data.load(config)
  assert sorted(n for n in os.listdir(cache_dir) if not n.startswith("folder_index")) == [
      alive.name]


def test_auto_places_in_memory_what_fits_the_budget_and_the_rest_on_disk(tmp_path, monkeypatch):
  splits = [("train", 600), ("validation", 300)]
  assert cache_lib.cache_placements("auto", splits, 1000, disk=True) == {
      "train": "memory", "validation": "memory"}
  assert cache_lib.cache_placements("auto", splits, 700, disk=True) == {
      "train": "memory", "validation": "disk"}
  assert cache_lib.cache_placements("auto", splits, 400, disk=True) == {
      "train": "disk", "validation": "memory"}
  assert cache_lib.cache_placements("auto", splits, 100, disk=False) == {
      "train": "none", "validation": "none"}
  for mode in ("memory", "disk", "none"):
    assert set(cache_lib.cache_placements(mode, splits, 0, disk=True).values()) == {mode}
  with pytest.raises(ValueError, match="needs a cache_dir"):
    cache_lib.cache_placements("disk", splits, 0, disk=False)
  assert cache_lib.memory_budget(processes=3, available=12 << 30) == int(
      (12 << 30) * data_config_lib.MEMORY_FRACTION) // 3
  assert cache_lib.memory_budget(processes=1, available=0) == 0
  assert cache_lib.available_memory_bytes() > 0

  _numbered_tree(tmp_path / "data", per_class=5)
  cache_dir = tmp_path / "cache"
  config = _folder(tmp_path / "data", test_split=0.0, cache_dir=str(cache_dir), processes=3)
  budgets = []

  def available(plenty):
    def bytes_available():
      budgets.append(plenty)
      return (1 << 40) if plenty else 1000
    return bytes_available

  monkeypatch.setattr(cache_lib, "available_memory_bytes", available(True))
  _, _, info = data.load(config)
  assert dict(info.cache) == {"train": "memory", "validation": "memory"}
  assert not [n for n in os.listdir(cache_dir) if n.endswith(".index")]
  monkeypatch.setattr(cache_lib, "available_memory_bytes", available(False))
  _, _, info = data.load(config)
  assert dict(info.cache) == {"train": "disk", "validation": "disk"}
  assert len([n for n in os.listdir(cache_dir) if n.endswith(".index")]) == 2
  _, _, info = data.load(dataclasses.replace(config, cache_dir=None))
  assert dict(info.cache) == {"train": "none", "validation": "none"}
  assert budgets == [True, False, False]
  # shapes10 is generated into memory: never cached again, whatever the mode.
  assert dict(data.load(_small_shapes10(cache="none"))[2].cache) == {
      "train": "memory", "validation": "memory"}


def test_cache_settings_are_checked():
  with pytest.raises(ValueError, match="cache must be one of auto, memory, disk, none, got 'ram'"):
    data.load(_small_shapes10(cache="ram"))
  with pytest.raises(ValueError, match="cache 'disk' needs a cache_dir.*--cache=auto"):
    data.load(_small_shapes10(cache="disk"))
  with pytest.raises(ValueError, match="processes must be a positive integer, got 0"):
    data.load(_small_shapes10(processes=0))


def test_imagenet10_labels_are_counted_once_per_version_and_data_dir(tfds, tmp_path,
                                                                     monkeypatch):
  names = tfds.builder("imagenet2012", data_dir=str(tmp_path)).info.features["label"].names
  original = [names.index(wnid) for wnid, _ in tfds_lib.IMAGENET10_CLASSES]
  train = [(label, 10 + new) for new, label in enumerate(original) for _ in range(3)]
  train += [(0, 255)] * 5
  mock = _imagenet_mock(tfds, {"train": train, "validation": train[:12]}, [])
  passes = []
  count_labels = tfds_lib.imagenet10_labels
  monkeypatch.setattr(tfds_lib, "imagenet10_labels",
                      lambda ds: passes.append(1) or count_labels(ds))
  monkeypatch.setattr(tfds_lib, "_TFDS_INDEXES", {})
  cache_dir = tmp_path / "cache"
  config = data_config_lib.DataConfig(dataset="imagenet10", data_dir=str(tmp_path / "tfds"), image_size=8,
                           batch_size=5, augment=False, validation_split=0.34,
                           cache_dir=str(cache_dir))
  with tfds.testing.mock_data(as_dataset_fn=mock):
    _, val_ds, info = data.load(config)
    assert len(passes) == 1 and (info.train_count, info.validation_count) == (20, 10)
    tfds_lib._TFDS_INDEXES.clear()  # as in a new process: the index file answers
    _, again_val, again = data.load(config)
    assert len(passes) == 1 and again == info
    np.testing.assert_array_equal(_stack(again_val)[1], _stack(val_ds)[1])
    [index_name] = os.listdir(cache_dir)
    index = json.load(open(cache_dir / index_name))
    assert index["dataset"][:2] == ["imagenet2012", str(tfds.builder("imagenet2012").version)]
    assert sorted(index["entries"]["imagenet10_labels:train"]) == sorted(list(range(10)) * 3)
    data.load(dataclasses.replace(config, data_dir=str(tmp_path / "other")))
    assert len(passes) == 2  # another data dir, counted again
    # The encoded images decode into the same batches in memory and on disk.
    memory = [_stack(ds) for ds in data.load(dataclasses.replace(config, cache="memory"))[:2]]
    disk_train, disk_val, disk_info = data.load(dataclasses.replace(config, cache="disk"))
    assert dict(disk_info.cache) == {"train": "disk", "validation": "disk"}
    for (images, labels), (ref_images, ref_labels) in zip(map(_stack, (disk_train, disk_val)),
                                                           memory):
      np.testing.assert_array_equal(labels, ref_labels)
      np.testing.assert_array_equal(images, ref_images)
    assert len([n for n in os.listdir(cache_dir) if n.startswith("imagenet10-")]) == 4


def test_a_run_keeps_its_caches_inside_and_shares_the_budget_with_its_workers():
  config = data_config_lib.in_run(data_config_lib.DataConfig(), "/runs/a", workers=2)
  assert config.cache_dir == os.path.join("/runs/a", data_config_lib.RUN_CACHE_DIR)
  assert config.processes == 3  # the run's process and two workers
  assert data_config_lib.in_run(data_config_lib.DataConfig(), "/runs/a").processes == 1
  mine = data_config_lib.DataConfig(cache_dir="/fast/disk")
  assert data_config_lib.in_run(mine, "/runs/a", workers=1).cache_dir == "/fast/disk"
