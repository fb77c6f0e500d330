"""Timing on a shared CPU: runs of one call, and comparisons measured interleaved.

Timed alone, one model after another, the same machine drifts by more than
most differences worth measuring (docs/deploy.md, "Timing on a shared CPU"), so a
ratio of two separately timed
throughputs mostly measures the drift. Models that are compared are timed
interleaved instead:

  timing = time_interleaved({"ancestor": call_a, "squishednet": call_b}, rounds=7,
                            invokes=calibrate_invokes({...}, round_seconds=0.1))
  ratio_stats(timing, "squishednet", "ancestor")
  # {"ratio_median": 1.65, "ratio_min": 1.52, "ratio_max": 1.71, "rounds": 7, "ratios": [...]}

Every round runs each model in turn (A B A B ...), a fixed number of invokes
per model, in one process with the threads its callable was built with. A
ratio between two models is the median of the per-round ratios, which the
drift hits alike, with its min-max; absolute figures are medians over rounds
with their spread (min, max, quartiles). The machine's 1-minute load is
recorded before and after, because a load above the CPU count means other
work shared the cores.

Pure Python and numpy; the clock is injectable, so the statistics are tested
on fake timings.
"""

import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

Clock = Callable[[], float]


DEFAULT_ROUNDS = 7
DEFAULT_ROUND_SECONDS = 0.1
DEFAULT_MIN_INVOKES = 5
DEFAULT_MAX_INVOKES = 200


def time_runs(function: Callable[[], Any], min_seconds: float, min_runs: int = 10,
              warmup_runs: int = 3, clock: Clock = time.perf_counter) -> List[float]:
  """Seconds of each timed call of `function`, after untimed warm-up calls.

  Timing goes on until at least `min_runs` calls were timed and `min_seconds`
  have passed.
  """
  for _ in range(warmup_runs):
    function()
  latencies: List[float] = []
  start = clock()
  while len(latencies) < min_runs or clock() - start < min_seconds:
    begin = clock()
    function()
    latencies.append(clock() - begin)
  return latencies


def latency_stats(latencies: Sequence[float], batch_size: int) -> Dict[str, Any]:
  """images/sec and latency percentiles (ms per batch) of timed runs."""
  seconds = np.asarray(latencies, np.float64)
  p50, p90, p99 = np.percentile(seconds * 1e3, [50, 90, 99])
  return {
      "images_per_sec": float(batch_size * len(seconds) / seconds.sum()),
      # The median run's rate: unlike the mean above, it ignores the stalls a
      # busy machine inflicts on a few runs, so it compares artefacts fairly there.
      "images_per_sec_p50": float(batch_size * 1e3 / p50),
      "latency_ms": {"mean": float(seconds.mean() * 1e3), "p50": float(p50), "p90": float(p90),
                     "p99": float(p99)},
      "runs": int(len(seconds)),
      "seconds": float(seconds.sum()),
  }


def load_average() -> Optional[float]:
  """The machine's 1-minute load average, or None where the OS does not tell."""
  return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def calibrate_invokes(calls: Mapping[str, Callable[[], Any]],
                      round_seconds: float = DEFAULT_ROUND_SECONDS,
                      min_invokes: int = DEFAULT_MIN_INVOKES,
                      max_invokes: int = DEFAULT_MAX_INVOKES, probe_invokes: int = 5,
                      clock: Clock = time.perf_counter) -> Dict[str, int]:
  """Invokes per round for each call, so that its share of a round takes ~round_seconds.

  Each call runs `probe_invokes` times (which also warms it up); its count is
  round_seconds / (its seconds per invoke), clipped to [min_invokes,
  max_invokes]: a fast model at batch 1 gets the most, a slow one at batch 8
  the fewest.
  """
  if not 1 <= min_invokes <= max_invokes:
    raise ValueError(f"Need 1 <= min_invokes <= max_invokes, got {min_invokes} and "
                     f"{max_invokes}.")
  counts: Dict[str, int] = {}
  for name, call in calls.items():
    start = clock()
    for _ in range(probe_invokes):
      call()
    per_invoke = max(clock() - start, 0.0) / max(probe_invokes, 1)
    wanted = round_seconds / per_invoke if per_invoke > 0 else max_invokes
    counts[name] = int(min(max(round(wanted), min_invokes), max_invokes))
  return counts


def time_interleaved(calls: Mapping[str, Callable[[], Any]], rounds: int = DEFAULT_ROUNDS,
                     invokes: Union[int, Mapping[str, int]] = 100, warmup_invokes: int = 3,
                     clock: Clock = time.perf_counter) -> Dict[str, Any]:
  """Runs the calls in turn, round after round, and times each one's share of every round.

  Round r runs calls[0] `invokes` times, then calls[1], ... (A B A B ... over
  the rounds), after `warmup_invokes` untimed calls of each.

  Args:
    calls: {name: zero-argument callable}, e.g. prepared LiteRT invokes; at
      least one. Their order is the order within each round.
    rounds: how many rounds, >= 1.
    invokes: calls per model per round: one count for all, or {name: count}.
    warmup_invokes: untimed calls of each before the first round.
    clock: seconds (time.perf_counter; a fake one in tests).

  Returns:
    {"rounds": int, "invokes": {name: int},
     "seconds": {name: [seconds of its invokes in round r, for each round]},
     "load_average": {"start": float|None, "end": float|None}}
    (see `seconds_per_invoke`, `ratio_stats`, `throughput_stats`).
  """
  if not calls:
    raise ValueError("time_interleaved needs at least one callable.")
  if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
    raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}.")
  counts = ({name: int(invokes) for name in calls} if not isinstance(invokes, Mapping)
            else {name: int(invokes[name]) for name in calls})
  bad = {name: count for name, count in counts.items() if count < 1}
  if bad:
    raise ValueError(f"invokes per round must be >= 1, got {bad}.")
  load_start = load_average()
  for call in calls.values():
    for _ in range(warmup_invokes):
      call()
  seconds: Dict[str, List[float]] = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      count = counts[name]
      start = clock()
      for _ in range(count):
        call()
      seconds[name].append(clock() - start)
  return {"rounds": rounds, "invokes": counts, "seconds": seconds,
          "load_average": {"start": load_start, "end": load_average()}}


def seconds_per_invoke(timing: Mapping[str, Any], name: str) -> np.ndarray:
  """[rounds] seconds per invoke of one model, from a `time_interleaved` result."""
  return np.asarray(timing["seconds"][name], np.float64) / float(timing["invokes"][name])


def spread(values: Sequence[float]) -> Dict[str, float]:
  """Median, min, max and quartiles of some values."""
  values = np.asarray(values, np.float64)
  q1, median, q3 = np.percentile(values, [25, 50, 75])
  return {"median": float(median), "min": float(values.min()), "max": float(values.max()),
          "q1": float(q1), "q3": float(q3)}


def ratio_stats(timing: Mapping[str, Any], subject: str, reference: str) -> Dict[str, Any]:
  """How many times faster `subject` runs than `reference`, from interleaved rounds.

  Per round r: ratio_r = reference's seconds per invoke / subject's (> 1: the
  subject is faster). The ratio is the median of those, with their min and
  max; never the ratio of two medians or of two separate timings.

  Returns:
    {"ratio_median", "ratio_min", "ratio_max", "rounds", "ratios": [per round]}.
  """
  ratios = seconds_per_invoke(timing, reference) / seconds_per_invoke(timing, subject)
  return {"ratio_median": float(np.median(ratios)), "ratio_min": float(ratios.min()),
          "ratio_max": float(ratios.max()), "rounds": int(len(ratios)),
          "ratios": [float(r) for r in ratios]}


def throughput_stats(timing: Mapping[str, Any], name: str, batch_size: int) -> Dict[str, Any]:
  """One model's images/sec and ms per batch over the rounds: medians with their spread.

  Returns:
    {"images_per_sec": spread(...), "latency_ms": spread(...), "invokes": per round,
     "rounds": int}.
  """
  per_invoke = seconds_per_invoke(timing, name)
  return {"images_per_sec": spread(batch_size / per_invoke),
          "latency_ms": spread(per_invoke * 1e3),
          "invokes": int(timing["invokes"][name]), "rounds": int(len(per_invoke))}
