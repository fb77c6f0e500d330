"""What a data source is asked for and what it answers: `DataConfig` (with its checks),
`DatasetInfo`, the split names, and the `Split`/`Source` records every source reduces to
(cheap items plus a decoder). No TensorFlow is needed to build or check a config."""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

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
# The sub-directory of a run dir that the main job gives as DataConfig.cache_dir.
RUN_CACHE_DIR = "data_cache"
# Part of every index and disk cache key: bump it when what they hold changes meaning.
CACHE_FORMAT_VERSION = 1


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

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  dataset: str = dataclasses.field(default="shapes10", metadata=dict(help=(
      "Data source: shapes10 (built-in, offline), folder (class sub-folders under --data_dir), "
      "tfds:NAME (any TFDS image-classification dataset) or imagenet10.")))
  data_dir: Optional[str] = dataclasses.field(default=None, metadata=dict(
      help="Image folder for --dataset=folder; TFDS data dir for tfds:NAME and imagenet10."))
  image_size: int = dataclasses.field(default=64, metadata=dict(
      help="Images are resized to image_size x image_size.", lower_bound=1))
  batch_size: int = dataclasses.field(default=64, metadata=dict(
      help="Global batch size (split across replicas).", lower_bound=1))
  validation_split: float = dataclasses.field(default=0.2, metadata=dict(help=(
      "Fraction held out for validation (selection, the accuracy budget) when the source has no "
      "validation split."), lower_bound=0.0, upper_bound=0.9))
  test_split: float = dataclasses.field(default=0.1, metadata=dict(help=(
      "Fraction held out for the test split (every reported accuracy) when the source has no "
      "test split (folder without test/, TFDS without test)."), lower_bound=0.0, upper_bound=0.9))
  seed: int = dataclasses.field(default=0, metadata=dict(
      help="Seed for data generation, shuffling, initial weights and synthesis."))
  augment: AugmentSpec = dataclasses.field(default=DEFAULT_AUGMENT, metadata=dict(
      kind="list", help=(
          "Training augmentations, comma-separated: translate (random shift up to 10%, "
          "reflected edges), flip (random horizontal mirror; opt-in: it damages classes that "
          "depend on orientation, such as digits, text and arrows), or none.")))
  skip_bad_images: bool = dataclasses.field(default=False, metadata=dict(
      help="Skip and count unreadable images instead of stopping with an error."))
  shapes10_train_size: int = dataclasses.field(default=4000, metadata=dict(
      help="Training images generated for --dataset=shapes10.", lower_bound=10))
  shapes10_validation_size: int = dataclasses.field(default=1000, metadata=dict(
      help="Validation images generated for --dataset=shapes10.", lower_bound=10))
  shapes10_test_size: int = dataclasses.field(default=2000, metadata=dict(
      help="Test images generated for --dataset=shapes10.", lower_bound=10))
  cache: str = dataclasses.field(default="auto", metadata=dict(enum_values=CACHE_MODES, help=(
      "Where decoded images are kept between epochs: auto (in memory what fits a share of the "
      "available memory divided among the job's processes, the rest on disk in the run dir), "
      "memory, disk (in the run dir) or none (decoded every epoch). The batches are the same "
      "whichever it is.")))
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


def check_config(config: DataConfig) -> None:
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


FOLDER_LAYOUT_HELP = ("a folder with one sub-folder of images per class, or train/ (and optional "
                      "validation/ and test/) sub-folders that each hold the class sub-folders")


def check_folder(config: DataConfig) -> None:
  """Refuses --dataset=folder without a --data_dir directory, before any file is read."""
  if config.dataset != "folder":
    return
  root = config.data_dir
  if not root:
    raise ValueError(f"--dataset=folder needs --data_dir: {FOLDER_LAYOUT_HELP}.")
  if not os.path.isdir(root):
    raise ValueError(f"--data_dir {root!r} is not a directory; for --dataset=folder it must be "
                     f"{FOLDER_LAYOUT_HELP}.")


@dataclasses.dataclass
class Split:
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

  items: Any  # a tf.data.Dataset (this module needs no TensorFlow)
  count: int
  decode: Optional[Callable[..., Tuple[Any, Any]]] = None
  cache_key: Optional[str] = None


@dataclasses.dataclass
class Source:
  """A source reduced to its splits and counts.

  Attributes:
    splits: {split: _Split} of the splits that were asked for.
    class_names: the label names, label order.
    counts: {split: count} of any split whose size is known without reading
      it (the built splits' counts override these).
    skipped_images: unreadable files skipped in the built splits.
  """

  splits: Dict[str, Split]
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
