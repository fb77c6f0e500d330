"""Model directories on disk, written atomically.

A model directory holds `model.keras`, `spec.json` and `metrics.json`.
`metrics.json` is written last, so its presence means the directory is
complete. Every file goes to a temporary name beside its target and is renamed
into place, so a killed process never leaves a half-written artefact.
"""

import os
from typing import Any, Dict, Optional, Tuple

from squish_tf.files import atomic_path, read_json, write_json, write_text
from squish_tf.net import spec as spec_lib

MODEL_FILE = "model.keras"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
FLAGS_FILE = "flags.txt"


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
