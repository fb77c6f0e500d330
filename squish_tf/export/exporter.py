"""Every export format of one model directory, written together with a manifest.

`export_all` writes into a temporary directory beside the target and renames
it at the end, so a failed or killed export leaves nothing half-written, then
`export.json` records what was written: files, bytes, parity with the Keras
model and accuracy.

Every format of a SqueezeNet-family model is BN-folded: a model trained with
batch norm is exported as `batch_norm.deployed_model` (each batch norm folded
into its convolution's kernel and bias), so the SavedModel, every TFLite file
(fp32, fp16, dynamic, int8) and the Jetson graph hold plain conv + bias + ReLU,
exactly the `spec.params()` weights. QAT is the exception by design: it
fine-tunes the tf_keras twin with its batch norms, as tfmot's
Conv2D + BatchNormalization + ReLU pattern expects, and the converter folds
them into the int8 convolutions. Parity is always measured against the
trained Keras model itself, so it covers the folding. Foreign models (the
baselines, no spec.json) are exported as they are.

Parity and accuracy use the same inputs for every format: test images as
uint8 pixels (what a camera gives), or validation images when the source has
no test split, or seeded random pixels when no data is given. Parity is
measured on `PARITY_IMAGES` of them; accuracy on up to `max_eval_images`.
The manifest says which (`parity_source`, `data.accuracy_split`).
"""

import dataclasses
import gzip
import os
import shutil
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.export import formats as formats_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.export import qat as qat_lib  # tfmot itself is imported lazily, when used
from squish_tf.export import saved_model as saved_model_lib
from squish_tf.export.writers import (
  CALIBRATION_IMAGES,
  MAX_EVAL_IMAGES,
  PARITY_IMAGES,
  Export,
  ExportData,
  ExportOptions,
  as_float,
  parity,
  walk_files,
)
from squish_tf.export.writers import accuracy as accuracy_of
from squish_tf.net import batch_norm, model_io
from squish_tf.net import spec as spec_lib
from squish_tf.net.describe import spec_or_foreign

# The package's own formats, as the registry lists them (`formats.names()` adds any
# registered since; the registry is what every check below reads).
FORMATS = formats_lib.names()
DATA_FORMATS = tuple(f.name for f in formats_lib.REGISTRY if f.needs_data)  # training images
SPEC_FORMATS = tuple(f.name for f in formats_lib.REGISTRY if f.needs_spec)  # a SqueezeNet spec
TFLITE_FORMATS = tuple(f.name for f in formats_lib.REGISTRY if f.tflite)
MANIFEST_FILE = "export.json"
LABELS_FILE = "labels.txt"
MANIFEST_VERSION = records.MANIFEST_VERSION


# The format checks live with the registry, which needs no TensorFlow (`job.preflight` runs
# them before TensorFlow loads); they are this module's names too.
NO_DATA, has_data = formats_lib.NO_DATA, formats_lib.has_data
available_formats, parse_formats = formats_lib.available_formats, formats_lib.parse_formats


def load_export_data(config: data_config_lib.DataConfig,
                     calibration_images: int = CALIBRATION_IMAGES,
                     max_eval_images: int = MAX_EVAL_IMAGES) -> ExportData:
  """Draws the export's images through `squish_tf.data`.

  Calibration images come from the training split with augmentation off;
  QAT fine-tunes on the training pipeline as `config` says (augmented by
  default). Parity and accuracy images come from the test split
  (`data.load_test`), the split every reported accuracy is on; a source
  without one (or a data module without `load_test`) falls back to the
  validation split, and `description["accuracy_split"]` says which.
  """
  if config.augment:
    # Two pipelines, one cache: the plain one is read once (200 calibration
    # images, and validation only as the fallback eval split), so it keeps
    # nothing; QAT's augmented one caches as `config` says.
    plain_train, val_ds, info = data_lib.load(
        dataclasses.replace(config, augment=False, cache=data_config_lib.NONE))
    train_ds = data_lib.load(config)[0]
  else:
    plain_train, val_ds, info = data_lib.load(config)
    train_ds = plain_train
  calibration, _ = images_lib.take_images(plain_train, calibration_images)
  eval_ds, eval_split, test_count, fallback = _eval_split(config, val_ds)
  eval_images, eval_labels = images_lib.take_images(eval_ds, max_eval_images)
  description = {"dataset": info.name, "image_size": info.image_size,
                 "train_count": info.train_count, "validation_count": info.validation_count,
                 "test_count": test_count, "augment_for_qat": bool(config.augment),
                 "accuracy_split": eval_split}
  if fallback:
    description["accuracy_split_reason"] = fallback
  return ExportData(
      calibration_images=calibration, train_ds=train_ds, eval_images=eval_images,
      eval_labels=eval_labels, class_names=tuple(info.class_names), description=description,
      eval_split=eval_split)


def _eval_split(config: data_config_lib.DataConfig, val_ds: tf.data.Dataset
                ) -> Tuple[tf.data.Dataset, str, Optional[int], Optional[str]]:
  """(dataset, split name, test count, why not the test split) of the export's eval images."""
  try:
    test_ds, test_info = data_lib.load_test(config)
  except ValueError as error:  # a source without a test split
    return val_ds, "validation", None, f"no test split: {error}"
  return test_ds, "test", test_info.test_count, None


def export_all(model_dir: str,
               export_dir: Optional[str] = None,
               formats: Union[None, str, Sequence[str]] = None,
               data_config: Optional[data_config_lib.DataConfig] = None,
               overwrite: bool = False,
               data: Optional[ExportData] = None,
               qat_result: Optional[Callable[[], Dict[str, Any]]] = None,
               **options: Any) -> Dict[str, Any]:
  """Exports a trained or evolved model directory to every requested format.

  Args:
    model_dir: a model directory (model.keras, spec.json, metrics.json).
    export_dir: where the export goes; default `<model_dir>/export`.
    formats: comma-separated names or a sequence of registered formats
      (`formats.names()`); None: all this machine makes (`available_formats`).
    data_config: the data flags; None or dataset "none" means no data, which
      rules out int8 and qat_int8 and makes parity use random pixels.
    overwrite: replace an existing export_dir; otherwise it is refused.
    data: images already at hand (tests, the main job); overrides data_config.
    qat_result: returns `qat_int8_artefact`'s result for this model, made
      elsewhere (the main job runs QAT in a worker while this process converts
      the other formats); called when qat_int8's turn comes. None: QAT here.
    **options: `ExportOptions` fields by keyword: qat_epochs, qat_learning_rate,
      calibration_images, max_eval_images, num_threads, verbose.

  Returns:
    The manifest written to `<export_dir>/export.json`.

  Raises:
    ValueError: unknown format, no model in model_dir, int8/qat_int8 without
      data, an existing export_dir without overwrite, data whose image size is
      not the model's, TF-TRT on a TensorFlow without TensorRT.
    TypeError: an option ExportOptions does not have.
  """
  settings = ExportOptions(**options)
  with_data = data is not None or has_data(data_config)
  names = parse_formats(formats, with_data)
  spec = spec_or_foreign(model_dir)
  export_dir = export_dir or os.path.join(model_dir, "export")
  _check_request(model_dir, export_dir, names, spec, overwrite, settings.qat_epochs)
  if data is None and with_data:
    _check_image_size(data_config.image_size, spec, "--image_size")
    data = load_export_data(data_config, settings.calibration_images, settings.max_eval_images)
  if data is not None:
    _check_image_size(int(data.eval_images.shape[1]), spec, "the data's image size")
    if "qat_int8" in names and data.train_ds is None:
      raise ValueError("qat_int8 fine-tunes on training data, but the ExportData given has no "
                       "train_ds; add one or leave qat_int8 out.")
  model, _, metrics = model_io.load_model_dir(model_dir, require_spec=False)
  with files_lib.atomic_path(export_dir) as work:
    os.makedirs(work)
    export = _start_export(work, model, spec, _class_names(metrics, data, spec), data, settings,
                           qat_result)
    manifest = _manifest_head(model_dir, export_dir, export)
    manifest["formats"] = _write_formats(export, names)
    if "saved_model" not in names:
      shutil.rmtree(export.saved_dir)  # only the converters' source
    manifest["files"] = dict(walk_files(work))
    files_lib.write_json(os.path.join(work, MANIFEST_FILE), manifest)
  return manifest


def _check_request(model_dir: str, export_dir: str, names: Sequence[str], spec,
                   overwrite: bool, qat_epochs: int) -> None:
  """Refuses, before anything is loaded or written, an export that cannot be made."""
  if not isinstance(spec, spec_lib.NetSpec):
    needs_spec = [name for name in names if formats_lib.lookup(name).needs_spec]
    if needs_spec:
      others = [f.name for f in formats_lib.REGISTRY if not f.needs_spec]
      raise ValueError(f"Formats {needs_spec} need a SqueezeNet-family model (spec.json) but "
                       f"{model_dir!r} holds another Keras model; export it to "
                       f"{', '.join(others)} only.")
  if not os.path.isfile(os.path.join(model_dir, model_io.MODEL_FILE)):
    raise ValueError(f"{model_dir!r} holds no {model_io.MODEL_FILE}: there is no model to "
                     "export. Pass the --model_dir of a finished training or evolution run.")
  if os.path.exists(export_dir) and not overwrite:
    raise ValueError(f"Export directory {export_dir!r} already exists; pass --overwrite to "
                     "replace it, or choose another --export_dir.")
  if "qat_int8" in names and qat_epochs < 1:
    raise ValueError(f"qat_int8 needs --qat_epochs >= 1 (the quantizers' ranges are learned "
                     f"while fine-tuning), got {qat_epochs}.")


def _start_export(work: str, model, spec, class_names: Tuple[str, ...],
                  data: Optional[ExportData], options: ExportOptions,
                  qat_result: Optional[Callable[[], Dict[str, Any]]]) -> Export:
  """labels.txt and the BN-folded SavedModel under `work`, and the Keras model's outputs.

  Parity and accuracy images: the data's held-out ones, or seeded random pixels.
  """
  if data is not None and len(data.eval_images):
    eval_images, eval_labels = images_lib.as_pixels(data.eval_images), data.eval_labels
  else:
    eval_images = np.random.default_rng(0).integers(
        0, 256, (PARITY_IMAGES,) + spec.input_shape, dtype=np.uint8)
    eval_labels = None
  # What every format but QAT is made from: batch norm folded (foreign models as they are).
  deployed, deployed_spec = batch_norm.for_export(model, spec)
  keras_eval = np.asarray(model.predict(eval_images.astype(np.float32), batch_size=64,
                                        verbose=0), np.float32)
  labels_text = jetson_lib.labels_text(class_names)  # also in every .tflite (metadata)
  files_lib.write_text(os.path.join(work, LABELS_FILE), labels_text)
  saved_dir = os.path.join(work, saved_model_lib.DIRECTORY)
  saved_model_lib.write_saved_model(deployed, deployed_spec, saved_dir)
  return Export(work=work, model=model, spec=spec, saved_dir=saved_dir, labels_text=labels_text,
                class_names=class_names, data=data, eval_images=eval_images,
                eval_labels=eval_labels, keras_eval=keras_eval, options=options,
                qat_result=qat_result)


def _manifest_head(model_dir: str, export_dir: str, export: Export) -> Dict[str, Any]:
  """export.json's description of the model, the data and the Keras model's accuracy."""
  spec, data = export.spec, export.data
  return {
      "version": MANIFEST_VERSION,
      "model_dir": os.path.abspath(model_dir),
      "export_dir": os.path.abspath(export_dir),
      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "tensorflow": tf.__version__,
      "model": {"name": spec.name, "params": spec.params(), "macs": spec.macs(),
                "input_shape": list(spec.input_shape), "num_classes": spec.num_classes,
                "keras_bytes": os.path.getsize(os.path.join(model_dir, model_io.MODEL_FILE)),
                "batch_norm_folded": bool(getattr(spec, "batch_norm", False))},
      "class_names": list(export.class_names),
      "data": None if data is None else {
          **data.description, "accuracy_split": data.eval_split,
          "calibration_images": int(len(data.calibration_images)),
          "eval_images": int(len(export.eval_images))},
      "parity_source": data.eval_split if data is not None and len(data.eval_images)
                       else "random_pixels",
      "parity_images": int(len(export.parity_images)),
      "keras": {"accuracy": accuracy_of(export.keras_eval, export.eval_labels)},
  }


def _write_formats(export: Export, names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
  """Each format's writer, in registration order with the `last` ones after the others.

  Returns:
    {format: manifest entry}, in registration order; a .tflite entry also gives its
    bytes against fp32's when fp32 was written.
  """
  chosen = [formats_lib.lookup(name) for name in formats_lib.names() if name in names]
  written = {f.name: f.writer()(export, f.name)
             for f in sorted(chosen, key=lambda f: f.last)}  # stable: registration order
  entries = {f.name: written[f.name] for f in chosen}
  fp32 = entries.get("fp32")
  for f in chosen:
    if fp32 and f.tflite:
      entries[f.name]["bytes_vs_fp32"] = entries[f.name]["bytes"] / fp32["bytes"]
  return entries


def qat_int8_artefact(model_dir: str,
                      data_config: data_config_lib.DataConfig,
                      qat_epochs: int = 1,
                      qat_learning_rate: float = qat_lib.DEFAULT_LEARNING_RATE,
                      calibration_images: int = CALIBRATION_IMAGES,
                      verbose: Any = 0) -> Dict[str, Any]:
  """QAT of `model_dir`'s model on its own: what `export_all(qat_result=...)` takes.

  Loads the model and the export's training pipeline and calibration images
  (the same images `load_export_data` gives `export_all`), so a worker
  process can run it from picklable arguments while another process
  converts the other formats. Importing tfmot switches tf.keras to tf_keras
  in the process that runs it.

  Returns:
    `qat_lib.qat_int8_tflite`'s result: {"tflite", "history", "epochs", "learning_rate"}.
  """
  if qat_epochs < 1:
    raise ValueError(f"qat_int8 needs --qat_epochs >= 1 (the quantizers' ranges are learned "
                     f"while fine-tuning), got {qat_epochs}.")
  model, spec, _ = model_io.load_model_dir(model_dir)
  _check_image_size(data_config.image_size, spec, "--image_size")
  data = load_export_data(data_config, calibration_images, max_eval_images=1)
  return qat_lib.qat_int8_tflite(model, spec, data.train_ds, qat_epochs,
                                 as_float(data.calibration_images),
                                 learning_rate=qat_learning_rate, verbose=verbose)


def is_complete(export_dir: str) -> bool:
  """True when `export_dir` holds a manifest and every file it lists, at its recorded size."""
  manifest = files_lib.optional_read_json(os.path.join(export_dir, MANIFEST_FILE))
  if not manifest or not manifest.get("files"):
    return False
  return all(os.path.isfile(os.path.join(export_dir, path)) and
             os.path.getsize(os.path.join(export_dir, path)) == size
             for path, size in manifest["files"].items())


def gzip_size(path: str) -> int:
  """Bytes of `path` gzip-compressed (level 9): what sparse weights save on the wire."""
  with open(path, "rb") as handle:
    return len(gzip.compress(handle.read(), compresslevel=9))


def summary_table(manifest: Union[Dict[str, Any], records.ExportManifest]) -> str:
  """One line per format: bytes, parity and accuracy (for the mains and reports)."""
  manifest = records.ExportManifest.coerce(manifest)
  lines = [f"{'format':<12} {'bytes':>12} {'max|diff|':>10} {'top1 agree':>10} {'accuracy':>9}"]
  keras_accuracy = (manifest.keras or {}).get("accuracy")
  lines.append(f"{'keras':<12} {(manifest.model or {}).get('keras_bytes', 0):>12,} {'':>10} "
               f"{'':>10} {_fmt(keras_accuracy):>9}")
  for name, entry in manifest.formats.items():
    parity = entry.parity or {}
    lines.append(f"{name:<12} {entry.bytes or 0:>12,} "
                 f"{_fmt(parity.get('max_abs_diff'), '.1e'):>10} "
                 f"{_fmt(parity.get('top1_agreement')):>10} {_fmt(entry.accuracy):>9}")
  return "\n".join(lines)


def _check_image_size(size: int, spec: spec_lib.NetSpec, what: str) -> None:
  height, width, _ = spec.input_shape
  if (size, size) != (height, width):
    raise ValueError(f"{what} is {size}, but the model takes {height}x{width} images; pass "
                     f"--image_size={height} so calibration and QAT see what the model expects.")


def _class_names(metrics: Dict[str, Any], data: Optional[ExportData],
                 spec: spec_lib.NetSpec) -> Tuple[str, ...]:
  for names in (metrics.get("class_names"), data.class_names if data is not None else None):
    if names and len(names) == spec.num_classes:
      return tuple(str(name) for name in names)
  return tuple(f"class_{i}" for i in range(spec.num_classes))


def _fmt(value: Optional[float], spec: str = ".4f") -> str:
  return "-" if value is None else format(value, spec)
