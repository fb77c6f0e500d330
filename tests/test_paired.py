"""squish_tf.report.paired: two networks' test outcomes paired image by image."""

import math

import numpy as np
import pytest

from squish_tf.report import frontier as frontier_lib
from squish_tf.report import paired as paired_lib


@pytest.mark.parametrize("images", [1, 7, 8, 9, 2000])
def test_packed_vectors_round_trip(images):
  correct = np.random.default_rng(images).random(images) < 0.9
  packed = paired_lib.pack_correct(correct)
  assert np.array_equal(paired_lib.unpack_correct(packed, images), correct)
  with pytest.raises(ValueError, match="another test split"):
    paired_lib.unpack_correct(packed, images + 8)


@pytest.mark.parametrize("b, c, expected", [
    (0, 0, 1.0),
    (5, 5, 1.0),
    (0, 5, 2 / 32),  # every one of 5 disagreements the same way: 2 * (1/2)^5
    (1, 9, 2 * 11 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
    (40, 10, None),
])
def test_mcnemar_is_the_exact_binomial_test(b, c, expected):
  p = paired_lib.mcnemar_p(b, c)
  assert p == paired_lib.mcnemar_p(c, b)  # two-sided: symmetric
  if expected is not None:
    assert p == pytest.approx(expected)
  else:  # 40:10 is far from even
    assert p < 1e-4
  with pytest.raises(ValueError, match=">= 0"):
    paired_lib.mcnemar_p(-1, 3)


def test_mcnemar_holds_for_a_large_test_split():
  # 6,000 disagreements (2.0 ** 6000 overflows a float): even, a 52:48 split, a 55:45 split.
  assert paired_lib.mcnemar_p(3000, 3000) == 1.0
  assert 0.001 < paired_lib.mcnemar_p(3120, 2880) < 0.01
  assert 0.0 <= paired_lib.mcnemar_p(3300, 2700) < 1e-12


def test_the_paired_difference_counts_only_disagreements():
  # 1,000 images: both right on 900, both wrong on 60, only a right on 30, only b on 10.
  a = np.array([1] * 900 + [0] * 60 + [1] * 30 + [0] * 10, dtype=bool)
  b = np.array([1] * 900 + [0] * 60 + [0] * 30 + [1] * 10, dtype=bool)
  paired = paired_lib.paired_difference(a, b)
  assert (paired["a_only"], paired["b_only"], paired["images"]) == (30, 10, 1000)
  assert paired["points"] == pytest.approx(100 * (a.mean() - b.mean())) == pytest.approx(2.0)
  half = paired_lib.Z_95 * math.sqrt(40 - 20**2 / 1000) / 1000 * 100
  assert (paired["low"], paired["high"]) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
  assert paired["p_value"] == pytest.approx(paired_lib.mcnemar_p(30, 10))
  assert paired["beyond_noise"] and paired["low"] > 0
  # The same top-1s with many more disagreements: the same difference, within the noise.
  a2 = np.concatenate([np.arange(900) < 780, a[900:]])  # a wrong on 120 images b gets right
  b2 = np.concatenate([np.arange(900) >= 120, b[900:]])  # b wrong on 120 others a gets right
  wide = paired_lib.paired_difference(a2, b2)
  assert wide["points"] == pytest.approx(2.0)
  assert wide["high"] - wide["low"] > 2 * (paired["high"] - paired["low"])
  assert not wide["beyond_noise"] and wide["low"] < 0 < wide["high"]
  with pytest.raises(ValueError, match="one test split"):
    paired_lib.paired_difference(a, b[:-1])


def test_the_ladder_verdict_says_whether_it_is_beyond_the_noise():
  member = np.array([1] * 90 + [0] * 10, dtype=bool)
  rung = np.array([1] * 88 + [0] * 12, dtype=bool)  # member wins 2 images: within noise
  test_correct = {"images": 100, "labels": "x", "models": {
      "m": paired_lib.pack_correct(member), "rung": paired_lib.pack_correct(rung)}}
  ladder = [{"name": "rung", "latency_ms": 1.0, "top1": 0.88},
            {"name": "other", "latency_ms": 0.9, "top1": 0.80}]
  point = {"name": "m", "latency_ms": 1.5, "top1": 0.90}
  verdict = frontier_lib.ladder_verdict(point, ladder, test_correct)
  assert verdict["rival"]["name"] == "rung"
  assert verdict["paired"]["points"] == pytest.approx(verdict["points"])
  assert verdict["paired"]["p_value"] == pytest.approx(0.5)  # 2:0 disagreements
  sentence = frontier_lib.ladder_sentence(verdict, subject="the 2x member")
  assert sentence.startswith(
      "Against the width ladder (2 uniform widths), the 2x member at 1.500 ms is +2.00 points "
      "more accurate (95% interval -0.74 to +4.74 points on 100 test images, McNemar p = 0.5: "
      "within the test split's noise) than the best ladder network at least as fast, rung")
  # Without the per-image outcomes (results written before them): no clause, no pairing.
  plain = frontier_lib.ladder_verdict(point, ladder)
  assert plain["paired"] is None
  assert "interval" not in frontier_lib.ladder_sentence(plain)
  assert paired_lib.paired_of(test_correct, "m", "missing") is None
  assert paired_lib.paired_of(None, "m", "rung") is None


def test_the_mean_over_seeds_has_a_test_and_a_seed_interval():
  seeds = [{"points": 1.0, "low": 0.0, "high": 2.0}, {"points": -1.0, "low": -2.0, "high": 0.0},
           {"points": 3.0, "low": 2.0, "high": 4.0}]
  mean = paired_lib.mean_over_seeds(seeds)
  assert mean["points"] == pytest.approx(1.0) and mean["seeds"] == 3
  # Each seed's half-width 1.0 is 1.96 errors; three independent errors of 1/1.96, averaged.
  assert mean["test_high"] - mean["points"] == pytest.approx(math.sqrt(3) / 3)
  # Their spread (sd 2 over 3 seeds, t at 2 degrees of freedom) is much wider.
  assert mean["seeds_high"] - mean["points"] == pytest.approx(4.303 * 2 / math.sqrt(3))
  assert mean["seeds_low"] == pytest.approx(2 * mean["points"] - mean["seeds_high"])
  one = paired_lib.mean_over_seeds(seeds[:1])
  assert one["seeds_low"] is None and one["test_low"] == pytest.approx(0.0)
  assert paired_lib.mean_over_seeds([]) is None


def test_the_texts_of_a_verdict_and_of_a_mean():
  paired = {"low": -0.5, "high": 1.25, "p_value": 0.0412}
  assert paired_lib.bracket_text(paired) == " [95% -0.50, +1.25; McNemar p 0.041]"
  assert paired_lib.bracket_text(None) == ""
  mean = paired_lib.mean_over_seeds([{"points": 1.0, "low": 0.0, "high": 2.0},
                                     {"points": 0.0, "low": -1.0, "high": 1.0}])
  # Half-widths: 1.96 * sqrt(2 * (1 / 1.96)^2) / 2, and t(1) 12.706 * sd 0.707 / sqrt(2).
  assert paired_lib.mean_text(mean) == (
      "95% intervals of the mean: test splits [-0.21, +1.21]; across seeds (t) [-5.85, +6.85]")
  one = paired_lib.mean_over_seeds([{"points": 1.0, "low": 0.0, "high": 2.0}])
  assert paired_lib.mean_text(one) == "95% intervals of the mean: test splits [+0.00, +2.00]"
  assert paired_lib.mean_text(None) == ""
