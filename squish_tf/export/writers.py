"""What one export works from (`Export`), and the writer of each built-in format.

`exporter.export_all` builds an `Export` (the trained model, the BN-folded SavedModel
every converter starts from, the images and the Keras model's outputs on them) and
calls each requested format's writer (`formats.ExportFormat.write`) with it. A writer
puts its files under `export.work` and returns its manifest entry; `Export`'s helpers
measure a file the same way for every format (`tflite_entry`, `files_entry`, `parity`).
"""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data import images as images_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.export.config import CALIBRATION_IMAGES
from squish_tf.export import metadata as metadata_lib
from squish_tf.export import micro as micro_lib
from squish_tf.export import qat as qat_lib  # tfmot itself is imported lazily, when used
from squish_tf.export import saved_model as saved_model_lib
from squish_tf.export import tflite as tflite_lib
from squish_tf.export import tftrt as tftrt_lib
from squish_tf.export.config import CALIBRATION_IMAGES
from squish_tf.runtime import litert as litert_lib

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


@dataclasses.dataclass(frozen=True)
class ExportOptions:
  """How an export runs, beyond which model, where and which formats.

  Attributes:
    qat_epochs: QAT fine-tuning epochs (>= 1 when qat_int8 is exported).
    qat_learning_rate: Adam learning rate of QAT fine-tuning.
    calibration_images: representative training images for int8.
    max_eval_images: held-out images for the accuracy figures.
    num_threads: LiteRT threads when measuring parity and accuracy.
    verbose: Keras verbosity of QAT fine-tuning.
  """

  qat_epochs: int = 1
  qat_learning_rate: float = qat_lib.DEFAULT_LEARNING_RATE
  calibration_images: int = CALIBRATION_IMAGES
  max_eval_images: int = MAX_EVAL_IMAGES
  num_threads: int = tflite_lib.DEFAULT_NUM_THREADS
  verbose: Any = 0


@dataclasses.dataclass
class Export:
  """One model's export in progress: what every format's writer reads.

  Attributes:
    work: the (temporary) export directory the files go in.
    model: the trained Keras model (parity is measured against it).
    spec: its NetSpec, or `describe.ForeignSpec` for another Keras model.
    saved_dir: the BN-folded SavedModel under `work` every converter starts from.
    labels_text: labels.txt's text (also in every .tflite file's metadata).
    class_names: the class names, in output order.
    data: the dataset's images, or None (no int8 or QAT then).
    eval_images: uint8 held-out images (or seeded random pixels without data).
    eval_labels: their labels, or None for random pixels.
    keras_eval: the Keras model's probabilities on `eval_images`.
    options: QAT, threads and image counts.
    qat_result: returns QAT's result made elsewhere (`exporter.qat_int8_artefact`), or
      None to run QAT here.
  """

  work: str
  model: Any
  spec: Any
  saved_dir: str
  labels_text: str
  class_names: Tuple[str, ...]
  data: Optional[ExportData]
  eval_images: np.ndarray
  eval_labels: Optional[np.ndarray]
  keras_eval: np.ndarray
  options: ExportOptions = ExportOptions()
  qat_result: Optional[Callable[[], Dict[str, Any]]] = None

  @property
  def parity_images(self) -> np.ndarray:
    """The images parity is measured on (the first `PARITY_IMAGES` eval images)."""
    return self.eval_images[:PARITY_IMAGES]

  @property
  def keras_parity(self) -> np.ndarray:
    return self.keras_eval[:len(self.parity_images)]

  def calibration(self) -> Optional[np.ndarray]:
    """The calibration images as float32 pixels, or None without data."""
    return None if self.data is None else as_float(self.data.calibration_images)

  def files_entry(self, paths: Sequence[str]) -> Dict[str, Any]:
    """`files_entry` of paths under work."""
    return files_entry(self.work, paths)

  def tflite_entry(self, name: str, content: bytes) -> Dict[str, Any]:
    """Writes format `name`'s .tflite file under work and measures it (`tflite_entry`)."""
    return tflite_entry(self.work, name, content, self.eval_images, self.eval_labels,
                        self.keras_eval, len(self.parity_images), self.options.num_threads)

  def with_metadata(self, content: bytes) -> bytes:
    """A .tflite file's bytes with the image-classifier metadata and labels every one carries."""
    return metadata_lib.with_metadata(content, self.labels_text, name=self.spec.name)


def tflite_file(name: str) -> str:
  """Format `name`'s .tflite file name: `model_<name>.tflite`."""
  return tflite_lib.FILES.get(name, f"model_{name}.tflite")


def tflite_entry(work: str, name: str, content: bytes, eval_images: np.ndarray,
                 eval_labels: Optional[np.ndarray], keras_eval: np.ndarray, parity_count: int,
                 num_threads: int) -> Dict[str, Any]:
  """Writes format `name`'s .tflite file under `work`; its manifest entry, measured in LiteRT.

  Parity on the first `parity_count` eval images, agreement and accuracy on all of them,
  against the Keras model's probabilities (`keras_eval`).
  """
  path = os.path.join(work, tflite_file(name))
  files_lib.write_bytes(path, content)
  runner = litert_lib.LiteRTRunner(path, num_threads=num_threads)  # the shared runner
  probabilities = runner.predict(eval_images)
  return {**files_entry(work, [path]),
          "parity": parity(probabilities[:parity_count], keras_eval[:parity_count]),
          "agreement_all_eval_images": agreement(probabilities, keras_eval),
          "accuracy": accuracy(probabilities, eval_labels),
          "io": runner.io_summary(), "ops": runner.op_counts(),
          "metadata": metadata_lib.manifest_entry(content)}


def files_entry(work: str, paths: Sequence[str]) -> Dict[str, Any]:
  """{"files": {path under work: bytes}, "bytes": their sum} of files and directories."""
  files: Dict[str, int] = {}
  for path in paths:
    if os.path.isdir(path):
      for relative, size in walk_files(path):
        files[os.path.join(os.path.relpath(path, work), relative)] = size
    else:
      files[os.path.relpath(path, work)] = os.path.getsize(path)
  return {"files": files, "bytes": int(sum(files.values()))}


def write_saved_model(export: Export, name: str) -> Dict[str, Any]:
  """`saved_model`: the converters' SavedModel kept, both signatures checked for parity."""
  del name
  signatures = {}
  for signature in (saved_model_lib.SERVING_DEFAULT, saved_model_lib.SERVING_FLOAT):
    predict = saved_model_lib.load_signature(export.saved_dir, signature)
    pixels = (export.parity_images if signature == saved_model_lib.SERVING_DEFAULT
              else as_float(export.parity_images))
    signatures[signature] = parity(predict(pixels), export.keras_parity)
  worst = max(signatures.values(), key=lambda p: p["max_abs_diff"])
  return {**export.files_entry([export.saved_dir]),
          "parity": {**worst, "signatures": signatures},
          "signatures": {saved_model_lib.SERVING_DEFAULT: "uint8",
                         saved_model_lib.SERVING_FLOAT: "float32"}}


def write_tflite(export: Export, name: str) -> Dict[str, Any]:
  """`fp32`, `fp16`, `dynamic`, `int8`: the SavedModel converted, with metadata."""
  content = tflite_lib.convert_saved_model(export.saved_dir, name, export.calibration())
  return export.tflite_entry(name, export.with_metadata(content))


def write_tflite_int8(export: Export, name: str) -> Dict[str, Any]:
  """`int8`: the full-integer file, and what a microcontroller needs to run it (TFLM's own)."""
  entry = write_tflite(export, name)
  entry["micro"] = micro_lib.micro_check(
      os.path.join(export.work, tflite_file(name)),
      images_lib.as_pixels(export.eval_images), export.options.num_threads)
  return entry


def write_qat_int8(export: Export, name: str) -> Dict[str, Any]:
  """`qat_int8`: the trained model (batch norm and all) fine-tuned quantization-aware.

  tfmot quantizes conv + BN + ReLU as one; the QAT result may come from another process
  (`export.qat_result`).
  """
  options = export.options
  if export.qat_result is not None:
    result = export.qat_result()
  else:
    result = qat_lib.qat_int8_tflite(
        export.model, export.spec, export.data.train_ds, options.qat_epochs,
        export.calibration(), learning_rate=options.qat_learning_rate, verbose=options.verbose)
  entry = export.tflite_entry(name, export.with_metadata(result["tflite"]))
  entry["qat"] = {"epochs": result["epochs"], "learning_rate": result["learning_rate"],
                  "history": result["history"]}
  return entry


def write_jetson(export: Export, name: str) -> Dict[str, Any]:
  """`jetson`: the bundle (write_bundle folds batch norm; its references come from the
  trained model)."""
  del name
  bundle = os.path.join(export.work, jetson_lib.BUNDLE_DIR)
  result = jetson_lib.write_bundle(export.model, export.spec, export.class_names, bundle,
                                   reference_images=export.parity_images[:REFERENCE_IMAGES])
  got = jetson_lib.run_graph_def(result["graph_def"], as_float(export.parity_images))
  return {**export.files_entry([bundle]), "parity": parity(got, export.keras_parity),
          "ops": result["ops"], "input": result["input"]["input"],
          "output": result["input"]["output"]}


def write_tftrt(export: Export, name: str) -> Dict[str, Any]:
  """`tftrt`: the SavedModel converted by TF-TRT at FP16."""
  del name
  output = os.path.join(export.work, tftrt_lib.DIRECTORY)
  tftrt_lib.convert_saved_model(export.saved_dir, output, "FP16")
  return {"precision": "FP16", **export.files_entry([output])}


def tftrt_unavailable() -> Optional[str]:
  """Why TF-TRT cannot run here (a TensorFlow without TensorRT), or None."""
  return None if tftrt_lib.tensorrt_available() else tftrt_lib.unavailable_reason()


def parity(got: np.ndarray, expected: np.ndarray) -> Dict[str, Any]:
  """Max |difference| and top-1 agreement of two probability arrays."""
  got, expected = np.asarray(got, np.float32), np.asarray(expected, np.float32)
  if got.shape != expected.shape:
    raise ValueError(f"Output shape {got.shape} differs from the Keras model's {expected.shape}.")
  return {"max_abs_diff": float(np.abs(got - expected).max()) if got.size else 0.0,
          "top1_agreement": agreement(got, expected), "images": int(len(got))}


def agreement(got: np.ndarray, expected: np.ndarray) -> float:
  """The fraction of images whose top-1 class two probability arrays agree on."""
  return float(np.mean(np.argmax(got, 1) == np.argmax(expected, 1))) if len(got) else 0.0


def accuracy(probabilities: np.ndarray, labels: Optional[np.ndarray]) -> Optional[float]:
  """Top-1 accuracy, or None without labels."""
  if labels is None or not len(labels):
    return None
  return float(np.mean(np.argmax(probabilities, 1) == np.asarray(labels)))


def as_float(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32)


def walk_files(root: str) -> List[Tuple[str, int]]:
  """(path under root, bytes) of every file below `root`, sorted."""
  found = []
  for directory, _, files in os.walk(root):
    for name in files:
      path = os.path.join(directory, name)
      found.append((os.path.relpath(path, root), os.path.getsize(path)))
  return sorted(found)
