"""Every data source behind two functions: `load(config)` and `load_test(config)`.

  train_ds, val_ds, info = load(DataConfig(dataset="shapes10"))
  test_ds, test_info = load_test(DataConfig(dataset="shapes10"))

Three splits: train (fitting), validation (model selection: evolution's
fittest offspring, the accuracy budget) and test (every reported figure).
`load` builds the first two and never builds or reads the test split, so
nothing chosen on it can leak into selection; `load_test` builds only the test
split, for the final evaluation.

Every pipeline is batched (global batch), prefetched tf.data of (images float32
[B, H, W, 3] in [0, 255], labels int32 [B]) at `image_size` x `image_size`;
the model rescales pixels itself. The training split is shuffled and augmented
(`augment`); validation and test are neither. `config.seed` decides the data
(shapes10's images, every hold-out); `load(config, stream)` picks the shuffle
and augmentation order over that same training split: stream 0 is seeded by
`seed` itself, other streams by a seed derived from (seed, stream), so a
fine-tune can continue the data stream instead of replaying earlier epochs.

Augmentations (`DataConfig.augment`, a tuple of names, any of
`AUGMENTATIONS`): "translate" (per-image random shift up to 10% of the side,
reflected edges) and "flip" (per-image random horizontal mirror). Flips are
opt-in: they turn a class that depends on orientation (digits, text, arrows,
left/right) into another, or into noise. The default is ("translate",).

Sources (`DataConfig.dataset`) and their splits:
  shapes10     built in and offline: procedurally generated shapes on clutter
               (see `squish_tf.shapes10`), any resolution, deterministic; each
               split is its own random stream of the configured size.
  folder       `data_dir` holding one sub-folder of images per class, or
               `train/` (and optional `validation/`, `test/`) sub-folders
               holding class folders. A split without its folder is held out
               of the training images, per class and seeded (validation_split,
               test_split).
  tfds:NAME    any TFDS image-classification dataset, `data_dir` as the TFDS
               data dir (e.g. tfds:cifar10, tfds:imagenette/160px-v2). Its
               "validation" and "test" splits when it has both; with only one
               of them, that one is the test split and validation is a seeded
               slice of "train"; with neither, both are seeded slices of train.
  imagenet10   TFDS imagenet2012 filtered to the ImageNet-10 classes: test is
               imagenet2012's validation split (50 per class), validation a
               seeded stratified hold-out of the filtered training images.

Every source is reduced to, per split, cheap items (file paths, indices, encoded
images) and a decoder to (uint8 image [S, S, 3], int32 label). Decoded images
are kept between epochs where `DataConfig.cache` says:
  memory   `ds.cache()`: decoded once per pipeline, held in RAM.
  disk     `ds.cache(file)` in `cache_dir`: written completely, once, at the
           first `load` that needs it (to a temporary name, then renamed), and
           read by every later pipeline and process.
  none     decoded every epoch; the training shuffle holds the items (paths,
           indices), never decoded images, in front of the decoder.
  auto     (default) memory for the splits that fit `memory_budget` (a share
           of the memory available now, divided by `DataConfig.processes`),
           the others on disk when there is a `cache_dir`, else none.
The training shuffle window is a function of the split's size and the image
size alone (`SHUFFLE_BUFFER_BYTES`; shapes10 shuffles whole splits of
indices), never of the placement: memory, disk and none give the same batches,
so results do not depend on the machine's free memory. A memory cache shares
its tensors with the shuffle buffer; on disk the window costs at most
SHUFFLE_BUFFER_BYTES per pipeline. Every pipeline uses the DATA auto-shard
policy, so multi-worker training shards in-memory sources by element instead of
failing to find files to shard.

Prepared once: a folder's readability index (every file's relative path, size,
mtime and whether it decodes: the bad-image report) and TFDS counts that take a
pass over a split (imagenet10's ten-class labels) are computed once and kept
in `cache_dir` as JSON (`folder_index-*.json`, `tfds_index-*.json`), keyed by
what they depend on: a folder file is decoded again only when its size or
mtime changed or it is new; a TFDS entry belongs to the dataset's name,
version and data dir. The main job, `squish-synthesize` and `squish-train`
pass `<run or model dir>/data_cache` (`in_run`). Without a `cache_dir` (the
export and benchmark mains, notebooks) nothing is written: the index is kept
in this process only, and --cache=disk is refused. A cache_dir may be deleted
at any time (between runs): what it held is rebuilt when needed. Folder
training file lists are shuffled (seeded by `seed`) before decoding, so a
shuffle window smaller than the split still mixes every class.

Why not `keras.utils.image_dataset_from_directory`: it resizes without
antialiasing, lists dot-files and takes empty folders as classes, stops at the
first unreadable file and holds out validation without stratifying; the scan
here is the few lines it would save.
"""

import dataclasses
import functools
import glob
import hashlib
import json
import os
import re
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from squish_tf import model_io
from squish_tf import shapes10

TRAIN, VALIDATION, TEST = "train", "validation", "test"

# The training augmentations, in canonical order; "none" (or an empty tuple) is none.
AUGMENTATIONS = ("flip", "translate")
DEFAULT_AUGMENT = ("translate",)

AugmentSpec = Union[Tuple[str, ...], List[str], str, bool, None]

# Where decoded images are kept between epochs (DataConfig.cache; see the module docstring).
MEMORY, DISK, NONE = "memory", "disk", "none"
CACHE_MODES = ("auto", MEMORY, DISK, NONE)
# auto: the share of the memory available at load time that the decoded-image
# caches of all of a job's processes may take together. The rest is left to
# training itself (squishednet_base at 224 px, batch 32: about 1.9 GB per
# process, see benchmarks/data_scale.py), TensorFlow and the page cache.
MEMORY_FRACTION = 0.25
# The training shuffle window, in bytes of decoded images: the whole split up to
# this size, a window of it beyond (a disk cache is read in order, and the
# window's images are held in RAM). One rule for every placement keeps the
# batches the same whichever placement auto picks on a given machine.
SHUFFLE_BUFFER_BYTES = 256 << 20
# The sub-directory of a run dir that the main job gives as DataConfig.cache_dir.
RUN_CACHE_DIR = "data_cache"
# Part of every index and disk cache key: bump it when what they hold changes meaning.
_CACHE_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What to load and how; mirrors the data flags one to one.

  Attributes:
    validation_split: the share of each class held out of the training
      images for validation, where the source has no validation split of its
      own (folder without validation/, TFDS without both validation and test,
      imagenet10).
    test_split: likewise for the test split (folder without test/, TFDS with
      neither test nor validation); 0 means no test split there.
    seed: decides the data: shapes10's images and every hold-out; also the
      shuffle and augmentation of data stream 0 (see `load`).
    augment: the training augmentations. Accepts a tuple (or list) of names
      from AUGMENTATIONS, a comma-separated string ("flip,translate",
      "none"), or for backwards compatibility True (= DEFAULT_AUGMENT) and
      False (= none); stored as a canonical tuple (AUGMENTATIONS order, empty
      for none), see `parse_augment`.
    shapes10_train_size, shapes10_validation_size, shapes10_test_size: images
      generated per shapes10 split.
    cache: where decoded images are kept between epochs, one of CACHE_MODES:
      auto (memory for what fits `memory_budget`, else disk when there is a
      cache_dir, else none), memory, disk (needs cache_dir) or none. Batches
      are the same whichever it is.
    cache_dir: a directory for the data's caches (the folder and TFDS
      indexes, disk caches); the main job passes `<run_dir>/data_cache`. None:
      nothing is written, indexes are kept in this process only.
    processes: how many processes of one job load this data at once (the
      main job's `--workers` + 1); auto shares the memory budget among them.
  """

  dataset: str = "shapes10"
  data_dir: Optional[str] = None
  image_size: int = 64
  batch_size: int = 64
  validation_split: float = 0.2
  test_split: float = 0.1
  seed: int = 0
  augment: AugmentSpec = DEFAULT_AUGMENT
  skip_bad_images: bool = False
  shapes10_train_size: int = 4000
  shapes10_validation_size: int = 1000
  shapes10_test_size: int = 2000
  cache: str = "auto"
  cache_dir: Optional[str] = None
  processes: int = 1

  def __post_init__(self):
    object.__setattr__(self, "augment", parse_augment(self.augment))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What was loaded.

  Counts are images per split; a split's count is 0 when it is not known
  without reading that split (e.g. the test split's count in `load` for a TFDS
  slice of unknown size, or imagenet10's training counts in `load_test`).
  `skipped_images` counts the unreadable files skipped in the splits that the
  call built (folder with skip_bad_images); a folder's held-out test count in
  `load` is its number of files, before unreadable ones are skipped.
  `cache` says where each built split's decoded images are kept, e.g.
  (("train", "disk"), ("validation", "memory")); it does not take part in
  comparisons (the data is the same wherever it is kept).
  """

  name: str
  class_names: Tuple[str, ...]
  train_count: int
  validation_count: int
  image_size: int
  skipped_images: int = 0
  test_count: int = 0
  cache: Tuple[Tuple[str, str], ...] = dataclasses.field(default=(), compare=False)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


KNOWN_DATASETS = ("shapes10", "folder", "tfds:NAME", "imagenet10")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

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
_IMAGENET10_TRAIN_PER_CLASS = 1300
_IMAGENET10_TEST_PER_CLASS = 50

# Augmentation strength: translation as a fraction of the image side.
TRANSLATION_FACTOR = 0.1


def in_run(config: DataConfig, run_dir: str, workers: int = 1) -> DataConfig:
  """`config` for a run in `run_dir` with `workers` worker processes.

  Its indexes and disk caches go to `<run_dir>/data_cache` (unless it names a
  cache_dir), and the memory budget is shared by the run's process and its
  workers.
  """
  return dataclasses.replace(
      config, cache_dir=config.cache_dir or os.path.join(run_dir, RUN_CACHE_DIR),
      processes=1 + (workers if workers > 1 else 0))


def load(config: DataConfig,
         stream: int = 0) -> Tuple[tf.data.Dataset, tf.data.Dataset, DatasetInfo]:
  """Loads the training and validation pipelines named by `config.dataset`.

  Never builds or reads the test split (see `load_test`).

  Args:
    config: the data source and how to load it.
    stream: which shuffle and augmentation order to draw over the training
      split (a non-negative integer). Stream 0 is seeded by `config.seed`;
      another stream by `stream_seed(config.seed, stream)`. The data itself
      (images, hold-outs) and the validation pipeline do not depend on it.

  Returns:
    (train_ds, val_ds, info): batched, prefetched pipelines of (images float32
    [B, S, S, 3] in [0, 255], labels int32 [B]) with S = config.image_size,
    and what was loaded. Both have a known finite cardinality (batches).

  Raises:
    ValueError: an unknown dataset name, a bad config value or stream, or data
      that cannot be used (the message says which file, class or folder, and
      how to fix it).

  Sets TensorFlow's global seed to `config.seed` (whatever the stream): tf.data
  combines a shuffle's op seed with the global seed, so without this the same
  config would shuffle differently depending on what the process seeded before
  (a fresh process, a worker, a notebook). Keras' own seed
  (`keras.utils.set_random_seed`, for weights and dropout) is left alone.
  """
  _check_config(config)
  shuffle_seed = stream_seed(config.seed, stream)
  tf.random.set_seed(config.seed)
  source = _source(config, (TRAIN, VALIDATION))
  placements = _placements(config, source)
  train_ds = _pipeline(source.splits[TRAIN], config, placements[TRAIN], shuffle_seed)
  val_ds = _pipeline(source.splits[VALIDATION], config, placements[VALIDATION])
  return train_ds, val_ds, source.info(config, placements)


def load_test(config: DataConfig) -> Tuple[tf.data.Dataset, DatasetInfo]:
  """Loads the test pipeline named by `config.dataset`, for the final evaluation.

  Builds and reads only the test split (see the module docstring for where
  each source's test split comes from); the same config gives the same split
  whenever it is called, and one disjoint from what `load` trains and
  validates on.

  Args:
    config: the data source and how to load it (the same as for `load`).

  Returns:
    (test_ds, info): a batched, prefetched, unshuffled, unaugmented pipeline of
    (images float32 [B, S, S, 3] in [0, 255], labels int32 [B]) with known
    finite cardinality, and what was loaded (info.test_count is its size).

  Raises:
    ValueError: as `load`; also a source without a test split (a folder with
      neither test/ nor test_split > 0, a TFDS dataset with neither a test nor
      a validation split and test_split 0), with what to set.
  """
  _check_config(config)
  source = _source(config, (TEST,))
  placements = _placements(config, source)
  return _pipeline(source.splits[TEST], config, placements[TEST]), source.info(config, placements)


def stream_seed(seed: int, stream: int) -> int:
  """The shuffle and augmentation seed of data stream `stream`: `seed` for stream 0.

  Another stream gets a 31-bit seed derived from (seed, stream) by numpy's
  SeedSequence, so neighbouring streams (and seeds) give unrelated orders.

  Raises:
    ValueError: a negative or non-integer stream (or seed, for stream != 0).
  """
  if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
    raise ValueError(f"The data stream must be a non-negative integer, got {stream!r}; stream 0 "
                     "is the config's own order, 1, 2, ... continue it.")
  if stream == 0:
    return seed
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"Data streams other than 0 need a non-negative integer seed, got "
                     f"{seed!r}; set --seed to a non-negative integer.")
  state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(1)[0]
  return int(state % (2**31 - 1))


def parse_augment(value: AugmentSpec) -> Tuple[str, ...]:
  """Any accepted spelling of `DataConfig.augment` -> its canonical tuple.

  Args:
    value: a tuple or list of names from AUGMENTATIONS (or ["none"]); a
      comma-separated string of them ("flip,translate", "translate", "none",
      ""); True (= DEFAULT_AUGMENT) or False / None (= none).

  Returns:
    The names in AUGMENTATIONS order without repeats; () for none.

  Raises:
    ValueError: an unknown name, "none" together with others, or a value of
      another type; the message lists the known names.
  """
  known = f"known augmentations are {', '.join(AUGMENTATIONS)} (or none)"
  if value is None or isinstance(value, (bool, np.bool_)):
    return DEFAULT_AUGMENT if value else ()
  if isinstance(value, str):
    names = [name.strip() for name in value.split(",")]
    names = [name for name in names if name]
  elif isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(n, str) for n in value):
    names = [name.strip() for name in value]
  else:
    raise ValueError(f"augment must be names of augmentations (a tuple, or a comma-separated "
                     f"string), True or False, got {value!r}; {known}.")
  lowered = [name.lower() for name in names]
  if "none" in lowered:
    if len(set(lowered)) > 1:
      raise ValueError(f"augment {value!r} combines 'none' with augmentations; give either "
                       f"'none' or a list of augmentations ({known}).")
    return ()
  unknown = [name for name in names if name.lower() not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f"Unknown augmentation(s) {unknown} in augment {value!r}; {known}, e.g. "
                     "'translate' or 'flip,translate'.")
  return tuple(name for name in AUGMENTATIONS if name in lowered)


def augment_names(config: DataConfig) -> Tuple[str, ...]:
  """The training augmentations `config` asks for, canonical (() for none)."""
  return parse_augment(config.augment)


def _check_config(config: DataConfig) -> None:
  if not isinstance(config.image_size, int) or config.image_size < 1:
    raise ValueError(f"image_size must be a positive integer, got {config.image_size!r}.")
  if not isinstance(config.batch_size, int) or config.batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {config.batch_size!r}.")
  if not 0.0 <= config.validation_split < 1.0:
    raise ValueError(f"validation_split must be in [0, 1), got {config.validation_split}.")
  if not 0.0 <= config.test_split < 1.0:
    raise ValueError(f"test_split must be in [0, 1), got {config.test_split}.")
  if config.validation_split + config.test_split >= 1.0:
    raise ValueError(f"validation_split + test_split must be below 1 so that images remain for "
                     f"training, got {config.validation_split} + {config.test_split}; lower "
                     "one of them.")
  if config.cache not in CACHE_MODES:
    raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {config.cache!r}.")
  if config.cache == DISK and not config.cache_dir:
    raise ValueError("cache 'disk' needs a cache_dir for its files, got none; the main job "
                     f"(squish) keeps them in <run_dir>/{RUN_CACHE_DIR}, elsewhere give "
                     "DataConfig(cache_dir=...), or use --cache=auto, memory or none.")
  if (isinstance(config.processes, bool) or not isinstance(config.processes, int)
      or config.processes < 1):
    raise ValueError(f"processes must be a positive integer, got {config.processes!r}.")


# -- the common tail ------------------------------------------------------------


@dataclasses.dataclass
class _Split:
  """One split before decoding: cheap items, their decoder, and what the decoded images are.

  Attributes:
    items: the split in its order (training: already mixed across classes),
      as cheap elements: file paths, indices or encoded images, with labels.
    count: how many.
    decode: items -> (uint8 [S, S, 3], int32 label); None when the items are
      decoded already.
    cache_key: names the decoded images (the disk cache's file name:
      `<source>-<split>-<digest of what they depend on>`); None for a split
      that is in memory already (shapes10's arrays), which is never cached.
  """

  items: tf.data.Dataset
  count: int
  decode: Optional[Callable[..., Tuple[tf.Tensor, tf.Tensor]]] = None
  cache_key: Optional[str] = None


@dataclasses.dataclass
class _Source:
  """A source reduced to its splits and counts.

  Attributes:
    splits: {split: _Split} of the splits that were asked for.
    class_names: the label names, label order.
    counts: {split: count} of any split whose size is known without reading
      it (the built splits' counts override these).
    skipped_images: unreadable files skipped in the built splits.
  """

  splits: Dict[str, _Split]
  class_names: Sequence[str]
  counts: Dict[str, int] = dataclasses.field(default_factory=dict)
  skipped_images: int = 0

  def info(self, config: DataConfig, placements: Dict[str, str]) -> DatasetInfo:
    counts = {**self.counts, **{split: part.count for split, part in self.splits.items()}}
    return DatasetInfo(name=config.dataset, class_names=tuple(self.class_names),
                       train_count=counts.get(TRAIN, 0),
                       validation_count=counts.get(VALIDATION, 0),
                       image_size=config.image_size, skipped_images=self.skipped_images,
                       test_count=counts.get(TEST, 0),
                       cache=tuple((split, placements[split]) for split in self.splits))


def _source(config: DataConfig, splits: Sequence[str]) -> _Source:
  """Builds exactly `splits` (a subset of TRAIN, VALIDATION, TEST) of config's source."""
  name = config.dataset
  if name == "shapes10":
    return _shapes10_source(config, splits)
  if name == "folder":
    return _folder_source(config, splits)
  if name == "imagenet10":
    return _imagenet10_source(config, splits)
  if name.startswith("tfds:") and len(name) > len("tfds:"):
    return _tfds_source(name[len("tfds:"):], config, splits)
  raise ValueError(f"Unknown dataset {name!r}; known datasets are {', '.join(KNOWN_DATASETS)} "
                   "(e.g. tfds:cifar10).")


# -- where decoded images are kept ----------------------------------------------


def available_memory_bytes() -> int:
  """Memory available to new allocations now: MemAvailable, else free pages; 0 if unknown."""
  try:
    with open("/proc/meminfo", encoding="ascii") as handle:
      for line in handle:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (AttributeError, ValueError, OSError):
    return 0


def memory_budget(processes: int = 1, available: Optional[int] = None) -> int:
  """Bytes of decoded images one process may cache in memory under --cache=auto.

  Args:
    processes: how many processes of the job load data at once.
    available: available memory in bytes; None reads `available_memory_bytes()`.

  Returns:
    MEMORY_FRACTION of the available memory, divided by `processes`.
  """
  if available is None:
    available = available_memory_bytes()
  return int(available * MEMORY_FRACTION) // max(1, int(processes))


def cache_placements(mode: str, split_bytes: Sequence[Tuple[str, int]], budget: int,
                     disk: bool) -> Dict[str, str]:
  """Where each split's decoded images go: MEMORY, DISK or NONE (pure).

  Args:
    mode: one of CACHE_MODES. memory, disk and none place every split so;
      auto places the splits in the given order in memory while their bytes
      fit what is left of `budget`, the others on disk when `disk`, else none.
    split_bytes: (split, bytes of its decoded images), in priority order.
    budget: bytes this process may hold in memory (auto only).
    disk: whether there is a directory for disk caches.

  Returns:
    {split: placement}.

  Raises:
    ValueError: an unknown mode, or disk without a directory.
  """
  if mode not in CACHE_MODES:
    raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}.")
  if mode == DISK and not disk:
    raise ValueError("cache 'disk' needs a cache_dir for its files, got none.")
  if mode != "auto":
    return {split: mode for split, _ in split_bytes}
  placements, left = {}, budget
  for split, size in split_bytes:
    if size <= left:
      placements[split], left = MEMORY, left - size
    else:
      placements[split] = DISK if disk else NONE
  return placements


def _placements(config: DataConfig, source: _Source) -> Dict[str, str]:
  """{split: placement} of the source's splits; splits held as arrays are "memory"."""
  image_bytes = config.image_size * config.image_size * 3
  cacheable = [(split, part.count * image_bytes) for split, part in source.splits.items()
               if part.cache_key is not None]
  budget = memory_budget(config.processes) if config.cache == "auto" and cacheable else 0
  placements = cache_placements(config.cache, cacheable, budget, bool(config.cache_dir))
  if cacheable:
    logging.info("data cache (%s, budget %.2f GiB per process of %d): %s", config.cache,
                 budget / 2**30, config.processes,
                 ", ".join(f"{split} {size / 2**30:.2f} GiB {placements[split]}"
                           for split, size in cacheable))
  return {split: placements.get(split, MEMORY) for split in source.splits}


def shuffle_buffer_size(count: int, image_size: int) -> int:
  """The training shuffle window: the whole split up to SHUFFLE_BUFFER_BYTES of images."""
  return max(1, min(count, SHUFFLE_BUFFER_BYTES // (image_size * image_size * 3)))


def _pipeline(split: _Split, config: DataConfig, placement: str,
              shuffle_seed: Optional[int] = None) -> tf.data.Dataset:
  """Decode (or read the cache), shuffle (training), batch, to float32, prefetch.

  Every placement yields the same elements in the same order: the shuffle's
  permutation depends on its seed and window only, not on whether it moves
  paths or images.
  """
  training = shuffle_seed is not None
  decode_late = placement == NONE or split.cache_key is None
  ds = split.items
  if not decode_late:
    if split.decode is not None:
      ds = ds.map(split.decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.cache() if placement == MEMORY else _disk_cached(ds, config.cache_dir,
                                                             split.cache_key)
  if training:
    window = (split.count if split.cache_key is None
              else shuffle_buffer_size(split.count, config.image_size))
    ds = ds.shuffle(window, seed=shuffle_seed, reshuffle_each_iteration=True)
  if decode_late and split.decode is not None:
    ds = ds.map(split.decode, num_parallel_calls=tf.data.AUTOTUNE)
  return _batched(ds, split.count, config, shuffle_seed)


def _batched(elements: tf.data.Dataset, count: int, config: DataConfig,
             shuffle_seed: Optional[int] = None) -> tf.data.Dataset:
  """Batch, to float32, prefetch; training (a shuffle seed) also augments."""
  training = shuffle_seed is not None
  if training:
    # Full batches keep shapes static (one trace, TPU-friendly); a split
    # smaller than one batch still yields it.
    ds = elements.batch(config.batch_size, drop_remainder=count >= config.batch_size)
  else:
    ds = elements.batch(config.batch_size)
  to_float = lambda images, labels: (tf.cast(images, tf.float32), labels)
  augmentations = augment_names(config)
  if training and augmentations:
    layer = augmentation_layer(shuffle_seed, augmentations)
    # On uint8 batches (a quarter of the bytes). Each batch draws from its own
    # seed, the next of `batch_seeds`: a seeded stream that starts afresh, and
    # differently, on every pass (epoch). A pass's batches therefore depend only
    # on the seed and how many passes came before, never on how far the
    # prefetch ran ahead of a loop that stopped early (batch-norm
    # recalibration's 16 batches, Keras peeking at a batch under a strategy):
    # with a seed variable drawn from in the map, they did.
    ds = tf.data.Dataset.zip((ds, batch_seeds(shuffle_seed)))
    ds = ds.map(lambda batch, seed: to_float(layer(batch[0], seed=seed), batch[1]),
                num_parallel_calls=tf.data.AUTOTUNE)
  else:
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)-[0-9a-f]+")


def _disk_cached(ds: tf.data.Dataset, cache_dir: str, name: str) -> tf.data.Dataset:
  """`ds.cache(<cache_dir>/<name>)`, written completely now if it is not on disk yet.

  tf.data writes a file cache during the first iteration and keeps it only if
  that iteration reaches the end; meanwhile a second iterator or process on
  the same file fails on its lockfile, and a killed writer leaves the lockfile
  behind. So the cache is written here in one full pass under a temporary
  name of this process and renamed into place, its .index (which tf.data reads
  as "complete") last: pipelines only ever read complete caches. Temporaries
  of dead processes and caches of the same split under an older key are
  removed.
  """
  os.makedirs(cache_dir, exist_ok=True)
  prefix = os.path.join(cache_dir, name)
  if not os.path.isfile(prefix + ".index"):
    _remove_abandoned_temporaries(cache_dir)
    temp = os.path.join(cache_dir, f".{name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
      ds.cache(temp).reduce(np.int64(0), lambda total, _: total + 1)
      written = sorted(glob.glob(glob.escape(temp) + "*"), key=lambda p: p.endswith(".index"))
      for path in written:
        os.replace(path, prefix + path[len(temp):])
    except BaseException:
      for path in glob.glob(glob.escape(temp) + "*"):
        _remove_quietly(path)
      raise
    family = name.rsplit("-", 1)[0] + "-"
    for path in glob.glob(os.path.join(glob.escape(cache_dir), glob.escape(family) + "*")):
      if not os.path.basename(path).startswith(name + "."):
        _remove_quietly(path)  # the same split under an older key
  return ds.cache(prefix)


def _remove_abandoned_temporaries(cache_dir: str) -> None:
  for path in glob.glob(os.path.join(glob.escape(cache_dir), ".*.tmp*")):
    match = _TEMP_PATTERN.match(os.path.basename(path))
    if match and not _process_alive(int(match.group("pid"))):
      _remove_quietly(path)


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  return True


def _remove_quietly(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass


def _digest(*parts: Any) -> str:
  """A short stable digest of JSON-able `parts` (cache keys)."""
  text = json.dumps([_CACHE_FORMAT_VERSION, *parts], sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _cache_name(source: str, split: str, *parts: Any) -> str:
  """`<source>-<split>-<digest>`, made file-name safe."""
  safe = lambda text: re.sub(r"[^A-Za-z0-9_.]+", "_", text)
  return f"{safe(source)}-{safe(split)}-{_digest(source, split, *parts)}"


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


def _held_out_counts(count: int, validation_fraction: float,
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


def _stratified_parts(labels: np.ndarray, num_classes: int, validation_fraction: float,
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
    validation, test = _held_out_counts(len(indices), validation_fraction, test_fraction)
    order = indices[rng.permutation(len(indices))]
    parts[order[:validation]] = 1
    parts[order[validation:validation + test]] = 2
  return parts


# -- shapes10 -------------------------------------------------------------------

_SHAPES10_SIZES = {TRAIN: "shapes10_train_size", VALIDATION: "shapes10_validation_size",
                   TEST: "shapes10_test_size"}


def _shapes10_source(config: DataConfig, splits: Sequence[str]) -> _Source:
  for field in _SHAPES10_SIZES.values():
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{field} must be a positive integer, got {value!r}.")
  built = {}
  for split in splits:
    images, labels = _shapes10_arrays(getattr(config, _SHAPES10_SIZES[split]), config.image_size,
                                      config.seed, split)
    built[split] = _indexed_arrays(images, labels)
  return _Source(splits=built, class_names=shapes10.CLASS_NAMES,
                 counts={split: getattr(config, field) for split, field in _SHAPES10_SIZES.items()})


def _indexed_arrays(images: np.ndarray, labels: np.ndarray) -> _Split:
  """Arrays in memory as a split of indices: the shuffle moves indices, not images."""
  images, labels = tf.constant(images), tf.constant(labels.astype(np.int32))
  return _Split(items=tf.data.Dataset.range(len(labels)), count=len(labels),
                decode=lambda index: (tf.gather(images, index), tf.gather(labels, index)))


@functools.lru_cache(maxsize=6)
def _shapes10_arrays(count: int, image_size: int, seed: int,
                     split: str) -> Tuple[np.ndarray, np.ndarray]:
  """shapes10.generate, remembered: evolution reloads the same data for every candidate."""
  images, labels = shapes10.generate(count, image_size, seed, split)
  images.setflags(write=False)  # shared between callers
  labels.setflags(write=False)
  return images, labels


# -- folder ---------------------------------------------------------------------

_FOLDER_LAYOUT_HELP = ("a folder with one sub-folder of images per class, or train/ (and optional "
                       "validation/ and test/) sub-folders that each hold the class sub-folders")


def _folder_source(config: DataConfig, splits: Sequence[str]) -> _Source:
  """Class folders -> the requested splits.

  A split with its own folder (validation/, test/ next to train/) is that
  folder; a split without one is held out of the training images
  (`_stratified_parts`: per class, seeded by config.seed, validation and test
  disjoint). The partition is decided from the file lists alone, before any
  image is read, so `load` reads only training and validation files and
  `load_test` only test files; unreadable files are then checked (and, with
  skip_bad_images, skipped) in the splits being built, through the
  readability index (`_readability`): a file is decoded to check it once,
  and again only when its size or mtime changes. The training file list is
  shuffled (seeded by config.seed) before anything decodes it.
  """
  root = config.data_dir
  if not root:
    raise ValueError(f"--dataset=folder needs --data_dir: {_FOLDER_LAYOUT_HELP}.")
  if not os.path.isdir(root):
    raise ValueError(f"--data_dir {root!r} is not a directory; for --dataset=folder it must be "
                     f"{_FOLDER_LAYOUT_HELP}.")
  train_root = os.path.join(root, TRAIN)
  given: Dict[str, Dict[str, List[str]]] = {}  # splits that have their own folder
  roots = {}
  if os.path.isdir(train_root) and bool(_class_dirs(train_root)):
    train_files = _scan_classes(train_root)
    for split in (VALIDATION, TEST):
      split_root = os.path.join(root, split)
      if os.path.isdir(split_root):
        roots[split] = split_root
        given[split] = _scan_classes(split_root)
  else:
    train_root = root
    train_files = _scan_classes(root)
  roots[TRAIN] = train_root
  class_names = sorted(train_files)
  if len(class_names) < 2:
    raise ValueError(f"{train_root!r} has {len(class_names)} class folder(s) "
                     f"({', '.join(class_names) or 'none'}); a classifier needs at least 2. "
                     f"--data_dir must be {_FOLDER_LAYOUT_HELP}.")
  for split, files in given.items():
    if sorted(files) != class_names:
      missing = sorted(set(class_names) - set(files))
      extra = sorted(set(files) - set(class_names))
      raise ValueError(f"The classes in {roots[split]!r} differ from those in {train_root!r}: "
                       f"missing from {split}: {missing or 'none'}; only in {split}: "
                       f"{extra or 'none'}. Give both the same class sub-folders.")

  if VALIDATION in splits and VALIDATION not in given and config.validation_split <= 0:
    raise ValueError(f"{root!r} has no validation/ folder and validation_split is "
                     f"{config.validation_split}; set --validation_split > 0 to hold out "
                     "images, or add a validation/ folder.")
  if TEST in splits and TEST not in given and config.test_split <= 0:
    raise ValueError(f"{root!r} has no test/ folder and test_split is {config.test_split}, so "
                     "there is no test split; set --test_split > 0 to hold out images of every "
                     "class for it, or use train/ and test/ sub-folders (each holding the class "
                     "folders).")

  # Hold out what has no folder of its own from the training images.
  paths = [path for name in class_names for path in train_files[name]]
  labels = np.asarray([label for label, name in enumerate(class_names)
                       for _ in train_files[name]], np.int32)
  parts = _stratified_parts(
      labels, len(class_names),
      0.0 if VALIDATION in given else config.validation_split,
      0.0 if TEST in given else config.test_split, config.seed)
  files = {}
  for code, split in enumerate((TRAIN, VALIDATION, TEST)):
    if split in given:
      files[split] = given[split]
      continue
    files[split] = {name: [] for name in class_names}
    for path, label, part in zip(paths, labels, parts):
      if part == code:
        files[split][class_names[label]].append(path)
  counts = {split: sum(len(p) for p in split_files.values())
            for split, split_files in files.items()}

  wanted = [path for split in splits for name in class_names for path in files[split][name]]
  listed = [path for split_files in files.values() for paths in split_files.values()
            for path in paths]
  index = _readability(root, listed, wanted, config.cache_dir)
  bad = {path for path in wanted if not index.readable[path]}
  if bad and not config.skip_bad_images:
    shown = "\n  ".join(sorted(bad)[:10])
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise ValueError(f"{len(bad)} image file(s) could not be decoded as JPEG/PNG/BMP/GIF:\n  "
                     f"{shown}{more}\nDelete or fix them, or set --skip_bad_images to skip "
                     "and count them.")

  source_name = f"folder_{_digest(os.path.abspath(root))[:8]}"

  def split_of(split: str, split_files: Dict[str, List[str]]) -> _Split:
    split_paths = [path for name in class_names for path in split_files[name]]
    split_labels = np.asarray([label for label, name in enumerate(class_names)
                               for _ in split_files[name]], np.int32)
    if split == TRAIN:  # mixed across classes before decoding (see the module docstring)
      order = np.random.default_rng([config.seed, _FILE_ORDER_STREAM]).permutation(
          len(split_paths))
      split_paths, split_labels = [split_paths[i] for i in order], split_labels[order]
    stats = [index.stats[path] for path in split_paths]
    key = _cache_name(source_name, split, config.image_size,
                      [[index.names[path], int(label), *stat]
                       for path, label, stat in zip(split_paths, split_labels.tolist(), stats)])
    items = tf.data.Dataset.from_tensor_slices((split_paths, split_labels))
    decode = lambda path, label: (_resize(_decode(tf.io.read_file(path)), config.image_size),
                                  label)
    return _Split(items=items, count=len(split_paths), decode=decode, cache_key=key)

  built = {}
  for split in splits:
    if split in given:
      kept = _without(files[split], bad, roots[split], every_class=True)
    elif split == TRAIN:
      # What the hold-outs leave of a class folder must still train on it.
      kept = _without(files[split], bad, train_root, every_class=True,
                      left_for_training=bool(parts.any()))
    else:  # a held-out part: a small class may have no image in it
      kept = _without(files[split], bad, train_root, every_class=False)
    built[split] = split_of(split, kept)
    if built[split].count == 0:
      fraction = "validation_split" if split == VALIDATION else "test_split"
      raise ValueError(f"{fraction} {getattr(config, fraction)} holds out no readable image of "
                       f"{root!r}; raise --{fraction} or add images.")
  index.save()  # only for data that loads: a refused folder leaves nothing behind
  return _Source(splits=built, class_names=class_names, counts=counts,
                 skipped_images=len(bad))


# Seeds the training file order apart from the hold-outs (which use config.seed alone).
_FILE_ORDER_STREAM = 1
_FOLDER_INDEX_FORMAT = "squish_tf folder index"
# {absolute root: {name below it: (size, mtime_ns, readable)}}: the index of this process.
_FOLDER_INDEXES: Dict[str, Dict[str, Tuple[int, int, bool]]] = {}


@dataclasses.dataclass
class _Readability:
  """Which listed files decode, from the index where their size and mtime still match.

  Attributes:
    root: the folder, absolute.
    names: {path: its name in the index (relative to the folder)} of every
      listed file.
    stats: {path: (size, mtime_ns)} of every listed file.
    readable: {path: whether it decodes} of the files checked so far (every
      wanted one).
    path: the index file, or None without a cache_dir.
    changed: whether the index file is behind (new checks, files gone).
  """

  root: str
  names: Dict[str, str]
  stats: Dict[str, Tuple[int, int]]
  readable: Dict[str, bool]
  path: Optional[str]
  changed: bool

  def save(self) -> None:
    """Writes the index file (atomically) when it is behind."""
    if self.path is None or not self.changed:
      return
    files = {self.names[p]: [*self.stats[p], self.readable.get(p)] for p in self.stats}
    model_io.write_json(self.path, {
        "format": _FOLDER_INDEX_FORMAT, "version": _CACHE_FORMAT_VERSION, "root": self.root,
        "fields": ["size", "mtime_ns", "readable"],
        "files": files,
        "unreadable": sorted(name for name, (_, _, ok) in files.items() if ok is False)})
    self.changed = False


def folder_index_path(cache_dir: str, root: str) -> str:
  """The readability index file of folder `root` in `cache_dir`."""
  return os.path.join(cache_dir, f"folder_index-{_digest(os.path.abspath(root))}.json")


def _readability(root: str, listed: Sequence[str], wanted: Sequence[str],
                 cache_dir: Optional[str]) -> _Readability:
  """Readability of the `wanted` files among the `listed` ones (all below `root`).

  An indexed entry is used while its file's size and mtime_ns are what the
  index recorded; every other wanted file is decoded (`unreadable_images`).
  The index comes from this process's memory, else from `cache_dir`'s index
  file (a missing, unreadable or foreign file counts as empty). Entries are
  named by the path below the folder, so the index holds wherever the folder
  is reached from.
  """
  absolute = os.path.abspath(root)
  # The scan joins `root` with what is below it: the rest of each path is its name.
  names = {path: path[len(root):].lstrip(os.sep) for path in listed}
  stats = {}
  for path in listed:
    info = os.stat(path)
    stats[path] = (int(info.st_size), int(info.st_mtime_ns))
  known = _FOLDER_INDEXES.get(absolute, {})
  index_path = folder_index_path(cache_dir, absolute) if cache_dir else None
  stored = {}
  if index_path is not None and os.path.isfile(index_path):
    try:
      document = model_io.read_json(index_path)
      if (document.get("format") == _FOLDER_INDEX_FORMAT
          and document.get("version") == _CACHE_FORMAT_VERSION
          and document.get("root") == absolute):
        stored = {name: tuple(entry) for name, entry in document["files"].items()}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
      stored = {}  # rebuilt below
  readable = {}
  for path in listed:
    for entry in (known.get(names[path]), stored.get(names[path])):
      if entry is not None and tuple(entry[:2]) == stats[path] and entry[2] is not None:
        readable[path] = bool(entry[2])
        break
  todo = [path for path in wanted if path not in readable]
  if todo:
    bad = set(unreadable_images(todo))
    readable.update({path: path not in bad for path in todo})
  current = {names[path]: (*stats[path], ok) for path, ok in readable.items()}
  _FOLDER_INDEXES[absolute] = current
  recorded = {name: entry for name, entry in stored.items() if entry[2] is not None}
  return _Readability(root=absolute, names=names, stats=stats, readable=readable,
                      path=index_path, changed=index_path is not None and recorded != current)


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


def _without(files: Dict[str, List[str]], bad: set, root: str, every_class: bool,
             left_for_training: bool = False) -> Dict[str, List[str]]:
  """`files` without the `bad` ones; with every_class, refuses a class left with none."""
  kept = {name: [path for path in paths if path not in bad] for name, paths in files.items()}
  for name, paths in kept.items():
    if every_class and not paths:
      raise ValueError(f"Class folder {os.path.join(root, name)!r} has no readable "
                       f"{'images left for training' if left_for_training else 'images'} "
                       "(every one was skipped as unreadable); add images or remove the folder.")
  return kept


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
  validation_size, test_size = _held_out_counts(total, validation_split, test_fraction)
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


def _tfds_source(name: str, config: DataConfig, splits: Sequence[str]) -> _Source:
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

  def split_of(role: str, split: str) -> _Split:
    """The TFDS `split` (a name or slice) that plays `role` (TRAIN, VALIDATION or TEST)."""
    ds = builder.as_dataset(split=split, shuffle_files=False)
    count = int(ds.cardinality())
    if count < 0:  # prepared TFDS splits know their size; count anything else once
      count = _tfds_indexed(builder, config, f"count:{split}",
                            lambda: int(ds.reduce(np.int64(0), lambda total, _: total + 1)))
      ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(lambda example: (_resize(_to_rgb(example[image_key]), config.image_size),
                                 tf.cast(example[label_key], tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    key = _cache_name(source_name, role, config.image_size,
                      *_tfds_identity(builder, config.data_dir), split, image_key, label_key, count)
    return _Split(items=ds, count=count, cache_key=key)

  return _Source(splits={split: split_of(split, names[split]) for split in splits},
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
                      f"tfds_index-{_digest(*_tfds_identity(builder, data_dir))}.json")


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
      document = model_io.read_json(path)
      if (document.get("format") == _TFDS_INDEX_FORMAT
          and document.get("version") == _CACHE_FORMAT_VERSION
          and tuple(document.get("dataset", ())) == identity):
        entries = dict(document["entries"])
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
      entries = {}  # rebuilt below
  if entry not in entries:
    entries[entry] = compute()
    if path is not None:
      model_io.write_json(path, {"format": _TFDS_INDEX_FORMAT, "version": _CACHE_FORMAT_VERSION,
                                 "dataset": list(identity), "entries": entries})
  memo.update(entries)
  return memo[entry]


def _imagenet10_source(config: DataConfig, splits: Sequence[str]) -> _Source:
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

  decode = lambda image, label: (_resize(_decode(image), config.image_size), label)

  def split_of(split: str, ds: tf.data.Dataset, count: int, *key: Any) -> _Split:
    return _Split(items=ds.apply(tf.data.experimental.assert_cardinality(count)), count=count,
                  decode=decode,
                  cache_key=_cache_name("imagenet10", split, config.image_size,
                                        *_tfds_identity(builder, config.data_dir), *key))

  built, counts = {}, {}
  if TRAIN in splits or VALIDATION in splits:
    if config.validation_split <= 0:
      raise ValueError(f"imagenet10 holds its validation split out of the training images and "
                       f"validation_split is {config.validation_split}; set --validation_split "
                       "> 0 (imagenet2012's own validation images are the test split).")
    labels = labels_of(TRAIN)
    parts = _stratified_parts(labels, classes, config.validation_split, 0.0, config.seed)
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
  return _Source(splits=built, class_names=[name for _, name in IMAGENET10_CLASSES],
                 counts=counts)


def imagenet10_labels(encoded: tf.data.Dataset) -> np.ndarray:
  """The labels of (image, label) elements, in order: one pass (the filter hides the size)."""
  batches = [labels for labels in encoded.map(lambda image, label: label).batch(4096)
             .as_numpy_iterator()]
  return np.concatenate(batches).astype(np.int32) if batches else np.zeros(0, np.int32)


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
