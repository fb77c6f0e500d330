"""Deep budgets: the candidates that decide a stop for accuracy, fine-tuned deeper and judged
again; only when the generation would stop; recorded; resumed to the same lineage."""

import dataclasses
import json
import os

import pytest
import toy

from squish_tf import files as files_lib
from squish_tf.evolve import candidates as candidates_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import deep_budget, evolution, polish
from squish_tf.evolve import encoding as synthesis
from squish_tf.net import model_io

pytestmark = pytest.mark.usefixtures("fast_latency")

# One generation of two offspring cut to about a third, a 1-epoch fine-tune at a high rate:
# both end more than 38 points down (seed 1), and a 3-epoch deeper fine-tune brings both within.
STOPPING = evolve_config_lib.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                             offspring_learning_rate=1e-2, final_epochs=3,
                                             max_accuracy_drop=0.38, seed=1)
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.35)


def _record(candidate, top1, params=1000, status="ok", **more):
  return dict(id=f"gen_001/cand_{candidate:02d}", candidate=candidate, attempt=0, status=status,
              top1=top1, params=params, **more)


def test_deciding_are_the_best_few_near_the_budget():
  config = evolve_config_lib.EvolutionConfig(max_accuracy_drop=0.05, deep_candidates=2)
  records = [_record(0, 0.88), _record(1, 0.93, params=900), _record(2, 0.93, params=800),
             _record(3, 0.95, micro={"over": ["flash"]}), _record(4, None, status="diverged"),
             _record(5, 0.78)]
  # Ancestor 0.99: the floor is 0.79 (four budgets down); ties go to fewer parameters.
  assert [r["candidate"] for r in deep_budget.deciding(records, 0.99, config)] == [2, 1]
  one = dataclasses.replace(config, deep_candidates=1)
  assert [r["candidate"] for r in deep_budget.deciding(records, 0.99, one)] == [2]
  assert [r["candidate"] for r in deep_budget.deciding(records, 0.90, config)] == [2, 1]
  assert deep_budget.deciding(records, 1.2, config) == []  # nobody within four budgets
  off = dataclasses.replace(config, deep_candidates=0)
  assert deep_budget.deciding(records, 0.99, off) == [] and deep_budget.deep_epochs(off) == 0
  # As long as the polish the final stage would give the winner, none without one.
  assert deep_budget.deep_epochs(config) == config.final_epochs == 4
  no_final = dataclasses.replace(config, final_epochs=0)
  assert deep_budget.deciding(records, 0.99, no_final) == []
  assert evolve_config_lib.EvolutionConfig().deep_candidates == 2  # on by default
  deeper = [_record(0, 0.5, deep_top1=0.9), _record(1, 0.6), _record(2, 0.7, deep_top1=None)]
  assert [(r["candidate"], r["top1"]) for r in deep_budget.extended(deeper)] == [(0, 0.9)]
  assert deep_budget.deep_seed([1, 2, 3, 0]) == [1, 2, 3, 0, deep_budget.DEEP_STREAM]


def _deep(lineage):
  return [(r["id"], r["top1"], r.get("deep_top1"), r.get("deep_epochs"), r["chosen"])
          for r in lineage["candidates"]]


@pytest.fixture(scope="module")
def stopping_run(toy_parent_dir, tmp_path_factory):
  """The STOPPING evolution run straight through, and the events it sent: (result, events).

  One evolution serves both tests below: it is the run with deeper fine-tunes, and the
  uninterrupted run that a run killed among them must resume to.
  """
  seen = []
  with pytest.MonkeyPatch.context() as patch:
    toy.fake_latency(patch)  # a module fixture: set up before the tests' fast_latency
    result = evolution.evolve(toy_parent_dir, str(tmp_path_factory.mktemp("deep") / "deep"),
                              STOPPING, SYNTH, toy.data, listeners=[seen.append])
  return result, seen


def test_deeper_fine_tunes_only_when_the_generation_would_stop(toy_parent_dir, stopping_run,
                                                               tmp_path):
  never_stops = dataclasses.replace(STOPPING, max_accuracy_drop=1.0)
  result = evolution.evolve(toy_parent_dir, str(tmp_path / "within"), never_stops, SYNTH, toy.data)
  assert not any(set(deep_budget.DEEP_KEYS) & set(r) for r in result.lineage["candidates"])

  off = dataclasses.replace(STOPPING, deep_candidates=0)
  short = evolution.evolve(toy_parent_dir, str(tmp_path / "off"), off, SYNTH, toy.data)
  assert short.stop_reason == "accuracy_drop" and short.winner_id == "ancestor"
  assert not any(set(deep_budget.DEEP_KEYS) & set(r) for r in short.lineage["candidates"])
  ancestor_top1 = short.lineage["ancestor"]["top1"]
  assert all(ancestor_top1 - r["top1"] > STOPPING.max_accuracy_drop
             for r in short.lineage["candidates"])

  deep, seen = stopping_run
  records = deep.lineage["candidates"]
  # The short fine-tunes are the same draws as without the deeper ones, their top-1 kept.
  assert [r["top1"] for r in records] == [r["top1"] for r in short.lineage["candidates"]]
  assert all(r["deep_epochs"] == 3 and r["deep_train_images"] == 3 * toy.SIZE for r in records)
  # Best first by the short fine-tune's top-1.
  assert [e["record"]["id"] for e in seen if e["event"] == "deep"] == [
      r["id"] for r in sorted(records, key=lambda r: -r["top1"])]
  within = [r for r in records if ancestor_top1 - r["deep_top1"] <= STOPPING.max_accuracy_drop]
  assert within, _deep(deep.lineage)
  best = max(within, key=lambda r: r["deep_top1"])
  assert [r["id"] for r in records if r["chosen"]] == [best["id"]] == [deep.winner_id]
  assert deep.stop_reason == "generations"
  # The deeper weights are the candidate's from now on, and count in the lineage's budget.
  metrics = files_lib.read_json(os.path.join(deep.winner_dir, model_io.METRICS_FILE))
  assert metrics["deep_epochs"] == 3 and metrics["deep_top1"] == best["deep_top1"]
  assert polish.chosen_fine_tune_epochs(deep.lineage, STOPPING) == 1 + 3


class _Kill(Exception):
  pass


def test_a_run_killed_among_the_deeper_fine_tunes_resumes_to_the_same_lineage(toy_parent_dir,
                                                                              stopping_run,
                                                                              tmp_path):
  straight, _ = stopping_run

  def kill_after_first_deep(event):
    if event["event"] == "deep":
      raise _Kill()

  killed_dir = str(tmp_path / "killed")
  with pytest.raises(_Kill):
    evolution.evolve(toy_parent_dir, killed_dir, STOPPING, SYNTH, toy.data,
                     listeners=[kill_after_first_deep])
  partial = json.load(open(os.path.join(killed_dir, "lineage.json")))
  assert not partial["complete"] and not partial["generations"]
  assert sum("deep_top1" in r for r in partial["candidates"]) == 1
  seen = []
  resumed = evolution.evolve(toy_parent_dir, killed_dir, STOPPING, SYNTH, toy.data,
                             listeners=[seen.append])
  assert [e["event"] for e in seen] == ["deep", "generation"]  # only what was left
  assert _deep(resumed.lineage) == _deep(straight.lineage)
  assert resumed.lineage["generations"] == straight.lineage["generations"]

  # A deeper fine-tune whose model dir was written but not its record is read back, not redone.
  record = resumed.lineage["candidates"][0]
  task = deep_budget.DeepTask.of(STOPPING, killed_dir, None, toy.data, 0,
                                 resumed.lineage["ancestor"], toy_parent_dir)
  again = deep_budget.fine_tune_deeper(task, record)
  assert again == {k: record[k] for k in deep_budget.DEEP_KEYS}
  assert candidates_lib.keras_seed(deep_budget.deep_seed(record["seed"])) != (
      candidates_lib.keras_seed(record["seed"]))


def test_results_give_what_selection_read_after_a_deeper_fine_tune():
  from squish_tf import records  # pylint: disable=g-import-not-at-top
  from squish_tf.job import results as results_lib  # pylint: disable=g-import-not-at-top
  base = {"id": "gen_001/cand_00", "generation": 1, "candidate": 0, "status": "ok",
          "params": 10, "macs": 20, "size_mb": 0.1, "top1": 0.5}
  tested = {"gen_001/cand_00": {"top1": 0.8}}
  deeper = results_lib._candidate(records.Candidate.from_json(dict(base, deep_top1=0.9)), tested)  # pylint: disable=protected-access
  short = results_lib._candidate(records.Candidate.from_json(base), tested)  # pylint: disable=protected-access
  assert (deeper.validation_top1, short.validation_top1) == (0.9, 0.5)
  assert deeper.top1 == short.top1 == 0.8
