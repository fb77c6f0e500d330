"""Native libraries' console lines into a log file: the TFLite converter's and LiteRT's.

  with native_log.logging_to("saved_models/demo/native.log"):   # a run, once
    ...
    with native_log.captured():                                 # around native code
      content = converter.convert()

The TFLite converter's quantizer ("fully_quantize: 0, inference_type: 6, ...")
and LiteRT ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") write
straight to file descriptor 2 from C++, where neither `sys.stderr` nor a
logging setting reaches. The code that converts a model or creates an
interpreter runs inside `captured()`: while a log is set (`logging_to`, which
the main job and the export and benchmark mains enter), descriptor 2 points at
that file, appended to, for the block; with none set the lines show as usual.
The log's path travels in an environment variable, so worker processes spawned
inside `logging_to` write to the same file. Python's warnings printed to the
descriptor inside a block go there too; exceptions still reach the caller.
"""

import contextlib
import os
import sys
from typing import Iterator, Optional

# The log file `captured()` writes to (an absolute path), or unset.
LOG_ENV = "SQUISH_TF_NATIVE_LOG"


@contextlib.contextmanager
def logging_to(path: str) -> Iterator[None]:
  """Native lines inside `captured()` blocks go to `path` during this block.

  Nothing is written until a `captured()` block runs, so a run refused before
  its first conversion leaves no log behind.
  """
  previous = os.environ.get(LOG_ENV)
  os.environ[LOG_ENV] = os.path.abspath(path)
  try:
    yield
  finally:
    if previous is None:
      os.environ.pop(LOG_ENV, None)
    else:
      os.environ[LOG_ENV] = previous


def log_path() -> Optional[str]:
  """The log `captured()` writes to now, or None (lines show on the console)."""
  return os.environ.get(LOG_ENV) or None


@contextlib.contextmanager
def captured() -> Iterator[None]:
  """File descriptor 2 on the log (appended) for the block, when one is set."""
  path = log_path()
  if path is None:
    yield
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sys.stderr.flush()
  saved = os.dup(2)
  target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  try:
    os.dup2(target, 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(target)
