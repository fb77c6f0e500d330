"""A model directory's artefacts: which exist (keras, SavedModel, every .tflite), their
deployed bytes, and the model fields (params, MACs, size) the benchmark records beside them."""

import fnmatch
import os
from typing import Any, Dict, Optional, Sequence

from squish_tf.export import formats as formats_lib
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io
from squish_tf.runtime import litert as litert_lib

SAVED_MODEL_DIR = "saved_model"


# The export's standard artefacts, in the order tables list them (the Keras model, then
# each built-in export format's file: `formats.artefact_order()` adds any registered
# since). Any other `<name>.tflite` in an export dir is benchmarked too, as `tflite_<name>`.
ARTEFACT_ORDER = formats_lib.artefact_order()


def artefact_name(tflite_file: str) -> str:
  """`model_int8.tflite` -> `tflite_int8`; `other.tflite` -> `tflite_other`."""
  stem = os.path.basename(tflite_file)[:-len(".tflite")]
  if stem.startswith("model_"):
    stem = stem[len("model_"):]
  return f"tflite_{stem}"


def find_artefacts(model_dir: Optional[str],
                   export_dir: Optional[str] = None,
                   formats: Optional[Sequence[str]] = None) -> Dict[str, str]:
  """The benchmarkable artefacts of a model, as {name: path}, in table order.

  Args:
    model_dir: a model directory (with or without `spec.json`: any dir the
      job writes); its `model.keras` is the `keras` artefact. None when only
      an export is benchmarked.
    export_dir: an export directory (`saved_model/`, `*.tflite`), or None for
      none. When given it must exist and hold at least one of them.
    formats: names or fnmatch patterns to keep; None keeps all.

  Raises:
    ValueError: the export dir is missing or empty, or nothing is left to
      benchmark (the message lists what was found).
  """
  found: Dict[str, str] = {}
  if model_dir is not None:
    keras_path = os.path.join(model_dir, model_io.MODEL_FILE)
    if os.path.isfile(keras_path):
      found["keras"] = keras_path
  if export_dir is not None:
    if not os.path.isdir(export_dir):
      raise ValueError(f"Export directory {export_dir!r} does not exist. Export the model first "
                       "(squish-export), or pass the --export_dir that holds its saved_model/ and "
                       ".tflite files.")
    exported = _exported_files(export_dir)
    if not exported:
      listing = sorted(os.listdir(export_dir))
      raise ValueError(f"Export directory {export_dir!r} holds nothing to benchmark: expected "
                       f"{SAVED_MODEL_DIR}/ (with saved_model.pb) or *.tflite files, found "
                       f"{listing}. Re-run the export, or pass the right --export_dir.")
    found.update(exported)
  if not found:
    holds = (f"holds {sorted(os.listdir(model_dir))}" if model_dir and os.path.isdir(model_dir)
             else "does not exist")
    raise ValueError(f"Nothing to benchmark: model dir {model_dir!r} {holds}, with no "
                     f"{model_io.MODEL_FILE}, and no export directory was given. Pass a model dir "
                     "the job wrote (ancestor/, squishednet/, baselines/<name>/, ...) or an "
                     "--export_dir with .tflite files.")
  ordered = {name: found[name] for name in formats_lib.artefact_order() if name in found}
  ordered.update({name: path for name, path in found.items() if name not in ordered})
  if formats is None:
    return ordered
  kept = {name: path for name, path in ordered.items()
          if any(fnmatch.fnmatchcase(name, pattern) for pattern in formats)}
  if not kept:
    raise ValueError(f"No artefact matches formats {list(formats)}; found {list(ordered)}. "
                     "Pass some of those names (fnmatch patterns such as tflite_* work too).")
  return kept


def _exported_files(export_dir: Optional[str]) -> Dict[str, str]:
  """{artefact name: path} of an export dir's SavedModel and .tflite files ({} for none)."""
  if export_dir is None or not os.path.isdir(export_dir):
    return {}
  exported: Dict[str, str] = {}
  saved_model = os.path.join(export_dir, SAVED_MODEL_DIR)
  if os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
    exported["saved_model"] = saved_model
  for name in sorted(os.listdir(export_dir)):
    path = os.path.join(export_dir, name)
    if name.endswith(".tflite") and os.path.isfile(path):
      exported[artefact_name(name)] = path
  return exported


def artefact_bytes(path: str) -> int:
  """A file's size, or the sum over a directory's files (a SavedModel)."""
  if os.path.isfile(path):
    return os.path.getsize(path)
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
  return total


# What benchmark.json records of a model beside its artefacts (`describe_model`'s keys).
MODEL_FIELDS = ("params", "size_mb", "macs", "image_size")


def describe_model(model_dir: Optional[str], export_dir: Optional[str] = None) -> Dict[str, Any]:
  """Size, MACs, input and classes of a model dir, whatever made it.

  A SqueezeNet's figures come from its `spec.json` (analytic). Any other
  model dir the job writes (the MobileNetV3 baseline: `model.keras` and
  `metrics.json`, no spec) has them read off its Keras model: deployed
  parameters (batch norm folded), their float32 size, and the MACs of its
  convolutions and dense layers. With no Keras model either, the first
  .tflite file of `export_dir` gives the input size and classes; params and
  MACs are then unknown (None).

  Args:
    model_dir: a model directory, or None when only an export is benchmarked.
    export_dir: its export directory, or None.

  Returns:
    {"params", "size_mb", "macs", "image_size": [H, W, C], "num_classes",
     "source": "spec.json" | "model.keras" | a .tflite path | None}.

  Raises:
    ValueError: `model_dir` does not exist, or neither it nor `export_dir`
      holds a model (the message lists what it holds).
  """
  unknown: Dict[str, Any] = {"params": None, "size_mb": None, "macs": None, "image_size": None,
                             "num_classes": None, "source": None}
  if model_dir is not None:
    if not os.path.isdir(model_dir):
      model_io.read_spec(model_dir)  # raises: the directory does not exist, and what to pass
    if os.path.isfile(os.path.join(model_dir, model_io.SPEC_FILE)):
      spec = model_io.read_spec(model_dir)
      return {"params": spec.params(), "size_mb": spec.size_mb(), "macs": spec.macs(),
              "image_size": list(spec.input_shape), "num_classes": spec.num_classes,
              "source": model_io.SPEC_FILE}
    keras_path = os.path.join(model_dir, model_io.MODEL_FILE)
    if os.path.isfile(keras_path):
      return _describe_keras(keras_path)
  tflite = sorted(path for name, path in (_exported_files(export_dir) or {}).items()
                  if name.startswith("tflite_"))
  if tflite:
    preferred = [path for path in tflite if artefact_name(path) == "tflite_fp32"]
    runner = litert_lib.LiteRTRunner((preferred or tflite)[0], num_threads=1)
    return dict(unknown, image_size=list(runner.input_shape),
                num_classes=int(runner.output_details["shape"][-1]),
                source=(preferred or tflite)[0])
  if model_dir is None:
    return unknown
  raise ValueError(f"{model_dir!r} holds no model: expected {model_io.MODEL_FILE} (with "
                   f"{model_io.SPEC_FILE} for a SqueezeNet), or an export directory with .tflite "
                   f"files; it holds {sorted(os.listdir(model_dir))}. Pass a model dir the job "
                   "wrote (ancestor/, squishednet/, generations/gen_NNN/cand_MM/, "
                   "baselines/<name>/), or re-run the command that makes it.")


def _describe_keras(path: str) -> Dict[str, Any]:
  """`describe_model` of a Keras model that is not a NetSpec (e.g. keras.applications)."""
  import keras  # pylint: disable=g-import-not-at-top

  from squish_tf.net import describe as describe_lib  # pylint: disable=g-import-not-at-top

  model = keras.models.load_model(path, compile=False)
  params = describe_lib.deployed_params(model)
  return {"params": params, "size_mb": metrics_lib.size_mb(params),
          "macs": describe_lib.keras_macs(model),  # pylint: disable=protected-access
          "image_size": [int(v) for v in model.input_shape[1:]],
          "num_classes": int(model.output_shape[-1]), "source": model_io.MODEL_FILE}
