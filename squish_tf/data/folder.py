"""The folder source: class sub-folders (or train/, validation/, test/ holding them), split
by a seeded stratified hold-out, with a readability index that decodes each file once and
names the files that do not decode."""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data.cache import cache_name, digest
from squish_tf.data.config import (
  CACHE_FORMAT_VERSION,
  FOLDER_LAYOUT_HELP,
  IMAGE_EXTENSIONS,
  TEST,
  TRAIN,
  VALIDATION,
  DataConfig,
  Source,
  Split,
  check_folder,
)
from squish_tf.data.images import decode_image, resize, stratified_parts


def folder_source(config: DataConfig, splits: Sequence[str]) -> Source:
  """Class folders -> the requested splits.

  A split with its own folder (validation/, test/ next to train/) is that
  folder; a split without one is held out of the training images
  (`_stratified_parts`: per class, seeded by config.seed, validation and test
  disjoint). The partition is decided from the file lists alone, before any
  image is read, so `load` builds only the training and validation splits and
  `load_test` only the test split. Every file of every split is decode-checked
  (an unreadable one stops `load` as well as `load_test`, or with
  skip_bad_images is skipped in the splits being built), through the
  readability index (`_readability`): a file is decoded to check it once,
  and again only when its size or mtime changes. The training file list is
  shuffled (seeded by config.seed) before anything decodes it.
  """
  check_folder(config)
  root = config.data_dir
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
                     f"--data_dir must be {FOLDER_LAYOUT_HELP}.")
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
  parts = stratified_parts(
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
  # Every split's files are decode-checked whichever splits are built (once: the index
  # keeps the answer), so a bad test image stops `load`, before any training, instead of
  # the final evaluation an hour later.
  index = _readability(root, listed, listed, config.cache_dir)
  unreadable = sorted(path for path in listed if not index.readable[path])
  if unreadable and not config.skip_bad_images:
    shown = "\n  ".join(unreadable[:10])
    more = f"\n  ... and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""
    raise ValueError(f"{len(unreadable)} image file(s) could not be decoded as "
                     f"JPEG/PNG/BMP/GIF:\n  {shown}{more}\nDelete or fix them, or set "
                     "--skip_bad_images to skip and count them.")
  bad = {path for path in wanted if not index.readable[path]}

  source_name = f"folder_{digest(os.path.abspath(root))[:8]}"

  def split_of(split: str, split_files: Dict[str, List[str]]) -> Split:
    split_paths = [path for name in class_names for path in split_files[name]]
    split_labels = np.asarray([label for label, name in enumerate(class_names)
                               for _ in split_files[name]], np.int32)
    if split == TRAIN:  # mixed across classes before decoding (see the module docstring)
      order = np.random.default_rng([config.seed, _FILE_ORDER_STREAM]).permutation(
          len(split_paths))
      split_paths, split_labels = [split_paths[i] for i in order], split_labels[order]
    stats = [index.stats[path] for path in split_paths]
    key = cache_name(source_name, split, config.image_size,
                      [[index.names[path], int(label), *stat]
                       for path, label, stat in zip(split_paths, split_labels.tolist(), stats)])
    items = tf.data.Dataset.from_tensor_slices((split_paths, split_labels))
    decode = lambda path, label: (resize(decode_image(tf.io.read_file(path)), config.image_size),
                                  label)
    return Split(items=items, count=len(split_paths), decode=decode, cache_key=key)

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
  return Source(splits=built, class_names=class_names, counts=counts,
                 skipped_images=len(bad))


# Seeds the training file order apart from the hold-outs (which use config.seed alone).
_FILE_ORDER_STREAM = 1
_FOLDER_INDEX_FORMAT = "squish_tf folder index"
# {absolute root: {name below it: (size, mtime_ns, readable)}}: the index of this process.
FOLDER_INDEXES: Dict[str, Dict[str, Tuple[int, int, bool]]] = {}


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
    files_lib.write_json(self.path, {
        "format": _FOLDER_INDEX_FORMAT, "version": CACHE_FORMAT_VERSION, "root": self.root,
        "fields": ["size", "mtime_ns", "readable"],
        "files": files,
        "unreadable": sorted(name for name, (_, _, ok) in files.items() if ok is False)})
    self.changed = False


def folder_index_path(cache_dir: str, root: str) -> str:
  """The readability index file of folder `root` in `cache_dir`."""
  return os.path.join(cache_dir, f"folder_index-{digest(os.path.abspath(root))}.json")


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
  known = FOLDER_INDEXES.get(absolute, {})
  index_path = folder_index_path(cache_dir, absolute) if cache_dir else None
  stored = {}
  if index_path is not None and os.path.isfile(index_path):
    try:
      document = files_lib.read_json(index_path)
      if (document.get("format") == _FOLDER_INDEX_FORMAT
          and document.get("version") == CACHE_FORMAT_VERSION
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
  FOLDER_INDEXES[absolute] = current
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
  ds = ds.map(lambda index, path: (index, tf.shape(decode_image(tf.io.read_file(path)))),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  # A file that fails to read or decode is dropped; the missing indices are the bad files.
  ds = ds.ignore_errors().batch(1024)
  readable = np.zeros(len(paths), bool)
  for indices, shapes in ds.as_numpy_iterator():
    readable[indices[np.all(shapes > 0, axis=1)]] = True
  return [path for path, ok in zip(paths, readable) if not ok]
