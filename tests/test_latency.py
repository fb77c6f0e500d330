"""The latency model: predictions are exact functions of the table; synthesis aims in ms."""

import dataclasses
import json

import numpy as np
import pytest
import toy

from squish_tf import files as files_lib
from squish_tf.bench import latency
from squish_tf.bench import matching
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import steering
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import evolution
from squish_tf.evolve import targets as targets_lib
from squish_tf.net import spec as spec_lib
from squish_tf.net import wiring as wiring_lib
from squish_tf.train import baselines as baselines_lib

# Candidates are timed by their MACs (conftest.fast_latency), not converted and timed.
pytestmark = pytest.mark.usefixtures("fast_latency")
TINY = toy.TINY


def _bilinear(a, b, c, d):
  """ms = a + b C_in + c C_out + d C_in C_out: a table any bilinear interpolation reproduces."""
  return lambda cin, cout: a + b * cin + c * cout + d * cin * cout


def fake_table(spec=TINY, intercept=0.05, slope=1.5, seed=0):
  """A table whose every layer is an exactly bilinear function with its own coefficients."""
  rng = np.random.default_rng(seed)
  layers, truth = {}, {}
  for op in latency_table_lib.conv_ops(spec):
    in_grid = [op.in_channels] if op.name == "conv1" else latency_table_lib.grid_points(op.in_channels)
    out_grid = [op.filters] if op.name == "conv10" else latency_table_lib.grid_points(op.filters)
    function = _bilinear(*rng.uniform(1e-4, 1e-3, 4))
    truth[op.name] = function
    layers[op.name] = {"in_grid": in_grid, "out_grid": out_grid,
                       "ms": [[function(c, n) for n in out_grid] for c in in_grid]}
  table = latency_table_lib.LatencyTable(format="fp32", threads=2, input_shape=spec.input_shape,
                               layers=layers, intercept_ms=intercept, slope=slope)
  return table, truth


def _by_hand(table, truth, spec, ops_spec=None):
  total = sum(truth[op.name](op.in_channels, op.filters) for op in latency_table_lib.conv_ops(spec))
  return table.intercept_ms + table.slope * total


def test_interpolation_is_exact_on_the_grid_bilinear_between_linear_beyond():
  grid_in, grid_out = [2, 4, 8], [3, 6]
  ms = [[1.0, 2.0], [3.0, 5.0], [4.0, 9.0]]
  for i, c in enumerate(grid_in):
    for j, n in enumerate(grid_out):
      assert latency_table_lib.interpolate(grid_in, grid_out, ms, c, n) == pytest.approx(ms[i][j])
  # Halfway in both: the mean of the cell's corners.
  assert latency_table_lib.interpolate(grid_in, grid_out, ms, 3, 4.5) == pytest.approx(
      (1 + 2 + 3 + 5) / 4)
  # Beyond the grid: the edge cell extended linearly (C_in 16 is two cells past 8 in 4->8 steps).
  assert latency_table_lib.interpolate(grid_in, grid_out, ms, 12, 3) == pytest.approx(4 + (4 - 3))
  # Never below zero; a single grid point makes its axis constant.
  assert latency_table_lib.interpolate(grid_in, grid_out, ms, -100, 3) == 0.0
  assert latency_table_lib.interpolate([3], grid_out, [[1.0, 2.0]], 99, 6) == pytest.approx(2.0)


def test_grid_points():
  assert latency_table_lib.grid_points(64) == [16, 32, 64]
  assert latency_table_lib.grid_points(3) == [1, 2, 3]
  assert latency_table_lib.grid_points(1) == [1]


def test_predictions_are_exact_functions_of_the_table():
  table, truth = fake_table()
  assert table.predict(TINY) == pytest.approx(_by_hand(table, truth, TINY), rel=1e-12)
  counts = {name: float(n) for name, n in TINY.prunable_layers()}
  assert table.predict_counts(TINY, counts) == pytest.approx(table.predict(TINY), rel=1e-12)
  # A child: its own spec and its parent's counts give the same prediction, exactly the formula.
  rng = np.random.default_rng(1)
  child_counts = {name: int(rng.integers(max(1, n // 4), n + 1))
                  for name, n in TINY.prunable_layers()}
  child = wiring_lib.spec_with_counts(TINY, child_counts, "child")  # pylint: disable=protected-access
  assert table.predict(child) == pytest.approx(_by_hand(table, truth, child), rel=1e-12)
  assert table.predict_counts(TINY, child_counts) == pytest.approx(table.predict(child), rel=1e-12)
  # Round trip through JSON keeps every prediction.
  again = latency_table_lib.LatencyTable.from_json(json.loads(json.dumps(table.to_json())))
  assert again.predict(child) == table.predict(child)


def test_predictions_price_channels_at_the_tables_multiple():
  table, truth = fake_table()
  padded = dataclasses.replace(table, channel_multiple=8)
  pad = lambda c: -(-c // 8) * 8  # noqa: E731
  rng = np.random.default_rng(2)
  counts = {name: int(rng.integers(max(1, n // 4), n + 1)) for name, n in TINY.prunable_layers()}
  child = wiring_lib.spec_with_counts(TINY, counts, "child")  # pylint: disable=protected-access
  ops = latency_table_lib.conv_ops(child)
  assert any(op.filters % 8 for op in ops)  # odd counts to round
  by_hand = table.intercept_ms + table.slope * sum(
      truth[op.name](op.in_channels if op.name == "conv1" else pad(op.in_channels),
                     op.filters if op.name == "conv10" else pad(op.filters)) for op in ops)
  assert padded.predict(child) == pytest.approx(by_hand, rel=1e-12)
  assert padded.predict(child) > table.predict(child)
  # Expectations stay unpadded: synthesis compares them with each other, smoothly.
  assert padded.predict_counts(TINY, counts) == table.predict_counts(TINY, counts)
  again = latency_table_lib.LatencyTable.from_json(json.loads(json.dumps(padded.to_json())))
  assert again.channel_multiple == 8 and again.predict(child) == padded.predict(child)
  assert [spec_lib.round_channels(c, 8) for c in (1, 8, 9, 33.0)] == [8, 8, 16, 40]
  assert spec_lib.round_channels(5.5, 1) == 5.5


def test_the_multiple_is_the_one_the_calibration_networks_fit_best():
  measured = [1.0, 0.8, 0.5]
  by_multiple = {1: [1.0, 0.6, 0.5], 4: [2.0, 1.6, 1.0], 8: [0.5, 0.4, 0.25]}  # 4 and 8 exact
  assert latency_table_lib.choose_multiple(by_multiple, measured) == 4  # a tie goes to the smaller
  by_multiple[4] = [2.0, 1.5, 1.0]
  assert latency_table_lib.choose_multiple(by_multiple, measured) == 8


def test_a_table_for_another_resolution_or_architecture_is_refused():
  table, _ = fake_table()
  with pytest.raises(ValueError, match="measured at input"):
    table.predict(TINY.replace(input_shape=(64, 64, 3)))
  with pytest.raises(ValueError, match="no layer 'fire9_squeeze1x1'"):
    table.layer_ms("fire9_squeeze1x1", 4, 4)


def test_network_fit_is_least_squares_through_the_origin():
  layers = [0.9, 0.4, 0.2]
  assert latency_table_lib.fit_network(layers, [0.7 * x for x in layers]) == (0.0, pytest.approx(0.7))
  # Noisy points: the slope minimising sum (y - s x)^2 is sum xy / sum x^2.
  measured = [0.66, 0.30, 0.13]
  slope = sum(x * y for x, y in zip(layers, measured)) / sum(x * x for x in layers)
  assert latency_table_lib.fit_network(layers, measured) == (0.0, pytest.approx(slope))
  assert latency_table_lib.fit_network([2.0], [1.0]) == (0.0, 0.5)
  with pytest.raises(ValueError, match="too busy"):
    latency_table_lib.fit_network([0.0, 0.0], [1.0, 1.0])


def test_smoothing_fits_a_fixed_part_plus_one_proportional_to_the_macs():
  in_grid, out_grid = [4, 8, 16], [16, 32, 64]
  exact = [[0.01 + 1e-5 * c * n for n in out_grid] for c in in_grid]
  assert np.allclose(latency_table_lib.smooth_layer(in_grid, out_grid, exact), exact)
  noisy = [[v * (1.2 if (i + j) % 2 else 0.8) for j, v in enumerate(row)]
           for i, row in enumerate(exact)]
  smoothed = np.array(latency_table_lib.smooth_layer(in_grid, out_grid, noisy))
  assert np.all(np.diff(smoothed, axis=0) >= 0) and np.all(np.diff(smoothed, axis=1) >= 0)
  # Timings that fall with the channels (pure noise) give a flat layer, never a negative slope.
  falling = [[0.02 - 1e-6 * c * n for n in out_grid] for c in in_grid]
  assert np.ptp(latency_table_lib.smooth_layer(in_grid, out_grid, falling)) == 0


def test_filter_latency_is_what_removing_one_filter_saves():
  table, _ = fake_table()
  costs = environment_lib.filter_costs(TINY, "latency", latency=table)
  counts = {name: n for name, n in TINY.prunable_layers()}
  for name in ("conv1", "fire2_squeeze1x1", "fire4_expand3x3"):
    fewer = dict(counts, **{name: counts[name] - 1})
    child = wiring_lib.spec_with_counts(TINY, fewer, "fewer")  # pylint: disable=protected-access
    assert costs[name] == pytest.approx(table.predict(TINY) - table.predict(child), rel=1e-9)
  with pytest.raises(ValueError, match="needs a measured latency table"):
    environment_lib.filter_costs(TINY, "latency")


def test_target_mode_aims_at_the_latency_fraction():
  table, _ = fake_table()
  config = synthesis.SynthesisConfig(cost="latency", target_fraction=0.6)
  strengths = {name: np.linspace(1.0, 2.0, n) for name, n in TINY.prunable_layers()}
  factors = environment_lib.environment_factors(TINY, config, strengths, latency=table)
  expected = environment_lib.expected_child_cost(TINY, strengths, factors, config, latency=table)
  assert expected.latency_ms == pytest.approx(0.6 * table.predict(TINY), rel=1e-6)
  offspring = environment_lib.sample_offspring(TINY, strengths, config, np.random.default_rng(0),
                                         factors=factors, latency=table)
  assert offspring.predicted_latency_ms == table.predict(offspring.spec)
  assert offspring.to_json()["expected_latency_ms"] == expected.latency_ms


def test_speedup_targets_steer_and_stop_in_predicted_ms():
  table, _ = fake_table()
  synth = synthesis.SynthesisConfig(cost="latency")
  config = evolve_config_lib.EvolutionConfig(generations=2, target_speedup=1.6)
  ancestor_ms = table.predict(TINY)
  assert config.latency_target_ms(ancestor_ms) == pytest.approx(ancestor_ms / 1.6)
  steered = steering.generation_synthesis(synth, config, TINY, 1, table, TINY)
  assert steered.target_fraction == pytest.approx((evolve_config_lib.TARGET_MARGIN / 1.6) ** 0.5)
  fast = {"size_mb": 1.0, "macs": 1, "predicted_latency_ms": ancestor_ms / 1.7}
  slow = dict(fast, predicted_latency_ms=ancestor_ms / 1.5)
  assert targets_lib.Targets.of(config, ancestor_ms).met(fast)
  assert not targets_lib.Targets.of(config, ancestor_ms).met(slow)
  both = dataclasses.replace(config, target_latency_ms=ancestor_ms / 2)  # the tighter one
  assert not targets_lib.Targets.of(both, ancestor_ms).met(fast)


def test_a_speedup_beyond_the_floors_is_refused_with_the_reachable_one():
  table, _ = fake_table()
  synth = synthesis.SynthesisConfig(cost="latency")
  fastest = table.predict(synthesis.smallest_child_spec(TINY, synth))
  reachable = table.predict(TINY) / fastest
  evolution.check_targets(TINY, evolve_config_lib.EvolutionConfig(target_speedup=0.9 * reachable), synth,
                          table)
  with pytest.raises(ValueError, match=f"{reachable:.2f}x"):
    evolution.check_targets(TINY, evolve_config_lib.EvolutionConfig(target_speedup=1.1 * reachable),
                            synth, table)
  with pytest.raises(ValueError, match="target_speedup"):
    evolve_config_lib.EvolutionConfig(target_speedup=0.5)


def test_the_table_is_cached_and_measured_again_for_another_key(tmp_path, monkeypatch):
  calls = []

  def measure(spec, fmt, threads, progress=None):
    calls.append(fmt)
    table, _ = fake_table(spec)
    table.key = files_lib.json_round_trip(latency.table_key(spec, fmt, threads))
    return table

  monkeypatch.setattr(latency, "measure_table", measure)
  path = str(tmp_path / latency_table_lib.table_file("fp32"))
  first = latency.load_or_measure(path, TINY, "fp32", 2, progress=None)
  again = latency.load_or_measure(path, TINY, "fp32", 2, progress=None)
  assert calls == ["fp32"] and again.predict(TINY) == first.predict(TINY)
  latency.load_or_measure(path, TINY, "fp32", 1, progress=None)  # other threads: measured again
  wider = TINY.replace(conv1_filters=24)
  latency.load_or_measure(path, wider, "fp32", 1, progress=None)  # other architecture
  assert len(calls) == 3


def test_measure_table_converts_each_shared_grid_point_once(monkeypatch, real_latency):
  """The measuring plumbing with the clock taken out: fake milliseconds per model."""
  converted = []
  real = latency.conv_tflite  # pylint: disable=protected-access

  def conv(signature, fmt, seed=0):
    converted.append(signature)
    return real(signature, fmt, seed)

  def fake_ms(calls, rounds, round_seconds):
    return {name: 1e-3 if name == "op_overhead" else 0.01 * (1 + index)
            for index, name in enumerate(calls)}

  spec = TINY.replace(fires=TINY.fires[:2], pool_after=(1,))
  monkeypatch.setattr(latency, "conv_tflite", conv)
  monkeypatch.setattr(latency, "_median_ms", fake_ms)
  table = latency.measure_table(spec, "fp32", 2, progress=None)
  assert len(converted) == len(set(converted))  # fire2's and fire3's shared points once
  assert set(table.layers) == {op.name for op in latency_table_lib.conv_ops(spec)}
  assert [c["width"] for c in table.calibration] == list(latency_table_lib.CALIBRATION_WIDTHS)
  for point in table.calibration:
    assert point["predicted_ms"] == pytest.approx(
        table.intercept_ms + table.slope * table.layers_ms(
            spec if point["width"] == 1 else latency.scaled_spec(spec, point["width"])))


def test_measure_against_reads_one_interleaved_session(monkeypatch):
  """`measure_against` is `time_models` (one session over every model) read as latencies and
  median per-round speed-ups over the reference."""
  sessions = []

  def time_models(models, threads=2, rounds=11, round_seconds=0.1, runtime="ai-edge-litert"):
    sessions.append((sorted(models), threads, rounds, round_seconds, runtime))
    # Seconds per round (1 invoke each): b runs twice as fast as a, then 4x, then 3x.
    return {"seconds": {"a": [2.0, 4.0, 3.0], "b": [1.0, 1.0, 1.0]},
            "invokes": {"a": 1, "b": 1}}

  monkeypatch.setattr(latency, "time_models", time_models)
  measured = latency.measure_against({"a": b"A", "b": b"B"}, "a", threads=1, rounds=3,
                                     round_seconds=0.5)
  assert sessions == [(["a", "b"], 1, 3, 0.5, "ai-edge-litert")]
  assert measured["a"] == {"latency_ms": 3000.0, "speedup": 1.0, "speedup_min": 1.0,
                           "speedup_max": 1.0}
  assert measured["b"] == {"latency_ms": 1000.0, "speedup": 3.0, "speedup_min": 2.0,
                           "speedup_max": 4.0}
  with pytest.raises(ValueError, match="reference 'c' is not among"):
    latency.measure_against({"a": b"A"}, "c")


def test_evolution_aims_at_speed_and_records_predicted_and_measured(toy_parent_dir, tmp_path,
                                                                   monkeypatch, real_latency):
  """--cost=latency with --target_speedup on a fake table; the measurement faked too."""
  from squish_tf.job import results as job_results_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.report import sections as sections_lib  # pylint: disable=g-import-not-at-top

  table, _ = fake_table()
  measured_models = []
  # Generation 1's candidates measure 1.4x, later ones 2x: the 1.5x target is met on the
  # measured speed-up, whatever the table predicts.
  speedups = [1.4, 2.0]

  def measure_against(models, reference, threads=2, **_):
    measured_models.append(sorted(models))
    speedup = speedups[min(len(measured_models), len(speedups)) - 1]
    return {name: {"latency_ms": 0.5 if name == reference else 0.5 / speedup,
                   "speedup": 1.0 if name == reference else speedup,
                   "speedup_min": 1.9, "speedup_max": 2.1} for name in models}

  monkeypatch.setattr(latency, "load_or_measure", lambda *args, **kwargs: table)
  monkeypatch.setattr(latency, "measure_against", measure_against)
  config = evolve_config_lib.EvolutionConfig(generations=2, population=2, offspring_epochs=1,
                                     max_accuracy_drop=1.0, seed=3, target_speedup=1.5,
                                     final_epochs=0)
  synth = synthesis.SynthesisConfig(cost="latency")
  result = evolution.evolve(toy_parent_dir, str(tmp_path / "run"), config, synth, toy.data)
  lineage = result.lineage
  ancestor_ms = table.predict(TINY)
  assert lineage["ancestor"]["predicted_latency_ms"] == pytest.approx(ancestor_ms)
  for record in lineage["candidates"]:
    spec = wiring_lib.spec_with_counts(  # pylint: disable=protected-access
        TINY, {k: len(v) for k, v in record["survivors"].items()}, "x")
    assert record["predicted_latency_ms"] == pytest.approx(table.predict(spec), rel=1e-9)
    speedup = speedups[record["generation"] - 1]
    assert record["measured_latency_ms"] == pytest.approx(0.5 / speedup)
    assert record["latency_error"] == pytest.approx(
        record["predicted_latency_ms"] / (0.5 / speedup) - 1)
    assert record["speedup_error"] == pytest.approx(
        ancestor_ms / record["predicted_latency_ms"] / speedup - 1)
  # Each generation was timed once, its candidates with the ancestor.
  assert measured_models[0] == ["ancestor", "gen_001/cand_00", "gen_001/cand_01"]
  # It stops once the chosen one is measured 1.5x faster, not before.
  chosen = [r for r in lineage["candidates"] if r["chosen"]]
  assert lineage["stop_reason"] == "target_met"
  assert [r["generation"] for r in chosen] == [1, 2]
  assert chosen[-1]["measured_speedup"]["median"] == 2.0
  assert chosen[0]["measured_speedup"]["median"] == 1.4
  summary = job_results_lib.latency_summary(lineage)
  assert summary["chosen_candidates"] == len(chosen)
  assert summary["median_abs_error_chosen"] == pytest.approx(
      np.median([abs(r["latency_error"]) for r in chosen]))
  text = sections_lib.latency_section({"latency_model": summary,  # pylint: disable=protected-access
                                  "candidates": lineage["candidates"]})
  assert "### Latency model" in text and "2.00x (1.90-2.10)" in text


class _MacsTable:
  """A latency model priced by MACs alone: what the matching sees of a table."""

  def __init__(self, ms_per_mac=1e-6):
    self.ms_per_mac = ms_per_mac

  def predict(self, spec):
    return self.ms_per_mac * spec.macs()


def test_the_latency_matched_multiplier_is_found_from_the_table_exactly():
  base = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))
  table = _MacsTable()
  for width in (0.3, 0.55, 0.8):
    expected = spec_lib.scale_width(base, width)
    found = spec_lib.multiplier_for(base, table.predict(expected), table.predict)
    assert spec_lib.scale_width(base, found).architecture_key() == expected.architecture_key()
  # The table's real form too: a fake table of exact bilinear layers.
  fake, _ = fake_table()
  target = spec_lib.scale_width(TINY, 0.5)
  found = spec_lib.multiplier_for(TINY, fake.predict(target), fake.predict)
  assert fake.predict(spec_lib.scale_width(TINY, found)) == pytest.approx(fake.predict(target))


def _timed(true_ms):
  """measure_against over fake 'files' (the specs themselves), with the latency `true_ms`."""
  calls = []

  def measure(models, reference, threads=2, **_):
    calls.append(sorted(models))
    ref = true_ms(models[reference])
    return {name: {"latency_ms": true_ms(spec), "speedup": ref / true_ms(spec),
                   "speedup_min": 0.98 * ref / true_ms(spec),
                   "speedup_max": 1.02 * ref / true_ms(spec)} for name, spec in models.items()}
  return measure, calls


def test_match_latency_confirms_by_measurement_and_corrects_the_tables_error():
  base = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))
  table = _MacsTable()
  subject = spec_lib.scale_width(base, 0.6).replace(
      fires=tuple(dataclasses.replace(f, squeeze=max(2, f.squeeze // 3)) for f in
                  spec_lib.scale_width(base, 0.6).fires))
  convert = lambda spec, fmt: spec  # pylint: disable=unnecessary-lambda-assignment
  # The table right: one session, within 5%, and the size-matched multiplier timed beside it.
  measure, calls = _timed(table.predict)
  size = spec_lib.multiplier_for(base, subject.params(), spec_lib.NetSpec.params)
  match = matching.match_latency(subject, base, table, size_multiplier=size, measure=measure,
                                 convert=convert, log=lambda line: None)
  assert len(calls) == 1 and calls[0] == ["candidate", "size_matched", "subject"]
  assert match["within_tolerance"] and abs(match["ratio"] - 1) <= 0.05
  assert match["ratio_min"] < match["ratio"] < match["ratio_max"]
  assert match["size_ratio"] == pytest.approx(table.predict(subject) /
                                              table.predict(spec_lib.scale_width(base, size)))
  # The table 30% too optimistic about uniform widths (they run slower than predicted): the
  # first session misses, the correction lands within 5%.
  slow = lambda spec: table.predict(spec) * (1.0 if spec is subject else 1.3)  # noqa: E731
  measure, calls = _timed(slow)
  match = matching.match_latency(subject, base, table, measure=measure, convert=convert,
                                 log=lambda line: None)
  assert len(match["sessions"]) >= 2 and abs(match["sessions"][0]["ratio"] - 1) > 0.2
  assert match["within_tolerance"] and "size_ratio" not in match
  assert slow(spec_lib.scale_width(base, match["width_multiplier"])) == pytest.approx(
      slow(subject), rel=0.05)


def test_the_job_matches_once_and_leaves_out_a_latency_baseline_the_size_one_answers(
    tmp_path, monkeypatch):
  import types  # pylint: disable=g-import-not-at-top

  from squish_tf import layout  # pylint: disable=g-import-not-at-top
  from squish_tf.job import config as job_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import context  # pylint: disable=g-import-not-at-top
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  base = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))
  winner = spec_lib.scale_width(base, 0.5)  # uniform: the size match is the latency match
  winner_dir = tmp_path / "gen_001" / "cand_00"
  winner_dir.mkdir(parents=True)
  (winner_dir / model_io.SPEC_FILE).write_text(winner.to_json())
  tables = []
  monkeypatch.setattr(latency, "load_or_measure",
                      lambda *args, **kwargs: tables.append(args) or _MacsTable())
  monkeypatch.setattr(latency, "spec_tflite", lambda spec, fmt: spec)
  measure, calls = _timed(_MacsTable().predict)
  monkeypatch.setattr(latency, "measure_against", measure)

  def job_run(run_dir=tmp_path, cost="latency", baselines=baselines_lib.DEFAULT_BASELINES):
    """The job's Run, with what the match reads."""
    return context.Run(config=job_config_lib.JobConfig(run_dir=str(run_dir),
                                                       baselines=baselines),
                       data=None, info=None, spec=base, train_config=None,
                       evolution_config=evolve_config_lib.EvolutionConfig(),
                       synth=synthesis.SynthesisConfig(cost=cost), log=lambda line: None)

  run = job_run()
  result = types.SimpleNamespace(winner_dir=str(winner_dir))
  budget = baselines_lib.BaselineBudget(target_params=winner.params(), total_epochs=2,
                                        fine_tune_epochs=1)
  matched = job.with_match(run, result, budget)
  assert matched.latency_multiplier == pytest.approx(0.5, abs=0.01)
  assert matched.latency_match["size_within_tolerance"] and not matched.latency_match["trained"]
  assert len(tables) == 1 and len(calls) == 1
  assert job.with_match(run, result, budget) == matched  # read back, not measured again
  assert job.with_match(job_run(), result, budget) == matched  # resumed: read back too
  assert len(tables) == 1 and len(calls) == 1
  assert list(run.baseline_dirs) == ["width_scaled"]
  assert matched.latency_match["model"] == "table"
  # Read once: a Run does not see the file change ...
  read = job_run()
  assert list(read.baseline_dirs) == ["width_scaled"]
  match_file = tmp_path / "baselines" / layout.LATENCY_MATCH_FILE
  match_file.write_text(json.dumps(dict(matched.latency_match, trained=True)))
  assert list(read.baseline_dirs) == ["width_scaled"]
  assert read.latency_match == matched.latency_match
  assert list(job_run().baseline_dirs) == ["width_scaled", "width_scaled_latency"]
  # ... and a match handed over (`set_latency_match`, as the job keeps the one it made) is not
  # read at all.
  match_file.unlink()
  handed = job_run()
  assert handed.latency_match is None  # none yet: read again once there is one
  handed.set_latency_match(matched.latency_match)
  assert list(handed.baseline_dirs) == ["width_scaled"]
  # A run aimed at size has no table: MACs guess, the measurements correct, no table measured.
  other = tmp_path / "other"
  by_macs = job.with_match(job_run(other, cost="params"), result, budget)
  assert by_macs.latency_match["model"] == "macs" and len(tables) == 1
  assert by_macs.latency_match["within_tolerance"]
  # Not asked for: nothing is measured.
  assert job.with_match(job_run(other, cost="params", baselines=("width_scaled",)), result,
                        budget) is budget


# -- Targets: the targets resolved once ------------------------------------------


def test_a_speedup_becomes_predicted_ms_once_and_the_tighter_target_wins():
  table, _ = fake_table()
  ancestor_ms = table.predict(TINY)
  config = evolve_config_lib.EvolutionConfig(target_speedup=2.0, target_size_mb=0.5,
                                             target_macs=10**6)
  targets = targets_lib.check_targets(TINY, config, synthesis.SynthesisConfig(cost="latency"),
                                      table)
  assert targets.members == (targets_lib.Targets(size_mb=0.5, macs=10**6,
                                                 latency_ms=ancestor_ms / 2,
                                                 ancestor_ms=ancestor_ms, label="2x+0.5MB+1MMACs"),)
  both = dataclasses.replace(config, target_latency_ms=ancestor_ms / 3)
  assert targets_lib.Targets.of(both, ancestor_ms).latency_ms == ancestor_ms / 3
  # Without a table there is no ancestor time: a speed-up alone names no milliseconds.
  assert targets_lib.Targets.of(config).latency_ms is None


def test_targets_are_met_only_when_every_one_set_is():
  targets = targets_lib.Targets(size_mb=0.5, macs=1000, latency_ms=2.0)
  record = {"size_mb": 0.5, "macs": 1000, "predicted_latency_ms": 2.0}
  assert targets.met(record)
  assert not targets.met(dict(record, macs=1001))
  assert not targets.met(dict(record, predicted_latency_ms=None))
  assert not targets_lib.Targets().met(record)  # none set: never met
  assert targets_lib.Targets(size_mb=1.0).met({"size_mb": 0.9, "macs": 10**9})


def test_a_latency_target_is_met_on_the_speedup_measured_on_the_tables_clock():
  """3x over an ancestor predicted at 6 ms: a record measured on the table's clock (it has a
  speedup_error) is judged on its measured speed-up, one measured elsewhere on the table's
  prediction."""
  targets = targets_lib.Targets(latency_ms=2.0, ancestor_ms=6.0)
  predicted_slow = {"predicted_latency_ms": 2.5, "speedup_error": 0.0}
  assert targets.met(dict(predicted_slow, measured_speedup={"median": 3.0}))
  assert not targets.met(dict(predicted_slow, measured_speedup={"median": 2.9}))
  predicted_fast = {"predicted_latency_ms": 1.5, "speedup_error": 0.0}
  assert not targets.met(dict(predicted_fast, measured_speedup={"median": 2.9}))
  # Measured on another device's clock (no speedup_error): the prediction decides.
  assert targets.met({"predicted_latency_ms": 1.5, "measured_speedup": {"median": 1.0}})
  assert not targets.met({"predicted_latency_ms": 2.5, "measured_speedup": {"median": 9.0}})
  # Not measured at all: the prediction.
  assert targets.met({"predicted_latency_ms": 2.0})


def test_goals_are_fractions_of_the_parent_in_each_unit():
  table, _ = fake_table()
  targets = targets_lib.Targets(size_mb=TINY.size_mb() / 2, macs=TINY.macs() // 4,
                                latency_ms=table.predict(TINY) / 3)
  goals = targets.goals(TINY, table)
  assert goals["params"] == pytest.approx(0.5)
  assert goals["macs"] == pytest.approx(0.25, rel=1e-3)
  assert goals["latency"] == pytest.approx(1 / 3)
  assert "latency" not in targets.goals(TINY)  # no table: no latency goal
  # A parent measured 2x over the ancestor on the table's clock is 2/3 of the way to 3x,
  # whatever the table predicts for it.
  aimed = dataclasses.replace(targets, ancestor_ms=table.predict(TINY))
  assert aimed.goals(TINY, table, parent_speedup=2.0)["latency"] == pytest.approx(2 / 3)
  assert aimed.goals(TINY, table)["latency"] == pytest.approx(1 / 3)


def test_evolution_steers_with_the_targets_it_receives():
  """The generation's fraction from a Targets value equals the one from the config's."""
  table, _ = fake_table()
  synth = synthesis.SynthesisConfig(cost="latency")
  config = evolve_config_lib.EvolutionConfig(generations=2, target_speedup=1.6)
  targets = targets_lib.check_targets(TINY, config, synth, table)
  given = steering.generation_synthesis(synth, config, TINY, 1, table, TINY, targets)
  derived = steering.generation_synthesis(synth, config, TINY, 1, table, TINY)
  assert given.target_fraction == derived.target_fraction != synth.target_fraction


def test_steering_never_aims_below_the_floor_target_mode_measures():
  # A table of thin layers (a fixed cost each, little per channel) that prices convolutions at
  # multiples of 8: `predict` pads a parent of 9-filter layers to 16 and its floors of 2 to 8,
  # which puts their ratio below the unpadded one target mode compares with.
  layers = {}
  for op in latency_table_lib.conv_ops(TINY):
    in_grid = [op.in_channels] if op.name == "conv1" else latency_table_lib.grid_points(op.in_channels)
    out_grid = [op.filters] if op.name == "conv10" else latency_table_lib.grid_points(op.filters)
    layers[op.name] = {"in_grid": in_grid, "out_grid": out_grid,
                       "ms": [[1e-3 + 1e-5 * c * n for n in out_grid] for c in in_grid]}
  table = latency_table_lib.LatencyTable(format="fp32", threads=2, input_shape=TINY.input_shape,
                                         layers=layers, intercept_ms=0.0, slope=1.0,
                                         channel_multiple=8)
  synth = synthesis.SynthesisConfig(cost="latency")
  parent = TINY.replace(conv1_filters=9, fires=(
      spec_lib.FireSpec(9, 9, 9), spec_lib.FireSpec(9, 9, 9), spec_lib.FireSpec(9, 9, 9)))
  floor = environment_lib.floor_fraction(parent, synth, table)
  padded = (table.predict(synthesis.smallest_child_spec(parent, synth))
            / table.predict(parent))
  assert padded < floor  # the case a run met: a target between the two was refused
  strengths = {name: np.random.default_rng(0).random(n) for name, n in parent.prunable_layers()}
  with pytest.raises(ValueError, match="Raise --target_fraction"):
    environment_lib.target_env_factor(parent, strengths, dataclasses.replace(
        synth, target_fraction=(padded + floor) / 2), table)
  # A generation that must shrink as far as it can: aimed just above the floor, and drawn.
  config = evolve_config_lib.EvolutionConfig(generations=4, target_speedup=3)
  steered = steering.generation_synthesis(synth, config, parent, 4, table, TINY,
                                          parent_speedup=1.0)
  assert floor <= steered.target_fraction <= 1.02 * floor + 1e-9
  environment_lib.target_env_factor(parent, strengths, steered, table)
