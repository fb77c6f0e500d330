"""TFLite conversion (fp32, fp16, dynamic-range, full-int8) and a LiteRT runner.

Conversions start from the exported SavedModel's `serving_float` signature
(float32 pixels in [0, 255]), which keeps one traced graph behind every
artefact; the .tflite files carry it as their `serving_default` signature
with input "image" and output "probabilities". That SavedModel is the
BN-folded deployed network (`batch_norm.deployed_model`), so no .tflite file
holds batch-norm arithmetic: fp32 has the op list of the same spec without
batch norm (`op_counts` tells), and QAT's file folds batch norm in the
converter.

Full-integer models (`model_int8.tflite`, and `model_qat_int8.tflite` from
`squish_tf.export.qat`) take **uint8** input and give **uint8** output:

  input   uint8 pixels; real value = scale * (q - zero_point). Calibrated on
          training images that span [0, 255], this is scale 1, zero point 0:
          camera bytes go straight in. `LiteRTRunner` quantizes whatever the
          file says (`squish_tf.runtime.litert.quantize`: q = round(x / scale) +
          zero_point, clipped), so other calibrations work too.
  output  uint8 probabilities with TFLite's fixed softmax quantization,
          scale 1/256, zero point 0: probability = q / 256.

uint8 at both ends is what camera pipelines and the TFLite image-classifier
tooling expect; inside, every op runs in int8.

Run .tflite files with `run_tflite` (`squish_tf.runtime.litert`'s, named here too)
or `squish_tf.runtime.litert.LiteRTRunner`, the one runner the export's
parity, the benchmark and the latency model share
(`ai_edge_litert.interpreter.Interpreter`; `tf.lite.Interpreter` is
deprecated).
"""

from typing import Callable, Iterator, List, Optional

import numpy as np
import tensorflow as tf

from squish_tf.runtime import litert as litert_lib
from squish_tf.runtime import native_log

# Format name -> file name.
FILES = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
    "qat_int8": "model_qat_int8.tflite",
}
QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8")
DEFAULT_NUM_THREADS = litert_lib.DEFAULT_NUM_THREADS


def converter_for(function) -> tf.lite.TFLiteConverter:
  """A TFLite converter of one concrete function that holds only the function's variables.

  The converter saves what it is given as a SavedModel on its way to TFLite.
  Given the function's whole model (a Keras model, a loaded SavedModel), that
  save traces every layer's functions again, most of a QAT conversion's time.
  A module holding just the variables converts to the same bytes.
  """
  holder = tf.Module()
  holder.captured = list(function.variables)  # kept alive: the function holds weak references
  return tf.lite.TFLiteConverter.from_concrete_functions([function], holder)


def convert_saved_model(saved_model_dir: str, quantization: str,
                        representative_images: Optional[np.ndarray] = None,
                        signature: str = "serving_float") -> bytes:
  """Converts a SavedModel signature to a .tflite flatbuffer.

  Args:
    saved_model_dir: a SavedModel from `squish_tf.export.saved_model`.
    quantization: "fp32" (no optimisation), "fp16" (float16 weights),
      "dynamic" (int8 weights, float activations) or "int8" (full integer,
      uint8 input and output; needs `representative_images`).
    representative_images: float32 or uint8 [N, H, W, 3] training images
      without augmentation, for "int8" calibration.
    signature: the float32 signature to convert.

  Returns:
    The .tflite bytes.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}.")
  loaded = tf.saved_model.load(saved_model_dir)
  converter = converter_for(loaded.signatures[signature])
  if quantization == "fp16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif quantization == "dynamic":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  elif quantization == "int8":
    if representative_images is None or len(representative_images) == 0:
      raise ValueError("Full-integer (int8) conversion needs representative training images; "
                       "pass the data flags (--dataset ...) so they can be drawn.")
    set_full_integer(converter, representative_images)
  return convert(converter)


def convert(converter: tf.lite.TFLiteConverter) -> bytes:
  """`converter.convert()`, its C++ lines (the quantizer's settings) in the run's log."""
  with native_log.captured():
    return converter.convert()


def set_full_integer(converter, representative_images: np.ndarray) -> None:
  """Full-integer options: int8 ops only, uint8 input and output, calibration data."""
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = representative_dataset(representative_images)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  converter.inference_input_type = tf.uint8
  converter.inference_output_type = tf.uint8


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[List[np.ndarray]]]:
  """The converter's calibration generator: one float32 image per step."""
  pixels = np.asarray(images, np.float32)

  def generate():
    for image in pixels:
      yield [image[np.newaxis]]

  return generate


# The one LiteRT runner lives in squish_tf.runtime.litert (export parity, the benchmark
# and the latency model share it); these are its export-side names.
op_counts = litert_lib.op_counts
run_tflite = litert_lib.run_tflite
