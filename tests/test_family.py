"""A family from one run (--targets): parsing, the walk through the budgets, members nested in
one lineage, a family of one equal to the --target_* run, and the job's members end to end."""

import dataclasses
import json
import os

import pytest
import toy

from squish_tf.bench import config as bench_config_lib
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import evolution, steering
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import target_list
from squish_tf.evolve import targets as targets_lib
from squish_tf.export import config as export_config_lib
from squish_tf.job import config as job_config_lib
from squish_tf.job import family as family_lib
from squish_tf.job import run as job
from squish_tf.net import model_io
from squish_tf.train import config as train_config_lib

pytestmark = pytest.mark.usefixtures("fast_latency")
TINY = toy.TINY
SYNTH = synthesis.SynthesisConfig(env_mode="target")


TINY10 = dataclasses.replace(TINY, num_classes=10)  # shapes10's classes


def _mb(fraction):
  """A size budget at `fraction` of TINY10's, as --targets writes it."""
  return f"{TINY10.size_mb() * fraction!r}MB"


# -- parsing and the family's bookkeeping (pure) ---------------------------------------------

def test_budgets_parse_with_their_units_and_labels():
  budgets = target_list.parse_targets(["1.5x", " 2X ", "0.8MB", "5ms", "200MMACs", "1e8macs"])
  assert [(b.option, b.value, b.label) for b in budgets[:4]] == [
      ("target_speedup", 1.5, "1.5x"), ("target_speedup", 2.0, "2x"),
      ("target_size_mb", 0.8, "0.8MB"), ("target_latency_ms", 5.0, "5ms")]
  assert budgets[4].option == "target_macs" and budgets[4].value == 2e8
  assert budgets[4].label == "200MMACs"
  with pytest.raises(ValueError, match="is not tighter than 300MMACs"):
    target_list.parse_targets(["300MMACs", "300MMACs"])


@pytest.mark.parametrize("items, message", [
    (["2"], "not a number with a unit"), (["2kg"], "not a number with a unit"),
    (["1x"], "above 1x"), (["0MB"], "above 0"),
    (["2x", "1.5x"], "1.5x is not tighter than 2x"),
    (["0.5MB", "0.8MB"], "0.8MB is not tighter than 0.5MB"),
])
def test_bad_budgets_are_refused_with_what_to_do(items, message):
  with pytest.raises(ValueError, match=message):
    evolve_config_lib.EvolutionConfig(targets=tuple(items))


def test_targets_exclude_the_single_target_options():
  with pytest.raises(ValueError, match="--targets=1.5x,2x and --target_speedup=2"):
    evolve_config_lib.EvolutionConfig(targets=("1.5x", "2x"), target_speedup=2.0)
  config = evolve_config_lib.EvolutionConfig(targets=("0.8MB", "1.5x"))
  assert config.latency_target_set and config.target_set
  assert not evolve_config_lib.EvolutionConfig(targets=("0.8MB",)).latency_target_set


def test_a_family_of_one_is_the_single_targets():
  single = evolve_config_lib.EvolutionConfig(target_speedup=2.0, target_size_mb=0.5)
  family = targets_lib.TargetFamily.of(single, ancestor_ms=10.0)
  assert family.members == (targets_lib.Targets.of(single, 10.0),)
  assert family.labels == ("2x+0.5MB",) and family.speedup == pytest.approx(2.0)
  assert not targets_lib.TargetFamily.of(evolve_config_lib.EvolutionConfig()).any


def test_members_are_the_best_chosen_meeting_each_budget():
  config = evolve_config_lib.EvolutionConfig(targets=("0.8MB", "0.5MB", "0.2MB"))
  family = targets_lib.TargetFamily.of(config)
  chosen = [{"id": "g1", "size_mb": 0.7, "macs": 1, "top1": 0.90},
            {"id": "g2", "size_mb": 0.6, "macs": 1, "top1": 0.92},  # better, also under 0.8
            {"id": "g3", "size_mb": 0.4, "macs": 1, "top1": 0.85}]
  assert family.met(chosen[2]) == ["0.8MB", "0.5MB"]
  assert family.unmet(chosen[:2]) == [1, 2] and family.unmet(chosen) == [2]
  assert not family.done(chosen)
  assert family.members_of(chosen) == [
      {"label": "0.8MB", "id": "g2", "met": True}, {"label": "0.5MB", "id": "g3", "met": True},
      {"label": "0.2MB", "id": None, "met": False}]
  assert family.done(chosen + [{"id": "g4", "size_mb": 0.1, "macs": 1, "top1": 0.5}])


def test_the_first_unmet_member_sets_the_pace_within_its_share():
  size = TINY.size_mb()
  config = evolve_config_lib.EvolutionConfig(generations=4,
                                             targets=(f"{0.9 * size!r}MB", f"{0.3 * size!r}MB"))
  family = targets_lib.TargetFamily.of(config)
  margin = evolve_config_lib.TARGET_MARGIN
  first = steering.generation_synthesis(SYNTH, config, TINY, 1, targets=family)
  # Two members share four generations: the first within two, the last within four.
  assert first.target_fraction == pytest.approx(min((margin * 0.9) ** 0.5, (margin * 0.3) ** 0.25),
                                                rel=1e-3)
  met = [{"id": "g1", "size_mb": 0.85 * size, "macs": 1, "top1": 1.0}]
  later = steering.generation_synthesis(SYNTH, config, TINY, 2, targets=family, met=met)
  assert later.target_fraction == pytest.approx((margin * 0.3) ** (1 / 3), rel=1e-3)
  single = evolve_config_lib.EvolutionConfig(generations=4, target_size_mb=0.3 * size)
  assert (steering.generation_synthesis(SYNTH, single, TINY, 2).target_fraction
          == later.target_fraction)


# -- one lineage -----------------------------------------------------------------------------

LOOP = evolve_config_lib.EvolutionConfig(generations=2, population=1, offspring_epochs=1,
                                         max_accuracy_drop=1.0, seed=5)


def _comparable(lineage):
  keys = ("id", "parent", "seed", "survivors", "params", "chosen")
  return ([{k: r[k] for k in keys} | {"top1": round(r["top1"], 6)} for r in lineage["candidates"]],
          [{k: g[k] for k in ("generation", "chosen", "stop_reason", "target_fraction")}
           for g in lineage["generations"]], lineage["winner"])


def test_a_family_of_one_equals_the_single_target_run(toy_parent_dir, tmp_path):
  size = 0.5 * TINY.size_mb()
  single = evolution.evolve(toy_parent_dir, str(tmp_path / "single"),
                            dataclasses.replace(LOOP, target_size_mb=size),
                            SYNTH, toy.data)
  family = evolution.evolve(toy_parent_dir, str(tmp_path / "family"),
                            dataclasses.replace(LOOP, targets=(f"{size!r}MB",)),
                            SYNTH, toy.data)
  assert _comparable(family.lineage) == _comparable(single.lineage)
  assert family.lineage["family"] == [{"label": f"{size:g}MB", "id": single.winner_id,
                                       "met": single.stop_reason == "target_met"}]


# -- the job ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
  """The main job with a family of two size budgets on the tiny network, end to end (set up
  before any test's fixtures: it fakes the latency and the plan's step costs itself)."""
  run_dir = str(tmp_path_factory.mktemp("family") / "run")
  with pytest.MonkeyPatch.context() as patch:
    toy.fake_latency(patch)
    toy.fixed_step_costs(patch)
    patch.setattr(train_config_lib.ModelConfig, "ancestor_spec",
                  lambda self, num_classes, image_size: TINY10)
    config = job_config_lib.JobConfig(
        run_dir=run_dir, baselines=(), check_ancestor=False,
        export=export_config_lib.ExportConfig(formats=("fp32",)),
        benchmark=bench_config_lib.BenchmarkConfig(batch_sizes=(1,), min_seconds=0.0,
                                                   min_runs=2, eval_images=32,
                                                   pair_resolutions=(40,)))
    data = data_config_lib.DataConfig(image_size=32, batch_size=32, shapes10_train_size=96,
                                      shapes10_validation_size=32, shapes10_test_size=32)
    evolution_config = dataclasses.replace(LOOP, final_epochs=1, final_init="inherit",
                                           targets=(_mb(0.8), _mb(0.45)))
    lines = []
    results = job.run_job(config, data, train_config_lib.TrainConfig(epochs=1), evolution_config,
                          SYNTH, log=lines.append, verbose=0)
  return {"run_dir": run_dir, "results": results, "lines": lines}


def test_every_member_is_finished_exported_and_reported(family_run):
  run_dir, results = family_run["run_dir"], family_run["results"]
  lineage = json.load(open(os.path.join(run_dir, "lineage.json")))
  first, second = lineage["family"]
  assert first["met"] and second["met"] and first["id"] != second["id"]
  assert lineage["winner"] == second["id"] and lineage["stop_reason"] == "target_met"
  # Nested in one lineage: the deeper member descends from the shallower one.
  by_id = {r["id"]: r for r in lineage["candidates"]}
  assert by_id[second["id"]]["parent"] == first["id"]
  member_root = os.path.join(run_dir, family_lib.FAMILY_DIR, first["label"])
  assert model_io.is_complete(os.path.join(member_root, "squishednet"))
  assert model_io.read_spec(os.path.join(member_root, "squishednet")).params() == (
      by_id[first["id"]]["params"])
  assert os.path.isfile(os.path.join(member_root, "export", "export.json"))
  name = f"squishednet_{first['label']}"
  assert results["models"][name]["kind"] == "member"
  assert results["models"][name]["top1"] is not None
  assert results["family"]["members"] == [
      {"name": name, "labels": [first["label"]], "candidate": first["id"]},
      {"name": "squishednet", "labels": [second["label"]], "candidate": second["id"]}]
  assert results["family"]["unmet"] == []
  report = open(os.path.join(run_dir, "report.md")).read()
  _, rows = toy.table_after(report, "## What to ship")
  assert list(rows)[:2] == [f"**SquishedNet {first['label']}**",
                            f"**SquishedNet {second['label']}**"]
  assert any(line.startswith("family: 2 member(s)") for line in family_run["lines"])


def test_every_model_is_timed_at_the_other_resolution_against_the_ancestor(family_run):
  """--pair_resolutions reaches the benchmark stage: each model rebuilt at 40 px and timed in
  interleaved pairs with the ancestor, its speed-up there in results.json."""
  models = family_run["results"]["models"]
  assert len(models) == 3 and {"ancestor", "squishednet"} < set(models)  # and the member
  assert models["ancestor"]["speedup_at_resolution"] == {"40": {"1": 1.0}}
  for name in set(models) - {"ancestor"}:
    speedup = models[name]["speedup_at_resolution"]["40"]["1"]
    span = models[name]["speedup_at_resolution_range"]["40"]["1"]
    assert list(models[name]["speedup_at_resolution"]) == ["40"] and speedup > 0, name
    assert span["min"] <= speedup <= span["max"] and span["rounds"] >= 2, name
    assert models[name]["litert_images_per_sec_at_resolution"]["40"]["1"] > 0, name


def test_a_family_without_a_ladder_says_so_and_names_the_flag(family_run):
  report = open(os.path.join(family_run["run_dir"], "report.md")).read()
  assert "No width ladder was trained in this run" in report
  assert "the same command with --baselines=ladder keeps what this run trained" in report


def test_a_ladder_added_later_leaves_only_the_baselines_to_train(family_run):
  """The run's identity leaves --baselines out: the same command with --baselines=ladder
  resumes the run, and only the baselines (the rungs) are left to do."""
  run_dir = family_run["run_dir"]
  identity = json.load(open(os.path.join(run_dir, lineage_lib.CONFIG_FILE)))
  assert identity and not any("baselines" in key for key in identity)
  assert job.stages_done(_run_for(run_dir, baselines=("ladder",))) == (
      "ancestor", "synthesis", "polish")


def test_the_final_stage_is_done_only_with_every_member(family_run):
  run_dir = family_run["run_dir"]
  run = _run_for(run_dir)
  assert job.stages_done(run) == ("ancestor", "synthesis", "polish", "baselines")
  family = os.path.join(run_dir, family_lib.FAMILY_DIR)
  member = os.path.join(family, os.listdir(family)[0], "squishednet")
  os.rename(member, member + ".away")
  try:
    assert job.stages_done(run) == ("ancestor", "synthesis", "baselines")
  finally:
    os.rename(member + ".away", member)


def _run_for(run_dir, baselines=()):
  from squish_tf.job import context  # pylint: disable=g-import-not-at-top
  return context.Run(config=job_config_lib.JobConfig(run_dir=run_dir, baselines=baselines),
                     data=context.RunData(data_config_lib.DataConfig(image_size=32),
                                                    calibration_images=8),
                     info=toy.data()[2], spec=TINY10, train_config=train_config_lib.TrainConfig(),
                     evolution_config=LOOP, synth=SYNTH, verbose=0)
