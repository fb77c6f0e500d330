"""The selection rules (--select, `registries.selections`): how a generation's candidate is
chosen among the ok ones within the accuracy budget (`evolution.select` keeps those)."""

from typing import Any, Dict, Optional, Sequence


def by_top1(eligible: Sequence[Dict[str, Any]], parent_top1: Optional[float] = None,
            parent_speedup: Optional[float] = None) -> Dict[str, Any]:
  """--select=top1: the highest validation top-1, ties to fewer params."""
  del parent_top1, parent_speedup
  return min(eligible, key=lambda r: (-r["top1"], r["params"], r["candidate"]))


def by_top1_per_ms(eligible: Sequence[Dict[str, Any]], parent_top1: Optional[float],
                   parent_speedup: Optional[float]) -> Dict[str, Any]:
  """--select=top1_per_ms: the least validation top-1 lost per millisecond saved.

  Milliseconds of measured latency saved over the parent, on the ancestor's
  clock: a latency is 1 / its measured speed-up over the ancestor
  (`measured_speedup`, a ratio within one timing session), so a candidate and
  a parent timed in another session (another generation, the machine busier
  or not) compare; (parent_top1 - top1) / (1 / parent_speedup - 1 / speedup).
  Candidates that save time and lose nothing (or gain) come first, the one
  saving the most time first (on a negative ratio "smaller" would favour the
  least saving: a gain of 0.1 points for 0.01% of the time would beat 2 points
  for 10%); then those that lose accuracy, by the ratio; last those that save
  no time, by top-1. Ties go to the higher top-1, then fewer params.

  Raises:
    ValueError: the parent's top-1 or speed-up, or a candidate's measured
      speed-up, is missing.
  """
  if parent_top1 is None or parent_speedup is None:
    raise ValueError("--select=top1_per_ms needs the parent's validation top-1 and measured "
                     f"speed-up, got top1={parent_top1!r}, measured_speedup={parent_speedup!r}.")
  unmeasured = [r["id"] if "id" in r else r["candidate"] for r in eligible
                if (r.get("measured_speedup") or {}).get("median") is None]
  if unmeasured:
    raise ValueError(f"--select=top1_per_ms needs every candidate's measured speed-up; "
                     f"{unmeasured} have none.")

  def rank(record):
    # The ancestor's latency in the candidate's session is 1.
    saved = 1.0 / parent_speedup - 1.0 / record["measured_speedup"]["median"]
    lost = parent_top1 - record["top1"]
    if not saved > 0:
      group, value = 2, 0.0
    elif lost <= 0:
      group, value = 0, -saved
    else:
      group, value = 1, lost / saved
    return (group, value, -record["top1"], record["params"], record["candidate"])

  return min(eligible, key=rank)
