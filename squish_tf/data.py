"""Every data source behind one function: `load(config)`.

  train_ds, val_ds, info = load(DataConfig(dataset="shapes10"))

`train_ds` and `val_ds` are batched (global batch), prefetched tf.data
pipelines of (images float32 [B, H, W, 3] in [0, 255], labels int32 [B]) at
`image_size` x `image_size`; the model rescales pixels itself. The training
split is shuffled and (with `augment`) augmented, both seeded from `seed`; the
validation split is neither.

Sources (`DataConfig.dataset`):
  shapes10     built in and offline: procedurally generated shapes on clutter
               (see `squish_tf.shapes10`), any resolution, deterministic.
  folder       `data_dir` holding one sub-folder of images per class, or
               `train/` and `validation/` sub-folders holding class folders.
  tfds:NAME    any TFDS image-classification dataset, `data_dir` as the TFDS
               data dir (e.g. tfds:cifar10, tfds:imagenette/160px-v2).
  imagenet10   TFDS imagenet2012 filtered to the ImageNet-10 classes.

Every source is reduced to a dataset of (uint8 image [S, S, 3], int32 label)
elements that is cached in memory when it fits (decoding and resizing happen
once), then shuffled, batched, augmented per batch and prefetched. Every
pipeline uses the DATA auto-shard policy, so multi-worker training shards
in-memory sources by element instead of failing to find files to shard.
"""

import dataclasses
import functools
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from squish_tf import shapes10


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What to load and how; mirrors the data flags one to one."""

  dataset: str = "shapes10"
  data_dir: Optional[str] = None
  image_size: int = 64
  batch_size: int = 64
  validation_split: float = 0.2
  seed: int = 0
  augment: bool = True
  skip_bad_images: bool = False
  shapes10_train_size: int = 4000
  shapes10_validation_size: int = 1000


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  class_names: Tuple[str, ...]
  train_count: int
  validation_count: int
  image_size: int
  skipped_images: int = 0

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


KNOWN_DATASETS = ("shapes10", "folder", "tfds:NAME", "imagenet10")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# ImageNet-10 (Chang et al., "Deep Adaptive Image Clustering", ICCV 2017): 10
# ImageNet classes, 13,000 training images (1,300 per class) and, from the
# ILSVRC2012 validation set, 500 validation images (50 per class). The WordNet
# IDs are those of the authors' release (github.com/vector-1127/DAC,
# "Datasets description/ImageNet-10.txt"), in that order; TFDS imagenet2012
# names its labels by these IDs.
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

# Decoded, resized images are cached in memory (as uint8) up to this size per
# split; larger splits are decoded again every epoch instead of exhausting RAM.
# The training shuffle buffer holds at most as many images.
CACHE_LIMIT_BYTES = 4 << 30

# Augmentation strength: translation as a fraction of the image side.
TRANSLATION_FACTOR = 0.1


def load(config: DataConfig) -> Tuple[tf.data.Dataset, tf.data.Dataset, DatasetInfo]:
  """Loads the training and validation pipelines named by `config.dataset`.

  Args:
    config: the data source and how to load it.

  Returns:
    (train_ds, val_ds, info): batched, prefetched pipelines of (images float32
    [B, S, S, 3] in [0, 255], labels int32 [B]) with S = config.image_size,
    and what was loaded. Both have a known finite cardinality (batches).

  Raises:
    ValueError: an unknown dataset name, a bad config value, or data that
      cannot be used (the message says which file, class or folder, and how
      to fix it).

  Sets TensorFlow's global seed to `config.seed`: tf.data combines a shuffle's
  op seed with the global seed, so without this the same config would shuffle
  differently depending on what the process seeded before (a fresh process, a
  worker, a notebook). Keras' own seed (`keras.utils.set_random_seed`, for
  weights and dropout) is left alone.
  """
  _check_config(config)
  tf.random.set_seed(config.seed)
  name = config.dataset
  if name == "shapes10":
    source = _shapes10_source(config)
  elif name == "folder":
    source = _folder_source(config)
  elif name == "imagenet10":
    source = _imagenet10_source(config)
  elif name.startswith("tfds:") and len(name) > len("tfds:"):
    source = _tfds_source(name[len("tfds:"):], config)
  else:
    raise ValueError(f"Unknown dataset {name!r}; known datasets are {', '.join(KNOWN_DATASETS)} "
                     "(e.g. tfds:cifar10).")
  train_ds = _batched(source.train, source.train_count, config, training=True)
  val_ds = _batched(source.validation, source.validation_count, config, training=False)
  info = DatasetInfo(name=name, class_names=tuple(source.class_names),
                     train_count=source.train_count, validation_count=source.validation_count,
                     image_size=config.image_size, skipped_images=source.skipped_images)
  return train_ds, val_ds, info


def _check_config(config: DataConfig) -> None:
  if not isinstance(config.image_size, int) or config.image_size < 1:
    raise ValueError(f"image_size must be a positive integer, got {config.image_size!r}.")
  if not isinstance(config.batch_size, int) or config.batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {config.batch_size!r}.")
  if not 0.0 <= config.validation_split < 1.0:
    raise ValueError(f"validation_split must be in [0, 1), got {config.validation_split}.")


# -- the common tail ------------------------------------------------------------


@dataclasses.dataclass
class _Source:
  """A source reduced to unbatched (uint8 [S, S, 3], int32) datasets and counts."""

  train: tf.data.Dataset
  validation: tf.data.Dataset
  train_count: int
  validation_count: int
  class_names: Sequence[str]
  skipped_images: int = 0


def _batched(elements: tf.data.Dataset, count: int, config: DataConfig,
             training: bool) -> tf.data.Dataset:
  """Shuffle (training), batch, to float32, augment (training), prefetch."""
  ds = elements
  if training:
    # The whole split when it fits the memory budget (it then also fits the
    # cache); a window of it for splits streamed from disk.
    image_bytes = config.image_size * config.image_size * 3
    buffer = max(1, min(count, CACHE_LIMIT_BYTES // image_bytes))
    ds = ds.shuffle(buffer, seed=config.seed, reshuffle_each_iteration=True)
    # Full batches keep shapes static (one trace, TPU-friendly); a split
    # smaller than one batch still yields it.
    ds = ds.batch(config.batch_size, drop_remainder=count >= config.batch_size)
  else:
    ds = ds.batch(config.batch_size)
  to_float = lambda images, labels: (tf.cast(images, tf.float32), labels)
  if training and config.augment:
    augment = augmenter(config.seed)
    # On uint8 batches (a quarter of the bytes), one batch at a time: the layer
    # draws from a seed variable, so a sequential map keeps the augmentation
    # reproducible for a given seed. Each call is vectorised over the batch and
    # prefetching overlaps it with training.
    ds = ds.map(lambda images, labels: to_float(augment(images), labels))
  else:
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def augmenter(seed: int) -> Callable[[tf.Tensor], tf.Tensor]:
  """The training augmentation: per-image random horizontal flip and translation.

  Horizontal flips are label-safe for every shapes10 class (each has a mirror
  axis) and for natural images; vertical flips are not.

  Args:
    seed: seeds the layer; the same seed gives the same sequence of batches.

  Returns:
    A function from image batches [B, H, W, 3] (uint8 or float) to augmented
    batches of the same dtype.
  """
  layer = RandomFlipTranslation(TRANSLATION_FACTOR, seed=seed)
  return lambda images: layer(images, training=True)


class RandomFlipTranslation(keras.layers.Layer):
  """Random horizontal flip and translation of each image, in one resampling.

  The same augmentation as `keras.layers.RandomFlip("horizontal")` followed by
  `keras.layers.RandomTranslation(factor, factor, fill_mode="reflect",
  interpolation="nearest")`: every image gets its own coin flip and whole-pixel
  shift, and edges are filled by reflection. Both are composed into one affine
  transform per image, so a batch is resampled once; the stock pair resamples
  and then selects between two full copies, which takes twice the CPU, and on
  a small CPU host every millisecond of augmentation is taken from training
  (see benchmarks/train_throughput.py). Works on uint8 as well as float images.

  Args:
    factor: largest shift as a fraction of the image side, in [0, 1).
    seed: seeds the flips and shifts.
  """

  def __init__(self, factor: float, seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= factor < 1.0:
      raise ValueError(f"translation factor must be in [0, 1), got {factor}.")
    self.factor = factor
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, images, training=True):
    if not training:
      return images
    ops = keras.ops
    shape = ops.shape(images)
    height, width = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")
    draws = keras.random.uniform((shape[0], 3), seed=self.seed_generator)
    scale = ops.where(draws[:, 0] < 0.5, -1.0, 1.0)  # -1: mirrored
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
    return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def _from_uint8_arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
  return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))


def _decode(contents: tf.Tensor) -> tf.Tensor:
  """Any JPEG/PNG/BMP/GIF (first frame) -> uint8 RGB; grayscale and RGBA become RGB."""
  return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Grayscale (1 channel) and RGBA (4) TFDS images -> RGB, by their static shape."""
  channels = image.shape[-1]
  if channels == 1:
    return tf.image.grayscale_to_rgb(image)
  if channels == 4:
    return image[..., :3]
  return image


def _resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """-> uint8 [S, S, 3]. Antialiasing keeps large downscales from aliasing."""
  resized = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
  return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def _cache_if_small(ds: tf.data.Dataset, count: int, image_size: int) -> tf.data.Dataset:
  if count * image_size * image_size * 3 <= CACHE_LIMIT_BYTES:
    return ds.cache()
  return ds


# -- shapes10 -------------------------------------------------------------------


def _shapes10_source(config: DataConfig) -> _Source:
  for field in ("shapes10_train_size", "shapes10_validation_size"):
    value = getattr(config, field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{field} must be a positive integer, got {value!r}.")
  train_images, train_labels = _shapes10_arrays(config.shapes10_train_size, config.image_size,
                                                config.seed, "train")
  val_images, val_labels = _shapes10_arrays(config.shapes10_validation_size, config.image_size,
                                            config.seed, "validation")
  return _Source(train=_from_uint8_arrays(train_images, train_labels),
                 validation=_from_uint8_arrays(val_images, val_labels),
                 train_count=len(train_labels), validation_count=len(val_labels),
                 class_names=shapes10.CLASS_NAMES)


@functools.lru_cache(maxsize=4)
def _shapes10_arrays(count: int, image_size: int, seed: int,
                     split: str) -> Tuple[np.ndarray, np.ndarray]:
  """shapes10.generate, remembered: evolution reloads the same data for every candidate."""
  images, labels = shapes10.generate(count, image_size, seed, split)
  images.setflags(write=False)  # shared between callers
  labels.setflags(write=False)
  return images, labels


# -- folder ---------------------------------------------------------------------


def _folder_source(config: DataConfig) -> _Source:
  root = config.data_dir
  layout_help = ("a folder with one sub-folder of images per class, or train/ and validation/ "
                 "sub-folders that each hold the class sub-folders")
  if not root:
    raise ValueError(f"--dataset=folder needs --data_dir: {layout_help}.")
  if not os.path.isdir(root):
    raise ValueError(f"--data_dir {root!r} is not a directory; for --dataset=folder it must be "
                     f"{layout_help}.")
  train_root = os.path.join(root, "train")
  split_layout = os.path.isdir(train_root) and bool(_class_dirs(train_root))
  if split_layout:
    train_files = _scan_classes(train_root)
    val_root = os.path.join(root, "validation")
    val_files = _scan_classes(val_root) if os.path.isdir(val_root) else None
  else:
    train_files, val_root, val_files = _scan_classes(root), None, None
    train_root = root
  class_names = sorted(train_files)
  if len(class_names) < 2:
    raise ValueError(f"{train_root!r} has {len(class_names)} class folder(s) "
                     f"({', '.join(class_names) or 'none'}); a classifier needs at least 2. "
                     f"--data_dir must be {layout_help}.")
  if val_files is not None and sorted(val_files) != class_names:
    missing = sorted(set(class_names) - set(val_files))
    extra = sorted(set(val_files) - set(class_names))
    raise ValueError(f"The classes in {val_root!r} differ from those in {train_root!r}: "
                     f"missing from validation: {missing or 'none'}; only in validation: "
                     f"{extra or 'none'}. Give both the same class sub-folders.")

  if val_files is None and config.validation_split <= 0:
    raise ValueError(f"{root!r} has no validation/ folder and validation_split is "
                     f"{config.validation_split}; set --validation_split > 0 to hold out "
                     "images, or add a validation/ folder.")

  all_files = [path for files in train_files.values() for path in files]
  if val_files is not None:
    all_files += [path for files in val_files.values() for path in files]
  bad = set(unreadable_images(all_files))
  if bad and not config.skip_bad_images:
    shown = "\n  ".join(sorted(bad)[:10])
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise ValueError(f"{len(bad)} image file(s) could not be decoded as JPEG/PNG/BMP/GIF:\n  "
                     f"{shown}{more}\nDelete or fix them, or set --skip_bad_images to skip "
                     "and count them.")
  train_files = _without(train_files, bad, train_root)
  if val_files is not None:
    val_files = _without(val_files, bad, val_root)
  else:
    train_files, val_files = _stratified_split(train_files, class_names, config.validation_split,
                                               config.seed)

  def elements(files: Dict[str, List[str]]) -> Tuple[tf.data.Dataset, int]:
    paths = [path for name in class_names for path in files[name]]
    labels = [label for label, name in enumerate(class_names) for _ in files[name]]
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
    ds = ds.map(lambda path, label: (_resize(_decode(tf.io.read_file(path)), config.image_size),
                                     label), num_parallel_calls=tf.data.AUTOTUNE)
    return _cache_if_small(ds, len(paths), config.image_size), len(paths)

  train, train_count = elements(train_files)
  validation, validation_count = elements(val_files)
  if validation_count == 0:
    raise ValueError(f"validation_split {config.validation_split} holds out no image of {root!r}; "
                     "raise --validation_split or add images.")
  return _Source(train=train, validation=validation, train_count=train_count,
                 validation_count=validation_count, class_names=class_names,
                 skipped_images=len(bad))


def _class_dirs(root: str) -> List[str]:
  return sorted(name for name in os.listdir(root)
                if not name.startswith(".") and os.path.isdir(os.path.join(root, name)))


def _scan_classes(root: str) -> Dict[str, List[str]]:
  """{class name: sorted image paths (any depth below the class folder)}."""
  files = {}
  for name in _class_dirs(root):
    class_dir = os.path.join(root, name)
    paths = []
    for directory, subdirs, names in os.walk(class_dir):
      subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
      paths += [os.path.join(directory, f) for f in names
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    if not paths:
      raise ValueError(f"Class folder {class_dir!r} has no images (.jpg, .jpeg, .png, .bmp, .gif); "
                       "add images or remove the folder.")
    files[name] = sorted(paths)
  return files


def _without(files: Dict[str, List[str]], bad: set, root: str) -> Dict[str, List[str]]:
  kept = {name: [path for path in paths if path not in bad] for name, paths in files.items()}
  for name, paths in kept.items():
    if not paths:
      raise ValueError(f"Class folder {os.path.join(root, name)!r} has no readable images "
                       "(every one was skipped as unreadable); add images or remove the folder.")
  return kept


def _stratified_split(files: Dict[str, List[str]], class_names: Sequence[str], fraction: float,
                      seed: int) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
  """Holds out `fraction` of every class (at least one image of any class with two)."""
  rng = np.random.default_rng(seed)
  train, validation = {}, {}
  for name in class_names:
    paths = files[name]
    held_out = int(round(len(paths) * fraction))
    if len(paths) >= 2:
      held_out = min(max(held_out, 1), len(paths) - 1)
    else:
      held_out = 0
    chosen = set(rng.permutation(len(paths))[:held_out].tolist())
    validation[name] = [p for i, p in enumerate(paths) if i in chosen]
    train[name] = [p for i, p in enumerate(paths) if i not in chosen]
  return train, validation


def unreadable_images(paths: Sequence[str]) -> List[str]:
  """The files among `paths` that cannot be read and decoded, in input order.

  Decodes every file once, in parallel, with the same decoder the pipeline
  uses, so a broken file stops `load` before training starts.
  """
  if not paths:
    return []
  ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
  ds = ds.map(lambda index, path: (index, tf.shape(_decode(tf.io.read_file(path)))),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  # A file that fails to read or decode is dropped; the missing indices are the bad files.
  ds = ds.ignore_errors().batch(1024)
  readable = np.zeros(len(paths), bool)
  for indices, shapes in ds.as_numpy_iterator():
    readable[indices[np.all(shapes > 0, axis=1)]] = True
  return [path for path, ok in zip(paths, readable) if not ok]


# -- TFDS -----------------------------------------------------------------------


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


def _tfds_splits(builder, validation_split: float, seed: int, name: str) -> Tuple[str, str]:
  """(train split, validation split): "validation", else "test", else a seeded slice of train."""
  available = set(builder.info.splits.keys())
  for candidate in ("validation", "test"):
    if candidate in available:
      return "train", candidate
  if validation_split <= 0:
    raise ValueError(f"TFDS dataset {name!r} has no validation or test split and "
                     f"validation_split is {validation_split}; set --validation_split > 0.")
  rng = np.random.default_rng(seed)
  # TFDS shuffles examples when it prepares a dataset, so a contiguous window
  # at a seeded position is a random hold-out.
  train_info = builder.info.splits["train"] if "train" in available else None
  total = train_info.num_examples if train_info is not None else 0
  if total >= 2:
    held_out = min(max(int(round(total * validation_split)), 1), total - 1)
    start = int(rng.integers(0, total - held_out + 1))
    unit = ""
  else:  # split sizes unknown: whole percents
    held_out = min(max(int(round(100 * validation_split)), 1), 99)
    start = int(rng.integers(0, 100 - held_out + 1))
    unit = "%"
  stop = start + held_out
  return (f"train[:{start}{unit}]+train[{stop}{unit}:]", f"train[{start}{unit}:{stop}{unit}]")


def _tfds_source(name: str, config: DataConfig) -> _Source:
  builder, tfds = _tfds_builder(name, config.data_dir)
  image_key, label_key = _image_and_label_keys(builder, tfds, name)
  train_split, val_split = _tfds_splits(builder, config.validation_split, config.seed, name)

  def elements(split: str) -> Tuple[tf.data.Dataset, int]:
    ds = builder.as_dataset(split=split, shuffle_files=False)
    count = int(ds.cardinality())
    if count < 0:  # prepared TFDS splits know their size; count anything else once
      count = int(ds.reduce(np.int64(0), lambda total, _: total + 1))
      ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(lambda example: (_resize(_to_rgb(example[image_key]), config.image_size),
                                 tf.cast(example[label_key], tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return _cache_if_small(ds, count, config.image_size), count

  train, train_count = elements(train_split)
  validation, validation_count = elements(val_split)
  return _Source(train=train, validation=validation, train_count=train_count,
                 validation_count=validation_count,
                 class_names=builder.info.features[label_key].names)


def _imagenet10_source(config: DataConfig) -> _Source:
  builder, tfds = _tfds_builder("imagenet2012", config.data_dir)
  names = builder.info.features["label"].names
  # Original label -> 0..9 for the ten classes, -1 for the other 990.
  remap = np.full(len(names), -1, np.int32)
  for new_label, (wnid, _) in enumerate(IMAGENET10_CLASSES):
    remap[names.index(wnid)] = new_label
  remap = tf.constant(remap)

  def elements(split: str, expected: int) -> Tuple[tf.data.Dataset, int]:
    # Skip decoding until after the filter: 99% of imagenet2012 is dropped.
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    ds = ds.map(lambda example: (example["image"], tf.gather(remap, example["label"])),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda encoded, label: label >= 0)
    ds = ds.map(lambda encoded, label: (_resize(_decode(encoded), config.image_size), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = _cache_if_small(ds, expected, config.image_size)
    # The filter hides the size; one pass counts it (and fills the cache, so the
    # first epoch reads from memory).
    count = int(ds.reduce(np.int64(0), lambda total, _: total + 1))
    if count == 0:
      raise ValueError(f"imagenet2012 split {split!r} in {builder.data_dir!r} holds none of the "
                       "ImageNet-10 classes; check that the full ILSVRC2012 data was prepared.")
    return ds.apply(tf.data.experimental.assert_cardinality(count)), count

  classes = len(IMAGENET10_CLASSES)
  train, train_count = elements("train", 1300 * classes)
  validation, validation_count = elements("validation", 50 * classes)
  return _Source(train=train, validation=validation, train_count=train_count,
                 validation_count=validation_count,
                 class_names=[name for _, name in IMAGENET10_CLASSES])


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
