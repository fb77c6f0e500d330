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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.export import metadata as metadata_lib
from squish_tf.export import micro as micro_lib
from squish_tf.export import qat as qat_lib  # tfmot itself is imported lazily, when used
from squish_tf.export import saved_model as saved_model_lib
from squish_tf.export import tflite as tflite_lib
from squish_tf.export import tftrt as tftrt_lib
from squish_tf.export.config import CALIBRATION_IMAGES, FORMATS
from squish_tf.net import batch_norm, model_io
from squish_tf.net import spec as spec_lib
from squish_tf.net.describe import spec_or_foreign
from squish_tf.runtime import litert as litert_lib

DATA_FORMATS = ("int8", "qat_int8")  # need training images
SPEC_FORMATS = ("qat_int8", "jetson")  # need a SqueezeNet spec (tf_keras twin, layer names)
TFLITE_FORMATS = ("fp32", "fp16", "dynamic", "int8", "qat_int8")
NO_DATA = ("", "none")  # --dataset values meaning "no data"
MANIFEST_FILE = "export.json"
LABELS_FILE = "labels.txt"
MANIFEST_VERSION = records.MANIFEST_VERSION
PARITY_IMAGES = 64
MAX_EVAL_IMAGES = 2000
REFERENCE_IMAGES = 8  # shipped in the Jetson bundle


@dataclasses.dataclass
class ExportData:
  """What an export needs from a dataset.

  Attributes:
    calibration_images: uint8 [N, H, W, 3] training images without
      augmentation (the int8 converters' representative dataset).
    train_ds: batched (float32 pixels, int32 labels) training pipeline for
      QAT fine-tuning (augmented or not, as the data flags say).
    eval_images: uint8 [M, H, W, 3] held-out images (parity and accuracy).
    eval_labels: int32 [M] their labels.
    class_names: the dataset's class names.
    description: what was loaded, for the manifest.
    eval_split: which split the eval images are from ("test" or
      "validation"); the manifest's `parity_source` and
      `data.accuracy_split`.
  """

  calibration_images: np.ndarray
  train_ds: Optional[tf.data.Dataset]
  eval_images: np.ndarray
  eval_labels: np.ndarray
  class_names: Tuple[str, ...] = ()
  description: Dict[str, Any] = dataclasses.field(default_factory=dict)
  eval_split: str = "validation"


def has_data(data_config: Optional[data_config_lib.DataConfig]) -> bool:
  return data_config is not None and data_config.dataset.strip().lower() not in NO_DATA


def available_formats(with_data: bool = True) -> List[str]:
  """The formats this machine can produce (TF-TRT only where TensorFlow has TensorRT)."""
  return [name for name in FORMATS
          if (name != "tftrt" or tftrt_lib.tensorrt_available())
          and (with_data or name not in DATA_FORMATS)]


def parse_formats(formats: Union[None, str, Sequence[str]], with_data: bool) -> List[str]:
  """Validates a format list ("fp32,int8" or a sequence); None or "" means the default.

  The default is every format this machine can produce, without int8 and
  qat_int8 when there is no data.
  """
  names = formats.split(",") if isinstance(formats, str) else list(formats or ())
  names = [name.strip().lower() for name in names if name.strip()]
  if not names:
    return available_formats(with_data)
  unknown = [name for name in names if name not in FORMATS]
  if unknown:
    raise ValueError(f"Unknown export format(s) {unknown}; known formats are {', '.join(FORMATS)} "
                     "(comma-separated, e.g. --formats=saved_model,int8).")
  if not with_data:
    needs_data = [name for name in names if name in DATA_FORMATS]
    if needs_data:
      raise ValueError(f"Formats {needs_data} need training images (int8 calibration, QAT "
                       "fine-tuning), but no data was given; pass the data flags "
                       "(e.g. --dataset=shapes10 --image_size=<the model's>), or leave these "
                       "formats out.")
  if "tftrt" in names and not tftrt_lib.tensorrt_available():
    raise ValueError(f"Format 'tftrt': {tftrt_lib.unavailable_reason()}")
  return list(dict.fromkeys(name for name in FORMATS if name in names))


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
               qat_epochs: int = 1,
               overwrite: bool = False,
               data: Optional[ExportData] = None,
               qat_learning_rate: float = qat_lib.DEFAULT_LEARNING_RATE,
               calibration_images: int = CALIBRATION_IMAGES,
               max_eval_images: int = MAX_EVAL_IMAGES,
               num_threads: int = tflite_lib.DEFAULT_NUM_THREADS,
               verbose: Any = 0,
               qat_result: Optional[Callable[[], Dict[str, Any]]] = None) -> Dict[str, Any]:
  """Exports a trained or evolved model directory to every requested format.

  Args:
    model_dir: a model directory (model.keras, spec.json, metrics.json).
    export_dir: where the export goes; default `<model_dir>/export`.
    formats: comma-separated names or a sequence from `FORMATS`; None means
      everything this machine can produce (`available_formats`).
    data_config: the data flags; None or dataset "none" means no data, which
      rules out int8 and qat_int8 and makes parity use random pixels.
    qat_epochs: QAT fine-tuning epochs (>= 1 when qat_int8 is exported).
    overwrite: replace an existing export_dir; otherwise it is refused.
    data: images already at hand (tests, the main job); overrides data_config.
    qat_learning_rate: Adam learning rate of QAT fine-tuning.
    calibration_images: representative training images for int8.
    max_eval_images: validation images for the accuracy figures.
    num_threads: LiteRT threads when measuring parity and accuracy.
    verbose: Keras verbosity of QAT fine-tuning.
    qat_result: returns `qat_int8_artefact`'s result for this model, made
      elsewhere (the main job runs QAT in a worker process while this one
      converts the other formats); called when qat_int8's turn comes. None
      runs QAT here.

  Returns:
    The manifest written to `<export_dir>/export.json`.

  Raises:
    ValueError: unknown format, no model in model_dir, int8/qat_int8 without
      data, an existing export_dir without overwrite, data whose image size is
      not the model's, TF-TRT on a TensorFlow without TensorRT.
  """
  with_data = data is not None or has_data(data_config)
  names = parse_formats(formats, with_data)
  spec = spec_or_foreign(model_dir)
  if not isinstance(spec, spec_lib.NetSpec):
    needs_spec = [name for name in names if name in SPEC_FORMATS]
    if needs_spec:
      raise ValueError(f"Formats {needs_spec} need a SqueezeNet-family model (spec.json) but "
                       f"{model_dir!r} holds another Keras model; export it to "
                       f"{', '.join(n for n in FORMATS if n not in SPEC_FORMATS)} only.")
  if not os.path.isfile(os.path.join(model_dir, model_io.MODEL_FILE)):
    raise ValueError(f"{model_dir!r} holds no {model_io.MODEL_FILE}: there is no model to "
                     "export. Pass the --model_dir of a finished training or evolution run.")
  export_dir = export_dir or os.path.join(model_dir, "export")
  if os.path.exists(export_dir) and not overwrite:
    raise ValueError(f"Export directory {export_dir!r} already exists; pass --overwrite to "
                     "replace it, or choose another --export_dir.")
  if "qat_int8" in names and qat_epochs < 1:
    raise ValueError(f"qat_int8 needs --qat_epochs >= 1 (the quantizers' ranges are learned "
                     f"while fine-tuning), got {qat_epochs}.")
  if data is None and with_data:
    _check_image_size(data_config.image_size, spec, "--image_size")
    data = load_export_data(data_config, calibration_images, max_eval_images)
  if data is not None:
    _check_image_size(int(data.eval_images.shape[1]), spec, "the data's image size")
    if "qat_int8" in names and data.train_ds is None:
      raise ValueError("qat_int8 fine-tunes on training data, but the ExportData given has no "
                       "train_ds; add one or leave qat_int8 out.")

  model, _, metrics = model_io.load_model_dir(model_dir, require_spec=False)
  # What every format but QAT is made from: batch norm folded (foreign models as they are).
  deployed, deployed_spec = batch_norm.for_export(model, spec)
  class_names = _class_names(metrics, data, spec)
  if data is not None and len(data.eval_images):
    eval_images, eval_labels = images_lib.as_pixels(data.eval_images), data.eval_labels
    parity_source = data.eval_split
  else:
    eval_images = np.random.default_rng(0).integers(
        0, 256, (PARITY_IMAGES,) + spec.input_shape, dtype=np.uint8)
    eval_labels, parity_source = None, "random_pixels"
  parity_images = eval_images[:PARITY_IMAGES]
  keras_eval = np.asarray(model.predict(eval_images.astype(np.float32), batch_size=64,
                                        verbose=0), np.float32)
  keras_parity = keras_eval[:len(parity_images)]

  manifest: Dict[str, Any] = {
      "version": MANIFEST_VERSION,
      "model_dir": os.path.abspath(model_dir),
      "export_dir": os.path.abspath(export_dir),
      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "tensorflow": tf.__version__,
      "model": {"name": spec.name, "params": spec.params(), "macs": spec.macs(),
                "input_shape": list(spec.input_shape), "num_classes": spec.num_classes,
                "keras_bytes": os.path.getsize(os.path.join(model_dir, model_io.MODEL_FILE)),
                "batch_norm_folded": bool(getattr(spec, "batch_norm", False))},
      "class_names": list(class_names),
      "data": None if data is None else {
          **data.description, "accuracy_split": data.eval_split,
          "calibration_images": int(len(data.calibration_images)),
          "eval_images": int(len(eval_images))},
      "parity_source": parity_source,
      "parity_images": int(len(parity_images)),
      "keras": {"accuracy": _accuracy(keras_eval, eval_labels)},
      "formats": {},
  }

  with files_lib.atomic_path(export_dir) as work:
    os.makedirs(work)
    labels_text = jetson_lib.labels_text(class_names)  # also in every .tflite (metadata)
    files_lib.write_text(os.path.join(work, LABELS_FILE), labels_text)
    saved_dir = os.path.join(work, saved_model_lib.DIRECTORY)
    saved_model_lib.write_saved_model(deployed, deployed_spec, saved_dir)
    if "saved_model" in names:
      manifest["formats"]["saved_model"] = _saved_model_entry(work, saved_dir, parity_images,
                                                              keras_parity)
    for name in ("fp32", "fp16", "dynamic", "int8"):
      if name in names:
        content = tflite_lib.convert_saved_model(
            saved_dir, name, _float(data.calibration_images) if data is not None else None)
        content = metadata_lib.with_metadata(content, labels_text, name=spec.name)
        manifest["formats"][name] = _tflite_entry(work, name, content, eval_images, eval_labels,
                                                  keras_eval, len(parity_images), num_threads)
        if name == "int8":  # what a microcontroller needs, from TFLM itself
          manifest["formats"][name]["micro"] = micro_lib.micro_check(
              os.path.join(work, tflite_lib.FILES[name]), images_lib.as_pixels(eval_images),
              num_threads)
    if "jetson" in names:
      manifest["formats"]["jetson"] = _jetson_entry(work, model, spec, class_names,
                                                    parity_images, keras_parity)
    if "tftrt" in names:
      output = os.path.join(work, tftrt_lib.DIRECTORY)
      tftrt_lib.convert_saved_model(saved_dir, output, "FP16")
      manifest["formats"]["tftrt"] = {"precision": "FP16", **_files_entry(work, [output])}
    if "qat_int8" in names:
      # Last: importing tfmot switches tf.keras to tf_keras for the whole process.
      # The trained model, batch norm and all: tfmot quantizes conv + BN + ReLU as one.
      result = qat_result() if qat_result is not None else qat_lib.qat_int8_tflite(
          model, spec, data.train_ds, qat_epochs, _float(data.calibration_images),
          learning_rate=qat_learning_rate, verbose=verbose)
      content = metadata_lib.with_metadata(result["tflite"], labels_text, name=spec.name)
      entry = _tflite_entry(work, "qat_int8", content, eval_images, eval_labels,
                            keras_eval, len(parity_images), num_threads)
      entry["qat"] = {"epochs": result["epochs"], "learning_rate": result["learning_rate"],
                      "history": result["history"]}
      manifest["formats"]["qat_int8"] = entry
    if "saved_model" not in names:
      shutil.rmtree(saved_dir)  # only the converters' source
    manifest["formats"] = {name: manifest["formats"][name] for name in FORMATS
                           if name in manifest["formats"]}
    fp32 = manifest["formats"].get("fp32")
    for name in TFLITE_FORMATS:
      if fp32 and name in manifest["formats"]:
        manifest["formats"][name]["bytes_vs_fp32"] = manifest["formats"][name]["bytes"] / fp32[
            "bytes"]
    manifest["files"] = {path: size for path, size in _walk_files(work)}
    files_lib.write_json(os.path.join(work, MANIFEST_FILE), manifest)
  return manifest


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
                                 _float(data.calibration_images),
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


def _saved_model_entry(work: str, saved_dir: str, images: np.ndarray,
                       expected: np.ndarray) -> Dict[str, Any]:
  signatures = {}
  for signature in (saved_model_lib.SERVING_DEFAULT, saved_model_lib.SERVING_FLOAT):
    predict = saved_model_lib.load_signature(saved_dir, signature)
    pixels = images if signature == saved_model_lib.SERVING_DEFAULT else _float(images)
    signatures[signature] = parity(predict(pixels), expected)
  worst = max(signatures.values(), key=lambda p: p["max_abs_diff"])
  return {**_files_entry(work, [saved_dir]), "parity": {**worst, "signatures": signatures},
          "signatures": {saved_model_lib.SERVING_DEFAULT: "uint8",
                         saved_model_lib.SERVING_FLOAT: "float32"}}


def _tflite_entry(work: str, name: str, content: bytes, eval_images: np.ndarray,
                  eval_labels: Optional[np.ndarray], keras_eval: np.ndarray, parity_count: int,
                  num_threads: int) -> Dict[str, Any]:
  path = os.path.join(work, tflite_lib.FILES[name])
  files_lib.write_bytes(path, content)
  runner = litert_lib.LiteRTRunner(path, num_threads=num_threads)  # the shared runner
  probabilities = runner.predict(eval_images)
  return {**_files_entry(work, [path]),
          "parity": parity(probabilities[:parity_count], keras_eval[:parity_count]),
          "agreement_all_eval_images": _agreement(probabilities, keras_eval),
          "accuracy": _accuracy(probabilities, eval_labels),
          "io": runner.io_summary(), "ops": runner.op_counts(),
          "metadata": metadata_lib.manifest_entry(content)}


def _jetson_entry(work: str, model, spec: spec_lib.NetSpec, class_names: Sequence[str],
                  images: np.ndarray, expected: np.ndarray) -> Dict[str, Any]:
  """The bundle (write_bundle folds batch norm; its references come from the trained model)."""
  bundle = os.path.join(work, jetson_lib.BUNDLE_DIR)
  result = jetson_lib.write_bundle(model, spec, class_names, bundle,
                                   reference_images=images[:REFERENCE_IMAGES])
  got = jetson_lib.run_graph_def(result["graph_def"], _float(images))
  return {**_files_entry(work, [bundle]), "parity": parity(got, expected), "ops": result["ops"],
          "input": result["input"]["input"], "output": result["input"]["output"]}


def parity(got: np.ndarray, expected: np.ndarray) -> Dict[str, Any]:
  """Max |difference| and top-1 agreement of two probability arrays."""
  got, expected = np.asarray(got, np.float32), np.asarray(expected, np.float32)
  if got.shape != expected.shape:
    raise ValueError(f"Output shape {got.shape} differs from the Keras model's {expected.shape}.")
  return {"max_abs_diff": float(np.abs(got - expected).max()) if got.size else 0.0,
          "top1_agreement": _agreement(got, expected), "images": int(len(got))}


def _agreement(got: np.ndarray, expected: np.ndarray) -> float:
  return float(np.mean(np.argmax(got, 1) == np.argmax(expected, 1))) if len(got) else 0.0


def _accuracy(probabilities: np.ndarray, labels: Optional[np.ndarray]) -> Optional[float]:
  if labels is None or not len(labels):
    return None
  return float(np.mean(np.argmax(probabilities, 1) == np.asarray(labels)))


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


def _float(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32)


def _walk_files(root: str) -> List[Tuple[str, int]]:
  found = []
  for directory, _, files in os.walk(root):
    for name in files:
      path = os.path.join(directory, name)
      found.append((os.path.relpath(path, root), os.path.getsize(path)))
  return sorted(found)


def _files_entry(work: str, paths: Sequence[str]) -> Dict[str, Any]:
  files: Dict[str, int] = {}
  for path in paths:
    if os.path.isdir(path):
      for relative, size in _walk_files(path):
        files[os.path.join(os.path.relpath(path, work), relative)] = size
    else:
      files[os.path.relpath(path, work)] = os.path.getsize(path)
  return {"files": files, "bytes": int(sum(files.values()))}


def _fmt(value: Optional[float], spec: str = ".4f") -> str:
  return "-" if value is None else format(value, spec)
