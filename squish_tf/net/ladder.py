"""The width ladder: uniform width multipliers whose every channel count is a multiple of the
device's tile, one rung per speed-up over the ancestor.

A uniform width multiplier is the rival a SquishedNet must beat at each speed,
and on a phone it is at its best when every convolution's channels fill the
runtime's tiles (XNNPACK's fp32 kernels pack channels by a tile, 8 on x86 and
Arm: a width between two multiples pays for the next one). The ladder's
rungs are such widths (`aligned_width`), chosen to span a budget: the speed-ups
of `SPEEDUPS` up to past the SquishedNet's (`ladder_speedups`), each matched to
the aligned width whose predicted speed-up is nearest (`ladder_rungs`, by any
latency model: the run's latency table, or MACs). Everything here is a pure
function of a spec and a cost.
"""

import dataclasses
import math
from typing import Callable, Sequence, Tuple

from squish_tf.net import spec as spec_lib

# The channel multiple of a run without a latency table: XNNPACK's fp32 tile on x86 and Arm.
TILE = 8
# The speed-ups over the ancestor a ladder aims its rungs at, slowest first.
SPEEDUPS = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
# The ladder reaches this far past the fastest network it judges: latency models err, and the
# verdict needs a rung at least as fast as that network.
MARGIN = 1.25
# Rungs are named and rebuilt from multipliers on this grid (two decimals).
STEP = 0.01
# The rungs a plan counts before the ladder is chosen: a ladder to 3x (`SPEEDUPS` to 3.0).
EXPECTED_RUNGS = SPEEDUPS.index(3.0) + 1


@dataclasses.dataclass(frozen=True)
class Rung:
  """One rung: its width multiplier and the speed-up over the ancestor the cost predicts."""

  width_multiplier: float
  predicted_speedup: float


def aligned_width(spec: spec_lib.NetSpec, multiplier: float,
                  tile: int = TILE) -> spec_lib.NetSpec:
  """`spec` uniformly thinned by `multiplier`, every layer's filters then rounded to the
  nearest multiple of `tile` (halves up; at least one tile).

  conv1 and every squeeze and expand convolution are scaled; the classifier keeps its
  classes, and conv1 its image channels.
  """
  if not multiplier > 0:
    raise ValueError(f"width multiplier must be > 0, got {multiplier}.")

  def scale(filters: int) -> int:
    return tile * max(1, int(math.floor(filters * multiplier / tile + 0.5)))

  fires = tuple(spec_lib.FireSpec(scale(f.squeeze), scale(f.expand1x1), scale(f.expand3x3))
                for f in spec.fires)
  return spec.replace(conv1_filters=scale(spec.conv1_filters), fires=fires,
                      name=f"{spec.name}_aligned{multiplier:.2f}x{tile}")


def ladder_speedups(reach: float, margin: float = MARGIN,
                    grid: Sequence[float] = SPEEDUPS) -> Tuple[float, ...]:
  """The speed-ups a ladder aims at: `grid` from its start up to the first one at or past
  `margin` x `reach` (the fastest speed-up it must judge), or all of it.

  Args:
    reach: the SquishedNet's speed-up over the ancestor, or its target's, whichever is
      higher (below 1: taken as 1).
    margin: how far past `reach` the ladder goes.
    grid: speed-ups, increasing.
  """
  top = max(1.0, float(reach)) * margin
  out = []
  for speedup in grid:
    out.append(float(speedup))
    if speedup >= top:
      break
  return tuple(out)


def ladder_rungs(spec: spec_lib.NetSpec, speedups: Sequence[float],
                 cost: Callable[[spec_lib.NetSpec], float], tile: int = TILE,
                 step: float = STEP) -> Tuple[Rung, ...]:
  """For each speed-up, the aligned width whose predicted speed-up is nearest (in ratio).

  The multipliers are those of a `step` grid below 1; of the multipliers that give the
  same aligned widths, the one nearest the share of `spec`'s filters they keep names them
  (half widths are "0.50"). Two speed-ups
  that land on one width make one rung; widths the cost predicts no faster than `spec` are
  left out.

  Args:
    spec: the ancestor (speed-up 1).
    speedups: what to aim at (`ladder_speedups`).
    cost: a latency model: ms, or anything proportional (a latency table's `predict`,
      MACs); it must grow with the widths.
    tile: the channel multiple.
    step: the multipliers' grid.

  Returns:
    The rungs, widest (slowest) first.
  """
  reference = cost(spec)
  by_widths = {}
  for index in range(1, int(round(1 / step))):
    multiplier = round(index * step, 2)
    aligned = aligned_width(spec, multiplier, tile)
    by_widths.setdefault((aligned.conv1_filters, aligned.fires), []).append(multiplier)
  options = []
  for multipliers in by_widths.values():
    aligned = aligned_width(spec, multipliers[0], tile)
    share = aligned.num_filters() / spec.num_filters()
    named = min(multipliers, key=lambda m: (abs(m - share), m))
    options.append(Rung(named, reference / cost(aligned)))
  options = [rung for rung in options if rung.predicted_speedup > 1.0]
  chosen = {}
  for target in speedups:
    if options:
      best = min(options, key=lambda rung: (abs(math.log(rung.predicted_speedup / target)),
                                            -rung.width_multiplier))
      chosen[best.width_multiplier] = best
  return tuple(sorted(chosen.values(), key=lambda rung: -rung.width_multiplier))


def rung_name(baseline: str, multiplier: float) -> str:
  """ "ladder_0.50": a rung's model name (and directory under baselines/)."""
  return f"{baseline}_{multiplier:.2f}"
