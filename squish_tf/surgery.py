"""The TensorFlow edge of synthesis: strengths from a Keras model, the dense child model.

`squish_tf.synthesis` decides everything in numpy (which filters survive, the
child spec, the index map); this module only reads kernels out of a parent
model and writes sliced kernels into a freshly built child. Layers are
addressed by the stable names `squish_tf.models.build_model` gives them, so a
parent ending in softmax or in logits, built here or loaded from a
`.keras` file, works the same.

Surgery is exact (design/SYNTHESIS.md): for any survivor mask the child
computes what the parent computes with the removed filters' kernels and
biases set to zero (`zero_removed`), because a zeroed filter's ReLU output
is exactly 0 and contributes nothing to any consumer.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

import keras
import numpy as np

from squish_tf import models
from squish_tf import spec as spec_lib
from squish_tf import synthesis

OFFSPRING_INITS = ("inherit", "scratch")


def layer_strengths(model, spec: spec_lib.NetSpec) -> Dict[str, np.ndarray]:
  """Filter strengths s_c = sum |W_c| of every prunable layer of `model`.

  Args:
    model: a Keras model built from `spec` (any output head).
    spec: the model's spec; kernel shapes are checked against it.

  Returns:
    {layer name: float64 array [filters]} for conv1 and every squeeze/expand.
  """
  shapes = {layer.name: layer for layer in spec.layer_shapes()}
  return {name: synthesis.filter_strengths(_conv_weights(model, shapes[name])[0])
          for name, _ in spec.prunable_layers()}


def build_child(parent_model, parent_spec: spec_lib.NetSpec, survivors: Mapping[str, Any],
                offspring_init: str = "inherit", seed: Optional[int] = None,
                softmax: bool = True, name: Optional[str] = None) -> Tuple[Any, spec_lib.NetSpec]:
  """Builds the dense child model of `parent_model` for `survivors`.

  Args:
    parent_model: the parent Keras model (softmax or logits head).
    parent_spec: the parent's spec.
    survivors: kept filter indices per prunable layer (`sample_survivors`).
    offspring_init: "inherit" slices every kernel and bias out of the parent
      (output filters of each layer, input channels of each consumer through
      the index map; conv10's outputs are never pruned); "scratch" keeps the
      fresh initial weights ("trained like a newborn", as in the Darwin paper).
    seed: seed of the child's initial weights (and dropout).
    softmax: True for a child ending in probabilities, False for logits.
    name: the child's model and spec name (see `synthesis.child_spec`).

  Returns:
    (child_model, child_spec).

  Raises:
    ValueError: unknown `offspring_init`, survivors that do not fit the
      parent spec, or a parent model whose layers do not match its spec.
  """
  if offspring_init not in OFFSPRING_INITS:
    raise ValueError(f"--offspring_init must be one of {OFFSPRING_INITS}, got "
                     f"{offspring_init!r}.")
  child_spec = synthesis.child_spec(parent_spec, survivors, name=name)
  child = models.build_model(child_spec, seed=seed, softmax=softmax)
  if offspring_init == "inherit":
    inputs = synthesis.input_channel_map(parent_spec, survivors)
    outputs = synthesis.output_channel_map(parent_spec, survivors)
    for shape in parent_spec.layer_shapes():
      kernel, bias = _conv_weights(parent_model, shape)
      # One gather for both axes: the two index arrays are adjacent, so the
      # result keeps the [kh, kw, in, out] layout.
      kept = kernel[:, :, inputs[shape.name][:, None], outputs[shape.name][None, :]]
      child.get_layer(shape.name).set_weights([kept, bias[outputs[shape.name]]])
  return child, child_spec


def zero_removed(parent_model, parent_spec: spec_lib.NetSpec, survivors: Mapping[str, Any]):
  """A copy of the parent whose removed filters have zero kernels and zero biases.

  The reference the surgery must reproduce exactly: the copy has the parent's
  shapes, but every removed filter outputs ReLU(0) = 0 everywhere.
  """
  kept = synthesis.check_survivors(parent_spec, survivors)
  copy = keras.models.clone_model(parent_model)
  copy.set_weights(parent_model.get_weights())
  shapes = {layer.name: layer for layer in parent_spec.layer_shapes()}
  for name, filters in parent_spec.prunable_layers():
    kernel, bias = _conv_weights(copy, shapes[name])
    removed = np.setdiff1d(np.arange(filters), kept[name])
    kernel[..., removed] = 0
    bias[removed] = 0
    copy.get_layer(name).set_weights([kernel, bias])
  return copy


def _conv_weights(model, shape: spec_lib.LayerShape) -> Tuple[np.ndarray, np.ndarray]:
  """(kernel, bias) of the model's convolution `shape.name`, checked against the spec."""
  try:
    layer = model.get_layer(shape.name)
  except ValueError:
    raise ValueError(f"model {model.name!r} has no layer {shape.name!r}; surgery needs a model "
                     "built by squish_tf.models.build_model (or loaded from its .keras file) "
                     "with the stable layer names.") from None
  weights = layer.get_weights()
  expected = (shape.kernel_size, shape.kernel_size, shape.in_channels, shape.filters)
  if len(weights) != 2 or tuple(weights[0].shape) != expected:
    found = [tuple(w.shape) for w in weights]
    raise ValueError(f"layer {shape.name!r} of model {model.name!r} has weights {found}, but the "
                     f"spec {shape.name!r} expects kernel {expected} and bias "
                     f"({shape.filters},); the model and spec disagree. Load the spec.json saved "
                     "next to this model.")
  return weights[0], weights[1]
