"""SavedModel export with camera-ready signatures.

Two signatures, both returning {"probabilities": float32 [batch, num_classes]}:

  serving_default  image: uint8   [batch, H, W, 3]  (camera pixels as they come)
  serving_float    image: float32 [batch, H, W, 3]  (pixels in [0, 255])

Written with Keras 3's `ExportArchive`, which tracks the Keras variables and
lets us name the signatures and their output key ("probabilities" rather than
`model.export`'s "output_0"). The model rescales pixels itself, so neither
signature needs preprocessing outside. Load it with `tf.saved_model.load`
(Keras cannot read a SavedModel back as a model).

The graph is the deployed network: a SqueezeNet-family model trained with
batch norm is written as `batch_norm.deployed_model`, every batch norm folded
into the convolution before it (plain Conv2D + bias + ReLU, the weights
`spec.params()` counts), so the TFLite conversions made from this SavedModel
carry no batch-norm arithmetic either.
"""

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from squish_tf.data import images as images_lib
from squish_tf.net import batch_norm
from squish_tf.net import spec as spec_lib

DIRECTORY = "saved_model"
SERVING_DEFAULT = "serving_default"
SERVING_FLOAT = "serving_float"
INPUT_KEY = "image"
OUTPUT_KEY = "probabilities"


def write_saved_model(model, spec: spec_lib.NetSpec, path: str) -> None:
  """Writes `model` as a SavedModel at `path` (a directory that must not exist).

  Args:
    model: a Keras 3 model from `squish_tf.net.models.build_model` (softmax
      output), or a foreign Keras 3 model (a baseline) taking [0, 255] pixels.
    spec: its spec (with batch norm, the model is folded first), or a stand-in
      with `input_shape` for a foreign model, which is written as it is.
    path: the SavedModel directory to create.
  """
  model, spec = batch_norm.for_export(model, spec)
  height, width, channels = spec.input_shape
  shape = [None, height, width, channels]
  archive = keras.export.ExportArchive()
  archive.track(model)

  def from_uint8(image):
    return {OUTPUT_KEY: model(tf.cast(image, tf.float32), training=False)}

  def from_float(image):
    return {OUTPUT_KEY: model(image, training=False)}

  archive.add_endpoint(SERVING_DEFAULT, from_uint8,
                       input_signature=[tf.TensorSpec(shape, tf.uint8, name=INPUT_KEY)])
  archive.add_endpoint(SERVING_FLOAT, from_float,
                       input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_KEY)])
  archive.write_out(path, verbose=False)


def load_signature(path: str, signature: str = SERVING_DEFAULT) -> Callable[[np.ndarray],
                                                                            np.ndarray]:
  """A numpy function images -> probabilities backed by a SavedModel signature.

  uint8 pixels go to `serving_default` as they are; for `serving_float` the
  pixels are cast to float32.
  """
  loaded = tf.saved_model.load(path)
  if signature not in loaded.signatures:
    raise ValueError(f"{path} has no signature {signature!r}; it has "
                     f"{sorted(loaded.signatures)}.")
  function = loaded.signatures[signature]
  dtype = function.structured_input_signature[1][INPUT_KEY].dtype

  def predict(images: np.ndarray) -> np.ndarray:
    pixels = images_lib.as_pixels(images) if dtype == tf.uint8 else np.asarray(images)
    return function(**{INPUT_KEY: tf.constant(pixels, dtype=dtype)})[OUTPUT_KEY].numpy()

  predict.loaded = loaded  # keeps the restored variables alive
  return predict
