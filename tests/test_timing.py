"""Interleaved timing: the order of calls, and the statistics on fake clocks (no real timing)."""

import numpy as np
import pytest

from squish_tf.runtime import timing


class _FakeClock:
  """Time that moves only when a fake model runs: each call adds that model's latency."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class _FakeModel:
  """A call that takes latencies[r] seconds of fake time in timed round r (warm-up: none)."""

  def __init__(self, clock, latencies, warmup, invokes):
    self.clock, self.latencies, self.warmup, self.invokes = clock, latencies, warmup, invokes
    self.calls = 0

  def __call__(self):
    timed = self.calls - self.warmup
    self.calls += 1
    if timed >= 0:
      self.clock.now += self.latencies[timed // self.invokes]


def test_rounds_interleave_the_models_in_turn():
  order = []
  calls = {name: (lambda name=name: order.append(name)) for name in ("A", "B")}
  result = timing.time_interleaved(calls, rounds=3, invokes=2, warmup_invokes=1)
  assert order == ["A", "B"] + ["A", "A", "B", "B"] * 3
  assert result["rounds"] == 3 and result["invokes"] == {"A": 2, "B": 2}
  assert [len(result["seconds"][name]) for name in ("A", "B")] == [3, 3]
  # Per-model counts, three models: still each in turn, every round.
  order.clear()
  calls["C"] = lambda: order.append("C")
  timing.time_interleaved(calls, rounds=2, invokes={"A": 1, "B": 3, "C": 2}, warmup_invokes=0)
  assert order == ["A", "B", "B", "B", "C", "C"] * 2


def test_load_average_is_recorded_before_and_after():
  result = timing.time_interleaved({"A": lambda: None}, rounds=1, invokes=1)
  load = result["load_average"]
  assert set(load) == {"start", "end"}
  if hasattr(__import__("os"), "getloadavg"):
    assert load["start"] >= 0 and load["end"] >= 0


def test_ratio_is_the_median_of_per_round_ratios_with_min_max():
  # Reference A and subject B, ms per invoke in 5 rounds. Per-round speed of B over A:
  # A/B = [2, 4, 1, 4, 4]: median 4, min 1, max 4. The ratio of the medians
  # (1.0 / 0.5 = 2) and of the means would both be wrong.
  a = [1e-3, 2e-3, 1e-3, 4e-3, 1e-3]
  b = [0.5e-3, 0.5e-3, 1e-3, 1e-3, 0.25e-3]
  timed = {"rounds": 5, "invokes": {"A": 10, "B": 20},
           "seconds": {"A": [10 * t for t in a], "B": [20 * t for t in b]}}
  stats = timing.ratio_stats(timed, "B", "A")
  assert stats["ratio_median"] == pytest.approx(4.0)
  assert (stats["ratio_min"], stats["ratio_max"]) == (pytest.approx(1.0), pytest.approx(4.0))
  assert stats["rounds"] == 5
  np.testing.assert_allclose(stats["ratios"], [2, 4, 1, 4, 4])
  assert np.median(a) / np.median(b) == pytest.approx(2.0)  # what dividing would have said
  inverse = timing.ratio_stats(timed, "A", "B")
  assert inverse["ratio_median"] == pytest.approx(0.25)


def test_fake_clock_end_to_end_through_time_interleaved():
  clock = _FakeClock()
  latencies = {"A": [1e-3, 2e-3, 1e-3, 4e-3, 1e-3], "B": [0.5e-3, 0.5e-3, 1e-3, 1e-3, 0.25e-3]}
  models = {name: _FakeModel(clock, values, warmup=2, invokes=4)
            for name, values in latencies.items()}
  result = timing.time_interleaved(models, rounds=5, invokes=4, warmup_invokes=2, clock=clock)
  np.testing.assert_allclose(timing.seconds_per_invoke(result, "A"), latencies["A"])
  np.testing.assert_allclose(timing.seconds_per_invoke(result, "B"), latencies["B"])
  assert timing.ratio_stats(result, "B", "A")["ratio_median"] == pytest.approx(4.0)
  stats = timing.throughput_stats(result, "A", batch_size=8)
  # ms per batch [1, 2, 1, 4, 1]: median 1 ms, min 1, max 4, IQR 1..2.
  assert stats["latency_ms"] == pytest.approx({"median": 1.0, "min": 1.0, "max": 4.0,
                                               "q1": 1.0, "q3": 2.0})
  assert stats["images_per_sec"]["median"] == pytest.approx(8000.0)
  assert stats["images_per_sec"]["min"] == pytest.approx(2000.0)
  assert stats["images_per_sec"]["max"] == pytest.approx(8000.0)
  assert stats["rounds"] == 5 and stats["invokes"] == 4


def test_calibration_aims_each_share_of_a_round_at_round_seconds():
  clock = _FakeClock()

  def model(seconds):
    def call():
      clock.now += seconds
    return call

  counts = timing.calibrate_invokes({"fast": model(1e-4), "mid": model(1e-3), "slow": model(0.05)},
                                    round_seconds=0.1, min_invokes=5, max_invokes=200,
                                    clock=clock)
  assert counts == {"fast": 200, "mid": 100, "slow": 5}  # clipped, aimed, clipped
  with pytest.raises(ValueError, match="min_invokes <= max_invokes"):
    timing.calibrate_invokes({"a": model(1e-3)}, min_invokes=10, max_invokes=5, clock=clock)


def test_time_runs_and_latency_stats():
  calls = []
  latencies = timing.time_runs(lambda: calls.append(1), min_seconds=0.0, min_runs=5,
                               warmup_runs=2)
  assert len(latencies) == 5 and len(calls) == 7
  stats = timing.latency_stats([0.001, 0.002, 0.004], batch_size=8)
  assert stats["images_per_sec"] == pytest.approx(8 * 3 / 0.007)
  assert stats["images_per_sec_p50"] == pytest.approx(8 / 0.002)


def test_bad_arguments_are_refused():
  with pytest.raises(ValueError, match="at least one callable"):
    timing.time_interleaved({})
  with pytest.raises(ValueError, match="rounds must be an integer >= 1, got 0"):
    timing.time_interleaved({"A": lambda: None}, rounds=0)
  with pytest.raises(ValueError, match=r"invokes per round must be >= 1, got \{'A': 0\}"):
    timing.time_interleaved({"A": lambda: None}, invokes={"A": 0})
