"""The genetic encoding in numpy: probabilities, factors, sampling, expectations, index map."""

import ast
import inspect
import json
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from squish_tf.evolve import encoding as syn
from squish_tf.evolve import environment as environment_lib
from squish_tf.net import spec as spec_lib
from squish_tf.net import wiring as wiring_lib

SMALL = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=4, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7),
                                spec_lib.FireSpec(5, 8, 8)),
                         pool_after=(1, 3), dropout_rate=0.5)
BASE = spec_lib.squishednet_base(10, (64, 64, 3))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_strengths(spec, seed=0, spread=0.4):
  rng = np.random.default_rng(seed)
  return {name: rng.lognormal(0.0, spread, n) for name, n in spec.prunable_layers()}


def constant(spec, factor):
  return {name: factor for name, _ in spec.prunable_layers()}


# -- purity and configuration -------------------------------------------------------


def test_synthesis_imports_no_tensorflow():
  """The encoding, the environment and the wiring they read are numpy only."""
  for module in (syn, environment_lib, wiring_lib, spec_lib):
    tree = ast.parse(inspect.getsource(module))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import)
                              else [ast.alias(node.module or "")])}
    assert not imported & {"tensorflow", "keras", "tf_keras"}, module.__name__
  # Transitively too: a fresh interpreter importing them loads no TensorFlow.
  code = ("import sys, squish_tf.evolve.encoding, squish_tf.evolve.environment; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))")
  env = dict(os.environ, PYTHONPATH=REPO)
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"


def test_config_defaults_are_valid_and_documented_values():
  config = syn.SynthesisConfig()
  assert (config.env_mode, config.target_fraction, config.target_gamma, config.env_factor,
          config.cost, config.gamma) == ("target", 0.44, 0.5, 0.8, "params", 1.0)
  assert (config.min_filters, config.min_fraction, config.channel_multiple) == (2, 0.05, 1)


@pytest.mark.parametrize("field,value", [
    ("env_factor", 0.0), ("env_factor", 1.5), ("env_factor", -0.2), ("env_factor", float("nan")),
    ("env_mode", "linear"), ("target_fraction", 0.0), ("target_fraction", 1.0),
    ("cost", "flops"), ("gamma", -1.0), ("target_gamma", -0.5), ("f_min", 0.0), ("f_min", 2.0),
    ("min_filters", 0), ("min_filters", 1.5), ("min_filters", True),
    ("min_fraction", 1.0), ("min_fraction", -0.1), ("channel_multiple", 0),
    ("survival_temperature", 0.0), ("survival_temperature", -1.0),
    ("survival_temperature", float("inf")),
])
def test_config_rejects_bad_values_naming_flag_and_value(field, value):
  with pytest.raises(ValueError) as error:
    syn.SynthesisConfig(**{field: value})
  message = str(error.value)
  assert f"--{field}" in message
  assert repr(value) in message


# -- strengths and probabilities ---------------------------------------------------


def test_filter_strengths_are_l1_norms_per_output_filter():
  kernel = np.zeros((3, 3, 2, 4), np.float32)
  kernel[0, 0, 0, 0] = -2.0
  kernel[2, 1, 1, 0] = 0.5
  kernel[..., 2] = 1.0
  kernel[1, 1, 0, 3] = -7.0
  np.testing.assert_array_equal(syn.filter_strengths(kernel), [2.5, 0.0, 18.0, 7.0])
  with pytest.raises(ValueError, match=r"kernel \[kh, kw, in, out\], got shape \(3, 4\)"):
    syn.filter_strengths(np.ones((3, 4)))
  with pytest.raises(ValueError, match="NaN"):
    syn.filter_strengths(np.full((1, 1, 1, 2), np.nan))


def test_cluster_probabilities_formula_and_zero_layer_guard():
  strengths = np.array([0.0, 1.0, 2.0, 4.0])
  p = syn.cluster_probabilities(strengths)
  np.testing.assert_allclose(p, np.exp(strengths / 4.0 - 1.0))
  assert p[-1] == 1.0 and p[0] == pytest.approx(1 / math.e)
  assert np.all(np.diff(p) > 0)
  np.testing.assert_array_equal(syn.cluster_probabilities(np.zeros(5)), np.ones(5))
  with pytest.raises(ValueError, match="finite and >= 0"):
    syn.cluster_probabilities(np.array([1.0, -1.0]))


def _old_sample_survivors(spec, strengths, factors, rng, config):
  """sample_survivors as it was before the temperature: P(c) = exp(s_c / z_l - 1)."""
  survivors = {}
  for name, filters in spec.prunable_layers():
    values = np.asarray(strengths[name], dtype=np.float64)
    p = float(factors[name]) * np.exp(values / values.max() - 1.0)
    keep = rng.random(filters) < p
    drawn = int(keep.sum())
    wanted = int(syn.final_counts(drawn, filters, syn.min_survivors(filters, config),
                                  config.channel_multiple))
    if wanted > drawn:
      strongest_first = np.argsort(-values, kind="stable")
      keep[strongest_first[~keep[strongest_first]][:wanted - drawn]] = True
    survivors[name] = np.flatnonzero(keep)
  return survivors


def test_survival_temperature_one_is_the_old_formula_bit_for_bit():
  strengths = random_strengths(BASE, seed=8, spread=0.7)
  factors = {name: 0.3 + 0.7 * i / 30 for i, (name, _) in enumerate(BASE.prunable_layers())}
  config = syn.SynthesisConfig(survival_temperature=1.0, min_fraction=0.2)
  assert syn.SynthesisConfig().survival_temperature == 1.0
  for given in (None, config):
    probabilities = syn.layer_probabilities(BASE, strengths, given)
    survival = syn.survival_probabilities(BASE, strengths, factors, given)
    for name, values in strengths.items():
      old = np.exp(values / values.max() - 1.0)
      assert np.array_equal(probabilities[name], old), name
      assert np.array_equal(survival[name], factors[name] * old), name
  for seed in range(5):
    new = syn.sample_survivors(BASE, strengths, factors, np.random.default_rng(seed), config)
    old = _old_sample_survivors(BASE, strengths, factors, np.random.default_rng(seed), config)
    assert new.keys() == old.keys()
    assert all(np.array_equal(new[name], old[name]) for name in old)


def test_survival_temperature_softens_or_sharpens_p():
  strengths = np.array([0.0, 1.0, 2.0, 4.0])
  for temperature in (0.5, 3.0):
    p = syn.cluster_probabilities(strengths, temperature)
    np.testing.assert_allclose(p, np.exp((strengths / 4.0 - 1.0) / temperature), rtol=1e-15)
    assert p[-1] == 1.0 and p[0] == pytest.approx(math.exp(-1.0 / temperature))
  np.testing.assert_array_equal(syn.cluster_probabilities(np.zeros(3), 3.0), np.ones(3))
  with pytest.raises(ValueError, match="--survival_temperature must be > 0, got 0"):
    syn.cluster_probabilities(strengths, 0)
  # Threaded through every draw: the masks are Bernoulli(F * P_T(c)) with the T of the config.
  warm = syn.SynthesisConfig(survival_temperature=3.0)
  base_strengths = random_strengths(BASE, seed=2)
  factors = constant(BASE, 0.9)
  assert all(np.array_equal(a, b) for a, b in zip(
      syn.layer_probabilities(BASE, base_strengths, warm).values(),
      [syn.cluster_probabilities(v, 3.0) for v in base_strengths.values()]))
  rng = np.random.default_rng(4)
  survivors = syn.sample_survivors(BASE, base_strengths, factors, rng, warm)
  rng = np.random.default_rng(4)
  for name, n in BASE.prunable_layers():
    keep = rng.random(n) < 0.9 * syn.cluster_probabilities(base_strengths[name], 3.0)
    if keep.sum() >= syn.min_survivors(n, warm):  # floors not binding: the draw itself
      np.testing.assert_array_equal(survivors[name], np.flatnonzero(keep))


def test_higher_temperature_makes_gentler_generations():
  strengths = random_strengths(BASE, seed=6)
  everything = constant(BASE, 1.0)

  def fraction(temperature):
    config = syn.SynthesisConfig(survival_temperature=temperature)
    return environment_lib.expected_child_cost(BASE, strengths, everything,
                                               config).params / BASE.params()

  harsh, paper, gentle = fraction(0.5), fraction(1.0), fraction(3.0)
  assert harsh < paper < gentle
  # F = 1 keeps twice the parameters at T = 3 (0.68x against 0.32x: these strengths spread
  # widely, so at T = 1 most filters are far below their layer's strongest).
  assert gentle > 2 * paper and 1.0 - gentle < 0.5 * (1.0 - paper)
  # Target mode reaches a fraction that T = 1 cannot (it would warn and use F_l = 1).
  config = syn.SynthesisConfig(env_mode="target", target_fraction=0.6, survival_temperature=3.0)
  factors = environment_lib.environment_factors(BASE, config, strengths)
  expected = environment_lib.expected_child_cost(BASE, strengths, factors, config)
  assert paper < 0.6 and expected.params == pytest.approx(0.6 * BASE.params(), rel=1e-6)


def test_strengths_of_wrong_shape_are_refused_with_the_fix():
  strengths = random_strengths(SMALL)
  strengths["fire3_expand3x3"] = np.ones(3)
  with pytest.raises(ValueError, match=r"strengths\['fire3_expand3x3'\] has shape \(3,\), but "
                                       r"the spec's layer has 7 filters.*layer_strengths"):
    syn.sample_survivors(SMALL, strengths, constant(SMALL, 0.5), np.random.default_rng(0))
  del strengths["fire3_expand3x3"]
  with pytest.raises(ValueError, match=r"missing \['fire3_expand3x3'\]"):
    environment_lib.expected_child_cost(SMALL, strengths, constant(SMALL, 0.5))


# -- the channel wiring and the index map ------------------------------------------


@pytest.mark.parametrize("spec", [SMALL, BASE, spec_lib.squeezenet_v1_1(1000)])
def test_channel_sources_agree_with_layer_shapes(spec):
  sources = wiring_lib.channel_sources(spec)
  shapes = spec.layer_shapes()
  assert list(sources) == [layer.name for layer in shapes]
  for layer in shapes:
    blocks = sources[layer.name]
    assert sum(block.channels for block in blocks) == layer.in_channels
    assert [block.offset for block in blocks] == list(
        np.cumsum([0] + [block.channels for block in blocks])[:-1])


def test_input_channel_map_follows_the_fire_concat():
  survivors = {name: np.arange(n) for name, n in SMALL.prunable_layers()}
  survivors.update({
      "conv1": [0, 7],
      "fire2_squeeze1x1": [2],
      "fire2_expand1x1": [5],        # only the last e1 filter
      "fire2_expand3x3": [0],        # only the first e3 filter
      "fire3_expand1x1": [0, 1, 2, 3],
      "fire3_expand3x3": [1, 6],
      "fire4_expand1x1": [3],
      "fire4_expand3x3": [0, 7],
  })
  inputs = syn.input_channel_map(SMALL, survivors)
  outputs = syn.output_channel_map(SMALL, survivors)
  np.testing.assert_array_equal(inputs["conv1"], [0, 1, 2])
  np.testing.assert_array_equal(inputs["fire2_squeeze1x1"], [0, 7])
  np.testing.assert_array_equal(inputs["fire2_expand1x1"], [2])
  np.testing.assert_array_equal(inputs["fire2_expand3x3"], [2])
  # concat = [kept e1, n_e1 + kept e3]; fire2 has n_e1 = 6
  np.testing.assert_array_equal(inputs["fire3_squeeze1x1"], [5, 6])
  np.testing.assert_array_equal(inputs["fire4_squeeze1x1"], [0, 1, 2, 3, 5, 10])
  np.testing.assert_array_equal(inputs["conv10"], [3, 8, 15])
  np.testing.assert_array_equal(outputs["conv10"], np.arange(4))
  np.testing.assert_array_equal(outputs["fire3_expand3x3"], [1, 6])
  child = syn.child_spec(SMALL, survivors)
  widths = {layer.name: layer.in_channels for layer in child.layer_shapes()}
  assert all(widths[name] == len(index) for name, index in inputs.items())


def test_consumers_are_read_off_the_same_table():
  readers = wiring_lib.consumers(SMALL)
  assert readers["conv1"] == ["fire2_squeeze1x1"]
  assert readers["fire2_squeeze1x1"] == ["fire2_expand1x1", "fire2_expand3x3"]
  assert readers["fire4_expand1x1"] == ["conv10"]
  assert readers["fire3_expand3x3"] == ["fire4_squeeze1x1"]


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_filter_cost_is_what_one_filter_fewer_saves(cost):
  costs = environment_lib.filter_costs(BASE, cost)
  full = {name: np.arange(n) for name, n in BASE.prunable_layers()}
  measure = (lambda s: s.params()) if cost == "params" else (lambda s: s.macs())
  for name, n in BASE.prunable_layers():
    one_fewer = dict(full, **{name: np.arange(n - 1)})
    assert measure(BASE) - measure(syn.child_spec(BASE, one_fewer)) == costs[name], name


def test_child_spec_widths_and_name():
  survivors = {name: np.arange(max(1, n // 2)) for name, n in SMALL.prunable_layers()}
  child = syn.child_spec(SMALL, survivors)
  assert child.conv1_filters == 4
  assert child.fires == (spec_lib.FireSpec(2, 3, 2), spec_lib.FireSpec(1, 2, 3),
                         spec_lib.FireSpec(2, 4, 4))
  assert (child.input_shape, child.num_classes, child.pool_after) == (
      SMALL.input_shape, SMALL.num_classes, SMALL.pool_after)
  assert child.name == SMALL.name + "_evolved"
  assert syn.child_spec(child, {n: [0] for n, _ in child.prunable_layers()}).name == child.name
  assert syn.child_spec(SMALL, survivors, name="gen1").name == "gen1"


@pytest.mark.parametrize("change,message", [
    ({"fire2_squeeze1x1": [4]}, r"lists filter 4, but the parent layer has 4 filters"),
    ({"fire2_squeeze1x1": [-1]}, r"lists filter -1"),
    ({"conv1": [1, 1]}, r"lists a filter twice"),
    ({"conv1": []}, r"non-empty"),
    ({"conv10": [0]}, r"unknown \['conv10'\].*conv10 is never pruned"),
])
def test_bad_survivors_are_refused(change, message):
  survivors = {name: np.arange(n) for name, n in SMALL.prunable_layers()}
  survivors.update(change)
  with pytest.raises(ValueError, match=message):
    syn.child_spec(SMALL, survivors)


def test_survivors_json_round_trip():
  survivors = syn.sample_survivors(SMALL, random_strengths(SMALL), constant(SMALL, 0.5),
                                   np.random.default_rng(3))
  text = json.dumps(syn.survivors_to_json(survivors))
  back = syn._survivors_from_json(json.loads(text), SMALL)  # pylint: disable=protected-access
  assert set(back) == set(survivors)
  assert all(np.array_equal(back[name], survivors[name]) for name in survivors)
  with pytest.raises(ValueError, match="integer filter indices"):
    syn._survivors_from_json({"conv1": [0.5, 2.0]})  # pylint: disable=protected-access


# -- sampling ---------------------------------------------------------------------------


def test_survival_frequencies_match_f_times_p():
  draws = 3000
  strengths = random_strengths(BASE, seed=1)
  factor = 0.6
  config = syn.SynthesisConfig(min_filters=1, min_fraction=0.0)
  probabilities = syn.survival_probabilities(BASE, strengths, constant(BASE, factor))
  rng = np.random.default_rng(123)
  hits = {name: np.zeros(n) for name, n in BASE.prunable_layers()}
  for _ in range(draws):
    for name, kept in syn.sample_survivors(BASE, strengths, constant(BASE, factor), rng,
                                           config).items():
      hits[name][kept] += 1
  checked = 0
  for name, p in probabilities.items():
    if np.prod(1.0 - p) > 1e-9:  # the floor (1 filter) could bind: skip that layer
      continue
    frequency = hits[name] / draws
    sigma = np.sqrt(p * (1.0 - p) / draws)
    assert np.all(np.abs(frequency - p) <= 5 * sigma + 1e-12), name
    strong = strengths[name] >= np.median(strengths[name])
    assert frequency[strong].mean() > frequency[~strong].mean(), name
    checked += 1
  assert checked >= 20


def test_floors_and_channel_multiples_hold_on_every_draw():
  config = syn.SynthesisConfig(min_filters=3, min_fraction=0.3, channel_multiple=4)
  strengths = random_strengths(SMALL, seed=2)
  rng = np.random.default_rng(0)
  for factor in (1e-6, 0.3, 1.0):
    for _ in range(300):
      survivors = syn.sample_survivors(SMALL, strengths, constant(SMALL, factor), rng, config)
      for name, n in SMALL.prunable_layers():
        kept = survivors[name]
        assert len(kept) >= syn.min_survivors(n, config)
        assert len(kept) % 4 == 0 or len(kept) == n
        assert np.all(np.diff(kept) > 0) and kept[0] >= 0 and kept[-1] < n


def test_floors_add_back_the_strongest_filters():
  config = syn.SynthesisConfig(min_filters=2, min_fraction=0.25, channel_multiple=1)
  strengths = random_strengths(BASE, seed=4)
  survivors = syn.sample_survivors(BASE, strengths, constant(BASE, 1e-9),
                                   np.random.default_rng(0), config)
  for name, n in BASE.prunable_layers():
    floor = syn.min_survivors(n, config)
    strongest = np.sort(np.argsort(-strengths[name])[:floor])
    np.testing.assert_array_equal(survivors[name], strongest)
  # Equal strengths: ties go to the lower index.
  flat = {name: np.ones(n) for name, n in BASE.prunable_layers()}
  survivors = syn.sample_survivors(BASE, flat, constant(BASE, 1e-9), np.random.default_rng(0),
                                   config)
  assert all(np.array_equal(kept, np.arange(len(kept))) for kept in survivors.values())


def test_min_survivors_rounding():
  config = syn.SynthesisConfig(min_filters=1, min_fraction=0.05)
  assert syn.min_survivors(60, config) == 3  # 0.05 * 60 is 3.0000000000000004 in floats
  assert syn.min_survivors(64, config) == 4
  assert syn.min_survivors(16, syn.SynthesisConfig(min_filters=2)) == 2
  assert syn.min_survivors(6, syn.SynthesisConfig(min_filters=5, channel_multiple=4)) == 6


def test_same_seed_same_masks_other_seed_other_masks():
  strengths = random_strengths(BASE)
  factors = constant(BASE, 0.7)

  def draw(seed):
    return syn.sample_survivors(BASE, strengths, factors, np.random.default_rng(seed))

  a, b, c = draw(11), draw(11), draw(12)
  assert all(np.array_equal(a[name], b[name]) for name in a)
  assert not all(np.array_equal(a[name], c[name]) for name in a)
  with pytest.raises(ValueError, match="np.random.default_rng"):
    syn.sample_survivors(BASE, strengths, factors, 11)


# -- expectations and environmental factors -----------------------------------------


def realised(spec, strengths, factors, config, draws, seed):
  rng = np.random.default_rng(seed)
  children = [syn.child_spec(spec, syn.sample_survivors(spec, strengths, factors, rng, config))
              for _ in range(draws)]
  return (np.array([c.params() for c in children], float),
          np.array([c.macs() for c in children], float))


@pytest.mark.parametrize("config", [
    syn.SynthesisConfig(min_filters=1, min_fraction=0.0),
    syn.SynthesisConfig(min_filters=2, min_fraction=0.3, channel_multiple=4),
])
def test_expected_cost_matches_monte_carlo_with_floors_binding(config):
  strengths = random_strengths(SMALL, seed=5)
  factors = constant(SMALL, 0.25)  # small layers at low F: the floors bind often
  expected = environment_lib.expected_child_cost(SMALL, strengths, factors, config)
  params, macs = realised(SMALL, strengths, factors, config, draws=3000, seed=9)
  assert abs(params.mean() - expected.params) <= 4 * params.std() / np.sqrt(len(params))
  assert abs(macs.mean() - expected.macs) <= 4 * macs.std() / np.sqrt(len(macs))


def test_expected_cost_limits():
  flat = {name: np.ones(n) for name, n in BASE.prunable_layers()}
  everything = environment_lib.expected_child_cost(BASE, flat, constant(BASE, 1.0))
  assert everything.params == pytest.approx(BASE.params(), rel=1e-12)
  assert everything.macs == pytest.approx(BASE.macs(), rel=1e-12)
  config = syn.SynthesisConfig(channel_multiple=8)
  floors = environment_lib.expected_child_cost(BASE, random_strengths(BASE), constant(BASE, 1e-12), config)
  smallest = syn.smallest_child_spec(BASE, config)
  assert floors.params == pytest.approx(smallest.params(), rel=1e-9)
  assert floors.filters["fire9_expand3x3"] == pytest.approx(16)  # ceil(0.05 * 256) -> 16


@pytest.mark.parametrize("cost,fraction", [("params", 0.2), ("macs", 0.25)])
@pytest.mark.parametrize("target_gamma", [0.0, 0.5])
def test_target_mode_hits_the_expected_fraction(cost, fraction, target_gamma):
  config = syn.SynthesisConfig(env_mode="target", target_fraction=fraction, cost=cost,
                               target_gamma=target_gamma)
  strengths = random_strengths(BASE, seed=6)
  factors = environment_lib.environment_factors(BASE, config, strengths)
  assert all(0 < value <= 1 for value in factors.values())
  if target_gamma == 0:
    assert len(set(factors.values())) == 1
  expected = environment_lib.expected_child_cost(BASE, strengths, factors, config)
  parent = BASE.params() if cost == "params" else BASE.macs()
  achieved = expected.params if cost == "params" else expected.macs
  assert achieved == pytest.approx(fraction * parent, rel=1e-6)
  params, macs = realised(BASE, strengths, factors, config, draws=1000, seed=7)
  values = params if cost == "params" else macs
  assert abs(values.mean() - fraction * parent) <= 4 * values.std() / np.sqrt(len(values))


def test_target_below_the_floors_states_the_smallest_size():
  config = syn.SynthesisConfig(env_mode="target", target_fraction=0.001)
  smallest = syn.smallest_child_spec(BASE, config)
  with pytest.raises(ValueError) as error:
    environment_lib.environment_factors(BASE, config, random_strengths(BASE))
  message = str(error.value)
  assert f"{smallest.params():,} params ({smallest.size_mb():.3f} MB" in message
  assert "--target_fraction" in message and "lower the floors" in message


@pytest.mark.parametrize("target_gamma", [0.0, 0.25])
def test_target_above_reach_uses_f_one_and_says_so(caplog, target_gamma):
  config = syn.SynthesisConfig(env_mode="target", target_fraction=0.95,
                               target_gamma=target_gamma)
  with caplog.at_level(logging.WARNING, logger=syn.__name__):
    factors = environment_lib.environment_factors(BASE, config, random_strengths(BASE, spread=1.0))
  assert set(factors.values()) == {1.0}
  assert "Using F_l = 1" in caplog.text
  with pytest.raises(ValueError, match="needs the parent's filter strengths"):
    environment_lib.environment_factors(BASE, config)


def test_weighted_target_spares_cheap_modules_and_shares_f_within_a_module():
  config = syn.SynthesisConfig(env_mode="target", target_fraction=0.2, target_gamma=0.5)
  strengths = random_strengths(BASE, seed=3)
  factors = environment_lib.environment_factors(BASE, config, strengths)
  costs = environment_lib.module_costs(BASE, "params")
  # One factor per module (conv1, each fire), larger for cheaper modules.
  for number, _ in BASE.numbered_fires():
    names = [f"fire{number}_{kind}" for kind in ("squeeze1x1", "expand1x1", "expand3x3")]
    assert len({factors[name] for name in names}) == 1
    assert len({costs[name] for name in names}) == 1
  order = sorted(factors, key=costs.get)
  assert all(factors[a] >= factors[b] - 1e-12 for a, b in zip(order, order[1:]))
  assert factors["conv1"] == 1.0 and factors["fire9_squeeze1x1"] < factors["fire2_squeeze1x1"]
  weights = environment_lib.module_weights(BASE, "params", 0.5)
  unclipped = [name for name in factors if factors[name] < 1.0]
  ratios = {factors[name] / weights[name] for name in unclipped}
  assert max(ratios) == pytest.approx(min(ratios))  # F_l = F * w_l below the clip
  # A module's cost is its filters' average cost.
  filter_costs = environment_lib.filter_costs(BASE, "params")
  widths = dict(BASE.prunable_layers())
  fire9 = [f"fire9_{kind}" for kind in ("squeeze1x1", "expand1x1", "expand3x3")]
  assert costs["fire9_squeeze1x1"] == pytest.approx(
      sum(filter_costs[n] * widths[n] for n in fire9) / sum(widths[n] for n in fire9))


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_cost_weighted_presses_costly_layers_harder(cost):
  config = syn.SynthesisConfig(env_mode="cost_weighted", env_factor=0.5, cost=cost, f_min=0.1)
  factors = environment_lib.environment_factors(BASE, config)
  costs = environment_lib.filter_costs(BASE, cost)
  order = sorted(costs, key=costs.get)
  assert all(factors[a] >= factors[b] for a, b in zip(order, order[1:]))
  assert all(0.1 <= value <= 1.0 for value in factors.values())
  assert factors[order[0]] > factors[order[-1]]
  uniform = environment_lib.environment_factors(BASE, syn.SynthesisConfig(env_mode="cost_weighted",
                                                              env_factor=0.5, gamma=0.0))
  assert set(uniform.values()) == {0.5}


def test_sample_offspring_bundles_a_consistent_child():
  strengths = random_strengths(BASE)
  config = syn.SynthesisConfig(env_mode="target", target_fraction=0.2)
  offspring = environment_lib.sample_offspring(BASE, strengths, config, np.random.default_rng(1))
  assert offspring.spec == syn.child_spec(BASE, offspring.survivors)
  assert offspring.expected_params == pytest.approx(0.2 * BASE.params(), rel=1e-6)
  again = environment_lib.sample_offspring(BASE, strengths, config, np.random.default_rng(1),
                               factors=offspring.factors)
  assert again.spec == offspring.spec
  record = json.loads(json.dumps(offspring.to_json()))
  assert record["params"] == offspring.spec.params()
  assert set(record["survivors"]) == {name for name, _ in BASE.prunable_layers()}
