"""One runner per artefact kind (Keras, SavedModel, .tflite through the shared LiteRT
runner): `feed` prepares uint8 pixels, `invoke` is what the benchmark times."""

from typing import Any, Dict, Tuple

import numpy as np

from squish_tf.runtime import litert as litert_lib

SIGNATURE = "serving_default"


# Preferred output keys of a SavedModel signature with several outputs.
_OUTPUT_KEYS = ("probabilities", "output_0", "softmax", "logits")


class _Runner:
  """One loaded artefact. `feed` prepares uint8 pixels, `invoke` is what is timed."""

  input_size: Tuple[int, int]  # (height, width)
  input_info: Dict[str, Any]  # the input's dtype and quantization, for the record

  def feed(self, pixels: np.ndarray) -> Any:
    raise NotImplementedError

  def invoke(self, feed: Any) -> np.ndarray:
    raise NotImplementedError

  def probabilities(self, raw: np.ndarray) -> np.ndarray:
    return np.asarray(raw, np.float32)


class _KerasRunner(_Runner):

  def __init__(self, path: str):
    import keras  # pylint: disable=g-import-not-at-top

    self._model = keras.models.load_model(path, compile=False)
    shape = tuple(self._model.input_shape)
    self.input_size = (shape[1], shape[2])
    self.input_info = {"dtype": "float32"}

  def feed(self, pixels):
    return pixels.astype(np.float32)

  def invoke(self, feed):
    return self._model.predict_on_batch(feed)


class _SavedModelRunner(_Runner):

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    self._tf = tf
    # Keep the loaded object: its signatures use its variables, which die with it.
    self._loaded = tf.saved_model.load(path)
    signatures = self._loaded.signatures
    if SIGNATURE not in signatures:
      raise ValueError(f"SavedModel {path!r} has no {SIGNATURE!r} signature (it has "
                       f"{sorted(signatures)}); re-export the model.")
    self._function = signatures[SIGNATURE]
    _, inputs = self._function.structured_input_signature
    if len(inputs) != 1:
      raise ValueError(f"SavedModel {path!r}: {SIGNATURE} takes {len(inputs)} inputs "
                       f"({sorted(inputs)}); an image classifier takes one image batch.")
    (self._input_name, input_spec), = inputs.items()
    self._dtype = input_spec.dtype
    self.input_size = (input_spec.shape[1], input_spec.shape[2])
    self.input_info = {"dtype": self._dtype.name}
    outputs = self._function.structured_outputs
    preferred = [key for key in _OUTPUT_KEYS if key in outputs]
    self._output_key = preferred[0] if preferred else sorted(outputs)[0]

  def feed(self, pixels):
    return self._tf.constant(pixels.astype(self._dtype.as_numpy_dtype))

  def invoke(self, feed):
    return self._function(**{self._input_name: feed})[self._output_key].numpy()


class _LiteRTArtefact(_Runner):
  """A .tflite file in the shared runner (`squish_tf.runtime.litert.LiteRTRunner`)."""

  def __init__(self, path: str, num_threads: int):
    self.runner = litert_lib.LiteRTRunner(path, num_threads=num_threads)
    self.input_size = self.runner.input_size
    self.input_info = self.runner.input_info()

  def feed(self, pixels):
    self.runner.resize(pixels.shape[0])
    return self.runner.quantize_input(pixels)

  def invoke(self, feed):
    self.runner.set_quantized(feed)
    self.runner.invoke()
    return self.runner.raw_output()

  def probabilities(self, raw):
    return self.runner.dequantize_output(raw)


def load_runner(name: str, path: str, num_threads: int) -> _Runner:
  """The runner of artefact `name` (keras, saved_model or a tflite_* name) at `path`."""
  if name == "keras":
    return _KerasRunner(path)
  if name == "saved_model":
    return _SavedModelRunner(path)
  return _LiteRTArtefact(path, num_threads)


def predict_classes(runner: _Runner, pixels: np.ndarray, batch_size: int) -> np.ndarray:
  """Top-1 classes of `pixels`, fed `batch_size` at a time."""
  classes = []
  for start in range(0, len(pixels), batch_size):
    raw = runner.invoke(runner.feed(pixels[start:start + batch_size]))
    classes.append(np.argmax(runner.probabilities(raw), axis=-1))
  return np.concatenate(classes).astype(np.int64)
