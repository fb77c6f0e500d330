"""Quantization-aware fine-tuning (tensorflow-model-optimization) -> full-int8 TFLite.

tfmot 0.8 accepts only tf_keras (Keras 2) models, so QAT runs on a tf_keras
twin: the same builder with `keras_module=tf_keras`, weights copied by layer
name. `quantize_model` cannot take the twin as it is, because tfmot has no
rule for the `Rescaling` layer that maps pixels to [-1, 1]; we annotate every
layer with the default 8-bit scheme and give `Rescaling` a config that only
fake-quantizes its output (it has no weights).

Batch norm stays in the twin. A spec with `batch_norm` builds Conv2D (no bias,
linear) -> BatchNormalization -> ReLU, the pattern of tfmot's default
`Conv2DBatchNormReLUQuantize` transform: the kernel is fake-quantized per
channel, the convolution and batch norm outputs are not quantized, and the
ReLU (`<name>_relu`) carries the activation quantizer. Fine-tuning trains
through batch norm as the model was trained, and the TFLite converter folds
each batch norm into its int8 convolution (per-channel scales absorb the
batch-norm scale exactly), so `model_qat_int8.tflite` has no batch-norm ops,
like every other export (which start from `batch_norm.deployed_model`).

Importing tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process, so `tf.keras`
means tf_keras afterwards (plain `import keras` stays Keras 3). tfmot is
therefore imported lazily inside these functions, and nothing in squish_tf
uses `tf.keras`.
"""

from typing import Any, Dict

import keras
import numpy as np
import tensorflow as tf

from squish_tf.export import tflite as tflite_lib
from squish_tf.export.config import QAT_LEARNING_RATE as DEFAULT_LEARNING_RATE
from squish_tf.net import models
from squish_tf.net import spec as spec_lib

INPUT_QUANTIZER = "quantize_layer"


def quantize_aware_model(model, spec: spec_lib.NetSpec):
  """A tf_keras QAT model (fake-quantized) initialised from a Keras 3 model.

  Args:
    model: the trained Keras 3 model (softmax output), batch norm unfolded
      when its spec has batch norm.
    spec: its spec.

  Returns:
    The tf_keras model from `tfmot.quantization.keras.quantize_apply`.

  Raises:
    ValueError: the model's weights do not fit the spec (a layer missing or of
      another shape, e.g. a BN-folded model given with a batch-norm spec).
  """
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  quant = tfmot.quantization.keras
  twin = models.build_model(spec, keras_module=tf_keras)
  copied = models.copy_weights_by_name(model, twin)  # kernels, biases, BN's four vectors
  expected = [layer.name for layer in twin.layers if layer.weights]
  if copied != len(expected):
    present = {layer.name for layer in model.layers}
    missing = [name for name in expected if name not in present]
    raise ValueError(f"The tf_keras twin of {spec.name!r} has {len(expected)} layers with "
                     f"weights but only {copied} have a namesake in model {model.name!r} "
                     f"(missing: {missing[:6]}); QAT needs the trained model built from this "
                     "spec (batch norm unfolded), e.g. loaded from its model dir.")
  rescaling_config = _output_only_config(quant)

  def annotate(layer):
    if isinstance(layer, tf_keras.layers.Rescaling):
      return quant.quantize_annotate_layer(layer, quantize_config=rescaling_config)
    return quant.quantize_annotate_layer(layer)

  # clone_function returns the same layer objects (wrapped), so weights carry over.
  annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
  with quant.quantize_scope({type(rescaling_config).__name__: type(rescaling_config)}):
    return quant.quantize_apply(annotated)


def calibrate_ranges(qat_model, model, images: np.ndarray, batch_size: int = 64) -> int:
  """Starts every activation quantizer at the float model's observed range.

  tfmot starts every range at [-6, 6]. Weight ranges follow the weights from
  the first training step, but activation ranges move by a slow moving
  average (decay 0.999), so a short fine-tuning from a trained model would
  clip activations above 6 for most of its steps and be dragged away from
  the model it started from. Measuring each layer's output range on the
  calibration images first, as post-training quantization does, lets a
  single QAT epoch start from the right ranges.

  Quantizers are matched to the float model's layers by name: with batch
  norm the activation quantizer sits on `<name>_relu` (the ReLU after the
  batch norm), without it on the convolution `<name>` (its fused ReLU);
  `preprocess`, the concatenations, `conv10` and `avgpool` likewise. The
  float model is the trained one (batch norm unfolded, inference mode), so
  the ranges are those of the deployed network.

  Args:
    qat_model: from `quantize_aware_model`.
    model: the float Keras 3 model it was made from.
    images: float32 calibration images.
    batch_size: images per forward pass.

  Returns:
    The number of quantizers set.
  """
  pixels = np.asarray(images, np.float32)
  # Weight quantizers (per-channel kernel ranges, also [-6, 6] at first) take
  # their ranges from the weights in a training-mode call; nothing is learned.
  qat_model(pixels[:batch_size], training=True)
  wrapped = {}
  for layer in qat_model.layers:
    inner = getattr(layer, "layer", None)
    ranges = [w for w in layer.weights if _short_name(w) in _RANGE_NAMES]
    if inner is not None and ranges:
      wrapped[inner.name] = ranges
  names = [name for name in wrapped if name in {layer.name for layer in model.layers}]
  if not names:
    return 0
  probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
  low = {name: 0.0 for name in names}
  high = {name: 0.0 for name in names}
  for start in range(0, len(pixels), batch_size):
    outputs = probe(pixels[start:start + batch_size], training=False)
    if len(names) == 1:
      outputs = [outputs]
    for name, output in zip(names, outputs):
      values = np.asarray(output)
      low[name] = min(low[name], float(values.min()))
      high[name] = max(high[name], float(values.max()))
  count = 0
  for name in names:
    for weight in wrapped[name]:
      weight.assign(low[name] if _short_name(weight).endswith("_min") else high[name])
      count += 1
  return count


def fine_tune(qat_model, train_ds: tf.data.Dataset, epochs: int,
              learning_rate: float = DEFAULT_LEARNING_RATE, verbose: Any = 0) -> Dict[str, list]:
  """Fine-tunes a QAT model on (pixels, labels) batches; returns the history.

  Afterwards the input quantizer's range is set to exactly [0, 255], the pixel
  range the model promises, so the converted uint8 input is the raw pixel
  (scale 1, zero point 0) whatever range the fine-tuning batches covered.
  """
  import tf_keras  # pylint: disable=g-import-not-at-top

  if epochs < 1:
    raise ValueError(f"QAT needs at least one fine-tuning epoch (the quantizers' ranges are "
                     f"learned from data), got qat_epochs={epochs}.")
  qat_model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                    loss=tf_keras.losses.SparseCategoricalCrossentropy(),
                    metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="top1")])
  history = qat_model.fit(train_ds, epochs=epochs, verbose=verbose)
  _pin_input_range(qat_model, 0.0, 255.0)
  return {key: [float(v) for v in values] for key, values in history.history.items()}


def convert_int8(qat_model, representative_images: np.ndarray) -> bytes:
  """Full-integer TFLite (uint8 in, uint8 out) of a fine-tuned QAT model.

  The fake-quant ranges come from training; the representative images
  calibrate the few tensors without one (inside `Rescaling`).
  """
  height, width, channels = [int(v) for v in qat_model.input_shape[1:]]
  function = tf.function(lambda image: qat_model(image, training=False))
  concrete = function.get_concrete_function(
      tf.TensorSpec([None, height, width, channels], tf.float32, name="image"))
  converter = tflite_lib.converter_for(concrete)
  tflite_lib.set_full_integer(converter, representative_images)
  return tflite_lib.convert(converter)


def qat_int8_tflite(model, spec: spec_lib.NetSpec, train_ds: tf.data.Dataset, epochs: int,
                    representative_images: np.ndarray,
                    learning_rate: float = DEFAULT_LEARNING_RATE,
                    verbose: Any = 0) -> Dict[str, Any]:
  """Twin -> quantize -> fine-tune -> full-int8 TFLite.

  Returns:
    {"tflite": bytes, "history": fit history, "epochs": epochs,
     "learning_rate": learning_rate}.
  """
  qat_model = quantize_aware_model(model, spec)
  calibrate_ranges(qat_model, model, representative_images)
  history = fine_tune(qat_model, train_ds, epochs, learning_rate, verbose=verbose)
  return {"tflite": convert_int8(qat_model, representative_images), "history": history,
          "epochs": epochs, "learning_rate": learning_rate}


def _pin_input_range(qat_model, low: float, high: float) -> None:
  layer = next((l for l in qat_model.layers if l.name == INPUT_QUANTIZER), None)
  if layer is None:
    return
  for weight in layer.weights:
    name = _short_name(weight)
    if name.endswith("_min"):
      weight.assign(low)
    elif name.endswith("_max"):
      weight.assign(high)


# Activation-range variables of tfmot's wrappers (weights have their own quantizers).
_RANGE_NAMES = ("post_activation_min", "post_activation_max", "output_min", "output_max")


def _short_name(weight) -> str:
  """"quant_conv1/post_activation_min:0" -> "post_activation_min"."""
  return weight.name.split("/")[-1].split(":")[0]


def _output_only_config(quant) -> Any:
  """A QuantizeConfig that fake-quantizes a weightless layer's output only."""

  class OutputOnlyQuantizeConfig(quant.QuantizeConfig):
    """For layers tfmot has no rule for and that have no weights (Rescaling)."""

    def get_weights_and_quantizers(self, layer):
      return []

    def get_activations_and_quantizers(self, layer):
      return []

    def set_quantize_weights(self, layer, quantize_weights):
      pass

    def set_quantize_activations(self, layer, quantize_activations):
      pass

    def get_output_quantizers(self, layer):
      return [quant.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False,
                                                      symmetric=False, narrow_range=False)]

    def get_config(self):
      return {}

  return OutputOnlyQuantizeConfig()
