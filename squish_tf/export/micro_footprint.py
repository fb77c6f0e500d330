"""What a network needs on a microcontroller, before it is trained: predicted int8 flash and
TFLite-Micro arena from its `NetSpec` alone (numpy-free arithmetic, no TensorFlow).

`--max_arena_kb` and `--max_flash_kb` are hard limits on the SquishedNet: evolution never
chooses a child over either and refuses, before training, floors that cannot fit. Both read
these predictions, an upper bound of what TFLM measures on the exported file
(`squish_tf.export.micro`, which checks the SquishedNet after export):

  flash: the full-int8 .tflite's bytes: int8 kernels, int32 biases, a per-channel scale and
    zero point for every kernel and bias, plus the flatbuffer's fixed part (op codes, tensor
    names, the activations' quantization, the image-classifier metadata and labels);
  arena: the tensor arena TFLM allocates: its activations, laid out by TFLM's greedy memory
    planner (`planned_bytes`, the same first-fit by decreasing size over tensor lifetimes),
    plus the persistent part (a tensor record per tensor, a node per op, each convolution's
    per-channel multipliers and shifts).

The planner's layout is TFLM's to the byte; the fixed parts were fitted against TFLM's
recording allocator on SqueezeNet specs from the floors to the full width at 32-128 px and
rounded up (`FLASH_FIXED_BYTES`, `ARENA_FIXED_BYTES`); tests/test_micro_budget.py checks the
predictions never fall below what TFLM measures.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from squish_tf.net import spec as spec_lib

# TFLM aligns every planned buffer (and most persistent allocations) to 16 bytes.
ALIGNMENT = 16
# Flash bytes per filter beyond its kernel: an int32 bias, and a float32 scale and an int64
# zero point for each of its kernel's and bias's quantization.
FLASH_BYTES_PER_FILTER = 4 + 2 * (4 + 8)
# The flatbuffer's fixed part (op codes, tensor names, buffers' headers, the activations'
# quantization) with the metadata and a few hundred bytes of labels: fitted, plus 4 KB.
FLASH_FIXED_BYTES = 32 << 10
# TFLM's persistent bytes per convolution filter: an int32 output multiplier and shift.
ARENA_BYTES_PER_FILTER = 8
# TFLM's persistent fixed part: a tensor record per tensor, a node per op, the ops' own data:
# fitted, plus 1.4 KB.
ARENA_FIXED_BYTES = 11 << 10
KB = 1024


@dataclasses.dataclass(frozen=True)
class Footprint:
  """What a network needs on a microcontroller, in bytes (predicted or measured)."""

  flash_bytes: int
  arena_bytes: int

  def over(self, max_flash_kb: float = 0, max_arena_kb: float = 0) -> List[str]:
    """Which limits this footprint exceeds ("arena 61.2 KB > 48 KB"); [] when it fits
    (a limit of 0 is none)."""
    reasons = []
    if max_arena_kb and self.arena_bytes > max_arena_kb * KB:
      reasons.append(f"arena {self.arena_bytes / KB:.1f} KB > {max_arena_kb:g} KB")
    if max_flash_kb and self.flash_bytes > max_flash_kb * KB:
      reasons.append(f"flash {self.flash_bytes / KB:.1f} KB > {max_flash_kb:g} KB")
    return reasons


def predict(spec: spec_lib.NetSpec) -> Footprint:
  """The int8 flash and TFLM arena `spec` needs: an upper bound of what TFLM measures."""
  return Footprint(flash_bytes=predicted_flash_bytes(spec),
                   arena_bytes=predicted_arena_bytes(spec))


def predicted_flash_bytes(spec: spec_lib.NetSpec) -> int:
  """The full-int8 .tflite's bytes: kernels, biases and per-channel quantization, plus the
  fixed part."""
  layers = spec.layer_shapes()
  kernels = sum(layer.params - layer.filters for layer in layers)
  filters = sum(layer.filters for layer in layers)
  return kernels + FLASH_BYTES_PER_FILTER * filters + FLASH_FIXED_BYTES


def predicted_arena_bytes(spec: spec_lib.NetSpec) -> int:
  """TFLM's tensor arena for `spec`: its planned activations and its persistent part."""
  filters = sum(layer.filters for layer in spec.layer_shapes())
  return (planned_bytes(activation_lifetimes(spec)) + ARENA_BYTES_PER_FILTER * filters
          + ARENA_FIXED_BYTES)


def activation_lifetimes(spec: spec_lib.NetSpec) -> List[Tuple[int, int, int]]:
  """(bytes, first op, last op) of every activation tensor of the int8 file, in the order
  the converter writes its ops: quantize, conv1, [pool], per fire squeeze, expand 1x1,
  expand 3x3, concat, [pool], then conv10, mean, softmax, quantize."""
  tensors: List[List[int]] = []  # [bytes, first op, last op]
  op = 0

  def produce(size: int, *inputs: int) -> int:
    nonlocal op
    for index in inputs:
      tensors[index][2] = op
    tensors.append([size, op, op])
    op += 1
    return len(tensors) - 1

  height, width, channels = spec.input_shape
  tensors.append([height * width * channels, 0, 0])  # the uint8 image
  x = produce(height * width * channels, 0)  # its int8 copy
  shapes = iter(spec.layer_shapes())
  conv1 = next(shapes)
  x = produce(conv1.out_height * conv1.out_width * conv1.filters, x)
  pooled = (conv1.out_height, conv1.out_width)
  if 1 in spec.pool_after:
    pooled = (_pool_out(pooled[0]), _pool_out(pooled[1]))
    x = produce(pooled[0] * pooled[1] * conv1.filters, x)
  for number, fire in spec.numbered_fires():
    pixels = pooled[0] * pooled[1]
    squeeze = produce(pixels * fire.squeeze, x)
    left = produce(pixels * fire.expand1x1, squeeze)
    right = produce(pixels * fire.expand3x3, squeeze)
    x = produce(pixels * fire.out_channels, left, right)
    if number in spec.pool_after:
      pooled = (_pool_out(pooled[0]), _pool_out(pooled[1]))
      x = produce(pooled[0] * pooled[1] * fire.out_channels, x)
  x = produce(pooled[0] * pooled[1] * spec.num_classes, x)  # conv10
  for _ in range(3):  # mean, softmax, quantize to uint8
    x = produce(spec.num_classes, x)
  tensors[x][2] = op  # the output lives to the end
  return [tuple(tensor) for tensor in tensors]


def planned_bytes(lifetimes: Sequence[Tuple[int, int, int]]) -> int:
  """The arena TFLM's greedy planner lays `lifetimes` (bytes, first op, last op) out in:
  largest first, each at the lowest offset clear of the placed tensors alive at once."""
  order = sorted(range(len(lifetimes)), key=lambda i: -_aligned(lifetimes[i][0]))
  placed: List[Tuple[int, int, int, int]] = []  # (offset, size, first, last)
  for index in order:
    size, first, last = _aligned(lifetimes[index][0]), lifetimes[index][1], lifetimes[index][2]
    offset = 0
    for other, other_size, other_first, other_last in sorted(placed):
      if other_last < first or other_first > last:
        continue
      if other - offset >= size:
        break
      offset = max(offset, other + other_size)
    placed.append((offset, size, first, last))
  return max((offset + size for offset, size, _, _ in placed), default=0)


def budget_line(footprint: Footprint, limits: Dict[str, Optional[float]]) -> str:
  """"arena 35.0 KB of 48 KB, flash 25.2 KB of 256 KB" for the limits set (KB, 0: none)."""
  parts = []
  for name, used in (("arena", footprint.arena_bytes), ("flash", footprint.flash_bytes)):
    limit = limits.get(name)
    parts.append(f"{name} {used / KB:.1f} KB" + (f" of {limit:g} KB" if limit else ""))
  return ", ".join(parts)


def _aligned(size: int) -> int:
  return -(-size // ALIGNMENT) * ALIGNMENT


def _pool_out(size: int) -> int:
  return (size - spec_lib.POOL_SIZE) // spec_lib.POOL_STRIDE + 1
