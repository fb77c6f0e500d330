"""The channel wiring of a SqueezeNet-family spec, as data: which layer's output channels feed
which inputs (a fire module's concat, the classifier), so surgery and the latency model
consult one dependency map. numpy-free and TensorFlow-free."""

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

from squish_tf.net import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class ChannelSource:
  """A contiguous block of a convolution's input channels and who produced it.

  Attributes:
    producer: the prunable layer whose filters are these channels, or None for
      the input image (never pruned).
    offset: index of the block's first channel in the consumer's input.
    channels: channels in the block (the producer's filters in the parent).
  """

  producer: Optional[str]
  offset: int
  channels: int


def channel_sources(spec: spec_lib.NetSpec) -> Dict[str, Tuple[ChannelSource, ...]]:
  """For every convolution (build order, conv10 last), where its input channels come from.

  This is the only place that knows how a SqueezeNet-family network is wired:
  a fire's expands read its squeeze; its concat is [expand1x1, expand3x3]
  (1x1 first, as `squish_tf.net.models.fire_module` builds it); the next squeeze
  (or conv10) reads that concat. Max pools and dropout sit in between but act
  per channel, so they pass channels through.
  """
  sources: Dict[str, Tuple[ChannelSource, ...]] = {
      "conv1": (ChannelSource(None, 0, spec.input_shape[2]),)}
  previous = (ChannelSource("conv1", 0, spec.conv1_filters),)
  for number, fire in spec.numbered_fires():
    prefix = f"fire{number}_"
    sources[prefix + "squeeze1x1"] = previous
    squeeze = (ChannelSource(prefix + "squeeze1x1", 0, fire.squeeze),)
    sources[prefix + "expand1x1"] = squeeze
    sources[prefix + "expand3x3"] = squeeze
    previous = (ChannelSource(prefix + "expand1x1", 0, fire.expand1x1),
                ChannelSource(prefix + "expand3x3", fire.expand1x1, fire.expand3x3))
  sources["conv10"] = previous
  return sources


def consumers(spec: spec_lib.NetSpec) -> Dict[str, List[str]]:
  """For every prunable layer, the convolutions that read its filters as input channels."""
  out: Dict[str, List[str]] = {name: [] for name, _ in spec.prunable_layers()}
  for consumer, blocks in channel_sources(spec).items():
    for block in blocks:
      if block.producer is not None:
        out[block.producer].append(consumer)
  return out


def spec_with_counts(spec: spec_lib.NetSpec, counts: Mapping[str, int],
                      name: Optional[str]) -> spec_lib.NetSpec:
  fires = tuple(
      spec_lib.FireSpec(counts[f"fire{number}_squeeze1x1"], counts[f"fire{number}_expand1x1"],
                        counts[f"fire{number}_expand3x3"])
      for number, _ in spec.numbered_fires())
  if name is None:
    name = spec.name if spec.name.endswith("_evolved") else spec.name + "_evolved"
  return spec.replace(conv1_filters=counts["conv1"], fires=fires, name=name)
