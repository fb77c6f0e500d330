"""Where decoded images are kept between epochs (memory, disk, none; `auto` from the memory
available now), the training shuffle window, and the disk cache's atomic files."""

import glob
import hashlib
import json
import os
import re
from typing import Any, Dict, Optional, Sequence, Tuple
import uuid

import numpy as np
import tensorflow as tf

from squish_tf.data.config import (
  CACHE_FORMAT_VERSION,
  CACHE_MODES,
  DISK,
  MEMORY,
  MEMORY_FRACTION,
  NONE,
)


# The training shuffle window, in bytes of decoded images: the whole split up to
# this size, a window of it beyond (a disk cache is read in order, and the
# window's images are held in RAM). One rule for every placement keeps the
# batches the same whichever placement auto picks on a given machine.
SHUFFLE_BUFFER_BYTES = 256 << 20

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


def shuffle_buffer_size(count: int, image_size: int) -> int:
  """The training shuffle window: the whole split up to SHUFFLE_BUFFER_BYTES of images."""
  return max(1, min(count, SHUFFLE_BUFFER_BYTES // (image_size * image_size * 3)))


_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)-[0-9a-f]+")


def disk_cached(ds: tf.data.Dataset, cache_dir: str, name: str) -> tf.data.Dataset:
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


def digest(*parts: Any) -> str:
  """A short stable digest of JSON-able `parts` (cache keys)."""
  text = json.dumps([CACHE_FORMAT_VERSION, *parts], sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cache_name(source: str, split: str, *parts: Any) -> str:
  """`<source>-<split>-<digest>`, made file-name safe."""
  safe = lambda text: re.sub(r"[^A-Za-z0-9_.]+", "_", text)
  return f"{safe(source)}-{safe(split)}-{digest(source, split, *parts)}"
