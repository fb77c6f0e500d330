"""The microcontroller budgets: predicted flash and arena bound TFLite-Micro's, a child over
--max_arena_kb is never chosen, target mode aims under the limits, floors that cannot fit are
refused before anything is written, and the export's TFLM check is one line."""

import dataclasses
import os

import numpy as np
import pytest
import toy

from squish_tf import api
from squish_tf.bench import latency as latency_lib
from squish_tf.evolve import steering
from squish_tf.evolve import candidates
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment, evolution, surgery
from squish_tf.evolve import micro_budget
from squish_tf.export import metadata as metadata_lib
from squish_tf.export import micro as micro_lib
from squish_tf.export import micro_footprint
from squish_tf.net import batch_norm, model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.net import wiring
from squish_tf.report import console

pytestmark = pytest.mark.usefixtures("fast_latency")
TINY = toy.TINY
KB = 1024


def _tflm_footprint(spec):
  """(flash, arena) TFLM measures for `spec`'s int8 file with metadata and ten labels.

  Random biases: the converter shares equal constant tensors, and all-zero biases of equal
  length (a freshly initialised network's) shared between convolutions abort TFLM's loader.
  """
  from tflite_micro.python.tflite_micro import runtime  # pylint: disable=g-import-not-at-top

  deployed = batch_norm.deployed_spec(spec)
  model = models.build_model(deployed, seed=0)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    weights = layer.get_weights()
    if len(weights) == 2:
      layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype(np.float32)])
  labels = "".join(f"class_{k:02d}_name\n" for k in range(spec.num_classes))
  content = metadata_lib.with_metadata(latency_lib.network_tflite(model, deployed, "int8"),
                                       labels, name=spec.name)
  interpreter = runtime.Interpreter.from_bytes(content, arena_size=micro_lib.ARENA_LIMIT)
  return len(content), micro_lib.arena_bytes(interpreter)


def test_predictions_bound_what_tflite_micro_measures():
  # The floors at 64 px: what a microcontroller budget meets first. The bound holds at 32-128
  # px from the floors to full width (measured when the fixed parts were fitted).
  base = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))
  spec = synthesis.smallest_child_spec(base, synthesis.SynthesisConfig())
  flash, arena = _tflm_footprint(spec)
  predicted = micro_footprint.predict(spec)
  # Never below (a child predicted to fit does), and close: the planner is TFLM's own.
  assert arena <= predicted.arena_bytes <= arena + 2 * KB, (arena, predicted)
  assert flash <= predicted.flash_bytes <= flash + 8 * KB, (flash, predicted)


def test_the_planner_lays_tensors_out_as_tflm_does():
  # Largest first at the lowest free offset: b (3 ops) at 0, a beside it, c reuses a's slot.
  assert micro_footprint.planned_bytes([(32, 0, 1), (64, 0, 2), (32, 2, 3)]) == 96 + 0
  assert micro_footprint.planned_bytes([(100, 0, 0), (50, 1, 1)]) == 112  # 16-byte aligned
  base = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))
  # The uint8 image and its int8 copy are alive at once: the floor of every 64 px network.
  assert micro_footprint.planned_bytes(micro_footprint.activation_lifetimes(base)) >= 2 * 64**2 * 3


def _spec_of(record):
  """A generation-1 candidate's spec (its parent is the ancestor)."""
  return synthesis.child_spec(TINY, record["survivors"])


def _limit_between(specs):
  """A --max_arena_kb with some of `specs` over it and some under."""
  arenas = sorted(micro_footprint.predict(spec).arena_bytes for spec in specs)
  return (arenas[len(arenas) // 2 - 1] + arenas[len(arenas) // 2]) / 2 / KB


def _first_draws(parent_dir, config, synth):
  """The specs generation 1 will draw (each candidate's seeded draw, as evolution makes it)."""
  model = model_io.load_model_dir(parent_dir)[0]
  strengths = surgery.layer_strengths(model, TINY)
  factors = environment.environment_factors(TINY, synth, strengths)
  return [environment.sample_offspring(
      TINY, strengths, synth, np.random.default_rng(candidates.draw_seed(config.seed, 1, c, 0)),
      factors=factors).spec for c in range(config.population)]


def test_a_child_over_max_arena_kb_is_never_chosen(toy_parent_dir, tmp_path):
  synth = synthesis.SynthesisConfig(env_mode="constant", env_factor=0.8, min_filters=1,
                                    min_fraction=0.0)
  config = evolve_config_lib.EvolutionConfig(generations=1, population=3, offspring_epochs=1,
                                             max_accuracy_drop=1.0, seed=5)
  limit = _limit_between(_first_draws(toy_parent_dir, config, synth))
  lines = []
  result = evolution.evolve(
      toy_parent_dir, str(tmp_path / "run"), dataclasses.replace(config, max_arena_kb=limit),
      synth, toy.data, listeners=[lambda event: lines.append(
          console.format_candidate(event["record"], event["ancestor_top1"]))
          if event["event"] == "candidate" else None])
  records = result.lineage["candidates"]
  over = [r for r in records if r["micro"]["over"]]
  assert 0 < len(over) < len(records)
  for record in records:
    arena = micro_footprint.predict(_spec_of(record)).arena_bytes
    assert record["micro"]["predicted_arena_bytes"] == arena
    assert bool(record["micro"]["over"]) == (arena > limit * KB)
    assert not (record["chosen"] and record["micro"]["over"])
  fitting = [r for r in records if not r["micro"]["over"]]
  assert [r for r in records if r["chosen"]] == [max(fitting, key=lambda r: r["top1"])]
  refused = [line for line in lines if "REFUSED, over the microcontroller budget: arena" in line]
  assert len(refused) == len(over)


def test_target_mode_aims_each_generation_under_the_budget():
  synth = synthesis.SynthesisConfig(env_mode="target", min_filters=1, min_fraction=0.0)
  limit = micro_footprint.predict(micro_budget.uniform_child(TINY, synth, 0.5)).arena_bytes / KB
  budget = micro_budget.MicroBudget(max_arena_kb=limit)
  fits = budget.fitting_fraction(TINY, synth)
  assert 0 < fits < 1
  config = evolve_config_lib.EvolutionConfig(generations=3, max_arena_kb=limit)
  steered = steering.generation_synthesis(synth, config, TINY, 1)
  assert steered.target_fraction == pytest.approx(micro_budget.MARGIN * fits)
  # With the parent's strengths, the expected child drawn at that fraction fits.
  strengths = {name: np.linspace(1.0, 2.0, n) for name, n in TINY.prunable_layers()}
  aimed = steering.generation_synthesis(synth, config, TINY, 1, strengths=strengths)
  expected = micro_budget.MicroBudget(max_arena_kb=limit).fitting_fraction(TINY, synth,
                                                                          strengths=strengths)
  assert aimed.target_fraction == pytest.approx(micro_budget.MARGIN * expected)
  factors = environment.environment_factors(TINY, aimed, strengths)
  counts = environment.expected_child_cost(TINY, strengths, factors, aimed).filters
  child = wiring.spec_with_counts(TINY, {k: int(np.ceil(v)) for k, v in counts.items()}, None)
  assert budget.fits(child)
  # Without a budget, the encoding's own fraction (no target either).
  free = steering.generation_synthesis(synth, evolve_config_lib.EvolutionConfig(), TINY, 1)
  assert free.target_fraction == synth.target_fraction
  assert micro_budget.MicroBudget(max_arena_kb=1e6).fitting_fraction(TINY, synth) is None


def test_floors_that_cannot_fit_are_refused_before_anything_is_written(tmp_path):
  run_dir = str(tmp_path / "run")
  base = spec_lib.squishednet_base(num_classes=2, input_shape=(64, 64, 3))
  smallest = micro_footprint.predict(synthesis.smallest_child_spec(
      base, synthesis.SynthesisConfig()))
  with pytest.raises(ValueError) as refused:
    api.plan(run_dir=run_dir, image_size=64, max_arena_kb=20, max_flash_kb=256)
  message = str(refused.value)
  assert f"{smallest.arena_bytes / KB:.1f} KB tensor arena" in message
  assert f"{smallest.flash_bytes / KB:.1f} KB of flash" in message
  assert "arena" in message and "--max_arena_kb=20" in message
  assert not os.path.exists(run_dir)
  api.plan(run_dir=run_dir, image_size=64, max_arena_kb=48, max_flash_kb=256)  # fits
  with pytest.raises(ValueError, match="flash"):
    micro_budget.MicroBudget(max_flash_kb=1).check_floors(TINY, synthesis.SynthesisConfig())


def test_the_exported_file_is_checked_in_one_line():
  budget = micro_budget.MicroBudget(max_arena_kb=48, max_flash_kb=256)

  def manifest(arena):
    return {"formats": {"int8": {"micro": {"flash_bytes": 200 * KB, "arena_bytes": arena}}}}

  assert micro_budget.exported_fit_line(budget, manifest(40 * KB)) == (
      "The int8 SquishedNet fits the microcontroller budget (TFLite-Micro): arena 40.0 KB of "
      "48 KB, flash 200.0 KB of 256 KB.")
  line = micro_budget.exported_fit_line(budget, manifest(50 * KB))
  assert "does NOT fit" in line and "arena 50.0 KB > 48 KB" in line
  assert "NOT checked" in micro_budget.exported_fit_line(budget, {"formats": {}})
  assert micro_budget.exported_fit_line(micro_budget.MicroBudget(), manifest(1)) is None


def test_select_passes_over_the_most_accurate_child_when_it_is_over_budget():
  def record(candidate, top1, over):
    return {"candidate": candidate, "status": "ok", "top1": top1, "params": 100,
            "micro": {"over": ["arena 50.0 KB > 48 KB"] if over else []}}

  records = [record(0, 0.9, True), record(1, 0.8, False), record(2, 0.7, False)]
  assert evolution.select(records, 0.9, 0.5)["candidate"] == 1
  assert evolution.select(records[:1], 0.9, 0.5) is None
  assert evolution.select([dict(records[0], micro=None)], 0.9, 0.5)["candidate"] == 0
