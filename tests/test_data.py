"""data.load: every source's pipelines, the folder checks, TFDS and ImageNet-10 via mock_data."""

import os
import types

import numpy as np
import pytest
import tensorflow as tf

from squish_tf import data
from squish_tf import shapes10

AUTO_SHARD_DATA = tf.data.experimental.AutoShardPolicy.DATA


def _batches(ds):
  return [(images.numpy(), labels.numpy()) for images, labels in ds]


def _stack(ds):
  batches = _batches(ds)
  return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _small_shapes10(**changes):
  settings = dict(image_size=32, batch_size=16, shapes10_train_size=120,
                  shapes10_validation_size=50, augment=False)
  settings.update(changes)
  return data.DataConfig(**settings)


# -- shapes10 -------------------------------------------------------------------


def test_shapes10_batches_dtypes_ranges_counts_and_info():
  train_ds, val_ds, info = data.load(_small_shapes10(augment=True))
  assert info == data.DatasetInfo("shapes10", shapes10.CLASS_NAMES, 120, 50, 32, 0)
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
  layer = data.RandomFlipTranslation(0.25, seed=3)
  outputs = layer(tf.constant(images), training=True).numpy()
  assert outputs.dtype == np.uint8 and outputs.shape == images.shape
  found = [_matching_shift(o, i, max_shift=4) for o, i in zip(outputs, images)]
  assert all(f is not None for f in found)
  mirrored = [f[0] for f in found]
  shifts = {f[1:] for f in found}
  assert 0 < sum(mirrored) < len(mirrored)  # a coin per image, not per batch
  assert len(shifts) > 5
  # The same seed repeats the draws; another seed does not; inference is the identity.
  again = data.RandomFlipTranslation(0.25, seed=3)(tf.constant(images), training=True).numpy()
  other = data.RandomFlipTranslation(0.25, seed=4)(tf.constant(images), training=True).numpy()
  np.testing.assert_array_equal(outputs, again)
  assert not np.array_equal(outputs, other)
  np.testing.assert_array_equal(layer(tf.constant(images), training=False).numpy(), images)
  with pytest.raises(ValueError, match="factor must be in"):
    data.RandomFlipTranslation(1.5)


def test_image_size_is_honoured():
  train_ds, val_ds, info = data.load(_small_shapes10(image_size=40))
  assert info.image_size == 40
  assert next(iter(train_ds))[0].shape == (16, 40, 40, 3)
  assert next(iter(val_ds))[0].shape == (16, 40, 40, 3)


def test_unknown_dataset_lists_the_known_ones():
  for name in ("mnist", "tfds:", "shapes100"):
    with pytest.raises(ValueError) as error:
      data.load(data.DataConfig(dataset=name))
    message = str(error.value)
    assert repr(name) in message
    for known in ("shapes10", "folder", "tfds:NAME", "imagenet10"):
      assert known in message


def test_bad_config_values_are_refused():
  with pytest.raises(ValueError, match="validation_split must be in"):
    data.load(data.DataConfig(validation_split=1.0))
  with pytest.raises(ValueError, match="image_size must be a positive integer, got 0"):
    data.load(data.DataConfig(image_size=0))
  with pytest.raises(ValueError, match="shapes10_train_size"):
    data.load(data.DataConfig(shapes10_train_size=0))


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
  return data.DataConfig(**settings)


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
  config = _folder(tmp_path, validation_split=0.25, batch_size=8)
  train_ds, val_ds, info = data.load(config)
  assert (info.train_count, info.validation_count) == (30, 10)
  train_images, train_labels = _stack(train_ds)
  val_images, val_labels = _stack(val_ds)
  assert np.bincount(val_labels).tolist() == [5, 5]
  train_ids = set(np.rint(train_images[:, 0, 0, 0]).astype(int).tolist())
  val_ids = set(np.rint(val_images[:, 0, 0, 0]).astype(int).tolist())
  assert len(val_ids) == 10 and not train_ids & val_ids
  assert _held_out_indices(config) == sorted(val_ids)
  assert _held_out_indices(_folder(tmp_path, validation_split=0.25, seed=1)) != sorted(val_ids)


def test_folder_train_and_validation_layout(tmp_path):
  for split, count in (("train", 3), ("validation", 2)):
    for label, name in enumerate(("ant", "bee")):
      for i in range(count):
        _write(tmp_path / split / name / f"{i}.png", _solid((label * 100, 0, 0), size=(6, 6)))
  train_ds, val_ds, info = data.load(_folder(tmp_path, validation_split=0.5))
  assert info.class_names == ("ant", "bee")
  assert (info.train_count, info.validation_count) == (6, 4)
  _, val_labels = _stack(val_ds)
  assert val_labels.tolist() == [0, 0, 1, 1]  # unshuffled, class by class
  images, labels = _stack(train_ds.unbatch().batch(100))
  np.testing.assert_allclose(images[:, 0, 0, 0], labels * 100.0)


def test_folder_train_only_layout_splits_train(tmp_path):
  _numbered_tree(tmp_path / "train", per_class=4)
  _, _, info = data.load(_folder(tmp_path, validation_split=0.25))
  assert (info.train_count, info.validation_count) == (6, 2)


def test_folder_unreadable_images_are_named_or_skipped_and_counted(tmp_path):
  _numbered_tree(tmp_path, per_class=4)
  (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  (tmp_path / "dog" / "empty.png").write_bytes(b"")
  with pytest.raises(ValueError) as error:
    data.load(_folder(tmp_path))
  message = str(error.value)
  assert "broken.jpg" in message and "empty.png" in message and "--skip_bad_images" in message
  _, _, info = data.load(_folder(tmp_path, skip_bad_images=True))
  assert info.skipped_images == 2
  assert info.train_count + info.validation_count == 8
  assert data.unreadable_images([str(tmp_path / "cat" / "000.png"),
                                 str(tmp_path / "cat" / "broken.jpg")]) == [
                                     str(tmp_path / "cat" / "broken.jpg")]


def test_folder_errors_say_what_is_wrong(tmp_path):
  with pytest.raises(ValueError, match="needs --data_dir"):
    data.load(data.DataConfig(dataset="folder"))
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
    train_ds, val_ds, info = data.load(data.DataConfig(
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
  # The mock knows no split names, so validation is a seeded window of whole
  # percents of train, and training is the rest of train.
  train_split, val_split = requested
  start, stop = val_split[len("train["):-1].split(":")
  assert train_split == f"train[:{start}]+train[{stop}:]"
  assert int(stop[:-1]) - int(start[:-1]) == 20


def test_tfds_grayscale_images_become_rgb(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    train_ds, _, info = data.load(data.DataConfig(
        dataset="tfds:mnist", data_dir=str(tmp_path), image_size=32, batch_size=4))
    images, _ = _stack(train_ds)
  assert info.num_classes == 10
  assert images.shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(images[..., 0], images[..., 1])
  np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_unknown_tfds_name_is_refused_without_writing(tfds, tmp_path):
  data_dir = tmp_path / "tfds"
  with pytest.raises(ValueError, match="TFDS has no dataset 'no_such_dataset_xyz'"):
    data.load(data.DataConfig(dataset="tfds:no_such_dataset_xyz", data_dir=str(data_dir)))
  assert not data_dir.exists()


def _fake_builder(splits):
  info = types.SimpleNamespace(splits={name: types.SimpleNamespace(num_examples=count)
                                       for name, count in splits.items()})
  return types.SimpleNamespace(info=info)


def test_tfds_validation_split_prefers_validation_then_test_then_seeded_slice():
  pick = lambda splits, seed=0: data._tfds_splits(_fake_builder(splits), 0.2, seed, "x")
  assert pick({"train": 100, "validation": 10, "test": 10}) == ("train", "validation")
  assert pick({"train": 100, "test": 10}) == ("train", "test")
  train_split, val_split = pick({"train": 100})
  assert pick({"train": 100}) == (train_split, val_split)  # seeded
  start, stop = (int(v) for v in val_split[len("train["):-1].split(":"))
  assert stop - start == 20
  assert train_split == f"train[:{start}]+train[{stop}:]"
  assert {pick({"train": 100}, seed)[1] for seed in range(10)} != {val_split}
  assert pick({})[1].endswith("%]")  # sizes unknown: whole percents
  with pytest.raises(ValueError, match="no validation or test split"):
    data._tfds_splits(_fake_builder({"train": 100}), 0.0, 0, "x")


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
  original = [names.index(wnid) for wnid, _ in data.IMAGENET10_CLASSES]
  others = [0, 1, 500, 999]
  assert not set(others) & set(original)
  # Kept images carry the pixel value 20 * new label + 10; dropped ones 255.
  train = [(label, 20 * new + 10) for new, label in enumerate(original) for _ in range(3)]
  train += [(label, 255) for label in others for _ in range(4)]
  validation = [(label, 20 * new + 10) for new, label in enumerate(original)]
  validation += [(label, 255) for label in others]
  rng = np.random.default_rng(0)
  train = [train[i] for i in rng.permutation(len(train))]
  requested = []
  mock = _imagenet_mock(tfds, {"train": train, "validation": validation}, requested)
  with tfds.testing.mock_data(as_dataset_fn=mock):
    train_ds, val_ds, info = data.load(data.DataConfig(
        dataset="imagenet10", data_dir=str(tmp_path), image_size=16, batch_size=10, augment=False))
    images, labels = _stack(train_ds.unbatch().batch(100))
    val_images, val_labels = _stack(val_ds)
  assert set(requested) == {"train", "validation"}
  assert info.class_names == tuple(name for _, name in data.IMAGENET10_CLASSES)
  assert info.class_names[0] == "king_penguin" and info.class_names[9] == "orange"
  assert (info.train_count, info.validation_count) == (30, 10)
  assert int(train_ds.cardinality()) == 3 and int(val_ds.cardinality()) == 1
  assert sorted(labels.tolist()) == sorted(list(range(10)) * 3)
  assert val_labels.tolist() == list(range(10))
  for pixels, label in ((images, labels), (val_images, val_labels)):
    assert pixels.shape[1:] == (16, 16, 3)
    np.testing.assert_allclose(pixels.mean(axis=(1, 2, 3)), 20.0 * label + 10, atol=2.0)


def test_imagenet10_wnids_are_distinct_imagenet_classes(tfds, tmp_path):
  names = tfds.builder("imagenet2012", data_dir=str(tmp_path)).info.features["label"].names
  wnids = [wnid for wnid, _ in data.IMAGENET10_CLASSES]
  assert len(set(wnids)) == 10 and all(wnid in names for wnid in wnids)
  assert wnids[0] == "n02056570" and wnids[-1] == "n07747607"
