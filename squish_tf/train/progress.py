"""Training progress that says what is training.

Evolution fine-tunes offspring in worker processes that share one console, and
the main job trains a polish and several baselines: a bare "Epoch 3/4" does
not say whose. `Progress` prints Keras' own progress bar (`keras.utils.Progbar`)
on a terminal and one line per epoch elsewhere (a log file, CI), each starting
with a label such as `gen_002/cand_01`. A fit of more than `MAX_LINES` epochs
(small data trains hundreds) shows one bar over its epochs on a terminal, and
elsewhere a line every `line_every` epochs with the time left; the full
per-epoch history is in the training's logs (TensorBoard, history.csv).
"""

import sys
import time
from typing import Any, Dict, Optional

import keras

# Shown in this order when present; anything else Keras logs follows.
_FIRST = ("loss", "top1", "val_loss", "val_top1")
# The most progress lines (or per-epoch bars) one fit prints.
MAX_LINES = 20


def line_every(epochs: Optional[int]) -> int:
  """Epochs between progress lines: 1 up to MAX_LINES epochs, then at most MAX_LINES lines."""
  return max(1, -(-(epochs or 0) // MAX_LINES))


class Progress(keras.callbacks.Callback):
  """Per-epoch progress with a label.

  Args:
    label: what is training ("ancestor", "gen_002/cand_01", "polish", ...).
    steps: batches per epoch, for the progress bar (None: unknown).
    tty: a live progress bar (True) or one line per epoch (False).
  """

  def __init__(self, label: str, steps: Optional[int], tty: bool = False):
    super().__init__()
    self.label = label
    self.steps = steps
    self.tty = tty
    self._bar = None
    self._start = 0.0
    self._epochs = None

  def on_train_begin(self, logs=None):
    self._epochs = self.params.get("epochs") if self.params else None
    self._every = line_every(self._epochs)
    self._fit_start = time.perf_counter()
    self._first_epoch = None
    if self.tty and self._every > 1:  # one bar over the epochs
      print(f"{self.label}: {self._epochs} epochs", flush=True)
      self._bar = keras.utils.Progbar(self._epochs, verbose=1, unit_name="epoch")

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()
    if self._first_epoch is None:
      self._first_epoch = epoch  # a resumed fit starts past 0
    if self.tty and self._every == 1:
      print(f"{self.label} epoch {epoch + 1}/{self._epochs}", flush=True)
      self._bar = keras.utils.Progbar(self.steps, verbose=1, unit_name="step")

  def on_train_batch_end(self, batch, logs=None):
    if self._bar is not None and self._every == 1:
      self._bar.update(batch + 1, values=_values(logs))

  def on_epoch_end(self, epoch, logs=None):
    if self._bar is not None and self._every > 1:
      self._bar.update(epoch + 1, values=_values(logs), finalize=epoch + 1 == self._epochs)
      return
    if self._bar is not None:
      self._bar.update(self.steps or 0, values=_values(logs), finalize=True)
      self._bar = None
      return
    last = self._epochs is not None and epoch + 1 >= self._epochs
    if self._every > 1 and (epoch + 1) % self._every and not last and epoch != self._first_epoch:
      return
    line = format_epoch(self.label, epoch, self._epochs, time.perf_counter() - self._start, logs)
    if self._every > 1 and not last:
      done = epoch + 1 - self._first_epoch
      left = (time.perf_counter() - self._fit_start) / done * (self._epochs - epoch - 1)
      line += f" - ETA {format_duration(left)}"
    print(line, file=sys.stdout, flush=True)


def format_duration(seconds: float) -> str:
  """"42s", "3m05s", "1h02m"."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_epoch(label: str, epoch: int, epochs: Optional[int], seconds: float,
                 logs: Optional[Dict[str, Any]]) -> str:
  """"gen_002/cand_01 epoch 2/4 - 3s - loss 0.4127 - top1 0.8813"."""
  parts = [f"{label} epoch {epoch + 1}/{epochs or '?'}", f"{seconds:.0f}s"]
  logs = dict(logs or {})
  keys = [k for k in _FIRST if k in logs] + sorted(k for k in logs if k not in _FIRST)
  for key in keys:
    if key == "learning_rate":
      continue
    try:
      parts.append(f"{key} {float(logs[key]):.4f}")
    except (TypeError, ValueError):
      continue
  return " - ".join(parts)


def _values(logs):
  return [(key, float(value)) for key, value in (logs or {}).items()
          if key != "learning_rate" and _is_number(value)]


def _is_number(value) -> bool:
  try:
    float(value)
  except (TypeError, ValueError):
    return False
  return True
