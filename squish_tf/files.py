"""Files written atomically (temporary name, then rename) and strict JSON: nothing
half-written on disk after a kill, no NaN in a .json file."""

import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Any, Iterator, Optional


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  Works for files and directories. On error the temporary is removed and
  `path` is left as it was.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  base = os.path.basename(path)
  handle, temp = tempfile.mkstemp(prefix=f".{base}.", suffix=suffix or ".tmp", dir=directory)
  os.close(handle)
  os.remove(temp)  # the caller creates a file or a directory here
  try:
    yield temp
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    os.replace(temp, path)
  except BaseException:
    if os.path.isdir(temp):
      shutil.rmtree(temp, ignore_errors=True)
    elif os.path.exists(temp):
      os.remove(temp)
    raise


def write_text(path: str, text: str) -> None:
  with atomic_path(path) as temp:
    with open(temp, "w", encoding="utf-8") as handle:
      handle.write(text)


def write_bytes(path: str, data: bytes) -> None:
  with atomic_path(path) as temp:
    with open(temp, "wb") as handle:
      handle.write(data)


def write_json(path: str, data: Any) -> None:
  """Writes strict JSON (atomically): NaN and infinities become null, which every reader takes."""
  text = json.dumps(finite_or_none(json_round_trip(data)), indent=2, sort_keys=True,
                    allow_nan=False)
  write_text(path, text + "\n")


def finite_or_none(data: Any) -> Any:
  """`data` with every NaN or infinite float replaced by None (JSON has no NaN)."""
  if isinstance(data, float):
    return data if math.isfinite(data) else None
  if isinstance(data, dict):
    return {key: finite_or_none(value) for key, value in data.items()}
  if isinstance(data, (list, tuple)):
    return [finite_or_none(value) for value in data]
  return data


def read_json(path: str) -> Any:
  with open(path, "r", encoding="utf-8") as handle:
    return json.load(handle)


def _json_default(value: Any) -> Any:
  # numpy scalars and arrays without importing numpy here.
  if hasattr(value, "tolist"):
    return value.tolist()
  if hasattr(value, "item"):
    return value.item()
  raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def optional_read_json(path: str) -> Optional[Any]:
  return read_json(path) if os.path.isfile(path) else None


def json_round_trip(data: Any) -> Any:
  """`data` as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
  return json.loads(json.dumps(data, default=_json_default))
