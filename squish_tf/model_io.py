"""Model directories on disk, written atomically.

A model directory holds `model.keras`, `spec.json` and `metrics.json`.
`metrics.json` is written last, so its presence means the directory is
complete. Every file goes to a temporary name beside its target and is renamed
into place, so a killed process never leaves a half-written artefact.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, Optional, Tuple

from squish_tf import spec as spec_lib

MODEL_FILE = "model.keras"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
FLAGS_FILE = "flags.txt"


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


def save_keras(model, path: str) -> None:
  """Saves architecture and weights (no optimizer) to a temporary `.keras` file, then renames.

  A compiled model would carry its optimizer's state into the file, and one
  recompiled for evaluation carries an unbuilt optimizer that warns on every
  load; artefacts are for inference and fine-tuning starts a fresh optimizer.
  """
  import keras  # pylint: disable=g-import-not-at-top

  if getattr(model, "optimizer", None) is not None:
    # A new functional model over the same layers: same names and weights, no
    # compile state (clone_model would carry the optimizer over).
    model = keras.Model(model.input, model.output, name=model.name)
  with atomic_path(path, suffix=".keras") as temp:
    model.save(temp)


def write_model_dir(model_dir: str, model, spec: spec_lib.NetSpec,
                    metrics: Dict[str, Any]) -> None:
  """Writes model.keras, spec.json, then metrics.json (the completion marker)."""
  os.makedirs(model_dir, exist_ok=True)
  save_keras(model, os.path.join(model_dir, MODEL_FILE))
  write_text(os.path.join(model_dir, SPEC_FILE), spec.to_json())
  write_json(os.path.join(model_dir, METRICS_FILE), metrics)


def is_complete(model_dir: str) -> bool:
  return all(os.path.isfile(os.path.join(model_dir, name))
             for name in (MODEL_FILE, SPEC_FILE, METRICS_FILE))


def read_spec(model_dir: str) -> spec_lib.NetSpec:
  """The spec of a model dir, with errors that say what is wrong and what to do."""
  path = os.path.join(model_dir, SPEC_FILE)
  if not os.path.isdir(model_dir):
    raise ValueError(f"Model directory {model_dir!r} does not exist; pass the --model_dir of a "
                     "trained model (made by squish-train or squish-synthesize).")
  if not os.path.isfile(path):
    raise ValueError(f"{model_dir!r} holds no {SPEC_FILE}; it is not a squish_tf model directory "
                     "(expected model.keras, spec.json, metrics.json).")
  try:
    return spec_lib.load_spec(path)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from None


def load_model_dir(model_dir: str, compile: bool = False,
                   require_spec: bool = True) -> Tuple[Any, Optional[spec_lib.NetSpec],
                                                       Dict[str, Any]]:
  """(Keras model, spec, metrics) of a complete model directory.

  With `require_spec=False` a directory holding a Keras model that is not a
  SqueezeNet (a baseline such as MobileNetV3) loads with spec None.
  """
  import keras  # pylint: disable=g-import-not-at-top

  has_spec = os.path.isfile(os.path.join(model_dir, SPEC_FILE))
  spec = read_spec(model_dir) if has_spec or require_spec else None
  model_path = os.path.join(model_dir, MODEL_FILE)
  if not os.path.isfile(model_path):
    raise ValueError(f"{model_dir!r} holds no {MODEL_FILE}: training did not finish there. "
                     "Re-run the command that made it to resume, or pick another directory.")
  metrics_path = os.path.join(model_dir, METRICS_FILE)
  metrics = read_json(metrics_path) if os.path.isfile(metrics_path) else {}
  model = keras.models.load_model(model_path, compile=compile)
  return model, spec, metrics


def check_same_spec(model_dir: str, spec: spec_lib.NetSpec) -> None:
  """Refuses a model dir that already holds a model of another architecture."""
  path = os.path.join(model_dir, SPEC_FILE)
  if not os.path.isfile(path):
    return
  existing = read_spec(model_dir)
  if existing.architecture_key() != spec.architecture_key():
    old, new = existing.architecture_key(), spec.architecture_key()
    differing = sorted(k for k in new if old.get(k) != new.get(k))
    details = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} asked" for k in differing)
    raise ValueError(f"--model_dir {model_dir!r} holds a model of another spec ({details}). "
                     "Use a new --model_dir, or delete that one to start over.")


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
