"""The width ladder (--baselines=ladder): aligned widths on the real SqueezeNet spec, the rungs
chosen to span the budget, planned once by the job, and trained as models of their own."""

import json
import math
import os
import types

import pytest
import toy

from squish_tf import layout
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.job import config as job_config_lib
from squish_tf.job import context
from squish_tf.job import estimate as estimate_lib
from squish_tf.job import ladder as job_ladder
from squish_tf.job import run as job
from squish_tf.net import ladder as ladder_lib
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.train import baseline_registry
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import config as train_config_lib

SQUEEZENET = spec_lib.squishednet_base(num_classes=10, input_shape=(64, 64, 3))


def macs(spec):
  return spec.macs() / 1e6


def _channel_counts(spec):
  return [filters for _, filters in spec.prunable_layers()]


@pytest.mark.parametrize("tile", [8, 16, 4])
def test_every_rung_channel_count_is_a_multiple_of_the_tile(tile):
  """Exact, on SqueezeNet v1.1's widths: every width of the grid, and every rung chosen."""
  for spec in (SQUEEZENET, spec_lib.squeezenet_v1_1(1000)):
    for index in range(1, 100):
      counts = _channel_counts(ladder_lib.aligned_width(spec, index / 100, tile))
      assert all(count % tile == 0 and count >= tile for count in counts), (index, counts)
    rungs = ladder_lib.ladder_rungs(spec, ladder_lib.SPEEDUPS, macs, tile)
    assert len(rungs) >= 5
    for rung in rungs:
      counts = _channel_counts(ladder_lib.aligned_width(spec, rung.width_multiplier, tile))
      assert [c % tile for c in counts] == [0] * len(counts)
  # The classifier keeps its classes, conv1 its image channels.
  half = ladder_lib.aligned_width(SQUEEZENET, 0.5, 8)
  assert half.num_classes == 10 and half.input_shape == (64, 64, 3)


def test_half_width_aligned_to_8_is_exactly_half_of_squeezenet():
  half = ladder_lib.aligned_width(SQUEEZENET, 0.5, 8)
  assert _channel_counts(half) == [c // 2 for c in _channel_counts(SQUEEZENET)]
  # Nearest multiple, halves up, at least one tile.
  thin = ladder_lib.aligned_width(SQUEEZENET, 0.2, 8)
  assert (thin.conv1_filters, thin.fires[0], thin.fires[-1]) == (
      16, spec_lib.FireSpec(8, 16, 16), spec_lib.FireSpec(16, 48, 48))


@pytest.mark.parametrize("reach, expected", [
    (2.0, (1.25, 1.5, 2.0, 2.5)),  # 2.0 x 1.25 = 2.5: a rung at 2.5 reaches it
    (2.2, (1.25, 1.5, 2.0, 2.5, 3.0)),
    (0.5, (1.25,)),  # below 1 is 1
    (100.0, ladder_lib.SPEEDUPS),
])
def test_the_ladder_reaches_past_the_budget(reach, expected):
  assert ladder_lib.ladder_speedups(reach) == expected


def test_each_rung_is_the_aligned_width_whose_predicted_speedup_is_nearest():
  speedups = ladder_lib.ladder_speedups(2.2)
  rungs = ladder_lib.ladder_rungs(SQUEEZENET, speedups, macs, 8)
  reference = macs(SQUEEZENET)
  options = {round(index / 100, 2): reference / macs(ladder_lib.aligned_width(SQUEEZENET,
                                                                             index / 100, 8))
             for index in range(1, 100)}
  assert [r.width_multiplier for r in rungs] == sorted(
      (r.width_multiplier for r in rungs), reverse=True)
  assert len({r.width_multiplier for r in rungs}) == len(rungs) == len(speedups)
  for target, rung in zip(speedups, rungs):
    gap = abs(math.log(rung.predicted_speedup / target))
    assert all(abs(math.log(s / target)) >= gap - 1e-12 for s in options.values())
    assert rung.predicted_speedup == pytest.approx(options[rung.width_multiplier])
  # Named by the multiplier nearest the share of filters its widths keep: half widths are 0.50.
  half = macs(SQUEEZENET) / macs(ladder_lib.aligned_width(SQUEEZENET, 0.5, 8))
  assert ladder_lib.ladder_rungs(SQUEEZENET, (half,), macs, 8) == (ladder_lib.Rung(0.5, half),)
  assert ladder_lib.rung_name("ladder", 0.5) == "ladder_0.50"


def test_the_ladder_is_asked_for_by_name_never_by_all():
  assert "ladder" not in baseline_registry.parse_names("all")
  assert "ladder" not in baseline_registry.DEFAULT_BASELINES
  assert baseline_registry.parse_names("width_scaled,ladder") == ("width_scaled", "ladder")
  assert baseline_registry.lookup("ladder").rungs
  assert "'ladder' (never in 'all')" in job_config_lib.JobConfig.__dataclass_fields__[
      "baselines"].metadata["help"]


def test_the_plan_counts_one_training_per_expected_rung():
  budgets = types.SimpleNamespace(train_config=train_config_lib.TrainConfig(epochs=2),
                                  evolution_config=evolve_config_lib.EvolutionConfig(),
                                  steps_per_epoch=4)
  costs = estimate_lib.StepCosts(0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)

  def seconds(baselines):
    return estimate_lib.plan_stages(budgets, costs, 2, baselines).seconds("baselines")

  assert seconds(("width_scaled", "ladder")) == pytest.approx(
      seconds(("width_scaled",)) * (1 + ladder_lib.EXPECTED_RUNGS))


class _Table:
  """A latency table priced by MACs, with a channel multiple."""

  def __init__(self, channel_multiple=16):
    self.channel_multiple = channel_multiple

  def predict(self, spec):
    return macs(spec)


def test_plan_ladder_spans_the_winner_and_takes_the_tables_tile():
  winner = spec_lib.scale_width(SQUEEZENET, 0.45)  # MACs predict it ~4.5x faster
  plan = job_ladder.plan_ladder(SQUEEZENET, winner, _Table(16), target_speedup=2.0)
  assert plan["tile"] == 16 and plan["cost"] == "table"
  assert plan["reach"] == pytest.approx(macs(SQUEEZENET) / macs(winner))
  assert plan["speedups"] == [1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0]
  assert max(r["predicted_speedup"] for r in plan["rungs"]) > plan["reach"]
  # Without a table, or one that found no multiple: MACs, and the default tile.
  plain = job_ladder.plan_ladder(SQUEEZENET, winner, None, measured_speedup=7.0)
  assert (plain["tile"], plain["cost"], plain["reach"]) == (8, "macs", 7.0)
  assert job_ladder.plan_ladder(SQUEEZENET, winner, _Table(1))["tile"] == ladder_lib.TILE


def test_the_job_plans_the_ladder_once_and_names_a_model_per_rung(tmp_path):
  winner = spec_lib.scale_width(SQUEEZENET, 0.75)  # MACs predict it below 2.4x
  winner_dir = tmp_path / "gen_001" / "cand_00"
  winner_dir.mkdir(parents=True)
  (winner_dir / model_io.SPEC_FILE).write_text(winner.to_json())
  result = types.SimpleNamespace(
      winner_dir=str(winner_dir), winner_id="gen_001/cand_00",
      lineage={"candidates": [{"id": "gen_001/cand_00", "measured_speedup": {"median": 2.4}}]})
  tables = []

  def job_run(baselines=("width_scaled", "ladder"), cost="latency"):
    return context.Run(config=job_config_lib.JobConfig(run_dir=str(tmp_path), baselines=baselines),
                       data=None, info=None, spec=SQUEEZENET, train_config=None,
                       evolution_config=evolve_config_lib.EvolutionConfig(target_speedup=2.0),
                       synth=synthesis.SynthesisConfig(cost=cost), log=lambda line: None)

  def table():
    tables.append(1)
    return _Table(8)

  run = job_run()
  assert list(run.baseline_dirs) == ["width_scaled", "ladder"]  # not chosen yet: not done
  budget = baselines_lib.BaselineBudget(target_params=winner.params(), total_epochs=2,
                                        fine_tune_epochs=1)
  planned = job_ladder.with_ladder(run, result, budget, table)
  plan = json.loads((tmp_path / "baselines" / layout.LADDER_FILE).read_text())
  assert plan["winner_measured_speedup"] == 2.4 and plan["reach"] == pytest.approx(2.4)
  assert planned.ladder == tuple(r["width_multiplier"] for r in plan["rungs"])
  assert planned.tile == 8 and len(planned.ladder) == 5 and len(tables) == 1
  rung_names = [ladder_lib.rung_name("ladder", m) for m in planned.ladder]
  assert list(run.baseline_dirs) == ["width_scaled"] + rung_names
  assert run.baseline_dirs[rung_names[0]] == os.path.join(str(tmp_path), "baselines",
                                                          rung_names[0])
  # A resumed run reads the same rungs back; nothing is priced again.
  assert job_ladder.with_ladder(job_run(), result, budget, table) == planned
  assert len(tables) == 1
  # Not asked for: the budget as it was, and no table.
  assert job_ladder.with_ladder(job_run(("width_scaled",)), result, budget, table) is budget
  assert len(tables) == 1
  # The job's budget step adds it (with_match: a run aimed at size has no latency match).
  assert job.with_match(job_run(cost="params"), result, budget) == planned


def test_ladder_rungs_train_as_models_of_their_own(toy_parent_dir, tmp_path):
  budget = baselines_lib.BaselineBudget(
      target_params=toy.TINY.params() // 2, total_epochs=1, fine_tune_epochs=1,
      train_config=train_config_lib.TrainConfig(epochs=4, learning_rate=1e-2), ladder=(0.75, 0.5),
      tile=8)
  run_dir = str(tmp_path / "run")
  with pytest.raises(ValueError, match="BaselineBudget.ladder"):
    baselines_lib.run_baselines(run_dir, toy_parent_dir, baselines_lib.BaselineBudget(
        target_params=1000, total_epochs=1, fine_tune_epochs=1), toy.data, names=("ladder",))
  dirs = baselines_lib.run_baselines(run_dir, toy_parent_dir, budget, toy.data,
                                     names=("ladder",))
  assert list(dirs) == ["ladder_0.75", "ladder_0.50"]
  for multiplier, (name, directory) in zip((0.75, 0.5), dirs.items()):
    assert directory == os.path.join(run_dir, "baselines", name)
    metrics = json.load(open(os.path.join(directory, model_io.METRICS_FILE)))
    spec = model_io.read_spec(directory)
    assert spec == ladder_lib.aligned_width(toy.TINY, multiplier, 8).replace(name=name)
    assert all(count % 8 == 0 for count in _channel_counts(spec))
    assert (metrics["matched_on"], metrics["width_multiplier"], metrics["channel_multiple"]) == (
        "ladder", multiplier, 8)
    assert (metrics["baseline"], metrics["label"]) == ("ladder", f"Width ladder ×{multiplier:.2f}")
    # The equal budget: every rung trains as long as every baseline, with the same recipe.
    assert metrics["train_epochs"] == budget.total_epochs == budget.scratch_config().epochs
    assert metrics["train_images"] == toy.SIZE
