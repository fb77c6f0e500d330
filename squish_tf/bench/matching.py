"""The width multiplier of equal latency: what a phone developer compares a SquishedNet with.

A uniform width multiplier of the SquishedNet's size runs faster than it (the
SquishedNet keeps the early layers, where the milliseconds are, wide), so the
size-matched `width_scaled` answers "at equal size" only. `match_latency`
finds the multiplier of equal measured latency:

1. a latency model predicts the SquishedNet's milliseconds, and
   `spec.multiplier_for` bisects the multiplier whose prediction is nearest
   (exact, a pure function of the model): the run's measured latency table
   when it has one, else MACs (a run aimed at size measures no table, and
   the measured correction below does the rest);
2. the SquishedNet's widths and that multiplier's are converted to LiteRT
   (random weights: speed depends on widths only) and timed interleaved,
   together with the size-matched multiplier; when the measured ratio is off
   by more than `tolerance`, the table's target is corrected by the measured
   ratio and the bisection runs again (at most `tries` times), keeping the
   closest.

Everything the match measured is returned, so the report can say how close it
came and whether the size-matched multiplier already sits within tolerance in
latency (then one baseline answers both questions).
"""

from typing import Any, Callable, Dict, Optional

from squish_tf.bench import latency as latency_lib
from squish_tf.bench.latency_table import LatencyTable
from squish_tf.net import spec as spec_lib

# Latency within this fraction counts as equal.
TOLERANCE = 0.05
TRIES = 4
# Each session: more and longer rounds than a candidate's timing (`latency.NETWORK_ROUNDS`):
# at 64 px one invoke is short and one round's ratio spreads widely.
ROUNDS = 21
ROUND_SECONDS = 0.15
SUBJECT, SIZE_MATCHED, CANDIDATE = "subject", "size_matched", "candidate"




def macs_model(spec: spec_lib.NetSpec) -> float:
  """The latency model of a run without a table: MACs (in millions, a unit of "ms")."""
  return spec.macs() / 1e6


def match_latency(subject: spec_lib.NetSpec, ancestor: spec_lib.NetSpec,
                  table: Optional[LatencyTable],
                  size_multiplier: Optional[float] = None, fmt: str = "fp32", threads: int = 2,
                  tolerance: float = TOLERANCE, tries: int = TRIES,
                  measure: Optional[Callable[..., Dict[str, Dict[str, float]]]] = None,
                  convert: Optional[Callable[[spec_lib.NetSpec, str], Any]] = None,
                  log: Callable[[str], None] = print) -> Dict[str, Any]:
  """The width multiplier of `ancestor` whose measured latency matches `subject`'s.

  Args:
    subject: the SquishedNet's spec (its widths are all that is timed).
    ancestor: the spec the multiplier scales.
    table: the run's latency table (same resolution), or None: MACs predict.
    size_multiplier: the size-matched multiplier, timed in the same sessions so
      the result says how far it is from the subject in latency.
    fmt, threads: the LiteRT model and threads timed.
    tolerance: |measured ratio - 1| accepted as equal latency.
    tries: most timing sessions.
    measure: `latency.measure_against` (a fake in tests).
    convert: `latency.spec_tflite` (a fake in tests).

  Returns:
    {"width_multiplier", "predicted_ms", "subject_predicted_ms", "ratio" (the
    multiplier's speed over the subject's: > 1 is faster; median per round),
    "ratio_min", "ratio_max", "within_tolerance", "sessions": [every try],
    "size_multiplier", "size_ratio" (and min/max): the size-matched one's
    speed over the subject's, "size_within_tolerance"}.
  """
  predict = table.predict if table is not None else macs_model
  measure = measure or latency_lib.measure_against
  convert = convert or latency_lib.spec_tflite
  subject_ms = predict(subject)
  target_ms = subject_ms
  models = {SUBJECT: convert(subject, fmt)}
  if size_multiplier is not None:
    models[SIZE_MATCHED] = convert(spec_lib.scale_width(ancestor, size_multiplier), fmt)
  sessions = []
  tried = set()
  for _ in range(tries):
    multiplier = spec_lib.multiplier_for(ancestor, target_ms, predict)
    candidate = spec_lib.scale_width(ancestor, multiplier)
    widths = (candidate.conv1_filters, candidate.fires)
    if widths in tried:  # the correction lands on widths already timed: nothing new to learn
      break
    tried.add(widths)
    models[CANDIDATE] = convert(candidate, fmt)
    timed = measure(models, SUBJECT, threads=threads, rounds=ROUNDS, round_seconds=ROUND_SECONDS)
    result = timed[CANDIDATE]
    session = {"width_multiplier": multiplier, "predicted_ms": predict(candidate),
               "target_ms": target_ms, "ratio": result["speedup"],
               "ratio_min": result["speedup_min"], "ratio_max": result["speedup_max"]}
    if SIZE_MATCHED in timed:
      size = timed[SIZE_MATCHED]
      session.update(size_ratio=size["speedup"], size_ratio_min=size["speedup_min"],
                     size_ratio_max=size["speedup_max"])
    sessions.append(session)
    log(f"latency match: width {multiplier:.3f} runs {result['speedup']:.3f}x the SquishedNet's "
        f"speed [{result['speedup_min']:.3f}-{result['speedup_max']:.3f}]"
        + (f"; the size-matched width {size_multiplier:.3f} {session['size_ratio']:.3f}x"
           if "size_ratio" in session else ""))
    if abs(result["speedup"] - 1.0) <= tolerance:
      break
    # Faster than the subject (ratio > 1): the table under-prices this width by the ratio,
    # so aim the next bisection at a prediction that much higher.
    target_ms = session["predicted_ms"] * result["speedup"]
  best = min(sessions, key=lambda s: abs(s["ratio"] - 1.0))
  out = dict(best, subject_predicted_ms=subject_ms, tolerance=tolerance,
             within_tolerance=abs(best["ratio"] - 1.0) <= tolerance, sessions=sessions,
             format=fmt, threads=threads, size_multiplier=size_multiplier,
             model="table" if table is not None else "macs")
  if size_multiplier is not None:
    ratios = [s["size_ratio"] for s in sessions]
    out["size_ratio"] = sorted(ratios)[len(ratios) // 2]
    out["size_within_tolerance"] = abs(out["size_ratio"] - 1.0) <= tolerance
  return out
