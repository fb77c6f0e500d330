"""The generation loop: selection, stopping, lineage, resume after a kill, refusals, NaN."""

import dataclasses
import json
import os

import numpy as np
import pytest
import toy
from toy import fake_ms

from squish_tf.evolve import steering
from squish_tf.evolve import candidates as candidates_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import evolution, surgery
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.net import model_io

# Candidates are timed by their MACs (conftest.fast_latency), not converted and timed.
pytestmark = pytest.mark.usefixtures("fast_latency")
TINY = toy.TINY
toy_data = toy.data


@pytest.fixture
def parent_dir(toy_parent_dir):
  return toy_parent_dir


CONFIG = evolve_config_lib.EvolutionConfig(generations=3, population=1, offspring_epochs=1,
                                   max_accuracy_drop=1.0, seed=3)
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.7)


def _comparable(lineage):
  """What must match between runs: masks, sizes, accuracy and choices (not wall times)."""
  keys = ("id", "parent", "seed", "survivors", "params", "macs", "size_mb", "status", "chosen",
          "attempt")
  return ([{k: r[k] for k in keys} | {"top1": round(r["top1"], 6)} for r in lineage["candidates"]],
          lineage["generations"], lineage["winner"])


class _Kill(Exception):
  pass


def test_resume_after_kill_matches_uninterrupted_run(parent_dir, tmp_path):
  straight = evolution.evolve(parent_dir, str(tmp_path / "straight"), CONFIG, SYNTH, toy_data)
  lineage = straight.lineage
  assert lineage["complete"] and lineage["stop_reason"] == "generations"
  assert [g["generation"] for g in lineage["generations"]] == [1, 2, 3]
  params = [r["params"] for r in lineage["candidates"]]
  assert params == sorted(params, reverse=True) and params[-1] < TINY.params()

  def kill_after_generation_1(event):
    if event["event"] == "generation" and event["summary"]["generation"] == 1:
      raise _Kill()

  killed_dir = str(tmp_path / "killed")
  with pytest.raises(_Kill):
    evolution.evolve(parent_dir, killed_dir, CONFIG, SYNTH, toy_data,
                     listeners=[kill_after_generation_1])
  partial = json.load(open(os.path.join(killed_dir, "lineage.json")))
  assert not partial["complete"] and len(partial["generations"]) == 1
  seen = []
  resumed = evolution.evolve(parent_dir, killed_dir, CONFIG, SYNTH, toy_data,
                             listeners=[lambda e: seen.append(e)])
  assert [e["record"]["generation"] for e in seen if e["event"] == "candidate"] == [2, 3]
  assert _comparable(resumed.lineage) == _comparable(lineage)
  # Same command again: nothing left to do, same answer.
  again = evolution.evolve(parent_dir, killed_dir, CONFIG, SYNTH, toy_data)
  assert again.winner_id == straight.winner_id == "gen_003/cand_00"
  for record in resumed.lineage["candidates"]:
    assert model_io.is_complete(os.path.join(killed_dir, record["dir"]))
    spec = model_io.read_spec(os.path.join(killed_dir, record["dir"]))
    assert spec.params() == record["params"]


def test_lineage_records_everything(parent_dir, tmp_path, real_latency):
  result = evolution.evolve(parent_dir, str(tmp_path / "run"),
                            evolve_config_lib.EvolutionConfig(generations=1, population=2,
                                                      offspring_epochs=1, max_accuracy_drop=1.0),
                            SYNTH, toy_data)
  lineage = result.lineage
  assert lineage["ancestor"]["params"] == TINY.params()
  assert len(lineage["candidates"]) == 2
  for record in lineage["candidates"]:
    for key in ("parent", "seed", "env_factor", "survivors", "params", "size_mb", "macs", "top1",
                "netscore", "synaptic_efficiency", "cluster_efficiency", "wall_seconds", "chosen"):
      assert key in record, key
    child = synthesis.child_spec(TINY, record["survivors"])
    assert child.params() == record["params"]
    assert record["synaptic_efficiency"] == pytest.approx(TINY.params() / record["params"])
    # Timed in every run (LiteRT, interleaved with the ancestor), without a latency table too;
    # what compares with the table's predictions only with a table.
    assert record["measured_latency_ms"] > 0
    speedup = record["measured_speedup"]
    assert set(speedup) == {"median", "min", "max"}
    assert 0 < speedup["min"] <= speedup["median"] <= speedup["max"]
    assert record["measured_format"] == "fp32"  # --latency_format
    assert not {"predicted_latency_ms", "predicted_speedup", "latency_error",
                "speedup_error"} & set(record)
  assert lineage["ancestor"]["measured_latency_ms"] > 0
  assert "latency_table" not in lineage
  chosen = [r for r in lineage["candidates"] if r["chosen"]]
  assert len(chosen) == 1
  best = max(r["top1"] for r in lineage["candidates"])
  assert chosen[0]["top1"] == best


def test_select_prefers_accuracy_then_fewer_params_within_budget():
  def rec(c, top1, params, status="ok"):
    return {"candidate": c, "top1": top1, "params": params, "status": status}
  records = [rec(0, 0.80, 100), rec(1, 0.85, 300), rec(2, 0.85, 200), rec(3, None, 10, "diverged")]
  assert evolution.select(records, ancestor_top1=0.86, max_accuracy_drop=0.03)["candidate"] == 2
  assert evolution.select(records, ancestor_top1=0.95, max_accuracy_drop=0.03) is None


ANCESTOR_MS = 10.0  # the ancestor's latency in the timing session of `_timed`'s records


def _timed(c, top1, ms, params=100, status="ok", speedup=None, ancestor_ms=ANCESTOR_MS):
  """A record timed `ms` in a session where the ancestor took `ancestor_ms` (or at `speedup`)."""
  record = {"id": f"gen_001/cand_{c:02d}", "candidate": c, "top1": top1, "params": params,
            "status": status, "measured_latency_ms": ms}
  if ms is not None or speedup is not None:
    median = speedup if speedup is not None else ancestor_ms / ms
    record["measured_speedup"] = {"median": median, "min": median, "max": median}
  return record


def _per_ms(records, ancestor_top1=0.90, drop=0.05, parent_top1=0.90, parent_ms=ANCESTOR_MS,
            parent_speedup=None):
  """The candidate `top1_per_ms` chooses, the parent timed `parent_ms` in `_timed`'s session
  (or at `parent_speedup`)."""
  if parent_speedup is None and parent_ms is not None:
    parent_speedup = ANCESTOR_MS / parent_ms
  chosen = evolution.select(records, ancestor_top1, drop, "top1_per_ms", parent_top1=parent_top1,
                            parent_speedup=parent_speedup)
  return None if chosen is None else chosen["candidate"]


def test_select_top1_per_ms_pays_for_time():
  # 1 point for 4 ms (0.25/ms) beats 1 point for 2 ms and 0.5 points for 1 ms (0.5/ms), though
  # candidate 0 is the most accurate (what "top1" picks).
  records = [_timed(0, 0.895, 9.0), _timed(1, 0.89, 8.0), _timed(2, 0.89, 6.0)]
  assert _per_ms(records) == 2
  assert evolution.select(records, 0.90, 0.05)["candidate"] == 0  # the default is unchanged
  assert evolution.select(records, 0.90, 0.05, "top1")["candidate"] == 0
  # Only candidates within the accuracy budget (from the ancestor) count.
  assert _per_ms(records + [_timed(3, 0.80, 1.0)]) == 2
  assert _per_ms([_timed(3, 0.80, 1.0), _timed(4, None, 0.5, status="diverged")]) is None
  # A candidate that saves no time ranks last, whatever its accuracy ...
  assert _per_ms([_timed(0, 0.90, 10.0), _timed(1, 0.86, 9.9)]) == 1
  assert _per_ms([_timed(0, 0.90, 10.5), _timed(1, 0.86, 9.9)]) == 1
  # ... and among those, the most accurate.
  assert _per_ms([_timed(0, 0.87, 10.0), _timed(1, 0.89, 11.0)]) == 1
  # One that gains accuracy (or loses none) while saving time ranks first, the one saving the
  # most ms first: a negative ratio's "smaller" would prefer the smallest saving.
  gains = [_timed(0, 0.895, 1.0), _timed(1, 0.91, 9.9), _timed(2, 0.92, 8.0),
           _timed(3, 0.90, 7.0)]
  assert _per_ms(gains) == 3
  assert _per_ms(gains[:3]) == 2
  # Ties (1 point per point of the ancestor's latency, exact in floats) go to the higher top-1,
  # then fewer params: 0.75 lost for 3/4 of the time saved, 0.5 for half of it.
  ties = [_timed(0, 0.25, None, params=40, speedup=4.0),
          _timed(1, 0.25, None, params=30, speedup=4.0),
          _timed(2, 0.5, None, params=50, speedup=2.0)]
  exact = {"ancestor_top1": 1.0, "drop": 1.0, "parent_top1": 1.0, "parent_speedup": 1.0}
  assert _per_ms(ties, **exact) == 2
  assert _per_ms(ties[:2], **exact) == 1
  # Against the parent, not the ancestor: a parent at 0.85 and 5 ms.
  assert _per_ms([_timed(0, 0.86, 4.9), _timed(1, 0.85, 3.0)], parent_top1=0.85,
                 parent_ms=5.0) == 1


def test_select_top1_per_ms_compares_the_parent_on_the_ancestors_clock():
  """A parent timed in an earlier session (5 ms, 2x the ancestor's speed) and candidates timed
  now, the machine less busy (the ancestor 8 ms, not 10): the milliseconds of two sessions do
  not compare, their speed-ups over the ancestor do. At 4.44 ms candidate 0 looks 0.56 ms
  faster than the parent and as accurate, but runs at 1.8x the ancestor's speed: slower than
  the parent; candidate 1 (2.5x) is the one that saves time."""
  now = 8.0
  records = [_timed(0, 0.87, now / 1.8, ancestor_ms=now),
             _timed(1, 0.86, now / 2.5, ancestor_ms=now)]
  assert _per_ms(records, parent_top1=0.87, parent_speedup=2.0) == 1
  # A slower parent (1.6x): candidate 0 saves time too, and loses nothing.
  assert _per_ms(records, parent_top1=0.87, parent_speedup=1.6) == 0


def test_select_top1_per_ms_needs_measurements():
  with pytest.raises(ValueError, match="needs the parent's validation top-1 and measured"):
    _per_ms([_timed(0, 0.89, 9.0)], parent_ms=None)
  with pytest.raises(ValueError, match=r"measured speed-up; \['gen_001/cand_01'\] have none"):
    _per_ms([_timed(0, 0.89, 9.0), _timed(1, 0.89, None)])
  with pytest.raises(ValueError, match="--select must be one of"):
    evolution.select([_timed(0, 0.89, 9.0)], 0.9, 0.05, "fastest")


def test_select_top1_per_ms_chooses_by_measured_time_each_generation(parent_dir, tmp_path):
  """Each generation's session on a clock of its own (the machine twice as fast in the second):
  the choice follows the speed-ups over the ancestor, timed by evolve's `measure`."""
  sessions = []

  def measure(model_dirs, reference, fmt, threads, runtime):
    sessions.append(sorted(model_dirs))
    clock = 1.0 / len(sessions)
    return {name: dict(timed, latency_ms=timed["latency_ms"] * clock)
            for name, timed in toy.fake_measure(model_dirs, reference, fmt, threads,
                                                runtime).items()}

  config = evolve_config_lib.EvolutionConfig(generations=2, population=2, offspring_epochs=1,
                                             max_accuracy_drop=1.0, seed=3, select="top1_per_ms")
  result = evolution.evolve(parent_dir, str(tmp_path / "run"), config, SYNTH, toy_data,
                            measure=measure)
  lineage = result.lineage
  assert len(sessions) == 2 and all(names[0] == "ancestor" for names in sessions)
  ancestor = lineage["ancestor"]
  assert ancestor["measured_latency_ms"] == pytest.approx(fake_ms(TINY) / 2)  # the last session
  parents = {"ancestor": dict(ancestor, measured_speedup={"median": 1.0})}
  for summary in lineage["generations"]:
    records = [r for r in lineage["candidates"] if r["generation"] == summary["generation"]]
    for record in records:
      spec = model_io.read_spec(os.path.join(result.run_dir, record["dir"]))
      assert record["measured_latency_ms"] == pytest.approx(fake_ms(spec) / summary["generation"])
      assert record["measured_speedup"]["median"] == pytest.approx(fake_ms(TINY) / fake_ms(spec))
    parent = parents[summary["parent"]]
    expected = evolution.select(records, ancestor["top1"], 1.0, "top1_per_ms",
                                parent_top1=parent["top1"],
                                parent_speedup=parent["measured_speedup"]["median"])
    assert summary["chosen"] == expected["id"]
    assert [r["id"] for r in records if r["chosen"]] == [expected["id"]]
    parents[expected["id"]] = expected
  assert len(lineage["generations"]) == 2


def test_stops_when_target_met(parent_dir, tmp_path):
  target = TINY.params() * 0.8 * 4 / 1e6
  result = evolution.evolve(parent_dir, str(tmp_path / "run"),
                            evolve_config_lib.EvolutionConfig(generations=3, population=1,
                                                      offspring_epochs=1, target_size_mb=target,
                                                      max_accuracy_drop=1.0),
                            synthesis.SynthesisConfig(env_mode="target", target_fraction=0.5),
                            toy_data)
  assert result.stop_reason == "target_met"
  assert len(result.lineage["generations"]) == 1


def test_stops_on_accuracy_drop_and_keeps_last_parent_within(parent_dir, tmp_path):
  # Newborn offspring that barely train cannot stay within 5 points of the ancestor.
  result = evolution.evolve(parent_dir, str(tmp_path / "run"),
                            evolve_config_lib.EvolutionConfig(generations=2, population=1,
                                                      offspring_epochs=1, offspring_init="scratch",
                                                      offspring_learning_rate=1e-7,
                                                      max_accuracy_drop=0.05),
                            synthesis.SynthesisConfig(env_mode="constant", env_factor=0.05,
                                                      min_filters=1, min_fraction=0.0),
                            toy_data)
  assert result.stop_reason == "accuracy_drop"
  assert result.winner_id == "ancestor"
  assert result.winner_dir == os.path.abspath(parent_dir)


def test_diverged_candidate_is_recorded_replaced_and_never_chosen(parent_dir, tmp_path,
                                                                  monkeypatch):
  poisoned_seed = candidates_lib.keras_seed(candidates_lib.draw_seed(0, 1, 0, 0))
  original = surgery.build_child

  def build_child(*args, **kwargs):
    model, spec = original(*args, **kwargs)
    if kwargs.get("seed") == poisoned_seed:
      model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    return model, spec

  monkeypatch.setattr(surgery, "build_child", build_child)
  result = evolution.evolve(parent_dir, str(tmp_path / "run"),
                            evolve_config_lib.EvolutionConfig(generations=1, population=1,
                                                      offspring_epochs=1, max_accuracy_drop=1.0),
                            SYNTH, toy_data)
  records = result.lineage["candidates"]
  assert [(r["attempt"], r["status"], r["chosen"]) for r in records] == [
      (0, "diverged", False), (1, "ok", True)]
  assert records[0]["dir"] is None
  assert not os.path.exists(os.path.join(str(tmp_path / "run"), "generations", "gen_001",
                                         "cand_00", "spec.json")) or records[1]["dir"]


def test_other_flags_are_refused_naming_the_flag(parent_dir, tmp_path):
  run_dir = str(tmp_path / "run")
  config = evolve_config_lib.EvolutionConfig(generations=1, population=1, offspring_epochs=1,
                                     max_accuracy_drop=1.0)
  evolution.evolve(parent_dir, run_dir, config, SYNTH, toy_data)
  with pytest.raises(ValueError, match=r"made with other flags or another parent "
                                       r"\(--population was 1, now 2\)"):
    evolution.evolve(parent_dir, run_dir,
                     evolve_config_lib.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                               max_accuracy_drop=1.0), SYNTH, toy_data)
  # The selection rule and the temperature of P(c) are part of a lineage's identity too.
  with pytest.raises(ValueError, match=r"\(--select was 'top1', now 'top1_per_ms'\)"):
    evolution.evolve(parent_dir, run_dir, dataclasses.replace(config, select="top1_per_ms"),
                     SYNTH, toy_data)
  with pytest.raises(ValueError, match=r"\(--survival_temperature was 1.0, now 2.0\)"):
    evolution.evolve(parent_dir, run_dir, config,
                     dataclasses.replace(SYNTH, survival_temperature=2.0), toy_data)


def _assert_refused(tmp_path, match, parent, config=CONFIG, synth=SYNTH, data_fn=toy_data):
  run_dir = str(tmp_path / "refused")
  with pytest.raises(ValueError, match=match):
    evolution.evolve(parent, run_dir, config, synth, data_fn)
  assert not os.path.exists(run_dir)


def test_bad_inputs_are_refused_before_writing(parent_dir, tmp_path):
  with pytest.raises(ValueError, match=r"--env_factor must be in \(0, 1\], got 1.5"):
    synthesis.SynthesisConfig(env_factor=1.5)
  with pytest.raises(ValueError, match=r"--env_factor must be in \(0, 1\], got 0"):
    synthesis.SynthesisConfig(env_factor=0)
  empty = tmp_path / "empty"
  empty.mkdir()
  _assert_refused(tmp_path, "holds no spec.json", str(empty))
  no_model = tmp_path / "no_model"
  no_model.mkdir()
  (no_model / "spec.json").write_text(TINY.to_json())
  _assert_refused(tmp_path, "holds no model.keras", str(no_model))
  alien = tmp_path / "alien"
  alien.mkdir()
  (alien / "spec.json").write_text(json.dumps({"family": "resnet", "version": 1}))
  _assert_refused(tmp_path, "Not a SqueezeNet-family spec", str(alien))
  smallest = synthesis.smallest_child_spec(TINY, SYNTH)
  _assert_refused(tmp_path, rf"below the smallest reachable size {smallest.size_mb():.4f} MB",
                  parent_dir, config=evolve_config_lib.EvolutionConfig(target_size_mb=1e-4))
  _assert_refused(tmp_path, r"has 5 classes but the parent .* was trained for 3", parent_dir,
                  data_fn=lambda: toy_data(num_classes=5))


def test_config_validation():
  with pytest.raises(ValueError, match="--population must be an integer >= 1, got 0"):
    evolve_config_lib.EvolutionConfig(population=0)
  with pytest.raises(ValueError, match=r"--max_accuracy_drop is a fraction"):
    evolve_config_lib.EvolutionConfig(max_accuracy_drop=3)
  with pytest.raises(ValueError, match=r"--offspring_init must be one of \('inherit', 'scratch'\), got 'clone'"):
    evolve_config_lib.EvolutionConfig(offspring_init="clone")
  with pytest.raises(ValueError, match=r"--select must be one of \('top1', 'top1_per_ms'\), "
                                       "got 'fastest'"):
    evolve_config_lib.EvolutionConfig(select="fastest")
  assert evolve_config_lib.EvolutionConfig().select == "top1"


def test_worker_processes_give_the_same_lineage(parent_dir, tmp_path, monkeypatch):
  config = evolve_config_lib.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                     max_accuracy_drop=1.0, seed=5)
  in_process = evolution.evolve(parent_dir, str(tmp_path / "one"), config, SYNTH, toy_data)
  # The pool of --workers=2 in one process: both candidates are made there, none here.
  pools = toy.one_worker_process(monkeypatch)
  workers = evolution.evolve(parent_dir, str(tmp_path / "two"),
                             dataclasses.replace(config, workers=2), SYNTH, toy_data)
  assert len(pools) == 1
  assert _comparable(workers.lineage) == _comparable(in_process.lineage)


def test_a_parent_retrained_in_place_does_not_resume_the_old_lineage(parent_dir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  parent = str(tmp_path / "parent")
  shutil.copytree(parent_dir, parent)
  run_dir = str(tmp_path / "run")
  config = evolve_config_lib.EvolutionConfig(generations=1, population=1, offspring_epochs=1,
                                     max_accuracy_drop=1.0)
  evolution.evolve(parent, run_dir, config, SYNTH, toy_data)
  model, spec, metrics = model_io.load_model_dir(parent)
  model.set_weights([w * 1.01 for w in model.get_weights()])  # "retrained"
  model_io.write_model_dir(parent, model, spec, metrics)
  with pytest.raises(ValueError, match=r"another parent \(parent.weights_sha256 was"):
    evolution.evolve(parent, run_dir, config, SYNTH, toy_data)


def test_a_chosen_candidate_whose_directory_is_gone_is_retrained(parent_dir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  run_dir = str(tmp_path / "run")
  config = evolve_config_lib.EvolutionConfig(generations=2, population=1, offspring_epochs=1,
                                     max_accuracy_drop=1.0, seed=4)
  first = evolution.evolve(parent_dir, run_dir, config, SYNTH, toy_data)
  gone = lineage_lib.candidate_dir(run_dir, 1, 0)
  shutil.rmtree(gone)
  again = evolution.evolve(parent_dir, run_dir, config, SYNTH, toy_data)
  assert model_io.is_complete(gone)
  assert [g["chosen"] for g in again.lineage["generations"]] == ["gen_001/cand_00",
                                                                  "gen_002/cand_00"]
  # Redrawn from the recorded seeds: the same masks.
  assert ([r["survivors"] for r in again.lineage["candidates"]]
          == [r["survivors"] for r in first.lineage["candidates"]])


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_targets_steer_in_the_costs_own_units(cost):
  synth = synthesis.SynthesisConfig(cost=cost)
  macs_only = evolve_config_lib.EvolutionConfig(generations=2, target_macs=int(0.25 * TINY.macs()))
  size_only = evolve_config_lib.EvolutionConfig(generations=2,
                                        target_size_mb=0.36 * TINY.size_mb())
  # --target_macs alone steers (it used to leave the default fraction in place) ...
  steered = steering.generation_synthesis(synth, macs_only, TINY, 1)
  assert steered.target_fraction == pytest.approx((evolve_config_lib.TARGET_MARGIN * 0.25) ** 0.5)
  steered = steering.generation_synthesis(synth, size_only, TINY, 2)
  assert steered.target_fraction == pytest.approx(evolve_config_lib.TARGET_MARGIN * 0.36)
  # ... and with both, the target in --cost's units decides.
  both = dataclasses.replace(macs_only, target_size_mb=size_only.target_size_mb)
  steered = steering.generation_synthesis(synth, both, TINY, 2)
  assert steered.target_fraction == pytest.approx(
      evolve_config_lib.TARGET_MARGIN * (0.36 if cost == "params" else 0.25))
