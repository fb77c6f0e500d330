"""Two networks scored on the same test images: is the difference in top-1 more than the test
split's noise? Pure numpy and math.

Every model of a run is scored on the same test images in the same order, so two models'
per-image outcomes pair up. Only the images they disagree on carry the difference: `b` where the
first is right and the second wrong, `c` the other way round. The difference in top-1 is
(b - c) / n; its paired standard error sqrt(b + c - (b - c)^2 / n) / n is much smaller than two
independent binomial errors when the models agree on most images. The exact McNemar test asks
how likely a split at least as uneven as b:c is when either model is equally likely to win a
disagreement (a two-sided binomial test on b + c trials).

This is the noise of the test split only: a second training seed moves top-1 too, which only
more seeds measure.
"""

import base64
import hashlib
import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

# The two-sided 95% point of the normal distribution.
Z_95 = 1.959963984540054
# A difference is called beyond the test split's noise when McNemar's p is below this.
SIGNIFICANCE = 0.05


def pack_correct(correct: Any) -> str:
  """A per-image right/wrong vector as base64 of its packed bits (results.json's form)."""
  bits = np.asarray(correct, dtype=bool).ravel()
  return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_correct(packed: str, images: int) -> np.ndarray:
  """Inverse of `pack_correct` for a vector of `images` entries."""
  if not isinstance(packed, str):
    raise ValueError(f"a packed per-image vector must be a base64 string, got "
                     f"{type(packed).__name__}.")
  raw = np.frombuffer(base64.b64decode(packed.encode("ascii"), validate=True), dtype=np.uint8)
  if raw.size != (images + 7) // 8:
    raise ValueError(f"the packed vector holds {raw.size * 8} bits, not the {images} images of "
                     "its evaluation; it was written for another test split.")
  return np.unpackbits(raw)[:images].astype(bool)


def labels_digest(labels: Any) -> str:
  """A short fingerprint of the test labels in order: two evaluations pair up only when their
  labels (and so, for one run's split, their images) are the same sequence."""
  values = np.asarray(labels, dtype=np.int64).ravel()
  return hashlib.sha256(values.tobytes()).hexdigest()[:16]


def mcnemar_p(b: int, c: int) -> float:
  """The exact two-sided McNemar p-value for `b` and `c` discordant pairs (1.0 when b = c)."""
  if b < 0 or c < 0:
    raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}.")
  n = b + c
  if n == 0:
    return 1.0
  # In whole numbers, so that tens of thousands of disagreements neither overflow nor round.
  term, total = 1, 1  # C(n, 0)
  for k in range(min(b, c)):
    term = term * (n - k) // (k + 1)  # C(n, k + 1)
    total += term
  return min(1.0, 2 * total / (1 << n))


def paired_difference(correct_a: Any, correct_b: Any) -> Dict[str, Any]:
  """Model a's test top-1 minus model b's on the same images, with its noise.

  Args:
    correct_a, correct_b: per-image booleans (right or wrong), the same images in the
      same order.

  Returns:
    {"points": 100 x (top1_a - top1_b), "low", "high": its 95% interval in points (normal,
    paired), "p_value": exact McNemar, "a_only": images only a gets right, "b_only": only b,
    "images": n, "beyond_noise": p_value < SIGNIFICANCE}.

  Raises:
    ValueError: the vectors differ in length or are empty.
  """
  a = np.asarray(correct_a, dtype=bool).ravel()
  b_vec = np.asarray(correct_b, dtype=bool).ravel()
  if a.size != b_vec.size or a.size == 0:
    raise ValueError(f"paired_difference needs two per-image vectors of one test split, got "
                     f"{a.size} and {b_vec.size} images.")
  n = a.size
  a_only = int(np.sum(a & ~b_vec))
  b_only = int(np.sum(~a & b_vec))
  diff = (a_only - b_only) / n
  variance = max(a_only + b_only - (a_only - b_only)**2 / n, 0.0) / n**2
  half = Z_95 * math.sqrt(variance)
  p_value = mcnemar_p(a_only, b_only)
  return {"points": 100 * diff, "low": 100 * (diff - half), "high": 100 * (diff + half),
          "p_value": p_value, "a_only": a_only, "b_only": b_only, "images": n,
          "beyond_noise": p_value < SIGNIFICANCE}


def paired_of(test_correct: Optional[Mapping[str, Any]], name_a: str,
              name_b: str) -> Optional[Dict[str, Any]]:
  """`paired_difference` of two models from results.json's "test_correct" ({"images",
  "labels", "models": {name: packed}}); None when either model was not recorded."""
  if not isinstance(test_correct, Mapping):
    return None
  models = test_correct.get("models") or {}
  images = test_correct.get("images")
  if name_a not in models or name_b not in models or not isinstance(images, int):
    return None
  return paired_difference(unpack_correct(models[name_a], images),
                           unpack_correct(models[name_b], images))


def noise_text(paired: Optional[Mapping[str, Any]]) -> str:
  """The clause a verdict adds: the 95% interval and whether the difference is beyond the
  test split's noise; "" without a paired comparison."""
  if not paired:
    return ""
  where = ("beyond the test split's noise" if paired["beyond_noise"]
           else "within the test split's noise")
  return (f" (95% interval {paired['low']:+.2f} to {paired['high']:+.2f} points on "
          f"{paired['images']:,} test images, McNemar p = {paired['p_value']:.2g}: {where})")


# Two-sided 95% points of Student's t by degrees of freedom (seeds - 1), for the spread of a
# mean over a few seeds; beyond the table the normal's.
_T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def mean_over_seeds(paireds: Sequence[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
  """The mean of several seeds' paired differences (each seed its own run and test split),
  with two 95% intervals in points: "test" for the test splits' noise alone (the seeds'
  paired errors combined), and "seeds" from the spread of the seeds' differences (Student's
  t; it holds the training seed's noise too, and needs 2 seeds or more). None for no seeds."""
  points = [float(p["points"]) for p in paireds]
  if not points:
    return None
  k = len(points)
  mean = sum(points) / k
  errors = [(float(p["high"]) - float(p["low"])) / (2 * Z_95) for p in paireds]
  test_half = Z_95 * math.sqrt(sum(e * e for e in errors)) / k
  out = {"points": mean, "seeds": k, "test_low": mean - test_half, "test_high": mean + test_half,
         "seeds_low": None, "seeds_high": None}
  if k >= 2:
    spread = math.sqrt(sum((p - mean)**2 for p in points) / (k - 1))
    half = _T_95.get(k - 1, Z_95) * spread / math.sqrt(k)
    out.update(seeds_low=mean - half, seeds_high=mean + half)
  return out


def bracket_text(paired: Optional[Mapping[str, Any]]) -> str:
  """A verdict's interval and McNemar p in brackets, for a table row; "" without them."""
  if not paired:
    return ""
  return f" [95% {paired['low']:+.2f}, {paired['high']:+.2f}; McNemar p {paired['p_value']:.2g}]"


def mean_text(mean: Optional[Mapping[str, Any]]) -> str:
  """`mean_over_seeds`' two intervals in words; "" without a mean."""
  if not mean:
    return ""
  seeds = ("" if mean["seeds_low"] is None else
           f"; across seeds (t) [{mean['seeds_low']:+.2f}, {mean['seeds_high']:+.2f}]")
  return (f"95% intervals of the mean: test splits [{mean['test_low']:+.2f}, "
          f"{mean['test_high']:+.2f}]{seeds}")
