"""TF-TRT conversion of an exported SavedModel, for hosts whose TensorFlow has TensorRT.

TensorFlow pip wheels from 2.18 on are built without TensorRT (2.17 was the
last with it), so on this project's machines `convert_saved_model` raises a
RuntimeError that says so. On a Jetson use the bundle's `jetson_trt.py`
instead: it converts with the device's own TensorFlow, and TensorRT engines
are specific to the GPU they are built on anyway.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

PRECISIONS = ("FP32", "FP16", "INT8")
DIRECTORY = "tftrt_fp16"
DEFAULT_WORKSPACE_BYTES = 1 << 30


def tensorrt_available() -> bool:
  """Whether this TensorFlow was built with TensorRT."""
  return bool(tf.sysconfig.get_build_info().get("is_tensorrt_build", False))


def unavailable_reason() -> str:
  return (f"TensorFlow {tf.__version__} here was built without TensorRT (pip wheels from TF "
          "2.18 on have none), so TF-TRT cannot run on this machine. Export the 'jetson' "
          "format and run its jetson_trt.py on the device, or use a host with TensorFlow "
          "<= 2.17 and CUDA/TensorRT.")


def convert_saved_model(saved_model_dir: str, output_dir: str, precision: str = "FP16",
                        signature: str = "serving_float",
                        calibration_images: Optional[np.ndarray] = None,
                        batch_sizes: Sequence[int] = (),
                        max_workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> None:
  """Converts a SavedModel signature with TF-TRT and saves the result.

  Args:
    saved_model_dir: a SavedModel from `squish_tf.export.saved_model`.
    output_dir: where the converted SavedModel goes.
    precision: "FP32", "FP16" or "INT8".
    signature: the float32 signature to convert (TensorRT takes float input).
    calibration_images: INT8 only: float32 [N, H, W, 3] training images.
    batch_sizes: engines are built ahead for these batch sizes; empty builds
      them lazily at the first call (engines are specific to the GPU).
    max_workspace_bytes: TensorRT builder workspace.

  Raises:
    RuntimeError: this TensorFlow has no TensorRT.
    ValueError: bad precision, or INT8 without calibration images.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
  if precision == "INT8" and (calibration_images is None or len(calibration_images) == 0):
    raise ValueError("INT8 TF-TRT needs calibration_images (training images, no augmentation).")
  if not tensorrt_available():
    raise RuntimeError(unavailable_reason())
  # Imported only here: TF-TRT's module is not guaranteed to exist without TensorRT.
  from tensorflow.python.compiler.tensorrt import trt_convert as trt

  # conversion_params works from TF 2.7 (JetPack 4.6) on; precision_mode= needs 2.8.
  params = trt.TrtConversionParams(precision_mode=precision,
                                   max_workspace_size_bytes=max_workspace_bytes,
                                   maximum_cached_engines=max(1, len(batch_sizes)),
                                   use_calibration=precision == "INT8")
  converter = trt.TrtGraphConverterV2(input_saved_model_dir=saved_model_dir,
                                      input_saved_model_signature_key=signature,
                                      conversion_params=params)
  if precision == "INT8":
    images = np.asarray(calibration_images, np.float32)
    batch = min(8, len(images))

    def calibration_input():
      # Every calibration batch must have the same shape.
      for start in range(0, len(images) - batch + 1, batch):
        yield (tf.constant(images[start:start + batch]),)

    converter.convert(calibration_input_fn=calibration_input)
  else:
    converter.convert()
  if batch_sizes:
    loaded = tf.saved_model.load(saved_model_dir)
    shape = loaded.signatures[signature].structured_input_signature[1]["image"].shape[1:]

    def build_input():
      for size in batch_sizes:
        yield (tf.zeros([size] + list(shape), tf.float32),)

    converter.build(input_fn=build_input)
  converter.save(output_dir)
