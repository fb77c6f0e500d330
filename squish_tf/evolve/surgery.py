"""The TensorFlow edge of synthesis: strengths from a Keras model, the dense child model.

`squish_tf.evolve.encoding` decides everything in numpy (which filters survive, the
child spec, the index map); this module only reads kernels out of a parent
model and writes sliced kernels into a freshly built child. Layers are
addressed by the stable names `squish_tf.net.models.build_model` gives them, so a
parent ending in softmax or in logits, built here or loaded from a
`.keras` file, works the same.

Surgery is exact (docs/method.md): for any survivor mask the child
computes what the parent computes with the removed filters' folded kernels and
biases set to zero (`zero_removed`), because a zeroed filter's ReLU output
is exactly 0 and contributes nothing to any consumer. With batch norm the
removed filters' gamma and beta are zeroed (folded kernel g * W = 0, folded
bias beta - g * mean = 0), and the survivors' gamma, beta and moving
statistics travel with their kernels.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

import keras
import numpy as np

from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve.config import OFFSPRING_INITS
from squish_tf.net import batch_norm as bn_lib
from squish_tf.net import models
from squish_tf.net import spec as spec_lib

def layer_strengths(model, spec: spec_lib.NetSpec) -> Dict[str, np.ndarray]:
  """Filter strengths s_c = sum |W'_c| of every prunable layer of `model`.

  W' is the deployed kernel: with batch norm, the folded kernel
  gamma_c / sqrt(var_c + eps) * W_c (`squish_tf.net.batch_norm`); without, W.

  Args:
    model: a Keras model built from `spec` (any output head).
    spec: the model's spec; kernel shapes are checked against it.

  Returns:
    {layer name: float64 array [filters]} for conv1 and every squeeze/expand.
  """
  folded = bn_lib.folded_weights(model, spec)
  return {name: synthesis.filter_strengths(folded[name][0]) for name, _ in spec.prunable_layers()}


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
      kernel, bias, bn = bn_lib.conv_weights(parent_model, shape, parent_spec.batch_norm)
      kept_out = outputs[shape.name]
      # One gather for both axes: the two index arrays are adjacent, so the
      # result keeps the [kh, kw, in, out] layout.
      kept = kernel[:, :, inputs[shape.name][:, None], kept_out[None, :]]
      child.get_layer(shape.name).set_weights([kept] if bias is None else [kept, bias[kept_out]])
      if bn:  # gamma, beta, moving mean, moving variance travel with their filter
        bn_lib.bn_layer(child, shape.name).set_weights([w[kept_out] for w in bn])
  return child, child_spec


def zero_removed(parent_model, parent_spec: spec_lib.NetSpec, survivors: Mapping[str, Any]):
  """A copy of the parent whose removed filters have zero folded kernels and biases.

  The reference the surgery must reproduce exactly: the copy has the parent's
  shapes, but every removed filter outputs ReLU(0) = 0 everywhere. Without
  batch norm its kernel and bias are zeroed; with batch norm its kernel, gamma
  and beta (so the folded kernel g * W and the folded bias beta - g * mean are
  both zero, and BN outputs exactly 0 whatever the input).
  """
  kept = synthesis.check_survivors(parent_spec, survivors)
  copy = keras.models.clone_model(parent_model)
  copy.set_weights(parent_model.get_weights())
  shapes = {layer.name: layer for layer in parent_spec.layer_shapes()}
  for name, filters in parent_spec.prunable_layers():
    kernel, bias, bn = bn_lib.conv_weights(copy, shapes[name], parent_spec.batch_norm)
    removed = np.setdiff1d(np.arange(filters), kept[name])
    kernel[..., removed] = 0
    if bias is None:
      copy.get_layer(name).set_weights([kernel])
      gamma, beta, mean, variance = bn
      gamma[removed] = 0
      beta[removed] = 0
      bn_lib.bn_layer(copy, name).set_weights([gamma, beta, mean, variance])
    else:
      bias[removed] = 0
      copy.get_layer(name).set_weights([kernel, bias])
  return copy
