"""--targets' budgets parsed (pure, no TensorFlow): a family's members in the order evolution
walks them (`squish_tf.evolve.targets` resolves each into a `Targets`)."""

import dataclasses
import re
from typing import List, Sequence, Tuple

# --targets' units: the EvolutionConfig option each sets for its member, and its scale.
UNITS = {"x": ("target_speedup", 1.0), "mb": ("target_size_mb", 1.0),
         "ms": ("target_latency_ms", 1.0), "macs": ("target_macs", 1.0),
         "mmacs": ("target_macs", 1e6)}
TARGET_OPTIONS = ("target_size_mb", "target_macs", "target_latency_ms", "target_speedup")
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
# Which way a later member of one kind must go: a higher speed-up, or a lower cost.
_TIGHTER = {"target_speedup": 1, "target_size_mb": -1, "target_latency_ms": -1,
            "target_macs": -1}


@dataclasses.dataclass(frozen=True)
class Budget:
  """One member's budget of --targets: the --target_* option it sets, its value, its label."""

  option: str
  value: float
  label: str


def label(option: str, value: float) -> str:
  """How a member's budget is named: "1.5x", "0.8MB", "5ms", "200MMACs"."""
  if option == "target_macs":
    return f"{value / 1e6:g}MMACs"
  return f"{value:g}" + {"target_speedup": "x", "target_size_mb": "MB",
                         "target_latency_ms": "ms"}[option]


def parse_targets(items: Sequence[str]) -> Tuple[Budget, ...]:
  """--targets' budgets, in the order given (pure).

  Each item is a number and a unit: "1.5x" (speed-up over the ancestor), "0.8MB", "5ms"
  (predicted LiteRT ms on the run's clock), "200MMACs" or "2e8MACs". Budgets of one kind
  must tighten along the list (evolution walks it in order); a speed-up is above 1.
  """
  budgets: List[Budget] = []
  for item in items:
    match = _BUDGET.match(str(item))
    unit = match.group(2).lower() if match else None
    if unit not in UNITS:
      raise ValueError(f"--targets item {item!r} is not a number with a unit; expected e.g. "
                       "1.5x (speed-up), 0.8MB (size), 5ms (predicted latency) or 200MMACs.")
    option, scale = UNITS[unit]
    value = float(match.group(1)) * scale
    if value <= 0 or (option == "target_speedup" and value <= 1.0):
      raise ValueError(f"--targets item {item!r}: a speed-up must be above 1x and a size, "
                       "latency or MAC count above 0.")
    budget = Budget(option, value, label(option, value))
    for earlier in budgets:
      if earlier.option == option and (value - earlier.value) * _TIGHTER[option] <= 0:
        raise ValueError(f"--targets={','.join(str(i).strip() for i in items)}: {budget.label} is not tighter "
                         f"than {earlier.label} before it. Evolution walks the list in order: "
                         "give each kind from the loosest budget to the tightest.")
    budgets.append(budget)
  return tuple(budgets)


def aims_at_latency(items: Sequence[str]) -> bool:
  """Some budget of --targets is a speed-up or a latency (the run needs a latency table)."""
  return any(b.option in ("target_speedup", "target_latency_ms") for b in parse_targets(items))
