"""Every data source behind two functions: `load(config)` and `load_test(config)`.

  train_ds, val_ds, info = load(DataConfig(dataset="shapes10"))
  test_ds, test_info = load_test(DataConfig(dataset="shapes10"))

Three splits: train (fitting), validation (model selection: evolution's
fittest offspring, the accuracy budget) and test (every reported figure).
`load` builds the first two and never builds the test split or reads its
labels, so nothing chosen on it can leak into selection (a folder source only
decode-checks every file, so that a bad test image stops a run before it
trains); `load_test` builds only the test split, for the final evaluation.

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
               (see `squish_tf.data.shapes10`), any resolution, deterministic; each
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

from typing import Dict, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

from squish_tf.data.augment import augmentation_layer, batch_seeds
from squish_tf.data.cache import cache_placements, disk_cached, memory_budget, shuffle_buffer_size
from squish_tf.data.config import (
  KNOWN_DATASETS,
  MEMORY,
  NONE,
  TEST,
  TRAIN,
  VALIDATION,
  DataConfig,
  DatasetInfo,
  Source,
  Split,
  augment_names,
  check_config,
  stream_seed,
)
from squish_tf.data.folder import folder_source
from squish_tf.data.shapes10 import shapes10_source
from squish_tf.data.tfds import imagenet10_source, tfds_source

pass  # MOVER: import dropped


def load(config: DataConfig,
         stream: int = 0) -> Tuple[tf.data.Dataset, tf.data.Dataset, DatasetInfo]:
  """Loads the training and validation pipelines named by `config.dataset`.

  Never builds the test split (see `load_test`); a folder source decode-checks
  its files too, so that a bad test image stops the run before any training.

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
  check_config(config)
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
  check_config(config)
  source = _source(config, (TEST,))
  placements = _placements(config, source)
  return _pipeline(source.splits[TEST], config, placements[TEST]), source.info(config, placements)


def _source(config: DataConfig, splits: Sequence[str]) -> Source:
  """Builds exactly `splits` (a subset of TRAIN, VALIDATION, TEST) of config's source."""
  name = config.dataset
  if name == "shapes10":
    return shapes10_source(config, splits)
  if name == "folder":
    return folder_source(config, splits)
  if name == "imagenet10":
    return imagenet10_source(config, splits)
  if name.startswith("tfds:") and len(name) > len("tfds:"):
    return tfds_source(name[len("tfds:"):], config, splits)
  raise ValueError(f"Unknown dataset {name!r}; known datasets are {', '.join(KNOWN_DATASETS)} "
                   "(e.g. tfds:cifar10).")


def _placements(config: DataConfig, source: Source) -> Dict[str, str]:
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


def _pipeline(split: Split, config: DataConfig, placement: str,
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
    ds = ds.cache() if placement == MEMORY else disk_cached(ds, config.cache_dir,
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
