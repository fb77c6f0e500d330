"""Batch norm at the edges of a SqueezeNet-family model: folding it away, re-estimating it.

A spec with `batch_norm` trains as conv (no bias) -> BatchNormalization ->
ReLU. In inference BN is an affine map per filter,

  BN(z) = gamma * (z - mean) / sqrt(var + eps) + beta,

so it folds into the convolution before it: with g = gamma / sqrt(var + eps),

  folded kernel  W'_c = g_c * W_c        folded bias  b'_c = beta_c - g_c * mean_c.

`folded_weights` gives those for every convolution; `deployed_model` builds the
batch-norm-free twin (`spec.replace(batch_norm=False)`) holding them, which is
what every export writes: TFLite, the SavedModel and the Jetson graph carry
plain Conv2D + bias + ReLU, and `spec.params()` counts exactly its weights.

Filter strength (docs/method.md) is the L1 norm of the folded kernel,
|g_c| * sum |W_c|: what the filter contributes once deployed. A filter whose
gamma is near zero is weak however large its raw kernel.

`recalibrate` re-estimates the moving statistics after surgery (EagleEye's
"adaptive BN"): removing input channels shifts every consumer's pre-BN mean,
and the stored statistics no longer match the child.
"""

from typing import Any, Dict, Iterable, Tuple

import keras
import numpy as np

from squish_tf.net import models
from squish_tf.net import spec as spec_lib


def bn_layer(model, conv_name: str):
  """The BatchNormalization layer after convolution `conv_name`, or None."""
  try:
    return model.get_layer(conv_name + models.BN_SUFFIX)
  except ValueError:
    return None


def bn_scale(bn_weights) -> np.ndarray:
  """g = gamma / sqrt(moving variance + eps), float64, from BN's [gamma, beta, mean, var]."""
  gamma, _, _, variance = (np.asarray(w, np.float64) for w in bn_weights)
  return gamma / np.sqrt(variance + models.BN_EPSILON)


def conv_weights(model, shape: spec_lib.LayerShape, batch_norm: bool
                 ) -> Tuple[np.ndarray, np.ndarray, list]:
  """(kernel, bias or None, BN weights or []) of convolution `shape.name`, checked against it.

  Raises:
    ValueError: no such layer, or weights whose shapes the spec does not predict.
  """
  try:
    layer = model.get_layer(shape.name)
  except ValueError:
    raise ValueError(f"model {model.name!r} has no layer {shape.name!r}; surgery and export need "
                     "a model built by squish_tf.net.models.build_model (or loaded from its .keras "
                     "file) with the stable layer names.") from None
  weights = layer.get_weights()
  expected = (shape.kernel_size, shape.kernel_size, shape.in_channels, shape.filters)
  with_bn = batch_norm and shape.prunable
  bn = bn_layer(model, shape.name).get_weights() if with_bn and bn_layer(model, shape.name) else []
  ok = (bool(weights) and tuple(weights[0].shape) == expected
        and len(weights) == (1 if with_bn else 2) and (not with_bn or len(bn) == 4))
  if not ok:
    found = [tuple(w.shape) for w in weights]
    what = "a kernel and a batch norm" if with_bn else "a kernel and a bias"
    raise ValueError(f"layer {shape.name!r} of model {model.name!r} has weights {found}, but the "
                     f"spec expects {what}, kernel {expected}; the model and spec disagree. Load "
                     "the spec.json saved next to this model.")
  return weights[0], (None if with_bn else weights[1]), bn


def folded_weights(model, spec: spec_lib.NetSpec) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """{convolution name: (kernel, bias)} of the deployed network, batch norm folded in.

  Without batch norm these are the model's own kernels and biases (as float32).
  """
  out = {}
  for shape in spec.layer_shapes():
    kernel, bias, bn = conv_weights(model, shape, spec.batch_norm)
    if bn:
      scale = bn_scale(bn)
      _, beta, mean, _ = (np.asarray(w, np.float64) for w in bn)
      kernel = np.asarray(kernel, np.float64) * scale
      bias = beta - scale * mean
    out[shape.name] = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
  return out


def deployed_spec(spec: spec_lib.NetSpec) -> spec_lib.NetSpec:
  """The batch-norm-free spec of the deployed network (same layers, same params())."""
  return spec.replace(batch_norm=False)


def deployed_model(model, spec: spec_lib.NetSpec):
  """The model with every batch norm folded into its convolution (a new Keras 3 model).

  The same input, layer names, head (softmax or logits) and outputs up to
  float rounding; a model without batch norm comes back as it is.
  """
  if not spec.batch_norm:
    return model
  softmax = any(layer.name == "softmax" for layer in model.layers)
  deployed = models.build_model(deployed_spec(spec), softmax=softmax, name=model.name)
  for name, (kernel, bias) in folded_weights(model, spec).items():
    deployed.get_layer(name).set_weights([kernel, bias])
  return deployed


def recalibrate(model, batches: Iterable[Any], max_batches: int = 8) -> int:
  """Re-estimates every BatchNormalization's moving mean and variance from data.

  Runs the model in training mode (batch statistics, no gradient) on up to
  `max_batches` batches and sets each moving statistic to the average of the
  batch statistics: batch k is blended in with momentum k / (k + 1), the
  cumulative average. Nothing else changes; dropout's draws are discarded.

  Args:
    model: a Keras 3 model (a model without batch norm is left alone).
    batches: image batches, or (images, labels) batches (a training split).
    max_batches: how many batches to use.

  Returns:
    The number of batches used.
  """
  layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
  if not layers:
    return 0
  momenta = [layer.momentum for layer in layers]
  used = 0
  try:
    for batch in batches:
      if used >= max_batches:
        break
      images = batch[0] if isinstance(batch, (tuple, list)) else batch
      for layer in layers:
        layer.momentum = used / (used + 1.0)
      model(images, training=True)
      used += 1
  finally:
    for layer, momentum in zip(layers, momenta):
      layer.momentum = momentum
  return used


def for_export(model, spec):
  """(deployed model, deployed spec): what every export writes.

  A NetSpec with batch norm gives `deployed_model` and `deployed_spec`;
  anything else (a spec without batch norm, or the stand-in spec of a
  foreign model such as a baseline, which has no batch_norm field) comes
  back as it is.
  """
  if isinstance(spec, spec_lib.NetSpec) and spec.batch_norm:
    return deployed_model(model, spec), deployed_spec(spec)
  return model, spec
