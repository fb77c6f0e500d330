"""The latency table prices max pools and concatenations per layer; old caches and profiles."""

import dataclasses
import json

import numpy as np
import pytest
import toy

from squish_tf import files as files_lib
from squish_tf.bench import devices as devices_lib
from squish_tf.bench import latency
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import profile as profile_lib
from squish_tf.net import spec as spec_lib

TINY = toy.TINY
OVERHEAD_MS = 0.002


def conv_truth(signature):
  """A convolution's ms (invoke excluded): a fixed part plus one proportional to its MACs,
  the form `smooth_layer` fits, so the table reproduces it exactly."""
  kernel, _, _, height, width, in_channels, filters, _ = signature
  return 0.003 + 5e-8 * kernel * kernel * height * width * in_channels * filters


def move_truth(signature):
  """A max pool's or concatenation's ms (invoke excluded): linear in the data it moves."""
  kind, height, width, channels = signature
  return (0.001 if kind == "max_pool" else 0.0005) + 2e-5 * height * width * channels


def hand_sums(spec, multiple):
  """(sum of the convolutions at channels padded to `multiple`, sum of the moves): conv1's
  image channels and conv10's classes are off the grid, so never padded."""
  def pad(count, fixed):
    return count if fixed else spec_lib.round_channels(count, multiple)

  convs = sum(conv_truth(op.signature(pad(op.in_channels, op.name == "conv1"),
                                      pad(op.filters, op.name == "conv10")))
              for op in latency_table_lib.conv_ops(spec))
  moves = sum(move_truth(op.signature(op.channels))
              for op in latency_table_lib.move_ops(spec))
  return convs, moves


def synthetic_measurements(spec):
  """What a clock would say for the table of `spec`: the truths plus the invoke overhead, and
  whole networks costing 1.3 x their layers (moves included) plus 0.01 ms."""
  op_ms = {s: conv_truth(s) + OVERHEAD_MS for s in latency_table_lib.probe_signatures(spec)}
  move_ms = {s: move_truth(s) + OVERHEAD_MS for s in latency_table_lib.move_signatures(spec)}
  network_ms = {width: 1.3 * sum(hand_sums(scaled, 1)) + 0.01
                for width, scaled in latency_table_lib.calibration_specs(spec).items()}
  return latency_table_lib.Measurements(op_ms, OVERHEAD_MS, network_ms, move_ms)


def test_move_ops_are_the_pools_and_concats_at_their_input_sizes():
  ops = latency_table_lib.move_ops(TINY)
  assert [(op.name, op.kind, op.height, op.channels) for op in ops] == [
      ("pool1", "max_pool", 15, 16), ("fire2_concat", "concat", 7, 32),
      ("fire3_concat", "concat", 7, 32), ("pool3", "max_pool", 7, 32),
      ("fire4_concat", "concat", 3, 48)]
  assert ops[3].producers == ("fire3_expand1x1", "fire3_expand3x3")
  assert latency_table_lib.move_grid(ops[0]) == [4, 8, 16]
  assert latency_table_lib.move_grid(ops[4]) == [12, 24, 48]  # halves of 6, 12, 24
  assert len(latency_table_lib.move_signatures(TINY)) == 12  # fire2's and fire3's shared


def test_a_pool_priced_table_prices_a_child_thin_at_conv1_faster_than_the_old_rule():
  """predicted = intercept + slope * (convolutions + moves), the line fitted by least squares
  on the calibration networks' sums of both; without the moves (as the old rule) the line
  prices them as a share of the convolutions, and a child thin only at conv1 saves less."""
  measured = synthetic_measurements(TINY)
  table = latency_table_lib.build_table(TINY, "fp32", 2, measured)
  old = latency_table_lib.build_table(TINY, "fp32", 2, dataclasses.replace(measured, move_ms={}))
  assert set(table.moves) == {op.name for op in latency_table_lib.move_ops(TINY)}
  assert old.moves == {} and old.moves_ms(TINY) == 0.0
  child = TINY.replace(conv1_filters=2)
  calibration = list(latency_table_lib.calibration_specs(TINY).values())
  measured_ms = [measured.network_ms[w] for w in latency_table_lib.calibration_specs(TINY)]

  def by_hand(multiple, with_moves):
    sums = [sum(hand_sums(s, multiple)[:2 if with_moves else 1]) for s in calibration]
    slope, intercept = np.polyfit(sums, measured_ms, 1)
    return lambda spec: intercept + slope * sum(hand_sums(spec, multiple)[:2 if with_moves else 1])

  new_rule = by_hand(table.channel_multiple, True)
  old_rule = by_hand(old.channel_multiple, False)
  for spec in (TINY, child):
    assert table.predict(spec) == pytest.approx(new_rule(spec), rel=1e-9)
    assert old.predict(spec) == pytest.approx(old_rule(spec), rel=1e-9)
  new_speedup = table.predict(TINY) / table.predict(child)
  old_speedup = old.predict(TINY) / old.predict(child)
  assert new_speedup == pytest.approx(new_rule(TINY) / new_rule(child), rel=1e-9)
  assert new_speedup > old_speedup > 1.0
  # pool1 at 2 channels: its line read beyond the grid's 4 channels.
  assert table.move_ms("pool1", 2) == pytest.approx(move_truth(("max_pool", 15, 15, 2)))


def test_expected_counts_price_the_moves_at_their_producers_counts():
  table = latency_table_lib.build_table(TINY, "fp32", 2, synthetic_measurements(TINY))
  table.channel_multiple = 1
  child = TINY.replace(conv1_filters=5, fires=(spec_lib.FireSpec(8, 3, 9),) + TINY.fires[1:])
  counts = dict(child.prunable_layers())
  assert table.predict_counts(TINY, counts) == pytest.approx(table.predict(child), rel=1e-12)
  assert table.moves_ms(child) == pytest.approx(hand_sums(child, 1)[1], rel=1e-9)
  again = latency_table_lib.LatencyTable.from_json(json.loads(json.dumps(table.to_json())))
  assert again.predict(child) == table.predict(child) and again.moves == table.moves


def test_a_cache_of_an_older_table_version_is_measured_again(tmp_path, monkeypatch):
  """A version-2 table (no moves) with the very key of this run is measured again."""
  measured = []

  def measure(spec, fmt, threads, progress=None):
    measured.append(fmt)
    return latency_table_lib.build_table(
        spec, fmt, threads, synthetic_measurements(spec),
        key=files_lib.json_round_trip(latency.table_key(spec, fmt, threads)))

  monkeypatch.setattr(latency, "measure_table", measure)
  path = str(tmp_path / latency_table_lib.table_file("fp32"))
  old = measure(TINY, "fp32", 2).to_json()
  old.update(version=2)
  del old["moves"]
  files_lib.write_json(path, old)
  table = latency.load_or_measure(path, TINY, "fp32", 2, progress=None)
  assert measured == ["fp32", "fp32"] and table.moves
  assert files_lib.read_json(path)["version"] == latency_table_lib.TABLE_VERSION
  latency.load_or_measure(path, TINY, "fp32", 2, progress=None)
  assert len(measured) == 2  # the new cache is read


def test_an_old_profile_without_moves_loads_and_prices_them_through_the_line(tmp_path):
  measured = synthetic_measurements(TINY)
  old_measurements = dataclasses.replace(measured, move_ms={})
  profile = profile_lib.DeviceProfile("phone", "ai-edge-litert", "2.3.0", 4, "fp32", 32, 3,
                                      old_measurements)
  data = profile.to_json()
  del data["moves"]  # what measure.py wrote before packs held max pools and concatenations
  path = str(tmp_path / "profile.json")
  files_lib.write_json(path, data)
  loaded = profile_lib.load_profile(path)
  assert loaded.measurements.move_ms == {}
  table = loaded.table(TINY)
  assert table.moves == {}
  convs = [hand_sums(s, table.channel_multiple)[0]
           for s in latency_table_lib.calibration_specs(TINY).values()]
  slope, intercept = np.polyfit(convs, list(measured.network_ms.values()), 1)
  assert (table.intercept_ms, table.slope) == (pytest.approx(intercept), pytest.approx(slope))
  assert table.predict(TINY) == pytest.approx(
      intercept + slope * hand_sums(TINY, table.channel_multiple)[0], rel=1e-9)
  # A built-in device's cached profile without them is measured again.
  device = profile_lib.BUILT_IN["cpu_fp32"]
  assert devices_lib._cached(path, device, TINY) is None  # pylint: disable=protected-access
  with_moves = profile_lib.DeviceProfile.from_json(dict(data, moves=[
      {"signature": list(s), "ms": ms} for s, ms in measured.move_ms.items()]))
  assert with_moves.table(TINY).moves_ms(TINY) == pytest.approx(hand_sums(TINY, 1)[1])


def test_measurements_with_some_moves_missing_are_refused():
  measured = synthetic_measurements(TINY)
  partial = dict(list(measured.move_ms.items())[1:])
  with pytest.raises(ValueError, match="another architecture"):
    latency_table_lib.build_table(TINY, "fp32", 2, dataclasses.replace(measured,
                                                                       move_ms=partial))


def test_the_network_line_has_an_intercept_and_stays_positive_below_the_calibration():
  layers = [1.0, 2.0, 3.0, 4.0]
  assert latency_table_lib.fit_network_line(layers, [0.5 + 2 * x for x in layers]) == (
      pytest.approx(0.5), pytest.approx(2.0))
  # A line falling with the layers, or at or below 0 on the thinnest network: through the origin.
  falling = [4.0, 3.0, 2.0, 1.0]
  assert latency_table_lib.fit_network_line(layers, falling) == latency_table_lib.fit_network(
      layers, falling)
  steep = [-1.0 + x for x in layers]
  assert latency_table_lib.fit_network_line(layers, steep)[0] == 0.0
  table = latency_table_lib.LatencyTable("fp32", 2, (32, 32, 3), {}, intercept_ms=-1.0, slope=2.0,
                                         calibration=[{"layers_ms": 2.0}, {"layers_ms": 5.0}])
  assert table.network_ms(5.0) == 9.0 and table.network_ms(2.0) == 3.0
  assert table.network_ms(1.0) == pytest.approx(1.5)  # the thinnest's 3.0 ms, scaled
  assert table.network_ms(0.25) > 0
