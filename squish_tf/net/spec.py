"""SqueezeNet-family networks as data.

A `NetSpec` says everything needed to build, size and cost a network without
TensorFlow: the input shape, the stem convolution, the fire modules, where the
max pools sit, the classifier and the choices that make a few-class variant
train reliably (batch normalisation among them). `params()` and `macs()` are
analytic: `params()` counts the **deployed** network (each convolution's kernel
and one bias per filter, which is what every export holds once batch norm is
folded into the convolutions) and equals Keras `count_params()` for a spec
without batch norm; `keras_params()` is Keras' own count, batch norm's four
vectors per filter included. Evolution decides child sizes with them before
any model is built.

Layer numbering follows the SqueezeNet paper: module 1 is `conv1`, fire modules
are numbered from 2 (`fire2` ... `fire9` in v1.1), and `pool_after` lists the
module numbers followed by a 3x3/2 max pool.

This module imports nothing from TensorFlow on purpose.
"""

import dataclasses
import json
import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

FAMILY = "squeezenet"
SPEC_VERSION = 1


# Initialisers a spec may name; `squish_tf.net.models` maps each to a Keras object.
# "normal_0.01" is torchvision's init for SqueezeNet's final conv: N(0, 0.01).
INITIALIZERS = ("glorot_uniform", "he_uniform", "he_normal", "normal_0.01")
CLASSIFIER_ACTIVATIONS = ("relu", "linear")


POOL_SIZE = 3
POOL_STRIDE = 2


def _as_int(field: str, value: Any) -> Any:
  """numpy integers (from synthesis) become ints; anything else is left for validate()."""
  if isinstance(value, numbers.Integral) and not isinstance(value, bool):
    return int(value)
  return value


@dataclasses.dataclass(frozen=True)
class FireSpec:
  """One fire module: squeeze 1x1, then expand 1x1 and expand 3x3, concatenated.

  Attributes:
    squeeze: filters of the squeeze 1x1 convolution.
    expand1x1: filters of the expand 1x1 convolution (first in the concat).
    expand3x3: filters of the expand 3x3 convolution (second in the concat).
  """

  squeeze: int
  expand1x1: int
  expand3x3: int

  def __post_init__(self):
    for field in ("squeeze", "expand1x1", "expand3x3"):
      object.__setattr__(self, field, _as_int(field, getattr(self, field)))

  @property
  def out_channels(self) -> int:
    return self.expand1x1 + self.expand3x3


@dataclasses.dataclass(frozen=True)
class LayerShape:
  """Where a prunable or costed convolution sits and what it costs."""

  name: str
  kernel_size: int
  in_channels: int
  filters: int
  out_height: int
  out_width: int
  prunable: bool

  @property
  def params(self) -> int:
    return self.kernel_size * self.kernel_size * self.in_channels * self.filters + self.filters

  @property
  def macs(self) -> int:
    return (self.out_height * self.out_width * self.kernel_size * self.kernel_size *
            self.in_channels * self.filters)


V1_1_FIRES = (
    FireSpec(16, 64, 64),
    FireSpec(16, 64, 64),
    FireSpec(32, 128, 128),
    FireSpec(32, 128, 128),
    FireSpec(48, 192, 192),
    FireSpec(48, 192, 192),
    FireSpec(64, 256, 256),
    FireSpec(64, 256, 256),
)


@dataclasses.dataclass(frozen=True)
class NetSpec:
  """A SqueezeNet-family network.

  Attributes:
    input_shape: (height, width, channels) of the input pixels.
    num_classes: filters of the classifier `conv10`; at least 2.
    conv1_filters: filters of the stem convolution `conv1`.
    conv1_kernel_size: kernel size of `conv1` (valid padding).
    conv1_strides: stride of `conv1`.
    fires: the fire modules, numbered from 2.
    pool_after: module numbers (1 = conv1, k = fire k) followed by a 3x3/2 max pool.
    dropout_rate: dropout before `conv10`.
    classifier_activation: "relu" (SqueezeNet as published) or "linear".
    kernel_initializer: initialiser of every convolution but the classifier.
    classifier_initializer: initialiser of `conv10`.
    batch_norm: conv1 and every fire convolution become conv (no bias) ->
      BatchNormalization -> ReLU; conv10 keeps its bias and has no batch norm.
      Exports fold each batch norm into its convolution, so the deployed
      network has the same layers and `params()` either way.
    name: a label for humans; not part of the architecture.
  """

  input_shape: Tuple[int, int, int] = (224, 224, 3)
  num_classes: int = 1000
  conv1_filters: int = 64
  conv1_kernel_size: int = 3
  conv1_strides: int = 2
  fires: Tuple[FireSpec, ...] = V1_1_FIRES
  pool_after: Tuple[int, ...] = (1, 3, 5)
  dropout_rate: float = 0.5
  classifier_activation: str = "relu"
  kernel_initializer: str = "glorot_uniform"
  classifier_initializer: str = "glorot_uniform"
  batch_norm: bool = False
  name: str = "squeezenet_v1_1"

  def __post_init__(self):
    # Normalise sequences (JSON gives lists) so that equality and hashing work.
    object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
    object.__setattr__(self, "fires", tuple(
        f if isinstance(f, FireSpec) else FireSpec(**f) for f in self.fires))
    object.__setattr__(self, "pool_after", tuple(int(v) for v in self.pool_after))
    for field in ("num_classes", "conv1_filters", "conv1_kernel_size", "conv1_strides"):
      object.__setattr__(self, field, _as_int(field, getattr(self, field)))
    self.validate()

  # -- validation -------------------------------------------------------------

  def validate(self) -> None:
    """Raises ValueError naming the field and value when the spec cannot be built."""
    if len(self.input_shape) != 3:
      raise ValueError(f"input_shape must be (height, width, channels), got {self.input_shape!r}.")
    for axis, value in zip(("height", "width", "channels"), self.input_shape):
      if value < 1:
        raise ValueError(f"input_shape {axis} must be >= 1, got {value} in {self.input_shape!r}.")
    if self.num_classes < 2:
      raise ValueError(f"num_classes must be >= 2 (a classifier needs two classes), "
                       f"got {self.num_classes}.")
    _positive("conv1_filters", self.conv1_filters)
    _positive("conv1_kernel_size", self.conv1_kernel_size)
    _positive("conv1_strides", self.conv1_strides)
    if not self.fires:
      raise ValueError("fires must list at least one fire module, got an empty tuple.")
    for number, fire in self.numbered_fires():
      for field in ("squeeze", "expand1x1", "expand3x3"):
        value = getattr(fire, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
          raise ValueError(f"fire{number}.{field} must be a positive integer, got {value!r}; "
                           "every layer needs at least one filter.")
    last_module = len(self.fires) + 1
    for module in self.pool_after:
      if not 1 <= module <= last_module:
        raise ValueError(f"pool_after entries must be module numbers in [1, {last_module}] "
                         f"(1 = conv1, k = fire k), got {module} in {self.pool_after!r}.")
    if len(set(self.pool_after)) != len(self.pool_after):
      raise ValueError(f"pool_after lists a module twice: {self.pool_after!r}.")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}.")
    if self.classifier_activation not in CLASSIFIER_ACTIVATIONS:
      raise ValueError(f"classifier_activation must be one of {CLASSIFIER_ACTIVATIONS}, "
                       f"got {self.classifier_activation!r}.")
    if not isinstance(self.batch_norm, bool):
      raise ValueError(f"batch_norm must be true or false, got {self.batch_norm!r}.")
    for field in ("kernel_initializer", "classifier_initializer"):
      if getattr(self, field) not in INITIALIZERS:
        raise ValueError(f"{field} must be one of {INITIALIZERS}, got {getattr(self, field)!r}.")
    minimum = self.min_input_size()
    height, width, _ = self.input_shape
    if min(height, width) < minimum:
      raise ValueError(
          f"input_shape {self.input_shape!r} is smaller than this network's minimum input "
          f"{minimum}x{minimum} (conv1 and {len(self.pool_after)} max pools must leave at least "
          f"1x1); use a larger image size.")

  # -- structure --------------------------------------------------------------

  def numbered_fires(self) -> List[Tuple[int, FireSpec]]:
    """[(2, fire2), (3, fire3), ...]."""
    return [(i + 2, fire) for i, fire in enumerate(self.fires)]

  def layer_shapes(self) -> List[LayerShape]:
    """Every convolution in build order, with its output size at `input_shape`."""
    height, width, channels = self.input_shape
    height, width = (_conv_out(height, self.conv1_kernel_size, self.conv1_strides),
                     _conv_out(width, self.conv1_kernel_size, self.conv1_strides))
    if min(height, width) < 1:
      raise ValueError(f"input_shape {self.input_shape!r} is too small for conv1.")
    layers = [LayerShape("conv1", self.conv1_kernel_size, channels, self.conv1_filters,
                         height, width, True)]
    channels = self.conv1_filters
    if 1 in self.pool_after:
      height, width = _pool_out(height), _pool_out(width)
    for number, fire in self.numbered_fires():
      prefix = f"fire{number}_"
      layers.append(LayerShape(prefix + "squeeze1x1", 1, channels, fire.squeeze, height, width,
                               True))
      layers.append(LayerShape(prefix + "expand1x1", 1, fire.squeeze, fire.expand1x1, height, width,
                               True))
      layers.append(LayerShape(prefix + "expand3x3", 3, fire.squeeze, fire.expand3x3, height, width,
                               True))
      channels = fire.out_channels
      if number in self.pool_after:
        height, width = _pool_out(height), _pool_out(width)
    layers.append(LayerShape("conv10", 1, channels, self.num_classes, height, width, False))
    return layers

  def min_input_size(self) -> int:
    """Smallest square input for which every feature map is at least 1x1."""
    size = 1
    for _ in self.pool_after:
      size = (size - 1) * POOL_STRIDE + POOL_SIZE
    return (size - 1) * self.conv1_strides + self.conv1_kernel_size

  def prunable_layers(self) -> List[Tuple[str, int]]:
    """[(layer name, filters)] for conv1 and every squeeze/expand convolution."""
    return [(layer.name, layer.filters) for layer in self.layer_shapes() if layer.prunable]

  # -- cost -------------------------------------------------------------------

  def params(self) -> int:
    """Deployed parameters: every kernel plus one bias per filter.

    What an export holds, batch norm folded into its convolution (a folded
    filter's bias is beta - mean * gamma / sqrt(var + eps)). Without batch
    norm this is Keras `count_params()`; with it, see `keras_params()`.
    """
    return sum(layer.params for layer in self.layer_shapes())

  def keras_params(self) -> int:
    """Keras `count_params()` of the training model (batch norm unfolded).

    With batch norm a prunable convolution has no bias, and its batch norm
    holds four vectors per filter (gamma, beta, moving mean, moving variance):
    three values per filter more than the deployed count.
    """
    if not self.batch_norm:
      return self.params()
    return self.params() + 3 * self.num_filters()

  def macs(self) -> int:
    """Multiply-accumulates of one forward pass at `input_shape` (convolutions only)."""
    return sum(layer.macs for layer in self.layer_shapes())

  def size_mb(self) -> float:
    """Deployed float32 weight size in MB (1e6 bytes), as the SquishedNets paper reports it."""
    return self.params() * 4 / 1e6

  def num_filters(self) -> int:
    """Filters in all prunable layers (for cluster efficiency)."""
    return sum(filters for _, filters in self.prunable_layers())

  # -- transforms -------------------------------------------------------------

  def replace(self, **changes: Any) -> "NetSpec":
    """A copy with fields changed (validated)."""
    return dataclasses.replace(self, **changes)

  def architecture_key(self) -> Dict[str, Any]:
    """The fields that decide the weights' shapes (everything but the name)."""
    data = self.to_dict()
    data.pop("name")
    return data

  # -- serialisation ----------------------------------------------------------

  def to_dict(self) -> Dict[str, Any]:
    data = dataclasses.asdict(self)
    data["input_shape"] = list(self.input_shape)
    data["pool_after"] = list(self.pool_after)
    return {"family": FAMILY, "version": SPEC_VERSION, **data}

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "NetSpec":
    """Inverse of `to_dict`; refuses other families and unknown fields."""
    if not isinstance(data, Mapping):
      raise ValueError(f"A NetSpec must be a JSON object, got {type(data).__name__}.")
    data = dict(data)
    family = data.pop("family", None)
    if family != FAMILY:
      raise ValueError(f"Not a SqueezeNet-family spec: family is {family!r}, expected {FAMILY!r}.")
    version = data.pop("version", None)
    if version != SPEC_VERSION:
      raise ValueError(f"Unsupported spec version {version!r}; this squish_tf reads version "
                       f"{SPEC_VERSION}.")
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise ValueError(f"Unknown NetSpec fields {unknown}; known fields are {sorted(known)}.")
    # Version-1 specs written before batch norm existed have no such field: they
    # are the batch-norm-free networks they describe (the dataclass default).
    fires = data.get("fires", V1_1_FIRES)
    try:
      data["fires"] = tuple(f if isinstance(f, FireSpec) else FireSpec(**f) for f in fires)
    except TypeError as error:
      raise ValueError(f"Bad fire module in spec: {error}.") from None
    return cls(**data)

  @classmethod
  def from_json(cls, text: str) -> "NetSpec":
    try:
      data = json.loads(text)
    except json.JSONDecodeError as error:
      raise ValueError(f"spec is not valid JSON: {error}.") from None
    return cls.from_dict(data)


def _positive(field: str, value: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{field} must be a positive integer, got {value!r}.")


def _conv_out(size: int, kernel: int, stride: int) -> int:
  return (size - kernel) // stride + 1


def _pool_out(size: int) -> int:
  # Keras "valid" (floor) pooling. Caffe/torchvision pool in ceil mode; both give
  # the same sizes whenever (size - 3) is even, as at 224 px (111 -> 55 -> 27 -> 13)
  # and at the 32/64/128 px sizes squish_tf trains at.
  return (size - POOL_SIZE) // POOL_STRIDE + 1


def squeezenet_v1_1(num_classes: int = 1000,
                    input_shape: Sequence[int] = (224, 224, 3)) -> NetSpec:
  """SqueezeNet v1.1 exactly as published (torchvision `squeezenet1_1`).

  1,235,496 parameters for 1000 classes, 349,151,936 MACs at 224x224.
  """
  return NetSpec(input_shape=tuple(input_shape), num_classes=num_classes,
                 name="squeezenet_v1_1")


def squishednet_base(num_classes: int = 10,
                     input_shape: Sequence[int] = (224, 224, 3),
                     dropout_rate: float = 0.5,
                     classifier_activation: str = "linear",
                     kernel_initializer: str = "he_uniform",
                     classifier_initializer: str = "normal_0.01",
                     batch_norm: bool = True) -> NetSpec:
  """The few-class SqueezeNet v1.1 macroarchitecture that evolution starts from.

  The SquishedNets paper modifies SqueezeNet v1.1 for 10 classes without
  publishing the exact edits. Ours, each a spec field:

  1. `conv10` has `num_classes` filters (required for a 10-class head).
  2. `classifier_activation="linear"`: v1.1 puts a ReLU on `conv10`. With few
     classes a class whose conv10 outputs turn negative everywhere gets a zero
     logit and zero gradient for good, and training from scratch on a small
     dataset can sit at chance. Linear logits cannot die.
  3. `kernel_initializer="he_uniform"`: variance-preserving for a ReLU stack
     (torchvision uses Kaiming-uniform for SqueezeNet's convolutions).
  4. `classifier_initializer="normal_0.01"`: torchvision's N(0, 0.01) for the
     final conv, so training starts from near-uniform predictions.
  5. `batch_norm=True`: conv (no bias) -> BatchNormalization -> ReLU in conv1
     and every fire. Without it the ancestor trained slowly, its accuracy
     swung with thread scheduling, and pruned offspring recovered poorly in a
     few epochs. Every export folds batch norm into the
     convolutions, so the deployed network is the plain conv + bias + ReLU
     SqueezeNet (same `params()`, same ops on the Jetson).

  Args:
    num_classes: classes of the problem (>= 2).
    input_shape: (height, width, channels) of the training images.
    dropout_rate: dropout before conv10 (0.5 as published).
    classifier_activation: "linear" (default) or "relu" (as published).
    kernel_initializer: initialiser of conv1 and the fire modules.
    classifier_initializer: initialiser of conv10.
    batch_norm: batch normalisation after conv1 and every fire convolution.

  Returns:
    The ancestor `NetSpec`; 727,626 deployed parameters for 10 classes.
  """
  return NetSpec(input_shape=tuple(input_shape), num_classes=num_classes,
                 dropout_rate=dropout_rate, classifier_activation=classifier_activation,
                 kernel_initializer=kernel_initializer,
                 classifier_initializer=classifier_initializer, batch_norm=batch_norm,
                 name="squishednet_base")


# A float channel count is compared with this slack before rounding up, so that float
# noise just above a multiple (16.000000001 of 8) is not priced as a tile more.
_CHANNEL_SLACK = 1e-9


def round_channels(count: Any, multiple: int) -> Any:
  """`count` channels rounded UP to a multiple of `multiple` (1 or less: unchanged).

  The one channel rounding of the codebase (survivor counts, the latency table's
  padding); unlike Keras applications' `_depth`, it never rounds down.
  Integers (Python or numpy, scalars or arrays) round exactly and keep their
  type; a float (an interpolated or expected width) comes back a float.

  Args:
    count: channels: an int, a numpy integer or integer array, or a float.
    multiple: the channel multiple, e.g. 8 for XNNPACK's tiles.

  Returns:
    The smallest multiple of `multiple` >= `count` (for a float, >= count - 1e-9).
  """
  if multiple <= 1:
    return count
  if isinstance(count, numbers.Integral) or getattr(getattr(count, "dtype", None), "kind",
                                                     None) in ("i", "u"):
    return -(-count // multiple) * multiple
  return float(math.ceil(float(count) / multiple - _CHANNEL_SLACK) * multiple)


def scale_width(spec: NetSpec, multiplier: float, min_filters: int = 1) -> NetSpec:
  """Uniformly width-scaled copy: every prunable layer gets round(multiplier * filters).

  The plain baseline that evolution must beat at equal size.
  """
  if not multiplier > 0:
    raise ValueError(f"width multiplier must be > 0, got {multiplier}.")

  def scale(filters: int) -> int:
    return max(min_filters, int(round(filters * multiplier)))

  fires = tuple(FireSpec(scale(f.squeeze), scale(f.expand1x1), scale(f.expand3x3))
                for f in spec.fires)
  return spec.replace(conv1_filters=scale(spec.conv1_filters), fires=fires,
                      name=f"{spec.name}_width{multiplier:.3f}")


def multiplier_for(spec: NetSpec, target: float, cost: Callable[[NetSpec], float],
                   min_filters: int = 1) -> float:
  """The uniform width multiplier whose `scale_width` copy has the cost nearest `target`.

  `cost` is any function of a spec that grows with its widths (parameters, a
  latency table's prediction); a bisection in log space over [1e-3, 4], keeping
  the best multiplier it visits (widths are rounded, so the cost is a step
  function of the multiplier and may never equal the target).
  """
  if not target > 0:
    raise ValueError(f"the target cost must be > 0, got {target}.")
  best, best_gap = 1.0, math.inf
  low, high = 1e-3, 4.0
  for _ in range(60):  # bisection on a monotone function of the multiplier
    middle = math.sqrt(low * high)
    value = cost(scale_width(spec, middle, min_filters))
    if abs(value - target) < best_gap:
      best, best_gap = middle, abs(value - target)
    if value < target:
      low = middle
    else:
      high = middle
  return best


def width_for_params(spec: NetSpec, target_params: int, min_filters: int = 1) -> NetSpec:
  """The uniformly width-scaled spec whose parameter count is closest to `target_params`."""
  if target_params < 1:
    raise ValueError(f"target_params must be >= 1, got {target_params}.")
  multiplier = multiplier_for(spec, target_params, NetSpec.params, min_filters)
  return scale_width(spec, multiplier, min_filters)


def load_spec(path: str) -> NetSpec:
  """Reads a spec.json file."""
  with open(path, "r", encoding="utf-8") as handle:
    return NetSpec.from_json(handle.read())
