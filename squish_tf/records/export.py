"""export.json: what one model's export wrote, with parity and accuracy per format."""

import dataclasses
from typing import Any, ClassVar, Dict, List, Mapping, Optional

from squish_tf.records.base import Codec, Record, extra, optional, value

MANIFEST_VERSION = 1


@dataclasses.dataclass(frozen=True)
class FormatEntry(Record):
  """One exported format in the manifest (export.json's `formats` entry).

  Attributes:
    precision: TF-TRT's precision (tftrt only).
    files, bytes: {path in the export dir: bytes} of the format's files, and their sum.
    parity: {"max_abs_diff", "top1_agreement", "images"} against the Keras model (a
      SavedModel's adds each signature's).
    signatures: a SavedModel's serving signatures and their input dtype.
    agreement_all_eval_images, accuracy: a .tflite's top-1 agreement with Keras and its
      accuracy on every evaluation image (accuracy None without labels).
    io, ops, metadata: a .tflite's input/output quantization, op counts and metadata.
    input, output: the Jetson graph's tensor names.
    micro: the int8 file's TFLite-Micro check.
    qat: QAT's epochs, learning rate and history (qat_int8 only).
    bytes_vs_fp32: a .tflite's bytes over the fp32 file's.
    extra: keys of another version of the file, kept as read.
  """

  precision: Optional[str] = optional()
  files: Optional[Dict[str, int]] = value()
  bytes: Optional[int] = value()
  parity: Optional[Dict[str, Any]] = optional()
  signatures: Optional[Dict[str, str]] = optional()
  agreement_all_eval_images: Optional[float] = optional()
  accuracy: Optional[float] = optional()
  io: Optional[Dict[str, Any]] = optional()
  ops: Optional[Dict[str, int]] = optional()
  metadata: Optional[Dict[str, Any]] = optional()
  input: Optional[str] = optional()
  output: Optional[str] = optional()
  micro: Optional[Dict[str, Any]] = optional()
  qat: Optional[Dict[str, Any]] = optional()
  bytes_vs_fp32: Optional[float] = optional()
  extra: Dict[str, Any] = extra()


def _formats_codec() -> Codec:
  """{format: FormatEntry}."""

  def decode(data):
    if not isinstance(data, Mapping):
      return {}
    return {name: FormatEntry.from_json(entry) for name, entry in data.items()}

  return Codec(lambda entries: {name: entry.to_json() for name, entry in entries.items()},
               decode)


@dataclasses.dataclass(frozen=True)
class ExportManifest(Record):
  """export.json: what one model's export wrote, with parity and accuracy per format.

  Attributes:
    model_dir, export_dir: where the model came from and the export went (absolute).
    created, tensorflow: when, and with which TensorFlow.
    model: {"name", "params", "macs", "input_shape", "num_classes", "keras_bytes",
      "batch_norm_folded"}.
    class_names: the labels, in output order.
    data: the images parity and accuracy used ({..., "accuracy_split",
      "calibration_images", "eval_images"}), or None (random pixels).
    parity_source, parity_images: which images parity was measured on, how many.
    keras: {"accuracy": the Keras model's on the same images}.
    formats: {format: FormatEntry}, in the exporter's order.
    files: {path: bytes} of every file in the export dir.
    extra: keys of another version of the file, kept as read.
  """

  VERSION: ClassVar[Optional[int]] = MANIFEST_VERSION

  model_dir: Optional[str] = value()
  export_dir: Optional[str] = value()
  created: Optional[str] = value()
  tensorflow: Optional[str] = value()
  model: Optional[Dict[str, Any]] = value()
  class_names: Optional[List[str]] = value()
  data: Optional[Dict[str, Any]] = value()
  parity_source: Optional[str] = value()
  parity_images: Optional[int] = value()
  keras: Optional[Dict[str, Any]] = value()
  formats: Dict[str, FormatEntry] = value(_formats_codec(), dict)
  files: Optional[Dict[str, int]] = value()
  extra: Dict[str, Any] = extra()
