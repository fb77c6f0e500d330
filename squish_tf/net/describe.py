"""What any model costs as deployed: parameters with batch norm folded and MACs, for our
specs and for Keras models that are not (`ForeignModel`)."""

import dataclasses
import os
from typing import Optional, Tuple

import keras
import numpy as np

from squish_tf import files as files_lib
from squish_tf.net import model_io


def deployed_params(model) -> int:
  """Parameters once every batch norm is folded into the convolution before it.

  A BatchNormalization after a bias-free convolution (as in MobileNetV3 and
  our batch-norm SqueezeNets) keeps one of its four vectors per channel, the
  folded bias.
  """
  folded = sum(3 * int(layer.gamma.shape[0]) for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization) and layer.scale)
  return int(model.count_params()) - folded


def keras_macs(model) -> int:
  """Multiply-accumulates of convolutions and dense layers, read off a built Keras model."""
  total = 0
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
      out_h, out_w = layer.output.shape[1], layer.output.shape[2]
      kernel = layer.kernel.shape  # conv: [kh, kw, cin, cout]; depthwise: [kh, kw, cin, mult]
      total += int(out_h * out_w * np.prod(kernel))
    elif isinstance(layer, keras.layers.Dense):
      total += int(np.prod(layer.kernel.shape))
  return total


@dataclasses.dataclass(frozen=True)
class ForeignModel:
  """What export needs to know of a Keras model that is not a SqueezeNet (a baseline).

  Duck-types the parts of NetSpec the SavedModel and TFLite exports read.
  """

  name: str
  input_shape: Tuple[int, int, int]
  num_classes: int
  param_count: int
  mac_count: Optional[int]

  def params(self) -> int:
    return self.param_count

  def macs(self) -> Optional[int]:
    return self.mac_count


def spec_or_foreign(model_dir: str):
  """The model dir's NetSpec, or a ForeignModel for a spec-less baseline model dir."""
  has_spec = os.path.isfile(os.path.join(model_dir, model_io.SPEC_FILE))
  metrics_path = os.path.join(model_dir, model_io.METRICS_FILE)
  if has_spec or not os.path.isfile(metrics_path):
    return model_io.read_spec(model_dir)
  metrics = files_lib.read_json(metrics_path)
  if "input_shape" not in metrics or "num_classes" not in metrics:
    return model_io.read_spec(model_dir)  # raises: no spec.json, and not a known baseline
  return ForeignModel(name=str(metrics.get("baseline", os.path.basename(model_dir))),
                      input_shape=tuple(int(v) for v in metrics["input_shape"]),
                      num_classes=int(metrics["num_classes"]), param_count=int(metrics["params"]),
                      mac_count=metrics.get("macs"))
