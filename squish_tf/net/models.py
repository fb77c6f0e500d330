"""NetSpec -> Keras functional model, with stable layer names.

Layer names say where a layer sits (`conv1`, `fire2_squeeze1x1`,
`fire2_expand1x1`, `fire2_expand3x3`, `fire2_concat`, `pool1`, `conv10`), so
surgery, weight copies between Keras 3 and tf_keras, and reports can address
layers by name. With `spec.batch_norm` every convolution but conv10 is
followed by `<name>_bn` (BatchNormalization) and `<name>_relu` (ReLU), the
Conv2D + BatchNormalization + ReLU pattern that tensorflow-model-optimization
folds for quantization-aware training. Preprocessing is inside the model: it takes pixels in [0, 255]
as they come from a camera (uint8 or float) and rescales them to [-1, 1].
"""

import functools
from typing import Any, Dict, Optional

import keras

from squish_tf.net import spec as spec_lib

INPUT_NAME = "image"
PREPROCESS_NAME = "preprocess"
LOGITS_NAME = "avgpool"
BN_SUFFIX = "_bn"
RELU_SUFFIX = "_relu"
# Keras' defaults, written out because folding and the exactness tests use them.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


def build_model(spec: spec_lib.NetSpec,
                keras_module: Any = keras,
                softmax: bool = True,
                seed: Optional[int] = None,
                name: Optional[str] = None):
  """Builds a SqueezeNet-family functional model.

  Args:
    spec: the network. Validated again here.
    keras_module: `keras` (Keras 3, the default) or `tf_keras` (Keras 2, for
      tensorflow-model-optimization); both get the same layers and names.
    softmax: True to end in class probabilities (layer `softmax`), False to end
      in logits (layer `avgpool`).
    seed: makes the initial weights reproducible; None draws fresh ones.
    name: model name; defaults to `spec.name`.

  Returns:
    A functional model mapping [batch, H, W, C] pixels in [0, 255] to
    [batch, num_classes].

  Raises:
    ValueError: when `spec` is not a NetSpec or cannot be built.
  """
  if not isinstance(spec, spec_lib.NetSpec):
    raise ValueError(f"build_model expects a squish_tf.net.spec.NetSpec, got {type(spec).__name__}.")
  spec.validate()
  layers = keras_module.layers
  seeds = _SeedSequence(seed)
  kernel_init = lambda: _initializer(keras_module, spec.kernel_initializer, seeds.next())
  conv = functools.partial(conv_relu, layers=layers, kernel_init=kernel_init,
                           batch_norm=spec.batch_norm)

  inputs = keras_module.Input(shape=spec.input_shape, name=INPUT_NAME, dtype="float32")
  x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=PREPROCESS_NAME)(inputs)
  x = conv(x, spec.conv1_filters, spec.conv1_kernel_size, "conv1", strides=spec.conv1_strides,
           padding="valid")
  if 1 in spec.pool_after:
    x = _max_pool(layers, "pool1")(x)
  for number, fire in spec.numbered_fires():
    x = fire_module(x, fire, f"fire{number}", conv, layers)
    if number in spec.pool_after:
      x = _max_pool(layers, f"pool{number}")(x)
  if spec.dropout_rate > 0:
    x = layers.Dropout(spec.dropout_rate, seed=seeds.next(), name="dropout")(x)
  x = layers.Conv2D(spec.num_classes, 1, padding="valid", activation=spec.classifier_activation,
                    kernel_initializer=_initializer(keras_module, spec.classifier_initializer,
                                                    seeds.next()),
                    name="conv10")(x)
  outputs = layers.GlobalAveragePooling2D(name=LOGITS_NAME)(x)
  if softmax:
    outputs = layers.Activation("softmax", name="softmax", dtype="float32")(outputs)
  return keras_module.Model(inputs, outputs, name=name or spec.name)


def fire_module(x, fire: spec_lib.FireSpec, prefix: str, conv, layers):
  """squeeze 1x1 + ReLU -> [expand 1x1 + ReLU, expand 3x3 + ReLU] concatenated (1x1 first).

  Args:
    x: the input tensor.
    fire: the module's widths.
    prefix: layer name prefix ("fire2").
    conv: `conv_relu` with the builder's layers, initialiser and batch-norm choice bound.
    layers: the Keras module's layers (Keras 3 or tf_keras).
  """
  x = conv(x, fire.squeeze, 1, f"{prefix}_squeeze1x1")
  left = conv(x, fire.expand1x1, 1, f"{prefix}_expand1x1")
  right = conv(x, fire.expand3x3, 3, f"{prefix}_expand3x3", padding="same")
  return layers.Concatenate(axis=-1, name=f"{prefix}_concat")([left, right])


def conv_relu(x, filters: int, kernel_size: int, name: str, layers, kernel_init,
              batch_norm: bool, strides: int = 1, padding: str = "valid"):
  """Conv2D + ReLU named `name`; with batch norm, Conv2D (no bias) -> `name_bn` -> `name_relu`."""
  if not batch_norm:
    return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                         activation="relu", kernel_initializer=kernel_init(), name=name)(x)
  x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                    kernel_initializer=kernel_init(), name=name)(x)
  x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                name=name + BN_SUFFIX)(x)
  return layers.ReLU(name=name + RELU_SUFFIX)(x)




def copy_weights_by_name(source, target) -> int:
  """Copies weights of every layer of `target` that has a namesake in `source`.

  Works across Keras 3 and tf_keras. Raises ValueError when a shared name has
  weights of different shapes, so a silent mismatch cannot slip through.

  Returns:
    The number of layers whose weights were copied.
  """
  by_name: Dict[str, Any] = {layer.name: layer for layer in source.layers}
  copied = 0
  for layer in target.layers:
    weights = layer.get_weights()
    if not weights or layer.name not in by_name:
      continue
    values = by_name[layer.name].get_weights()
    shapes = [tuple(w.shape) for w in weights]
    if [tuple(v.shape) for v in values] != shapes:
      raise ValueError(f"Layer {layer.name!r}: source weights {[v.shape for v in values]} do not "
                       f"match target weights {shapes}.")
    layer.set_weights(values)
    copied += 1
  return copied


def _max_pool(layers, name: str):
  return layers.MaxPooling2D(pool_size=spec_lib.POOL_SIZE, strides=spec_lib.POOL_STRIDE,
                             padding="valid", name=name)


def _initializer(keras_module, name: str, seed: Optional[int]):
  initializers = keras_module.initializers
  if name == "glorot_uniform":
    return initializers.GlorotUniform(seed=seed)
  if name == "he_uniform":
    return initializers.HeUniform(seed=seed)
  if name == "he_normal":
    return initializers.HeNormal(seed=seed)
  if name == "normal_0.01":
    return initializers.RandomNormal(mean=0.0, stddev=0.01, seed=seed)
  raise ValueError(f"Unknown initializer {name!r}; expected one of {spec_lib.INITIALIZERS}.")


class _SeedSequence:
  """Distinct, reproducible per-layer seeds from one model seed (None stays None)."""

  def __init__(self, seed: Optional[int]):
    self._seed = seed
    self._count = 0

  def next(self) -> Optional[int]:
    if self._seed is None:
      return None
    self._count += 1
    return (int(self._seed) * 1009 + self._count) % (2**31 - 1)
