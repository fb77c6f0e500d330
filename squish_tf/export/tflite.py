"""TFLite conversion (fp32, fp16, dynamic-range, full-int8) and a LiteRT runner.

Conversions start from the exported SavedModel's `serving_float` signature
(float32 pixels in [0, 255]), which keeps one traced graph behind every
artefact; the .tflite files carry it as their `serving_default` signature
with input "image" and output "probabilities".

Full-integer models (`model_int8.tflite`, and `model_qat_int8.tflite` from
`squish_tf.export.qat`) take **uint8** input and give **uint8** output:

  input   uint8 pixels; real value = scale * (q - zero_point). Calibrated on
          training images that span [0, 255], this is scale 1, zero point 0:
          camera bytes go straight in. `TFLiteRunner` quantizes whatever the
          file says, so other calibrations work too.
  output  uint8 probabilities with TFLite's fixed softmax quantization,
          scale 1/256, zero point 0: probability = q / 256.

uint8 at both ends is what camera pipelines and the TFLite image-classifier
tooling expect; inside, every op runs in int8.

Run .tflite files with `TFLiteRunner` / `run_tflite`, which use
`ai_edge_litert.interpreter.Interpreter` (`tf.lite.Interpreter` is
deprecated).
"""

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import tensorflow as tf

# Format name -> file name.
FILES = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
    "qat_int8": "model_qat_int8.tflite",
}
QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8")
DEFAULT_NUM_THREADS = 2


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
  function = loaded.signatures[signature]
  converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
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


class TFLiteRunner:
  """Runs a .tflite classifier with LiteRT on float or uint8 pixels in [0, 255].

  Quantized inputs are quantized with the file's own scale and zero point, and
  quantized outputs dequantized, so every format returns float32
  probabilities. For timing, call `set_batch(images)` once and `invoke()` in
  the loop; `predict` is for results.

  Args:
    model: path of a .tflite file, or its bytes.
    num_threads: LiteRT CPU threads.
  """

  def __init__(self, model: Any, num_threads: int = DEFAULT_NUM_THREADS):
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

    if isinstance(model, (bytes, bytearray)):
      self._interpreter = litert.Interpreter(model_content=bytes(model), num_threads=num_threads)
    else:
      self._interpreter = litert.Interpreter(model_path=str(model), num_threads=num_threads)
    self._interpreter.allocate_tensors()
    self._batch = None
    self.input_details = self._interpreter.get_input_details()[0]
    self.output_details = self._interpreter.get_output_details()[0]

  @property
  def input_dtype(self) -> np.dtype:
    return np.dtype(self.input_details["dtype"])

  @property
  def input_shape(self) -> Sequence[int]:
    """[H, W, C] of one image."""
    return [int(v) for v in self.input_details["shape"][1:]]

  def io_summary(self) -> Dict[str, Any]:
    """dtype, shape and (scale, zero point) of the input and output, for manifests."""
    return {"input": _tensor_summary(self.input_details),
            "output": _tensor_summary(self.output_details)}

  def set_batch(self, images: np.ndarray) -> None:
    """Resizes the input to len(images) if needed and sets (quantized) pixels."""
    pixels = np.asarray(images)
    if pixels.ndim != 4 or list(pixels.shape[1:]) != self.input_shape:
      raise ValueError(f"Expected images of shape [batch, {', '.join(map(str, self.input_shape))}]"
                       f", got {list(pixels.shape)}.")
    if self._batch != pixels.shape[0]:
      self._interpreter.resize_tensor_input(self.input_details["index"], list(pixels.shape))
      self._interpreter.allocate_tensors()
      self.input_details = self._interpreter.get_input_details()[0]
      self.output_details = self._interpreter.get_output_details()[0]
      self._batch = pixels.shape[0]
    self._interpreter.set_tensor(self.input_details["index"], self._quantize(pixels))

  def invoke(self) -> None:
    self._interpreter.invoke()

  def output(self) -> np.ndarray:
    """The last invoke's probabilities, dequantized to float32 [batch, classes]."""
    values = self._interpreter.get_tensor(self.output_details["index"])
    scale, zero_point = self.output_details["quantization"]
    if values.dtype != np.float32:
      values = (values.astype(np.float32) - zero_point) * np.float32(scale)
    return values.astype(np.float32)

  def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities float32 [N, classes] of float or uint8 pixels in [0, 255]."""
    images = np.asarray(images)
    results = []
    for start in range(0, len(images), batch_size):
      self.set_batch(images[start:start + batch_size])
      self.invoke()
      results.append(self.output())
    if not results:
      return np.zeros((0, int(self.output_details["shape"][-1])), np.float32)
    return np.concatenate(results)

  def _quantize(self, pixels: np.ndarray) -> np.ndarray:
    dtype = self.input_dtype
    if dtype == np.float32:
      return pixels.astype(np.float32)
    scale, zero_point = self.input_details["quantization"]
    if not scale:
      raise ValueError(f"The model's {dtype} input has no quantization scale.")
    if dtype == np.uint8 and pixels.dtype == np.uint8 and scale == 1.0 and zero_point == 0:
      return pixels  # raw camera bytes, the common case
    info = np.iinfo(dtype)
    quantized = np.round(pixels.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def run_tflite(model: Any, images: np.ndarray, num_threads: int = DEFAULT_NUM_THREADS,
               batch_size: int = 64) -> np.ndarray:
  """Probabilities of `images` (float or uint8 pixels in [0, 255]) from a .tflite model."""
  return TFLiteRunner(model, num_threads=num_threads).predict(images, batch_size=batch_size)


def _tensor_summary(details: Dict[str, Any]) -> Dict[str, Any]:
  scale, zero_point = details["quantization"]
  summary = {"name": details["name"], "dtype": np.dtype(details["dtype"]).name,
             "shape": [int(v) for v in details["shape_signature"]]}
  if scale:
    summary.update({"scale": float(scale), "zero_point": int(zero_point)})
  return summary
