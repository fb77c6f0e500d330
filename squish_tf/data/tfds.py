"""TFDS sources: any image-classification dataset by name (`tfds:NAME`) and ImageNet-10
(imagenet2012 filtered to ten classes), with their splits and the counts kept in an index."""

import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data.cache import cache_name, digest
from squish_tf.data.config import (
  CACHE_FORMAT_VERSION,
  TEST,
  TRAIN,
  VALIDATION,
  DataConfig,
  Source,
  Split,
)
from squish_tf.data.images import decode_image, held_out_counts, resize, stratified_parts, to_rgb

# ImageNet-10 (Chang et al., "Deep Adaptive Image Clustering", ICCV 2017): 10
# ImageNet classes, 13,000 training images (1,300 per class) and, from the
# ILSVRC2012 validation set, 500 evaluation images (50 per class). The WordNet
# IDs are those of the authors' release (github.com/vector-1127/DAC,
# "Datasets description/ImageNet-10.txt"), in that order; TFDS imagenet2012
# names its labels by these IDs. The 500 are our test split; validation is held
# out of the 13,000.
IMAGENET10_CLASSES = (
    ("n02056570", "king_penguin"),
    ("n02085936", "maltese_dog"),
    ("n02128757", "snow_leopard"),
    ("n02690373", "airliner"),
    ("n02692877", "airship"),
    ("n03095699", "container_ship"),
    ("n04254680", "soccer_ball"),
    ("n04285008", "sports_car"),
    ("n04467665", "trailer_truck"),
    ("n07747607", "orange"),
)


def _tfds_builder(name: str, data_dir: Optional[str]):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as error:
    raise ValueError(f"TFDS has no dataset {name!r} ({str(error).splitlines()[0]}); see "
                     "https://www.tensorflow.org/datasets/catalog/overview for names.") from None
  try:
    builder.download_and_prepare()
  except Exception as error:  # pylint: disable=broad-except  (network, manual download, disk)
    raise ValueError(
        f"TFDS could not download or prepare {name!r} in {builder.data_dir!r}: {error}\n"
        "Without network access, prepare the dataset on a connected machine and copy its "
        "TFDS data dir here (--data_dir); datasets with a manual download (imagenet2012) need "
        "their files in <data_dir>/downloads/manual.") from None
  return builder, tfds


def _image_and_label_keys(builder, tfds, name: str) -> Tuple[str, str]:
  keys = builder.info.supervised_keys
  features = builder.info.features
  if (not keys or len(keys) != 2 or not isinstance(keys[0], str)
      or not isinstance(features[keys[0]], tfds.features.Image)
      or not isinstance(features[keys[1]], tfds.features.ClassLabel)):
    raise ValueError(f"TFDS dataset {name!r} is not an image-classification dataset (its "
                     f"supervised keys are {keys!r}); expected (image, class label).")
  return keys[0], keys[1]


def _tfds_splits(builder, validation_split: float, test_split: float, seed: int,
                 name: str) -> Tuple[str, str, Optional[str]]:
  """(train, validation, test) TFDS split strings; test is None when there is none.

  - "validation" and "test" both exist: train, validation, test as named.
  - only "test" (or only "validation"): that split is the test split, and
    validation is a seeded slice of train (validation_split).
  - neither: validation and test are seeded, disjoint slices of train
    (validation_split, test_split; test None if test_split is 0).
  Train is the rest of "train". Slices are one contiguous window at a seeded
  position (validation first, then test): TFDS shuffles examples when it
  prepares a dataset, so a window is a random hold-out. They are counted in
  examples when the size of train is known, else in whole percents.

  Raises:
    ValueError: validation must be held out of train and validation_split is 0.
  """
  available = set(builder.info.splits.keys())
  if {VALIDATION, TEST} <= available:
    return TRAIN, VALIDATION, TEST
  test = TEST if TEST in available else VALIDATION if VALIDATION in available else None
  if validation_split <= 0:
    has = f"only a {test!r} split besides train (used as the test split)" if test else (
        "no validation or test split")
    raise ValueError(f"TFDS dataset {name!r} has {has} and validation_split is "
                     f"{validation_split}; set --validation_split > 0 to hold out part of "
                     "train for validation.")
  test_fraction = test_split if test is None else 0.0
  train_info = builder.info.splits[TRAIN] if TRAIN in available else None
  total = train_info.num_examples if train_info is not None else 0
  unit = ""
  if total < 2:  # split sizes unknown: whole percents
    total, unit = 100, "%"
  validation_size, test_size = held_out_counts(total, validation_split, test_fraction)
  held_out = validation_size + test_size
  start = int(np.random.default_rng(seed).integers(0, total - held_out + 1))
  middle, stop = start + validation_size, start + held_out
  if test is None and test_size:
    test = f"train[{middle}{unit}:{stop}{unit}]"
  return (f"train[:{start}{unit}]+train[{stop}{unit}:]", f"train[{start}{unit}:{middle}{unit}]",
          test)


def _tfds_known_count(builder, split: str) -> int:
  """The size of a TFDS split (or slice) from the dataset's metadata; 0 if unknown."""
  try:
    return int(builder.info.splits[split].num_examples)
  except Exception:  # pylint: disable=broad-except  (no metadata, a slice it cannot size)
    return 0


def tfds_source(name: str, config: DataConfig, splits: Sequence[str]) -> Source:
  builder, tfds = _tfds_builder(name, config.data_dir)
  image_key, label_key = _image_and_label_keys(builder, tfds, name)
  names = dict(zip((TRAIN, VALIDATION, TEST),
                   _tfds_splits(builder, config.validation_split, config.test_split,
                                config.seed, name)))
  if TEST in splits and names[TEST] is None:
    raise ValueError(f"TFDS dataset {name!r} has no test or validation split and test_split is "
                     f"{config.test_split}, so there is no test split; set --test_split > 0 to "
                     "hold out part of train for it.")

  source_name = f"tfds_{name}"

  def split_of(role: str, split: str) -> Split:
    """The TFDS `split` (a name or slice) that plays `role` (TRAIN, VALIDATION or TEST)."""
    ds = builder.as_dataset(split=split, shuffle_files=False)
    count = int(ds.cardinality())
    if count < 0:  # prepared TFDS splits know their size; count anything else once
      count = _tfds_indexed(builder, config, f"count:{split}",
                            lambda: int(ds.reduce(np.int64(0), lambda total, _: total + 1)))
      ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(lambda example: (resize(to_rgb(example[image_key]), config.image_size),
                                 tf.cast(example[label_key], tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    key = cache_name(source_name, role, config.image_size,
                      *_tfds_identity(builder, config.data_dir), split, image_key, label_key, count)
    return Split(items=ds, count=count, cache_key=key)

  return Source(splits={split: split_of(split, names[split]) for split in splits},
                 class_names=builder.info.features[label_key].names,
                 counts={split: _tfds_known_count(builder, names[split])
                         for split in (TRAIN, VALIDATION, TEST) if names[split] is not None})


_TFDS_INDEX_FORMAT = "squish_tf tfds index"
# {_tfds_identity: {entry: value}}: the TFDS index of this process.
_TFDS_INDEXES: Dict[Tuple[str, ...], Dict[str, Any]] = {}


def _tfds_identity(builder, data_dir: Optional[str]) -> Tuple[str, str, str, str]:
  """What a TFDS index entry depends on: the dataset's name, version and data dir.

  The data dir both as given (--data_dir, "" for TFDS' default) and as the
  builder resolved it.
  """
  return (str(builder.name), str(builder.version), os.path.abspath(data_dir) if data_dir else "",
          str(builder.data_dir))


def tfds_index_path(cache_dir: str, builder, data_dir: Optional[str]) -> str:
  """The index file of a TFDS dataset (name, version, data dir) in `cache_dir`."""
  return os.path.join(cache_dir,
                      f"tfds_index-{digest(*_tfds_identity(builder, data_dir))}.json")


def _tfds_indexed(builder, config: DataConfig, entry: str, compute: Callable[[], Any]) -> Any:
  """`compute()` (a pass over a TFDS split) once per dataset name, version and data dir.

  Kept in this process and, with a cache_dir, in its `tfds_index-*.json`
  (written atomically as soon as it is computed: TFDS data is prepared data).
  """
  identity = _tfds_identity(builder, config.data_dir)
  memo = _TFDS_INDEXES.setdefault(identity, {})
  if entry in memo:
    return memo[entry]
  path = tfds_index_path(config.cache_dir, builder, config.data_dir) if config.cache_dir else None
  entries = {}
  if path is not None and os.path.isfile(path):
    try:
      document = files_lib.read_json(path)
      if (document.get("format") == _TFDS_INDEX_FORMAT
          and document.get("version") == CACHE_FORMAT_VERSION
          and tuple(document.get("dataset", ())) == identity):
        entries = dict(document["entries"])
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
      entries = {}  # rebuilt below
  if entry not in entries:
    entries[entry] = compute()
    if path is not None:
      files_lib.write_json(path, {"format": _TFDS_INDEX_FORMAT, "version": CACHE_FORMAT_VERSION,
                                 "dataset": list(identity), "entries": entries})
  memo.update(entries)
  return memo[entry]


def imagenet10_source(config: DataConfig, splits: Sequence[str]) -> Source:
  """ImageNet-10: train/validation held out of imagenet2012's train, test its validation split.

  The ten classes' training images (in TFDS file order) are split by
  `_stratified_parts` on their labels (validation_split, seeded by
  config.seed). The labels take one pass over the split, made once per
  imagenet2012 version and data dir (`_tfds_indexed`). Items are the encoded
  images of the ten classes, so a split decodes only its own images.
  """
  builder, tfds = _tfds_builder("imagenet2012", config.data_dir)
  names = builder.info.features["label"].names
  classes = len(IMAGENET10_CLASSES)
  # Original label -> 0..9 for the ten classes, -1 for the other 990.
  remap = np.full(len(names), -1, np.int32)
  for new_label, (wnid, _) in enumerate(IMAGENET10_CLASSES):
    remap[names.index(wnid)] = new_label
  remap = tf.constant(remap)

  def encoded(split: str) -> tf.data.Dataset:
    """(encoded image, 0..9) of the ten classes of an imagenet2012 split, in file order."""
    # Skip decoding until after the filter: 99% of imagenet2012 is dropped.
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    ds = ds.map(lambda example: (example["image"], tf.gather(remap, example["label"])),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.filter(lambda image, label: label >= 0)

  def labels_of(split: str) -> np.ndarray:
    labels = np.asarray(_tfds_indexed(builder, config, f"imagenet10_labels:{split}",
                                      lambda: imagenet10_labels(encoded(split)).tolist()),
                        np.int32)
    if not len(labels):
      raise ValueError(f"imagenet2012 split {split!r} in {builder.data_dir!r} holds none of the "
                       "ImageNet-10 classes; check that the full ILSVRC2012 data was prepared.")
    return labels

  decode = lambda image, label: (resize(decode_image(image), config.image_size), label)

  def split_of(split: str, ds: tf.data.Dataset, count: int, *key: Any) -> Split:
    return Split(items=ds.apply(tf.data.experimental.assert_cardinality(count)), count=count,
                  decode=decode,
                  cache_key=cache_name("imagenet10", split, config.image_size,
                                        *_tfds_identity(builder, config.data_dir), *key))

  built, counts = {}, {}
  if TRAIN in splits or VALIDATION in splits:
    if config.validation_split <= 0:
      raise ValueError(f"imagenet10 holds its validation split out of the training images and "
                       f"validation_split is {config.validation_split}; set --validation_split "
                       "> 0 (imagenet2012's own validation images are the test split).")
    labels = labels_of(TRAIN)
    parts = stratified_parts(labels, classes, config.validation_split, 0.0, config.seed)
    is_part = tf.constant(parts)
    for code, split in enumerate((TRAIN, VALIDATION)):
      count = int(np.sum(parts == code))
      counts[split] = count
      if split in splits:
        part = encoded(TRAIN).enumerate().filter(
            lambda index, example, code=code: tf.gather(is_part, index) == code)
        part = part.map(lambda index, example: example)
        built[split] = split_of(split, part, count, config.seed, config.validation_split,
                                len(labels))
  if TEST in splits:
    count = len(labels_of(VALIDATION))
    built[TEST] = split_of(TEST, encoded(VALIDATION), count)
  return Source(splits=built, class_names=[name for _, name in IMAGENET10_CLASSES],
                 counts=counts)


def imagenet10_labels(encoded: tf.data.Dataset) -> np.ndarray:
  """The labels of (image, label) elements, in order: one pass (the filter hides the size)."""
  batches = [labels for labels in encoded.map(lambda image, label: label).batch(4096)
             .as_numpy_iterator()]
  return np.concatenate(batches).astype(np.int32) if batches else np.zeros(0, np.int32)
