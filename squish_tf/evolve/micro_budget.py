"""The microcontroller budgets (--max_arena_kb, --max_flash_kb): hard limits on every chosen child.

A child's int8 flash and TFLite-Micro arena are known when it is drawn, from its widths alone
(`squish_tf.export.micro_footprint.predict`, an upper bound of what TFLM measures). A child over
either limit is recorded with the reason (`record`) and is never chosen
(`evolution.select`), like one beyond the accuracy budget. Target mode aims each generation's
children under the limits (`fitting_fraction`), since a chosen parent must fit already. A
run whose floors cannot fit is refused before training (`check_floors`).
"""

import dataclasses
import logging
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from squish_tf import files as files_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment
from squish_tf.export import micro_footprint
from squish_tf.net import spec as spec_lib
from squish_tf.net.wiring import spec_with_counts

# Target mode aims a generation at this fraction of the cost whose expected child just fits:
# a draw's widths spread around their expectation, and a child over a limit is lost.
MARGIN = 0.9
# Bisection steps of the widest child that fits (2^-12 of the range).
_WIDTH_STEPS = 12


@dataclasses.dataclass(frozen=True)
class MicroBudget:
  """The limits, in KB (0: none)."""

  max_arena_kb: float = 0.0
  max_flash_kb: float = 0.0

  @classmethod
  def of(cls, config: Any) -> "MicroBudget":
    """The budget of an `EvolutionConfig` (or anything with the two fields)."""
    return cls(max_arena_kb=getattr(config, "max_arena_kb", 0) or 0,
               max_flash_kb=getattr(config, "max_flash_kb", 0) or 0)

  @property
  def any(self) -> bool:
    return bool(self.max_arena_kb or self.max_flash_kb)

  @property
  def limits(self) -> Dict[str, float]:
    return {"arena": self.max_arena_kb, "flash": self.max_flash_kb}

  def over(self, spec: spec_lib.NetSpec) -> List[str]:
    """Why `spec` does not fit ("arena 61.2 KB > 48 KB"); [] when it does."""
    return micro_footprint.predict(spec).over(self.max_flash_kb, self.max_arena_kb)

  def fits(self, spec: spec_lib.NetSpec) -> bool:
    return not self.over(spec)

  def record(self, spec: spec_lib.NetSpec) -> Dict[str, Any]:
    """A candidate record's `micro` entry: predicted bytes and the reasons it is over."""
    footprint = micro_footprint.predict(spec)
    return {"predicted_flash_bytes": footprint.flash_bytes,
            "predicted_arena_bytes": footprint.arena_bytes,
            "over": footprint.over(self.max_flash_kb, self.max_arena_kb)}

  def check_floors(self, ancestor: spec_lib.NetSpec, synth: synthesis.SynthesisConfig) -> None:
    """Refuses limits the smallest network evolution can reach (every layer at its floor)
    does not fit, saying the smallest arena and flash it reaches."""
    if not self.any:
      return
    smallest = synthesis.smallest_child_spec(ancestor, synth)
    reasons = self.over(smallest)
    if not reasons:
      return
    footprint = micro_footprint.predict(smallest)
    raise ValueError(
        f"--max_arena_kb={self.max_arena_kb:g} --max_flash_kb={self.max_flash_kb:g} cannot be "
        f"met: the smallest network evolution can reach ({smallest.params():,} params, every "
        f"layer at its floor: --min_filters={synth.min_filters}, --min_fraction="
        f"{synth.min_fraction}, --channel_multiple={synth.channel_multiple}, at "
        f"--image_size={ancestor.input_shape[0]}) needs a {footprint.arena_bytes / 1024:.1f} KB "
        f"tensor arena and {footprint.flash_bytes / 1024:.1f} KB of flash ({'; '.join(reasons)}). "
        "Raise the limits, lower the floors or --image_size (the arena holds the input image "
        "twice).")

  def fitting_fraction(self, parent: spec_lib.NetSpec, synth: synthesis.SynthesisConfig,
                       table: Optional[latency_table_lib.LatencyTable] = None,
                       strengths: Optional[Mapping[str, Any]] = None) -> Optional[float]:
    """The largest target fraction (in --cost's units, of `parent`'s cost) whose child fits;
    None without limits or when `parent` fits.

    With `strengths` (target mode), the child is the expected one, its filter counts rounded
    up, drawn as target mode draws (`environment.expected_child_cost`); without, `parent`
    uniformly thinner.
    """
    if not self.any or self.fits(parent):
      return None
    if strengths is None:
      width = self._widest(lambda w: uniform_child(parent, synth, w))
      return _cost(uniform_child(parent, synth, width), synth.cost, table) / _cost(
          parent, synth.cost, table)
    # Target mode's own floor: a fraction below it would be refused.
    lowest = environment.floor_fraction(parent, synth, table)

    def expected_child(fraction: float) -> spec_lib.NetSpec:
      shrunk = dataclasses.replace(
          synth, target_fraction=min(1.0 - 1e-9, lowest + fraction * (1.0 - lowest)))
      factors = environment.environment_factors(parent, shrunk, strengths, table)
      counts = environment.expected_child_cost(parent, strengths, factors, shrunk,
                                               table).filters
      return spec_with_counts(parent, {name: math.ceil(n - 1e-6) for name, n in counts.items()},
                              None)

    # Fractions above what the encoding can keep are tried too: not worth a warning each.
    quiet = logging.getLogger(environment.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
      return lowest + self._widest(expected_child) * (1.0 - lowest)
    finally:
      quiet.setLevel(level)

  def _widest(self, child_at: Callable[[float], spec_lib.NetSpec]) -> float:
    """The largest x in [0, 1] (by bisection) whose `child_at(x)` fits; 0 fits (the floors
    do, `check_floors`)."""
    low, high = 0.0, 1.0
    for _ in range(_WIDTH_STEPS):
      middle = 0.5 * (low + high)
      if self.fits(child_at(middle)):
        low = middle
      else:
        high = middle
    return low


def uniform_child(parent: spec_lib.NetSpec, synth: synthesis.SynthesisConfig,
                  width: float) -> spec_lib.NetSpec:
  """`parent` with every prunable layer at `width` of its filters, never below its floor."""
  counts = {name: min(n, max(synthesis.min_survivors(n, synth), round(width * n)))
            for name, n in parent.prunable_layers()}
  return spec_with_counts(parent, counts, None)


def _cost(spec: spec_lib.NetSpec, cost: str,
          table: Optional[latency_table_lib.LatencyTable]) -> float:
  if cost == "latency" and table is not None:
    return table.predict(spec)
  return float(spec.macs() if cost == "macs" else spec.params())


def log_exported_fit(config: Any, export_dir: str, log: Callable[[str], None]) -> None:
  """Logs `exported_fit_line` of the export in `export_dir` under `config`'s budget."""
  from squish_tf.export import exporter  # pylint: disable=g-import-not-at-top

  budget = MicroBudget.of(config)
  if budget.any:
    log(exported_fit_line(budget, files_lib.optional_read_json(
        os.path.join(export_dir, exporter.MANIFEST_FILE))))


def exported_fit_line(budget: MicroBudget, manifest: Optional[Dict[str, Any]]) -> Optional[str]:
  """One line on whether the exported int8 file (export.json's `int8` entry, checked with
  TFLite-Micro) fits the budget; None without a budget."""
  if not budget.any:
    return None
  micro = (((manifest or {}).get("formats") or {}).get("int8") or {}).get("micro") or {}
  if micro.get("arena_bytes") is None:
    why = micro.get("error") or "no int8 export (add int8 to --formats)"
    return f"Microcontroller budget NOT checked: TFLite-Micro did not run the int8 file ({why})."
  measured = micro_footprint.Footprint(flash_bytes=int(micro["flash_bytes"]),
                                    arena_bytes=int(micro["arena_bytes"]))
  reasons = measured.over(budget.max_flash_kb, budget.max_arena_kb)
  used = micro_footprint.budget_line(measured, budget.limits)
  if reasons:
    return (f"The int8 SquishedNet does NOT fit the microcontroller budget, as TFLite-Micro "
            f"measured it: {'; '.join(reasons)}.")
  return f"The int8 SquishedNet fits the microcontroller budget (TFLite-Micro): {used}."
