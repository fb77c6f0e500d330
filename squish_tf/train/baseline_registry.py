"""The baselines a SquishedNet is measured against: one `Baseline` record each, in one registry.

A record says what a baseline is called (`name`: the --baselines value and its directory
under `<run_dir>/baselines/`), how the report names it (`label`, `short_label`, `rival`)
and how it trains (`train`). The main job, the report and the --baselines option read
them from here; adding a baseline is one `register(Baseline(...))`, in the package or
outside it. This module imports no TensorFlow: the built-in baselines name their trainers
in `squish_tf.train.baselines` by reference, loaded when one trains.
"""

import dataclasses
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from squish_tf import registry as registry_lib

TRAINERS = "squish_tf.train.baselines"


@dataclasses.dataclass(frozen=True)
class Baseline:
  """One baseline.

  Attributes:
    name: the --baselines value, and the directory under `<run_dir>/baselines/`.
    label: what the report and results.json call it.
    short_label: its name in narrow tables and on the figures.
    train: `train(inputs: baselines.BaselineInputs) -> (Keras model, NetSpec or None,
      extra metrics dict)`: trains it at the SquishedNet's budget (`inputs.budget`). A
      callable, or "package.module:function" (`registry.load`).
    rival: how the summary's sentences name it when they weigh the SquishedNet against
      it ("" when they do not).
    default: trained by the main job unless --baselines says otherwise.
    sparse: its weights are mostly zeros, so the report gives its gzip size too.
    latency_matched: trained at the width of the SquishedNet's measured latency, which
      the job finds before it trains (`BaselineBudget.latency_multiplier`).
    rungs: one network per rung of the width ladder the job chooses before it trains
      (`BaselineBudget.ladder`), each a model of its own named `<name>_<multiplier>`
      (`squish_tf.net.ladder.rung_name`), `train` called once per rung with
      `BaselineInputs.width_multiplier`. Several trainings: 'all' leaves it out.
  """

  name: str
  label: str
  short_label: str
  train: registry_lib.Reference
  rival: str = ""
  default: bool = False
  sparse: bool = False
  latency_matched: bool = False
  rungs: bool = False

  def trainer(self) -> Callable[..., Any]:
    return registry_lib.load(self.train)


REGISTRY: registry_lib.Registry[Baseline] = registry_lib.Registry("baseline", "--baselines")
register = REGISTRY.register
unregister = REGISTRY.unregister
lookup = REGISTRY.lookup

register(Baseline(
    "width_scaled", "Uniform width-scaled SqueezeNet", "Width-scaled",
    f"{TRAINERS}:train_width_scaled",
    rival="the width-scaled SqueezeNet trained from scratch", default=True))
register(Baseline(
    "width_scaled_latency", "Uniform width-scaled SqueezeNet of the SquishedNet's latency",
    "Width-scaled, latency-matched", f"{TRAINERS}:train_width_scaled_latency", default=True,
    latency_matched=True))
register(Baseline(
    "width_scaled_distilled", "Uniform width-scaled SqueezeNet, distilled from the ancestor",
    "Width-scaled, distilled", f"{TRAINERS}:train_width_scaled_distilled",
    rival="the same width-scaled SqueezeNet distilled from the ancestor"))
register(Baseline(
    "magnitude_pruned", "tfmot magnitude pruning of the ancestor", "Magnitude-pruned",
    f"{TRAINERS}:train_pruned", sparse=True))
register(Baseline(
    "mobilenet_v3_small", "MobileNetV3Small (minimalistic)", "MobileNetV3Small",
    f"{TRAINERS}:train_mobilenet"))
register(Baseline(
    "ladder", "Width ladder: uniform widths, every channel count a multiple of the tile",
    "Width ladder", f"{TRAINERS}:train_ladder_rung", rungs=True))

# The package's own one-network baselines: what 'all' trains (names(), below, lists every
# registered one, the ladder and any registered since too).
BASELINES = tuple(baseline.name for baseline in REGISTRY if not baseline.rungs)
# What the main job trains unless told otherwise: the comparison a SquishedNet
# must win, at the demo's budget (`--baselines=all` adds the others;
# benchmarks/evolution_vs_width.py trains every baseline).
DEFAULT_BASELINES = tuple(baseline.name for baseline in REGISTRY if baseline.default)


def names() -> Tuple[str, ...]:
  """Every registered baseline's name, in registration order."""
  return REGISTRY.names()


def parse_names(values: Union[str, Sequence[str]]) -> Tuple[str, ...]:
  """A --baselines value (list or comma-separated; 'all', 'none') -> baseline names, in order.

  'all' is every registered baseline but those of several networks (`Baseline.rungs`): ask
  for the ladder by name.

  Raises:
    ValueError: a name no baseline is registered under.
  """
  if isinstance(values, str):
    values = values.split(",")
  chosen = [name.strip() for name in values if name.strip()]
  if chosen == ["all"]:
    return tuple(baseline.name for baseline in REGISTRY if not baseline.rungs)
  if chosen in ([], ["none"]):
    return ()
  unknown = sorted(set(chosen) - set(names()))
  if unknown:
    raise ValueError(f"Unknown baselines {unknown}; --baselines takes names from "
                     f"{', '.join(names())}, or 'all', or 'none'.")
  return tuple(name for name in names() if name in chosen)


def label(name: str, default: Optional[str] = None) -> Optional[str]:
  """The registered baseline's label, or `default` for a name no baseline has."""
  return lookup(name).label if name in REGISTRY else default


def short_label(name: str, default: Optional[str] = None) -> Optional[str]:
  """The registered baseline's short label, or `default` for a name no baseline has."""
  return lookup(name).short_label if name in REGISTRY else default


def rivals() -> Tuple[Baseline, ...]:
  """The baselines the summary's sentences weigh the SquishedNet against, in order."""
  return tuple(baseline for baseline in REGISTRY if baseline.rival)
