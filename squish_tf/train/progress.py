"""Training progress that says what is training.

Evolution fine-tunes offspring in worker processes that share one console, and
the main job trains a polish and several baselines: a bare "Epoch 3/4" does
not say whose. `Progress` prints Keras' own progress bar (`keras.utils.Progbar`)
on a terminal and exactly one line per epoch elsewhere (a log file, CI), each
starting with a label such as `gen_002/cand_01`.
"""

import sys
import time
from typing import Any, Dict, Optional

import keras

# Shown in this order when present; anything else Keras logs follows.
_FIRST = ("loss", "top1", "val_loss", "val_top1")


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

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()
    if self.tty:
      print(f"{self.label} epoch {epoch + 1}/{self._epochs}", flush=True)
      self._bar = keras.utils.Progbar(self.steps, verbose=1, unit_name="step")

  def on_train_batch_end(self, batch, logs=None):
    if self._bar is not None:
      self._bar.update(batch + 1, values=_values(logs))

  def on_epoch_end(self, epoch, logs=None):
    if self._bar is not None:
      self._bar.update(self.steps or 0, values=_values(logs), finalize=True)
      self._bar = None
      return
    line = format_epoch(self.label, epoch, self._epochs, time.perf_counter() - self._start, logs)
    print(line, file=sys.stdout, flush=True)


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
