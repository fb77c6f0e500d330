"""Does the int8 file run on a microcontroller? TensorFlow Lite for Microcontrollers says.

`micro_check(path, pixels)` loads a full-int8 .tflite file into TFLM's own
Python interpreter (the `tflite-micro` package: the reference kernels a
microcontroller build compiles in), runs a few images and compares its raw
int8/uint8 outputs with LiteRT's on the same quantized inputs. It records
what a device needs: the flash the model takes (the file's bytes, which a
firmware embeds as they are) and the tensor arena TFLM allocated for it (the
RAM beside the stack), read from TFLM's recording allocator. Typical
microcontrollers have 256 KB-1 MB of flash and 128-512 KB of RAM.

An op TFLM has no kernel for stops the load; the entry then names it
(`unsupported_op`) instead of the figures.
"""

import contextlib
import ctypes
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, Iterator

import numpy as np

from squish_tf.runtime import litert as litert_lib

# Images run through both interpreters; TFLM's reference kernels are slow on a PC.
MICRO_IMAGES = 4
# The arena the check allocates from (what a model uses is measured, not this).
ARENA_LIMIT = 16 << 20
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_MISSING_OP = re.compile(r"(?:opcode|op) '?([A-Za-z0-9_]+)'?")


def micro_check(path: str, pixels: np.ndarray,
                num_threads: int = litert_lib.DEFAULT_NUM_THREADS) -> Dict[str, Any]:
  """TFLM's verdict on the .tflite file at `path`, run on uint8 `pixels` [N, S, S, 3].

  Returns:
    {"flash_bytes", "arena_bytes", "images", "outputs_equal" and
    "max_abs_diff" (in output quantization steps, against LiteRT's reference
    kernels), "max_abs_diff_xnnpack" and "top1_agreement_xnnpack" (against
    LiteRT as phones run it), "invoke_ms" (median per image on this machine:
    TFLM's reference kernels, not a device's time)}, or
    {"flash_bytes", "unsupported_op", "error"} when TFLM cannot load it.
  """
  from tflite_micro.python.tflite_micro import runtime  # pylint: disable=g-import-not-at-top

  with open(path, "rb") as handle:
    content = handle.read()
  entry: Dict[str, Any] = {"flash_bytes": len(content)}
  try:
    with _captured():  # TFLM prints its load errors on the C streams as well
      interpreter = runtime.Interpreter.from_bytes(content, arena_size=ARENA_LIMIT)
  except (RuntimeError, ValueError) as error:
    message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    missing = _MISSING_OP.search(message)
    return dict(entry, unsupported_op=missing.group(1) if missing else None, error=message)
  # LiteRT's reference kernels do TFLM's arithmetic: their outputs must be equal. What a
  # phone runs (XNNPACK) rounds some int8 sums its own way: a step or two, the same class.
  reference = litert_lib.LiteRTRunner(path, num_threads=num_threads, reference_kernels=True)
  phone = litert_lib.LiteRTRunner(path, num_threads=num_threads)
  diffs, phone_diffs, same_class, seconds = [], [], [], []
  for image in np.asarray(pixels)[:MICRO_IMAGES]:
    quantized = reference.quantize_input(image[None])
    interpreter.set_input(quantized, 0)
    start = time.perf_counter()
    interpreter.invoke()
    seconds.append(time.perf_counter() - start)
    micro = np.asarray(interpreter.get_output(0)).astype(np.int64).reshape(1, -1)
    outputs = []
    for runner in (reference, phone):
      runner.resize(1)
      runner.set_quantized(quantized)
      runner.invoke()
      outputs.append(np.asarray(runner.raw_output()).astype(np.int64).reshape(1, -1))
    diffs.append(int(np.abs(micro - outputs[0]).max()))
    phone_diffs.append(int(np.abs(micro - outputs[1]).max()))
    same_class.append(int(np.argmax(micro)) == int(np.argmax(outputs[1])))
  return dict(entry, arena_bytes=arena_bytes(interpreter), images=len(diffs),
              outputs_equal=bool(diffs) and max(diffs) == 0,
              max_abs_diff=max(diffs) if diffs else None,
              max_abs_diff_xnnpack=max(phone_diffs) if phone_diffs else None,
              top1_agreement_xnnpack=float(np.mean(same_class)) if same_class else None,
              invoke_ms=1000 * statistics.median(seconds) if seconds else None)


def arena_bytes(interpreter) -> int:
  """The arena TFLM allocated (its recording allocator's total, printed on the C streams)."""
  with _captured() as read:
    interpreter.print_allocations()
  found = _ARENA_TOTAL.search(read())
  if found is None:
    raise RuntimeError("TFLM printed no arena total; its allocation report changed format.")
  return int(found.group(1))


@contextlib.contextmanager
def _captured() -> Iterator:
  """Routes the process's stdout and stderr descriptors to a file; yields its reader."""
  libc = ctypes.CDLL(None)
  sys.stdout.flush()
  sys.stderr.flush()
  with tempfile.TemporaryFile() as capture:
    saved = [os.dup(1), os.dup(2)]
    text = []
    try:
      os.dup2(capture.fileno(), 1)
      os.dup2(capture.fileno(), 2)
      yield lambda: "".join(text)
    finally:
      libc.fflush(None)
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      for descriptor in saved:
        os.close(descriptor)
      capture.seek(0)
      text.append(capture.read().decode("utf-8", "replace"))
