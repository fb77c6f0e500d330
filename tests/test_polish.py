"""Evolution from a batch-norm parent, the data streams, the teacher, and the final polish."""

import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest
import toy

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import candidates as candidates_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import evolution, polish
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.job import budget as budget_lib
from squish_tf.net import model_io, models
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib

# Candidates are timed by their MACs (conftest.fast_latency), not converted and timed.
pytestmark = pytest.mark.usefixtures("fast_latency")
BN_TINY = toy.TINY.replace(batch_norm=True, name="tiny_bn")
CONFIG = evolve_config_lib.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                   max_accuracy_drop=1.0, final_init="inherit", final_epochs=3,
                                   seed=2)
SCRATCH = dataclasses.replace(CONFIG, final_init="scratch")
BEST = dataclasses.replace(CONFIG, final_init="best")
PARENT_EPOCHS = 6
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.6)


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory):
  """A batch-norm parent and one generation evolved from it, with every data_fn call recorded."""
  root = tmp_path_factory.mktemp("bn_run")
  parent = str(root / "ancestor")
  train, val, info = toy.data()
  train_lib.train_model_dir(parent, BN_TINY, data_config_lib.DataConfig(image_size=32),
                            train_config_lib.TrainConfig(epochs=PARENT_EPOCHS, learning_rate=1e-2,
                                                  warmup_epochs=0),
                            train, val, info, seed=0, verbose=0)
  streams = []

  def data_fn(stream=0):
    streams.append(stream)
    return toy.data(stream=stream)

  run_dir = str(root / "run")
  with pytest.MonkeyPatch.context() as patch:
    toy.fake_latency(patch)  # a module fixture: set up before the tests' fast_latency
    result = evolution.evolve(parent, run_dir, CONFIG, SYNTH, data_fn)
  return {"parent": parent, "run_dir": run_dir, "result": result, "streams": streams}


def test_batch_norm_offspring_are_recalibrated_trained_and_recorded(bn_run):
  records = bn_run["result"].lineage["candidates"]
  assert [r["status"] for r in records] == ["ok", "ok"]
  for record in records:
    spec = model_io.read_spec(os.path.join(bn_run["run_dir"], record["dir"]))
    assert spec.batch_norm and spec.params() == record["params"] < BN_TINY.params()
    assert record["teacher"] == "ancestor"
    assert record["train_epochs"] == 1 and record["train_images"] == 96
    assert record["expected_macs"] > 0
    assert record["top1"] > 0.5  # recovered: chance is 1/3


def test_every_candidate_trains_on_its_own_data_stream(bn_run):
  expected = [candidates_lib.keras_seed(candidates_lib.draw_seed(CONFIG.seed, 1, c, 0)) for c in (0, 1)]
  # The first call validates the data (stream 0); each candidate then asks for its own.
  assert bn_run["streams"] == [0] + expected
  assert len(set(expected)) == 2 and 0 not in expected


class _Stop(Exception):
  pass


def test_polish_fine_tunes_the_winner_and_resumes_after_a_kill(bn_run, monkeypatch,
                                                           backup_every_epoch):
  run_dir, result = bn_run["run_dir"], bn_run["result"]
  assert polish.needs_polish(result, CONFIG)
  original = train_lib.fit
  begun = []

  def fit_that_dies_after_epoch_1(*args, callbacks=(), **kwargs):
    class Die(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None):
        begun.append(epoch)

      def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
          raise _Stop()
    return original(*args, callbacks=list(callbacks) + [Die()], **kwargs)

  monkeypatch.setattr(train_lib, "fit", fit_that_dies_after_epoch_1)
  with pytest.raises(_Stop):
    polish.polish(run_dir, result, CONFIG, toy.data, verbose=0)
  assert not polish.is_complete(run_dir)
  assert os.path.isdir(polish.polish_dir(run_dir) + polish.WORK_SUFFIX)  # the epoch backed up

  def fit_recording(*args, callbacks=(), **kwargs):
    recorder = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: begun.append(e))
    return original(*args, callbacks=list(callbacks) + [recorder], **kwargs)

  monkeypatch.setattr(train_lib, "fit", fit_recording)
  out = polish.polish(run_dir, result, CONFIG, toy.data, verbose=0)
  assert begun == [0, 1, 2]  # the second call resumed at epoch 1, not from scratch
  assert out == polish.polish_dir(run_dir) and polish.is_complete(run_dir)
  assert not os.path.exists(out + polish.WORK_SUFFIX)
  metrics = files_lib.read_json(os.path.join(out, model_io.METRICS_FILE))
  assert metrics["polished_from"] == result.winner_id
  assert metrics["train_epochs"] == CONFIG.final_epochs
  assert model_io.read_spec(out).architecture_key() == model_io.read_spec(
      result.winner_dir).architecture_key()
  # Done: a re-run trains nothing.
  monkeypatch.setattr(train_lib, "fit", None)
  assert polish.polish(run_dir, result, CONFIG, toy.data) == out


def test_scratch_trains_the_winners_widths_afresh_for_the_lineages_budget(bn_run, tmp_path,
                                                                         monkeypatch,
                                                                         backup_every_epoch):
  result = bn_run["result"]
  recipe = train_config_lib.TrainConfig(epochs=PARENT_EPOCHS, learning_rate=1e-2, warmup_epochs=0)
  budget = PARENT_EPOCHS + CONFIG.offspring_epochs + SCRATCH.final_epochs  # one generation
  assert polish.scratch_epochs(result, SCRATCH, recipe) == budget
  winner_spec = model_io.read_spec(result.winner_dir)
  original, seen, begun = train_lib.fit, [], []

  class Die(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      begun.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
      if epoch == 0 and len(begun) == 1:
        raise _Stop()

  def fit_watched(model_fn, *args, callbacks=(), **kwargs):
    def watched():
      model = model_fn()
      seen.append(([w.copy() for w in model.get_weights()], kwargs.get("teacher_fn"), args[2]))
      return model
    return original(watched, *args, callbacks=list(callbacks) + [Die()], **kwargs)

  monkeypatch.setattr(train_lib, "fit", fit_watched)
  run_dir = str(tmp_path / "scratch_run")
  with pytest.raises(_Stop):  # killed after its first epoch
    polish.polish(run_dir, result, SCRATCH, toy.data, recipe, verbose=0)
  out = polish.polish(run_dir, result, SCRATCH, toy.data, recipe, verbose=0)
  assert begun == list(range(budget))  # resumed at epoch 1
  # Fresh weights: the winner's widths initialised as a baseline is, not its trained weights.
  fresh = models.build_model(winner_spec, seed=SCRATCH.seed).get_weights()
  inherited = keras.models.load_model(os.path.join(result.winner_dir, model_io.MODEL_FILE))
  start, teacher_fn, fit_config = seen[0]
  assert all(np.array_equal(a, b) for a, b in zip(start, fresh))
  assert not all(np.array_equal(a, b) for a, b in zip(start, inherited.get_weights()))
  assert teacher_fn is None  # labels only, as the baselines train
  assert (fit_config.epochs, fit_config.learning_rate) == (budget, recipe.learning_rate)
  metrics = files_lib.read_json(os.path.join(out, model_io.METRICS_FILE))
  assert (metrics["final_init"], metrics["train_epochs"]) == ("scratch", budget)
  assert metrics["polished_from"] == result.winner_id and metrics["params"] == winner_spec.params()
  assert model_io.read_spec(out).architecture_key() == winner_spec.architecture_key()
  # The baselines train for exactly as long as the SquishedNet did, a budget known before it
  # trained (so the job may train it beside them, in the baselines' pool).
  assert budget_lib.baseline_budget(out, result, SCRATCH, recipe, 0).total_epochs == budget
  assert budget_lib.planned_budget(result, SCRATCH, recipe, 0) == budget_lib.baseline_budget(
      out, result, SCRATCH, recipe, 0)
  with pytest.raises(ValueError, match="Only a SquishedNet trained from scratch"):
    budget_lib.planned_budget(result, CONFIG, recipe, 0)
  ran = []
  assert baselines_lib.run_baselines(run_dir, bn_run["parent"], budget_lib.planned_budget(
      result, SCRATCH, recipe, 0), toy.data, names=(), beside=[(
          lambda *args, **kwargs: ran.append((args, kwargs)), (1,), {"x": 2})]) == {}
  assert ran == [((1,), {"x": 2})]
  # A family's other member trains for the budget it is given (the whole run's), not its own.
  longer = polish.polish(str(tmp_path / "member_run"), result, SCRATCH, toy.data, recipe,
                         verbose=0, scratch_budget=budget + 1)
  assert seen[-1][2].epochs == budget + 1
  assert files_lib.read_json(os.path.join(longer, model_io.METRICS_FILE))["train_epochs"] == (
      budget + 1)
  # A finished SquishedNet made another way is refused, not passed off as this one.
  with pytest.raises(ValueError, match=r"was made with --final_init=scratch --final_epochs=3, "
                                       r"not --final_init=inherit --final_epochs=3\. Delete it"):
    polish.polish(run_dir, result, CONFIG, toy.data, recipe)


def test_choose_final_keeps_the_higher_validation_top1_and_scratch_on_a_tie():
  kept = polish.choose_final({"scratch": 0.90, "inherit": 0.925})
  assert kept["kept"] == "inherit" and kept["other"] == "scratch"
  assert kept["validation_top1"] == {"scratch": 0.90, "inherit": 0.925}
  assert "92.50%" in kept["reason"] and "2.50 points above" in kept["reason"]
  assert polish.choose_final({"scratch": 0.93, "inherit": 0.925})["kept"] == "scratch"
  tie = polish.choose_final({"scratch": 0.5, "inherit": 0.5})
  assert tie["kept"] == "scratch" and "tie" in tie["reason"]


def test_best_trains_both_keeps_the_better_on_validation_and_budgets_alike(bn_run, tmp_path,
                                                                        monkeypatch):
  result = bn_run["result"]
  # One epoch for the ancestor's share: the budget is known, not long (1 + 1 + 3 epochs).
  recipe = train_config_lib.TrainConfig(epochs=1, learning_rate=1e-2, warmup_epochs=0)
  run_dir = str(tmp_path / "best_run")
  original, fits = train_lib.fit, []

  def fit_counted(*args, **kwargs):
    fits.append(kwargs.get("label"))
    return original(*args, **kwargs)

  monkeypatch.setattr(train_lib, "fit", fit_counted)
  # A worker's share: one candidate, no choice yet.
  scratch_dir = polish.polish(run_dir, result, BEST, toy.data, recipe, verbose=0, only="scratch")
  assert scratch_dir == polish.final_candidate_dir(run_dir, "scratch")
  assert model_io.is_complete(scratch_dir) and not polish.is_complete(run_dir)
  with pytest.raises(ValueError, match="only must be one of"):
    polish.polish(run_dir, result, BEST, toy.data, recipe, only="both")
  with pytest.raises(ValueError, match="only must be one of"):  # scratch makes no polish
    polish.polish(run_dir, result, dataclasses.replace(BEST, final_init="scratch"), toy.data,
                  recipe, only="inherit")
  # The main call trains what is left (the polish only) and keeps the better.
  out = polish.polish(run_dir, result, BEST, toy.data, recipe, verbose=0)
  assert fits == ["squishednet", "polish"] and out == polish.polish_dir(run_dir)
  candidates = {init: files_lib.read_json(os.path.join(polish.final_candidate_dir(run_dir, init),
                                                       model_io.METRICS_FILE))
                for init in polish.FINAL_CANDIDATES}
  assert candidates["scratch"]["final_init"] == "scratch"
  assert candidates["inherit"]["final_init"] == "inherit"
  metrics = files_lib.read_json(os.path.join(out, model_io.METRICS_FILE))
  choice = metrics["final_choice"]
  expected = polish.choose_final({k: m["top1"] for k, m in candidates.items()})
  assert choice == expected and metrics["final_init"] == choice["kept"]
  assert metrics["discarded_train_images"] == candidates[choice["other"]]["train_images"]
  _assert_same_weights(out, polish.final_candidate_dir(run_dir, choice["kept"]))
  # Either way the lineage's budget is the same, and known before either trained.
  scratch_budget = budget_lib.baseline_budget(out, result, BEST, recipe, 0)
  assert scratch_budget == budget_lib.planned_budget(result, BEST, recipe, 0)
  # Had the polish scored higher on validation, it would be the SquishedNet, same budget.
  inherit_metrics = dict(candidates["inherit"], top1=candidates["scratch"]["top1"] + 0.01)
  files_lib.write_json(os.path.join(polish.final_candidate_dir(run_dir, "inherit"),
                                    model_io.METRICS_FILE), inherit_metrics)
  shutil.rmtree(out)
  monkeypatch.setattr(train_lib, "fit", None)  # both are trained: nothing trains again
  out = polish.polish(run_dir, result, BEST, toy.data, recipe, verbose=0)
  metrics = files_lib.read_json(os.path.join(out, model_io.METRICS_FILE))
  assert metrics["final_choice"]["kept"] == metrics["final_init"] == "inherit"
  assert metrics["train_epochs"] == BEST.final_epochs
  _assert_same_weights(out, polish.final_candidate_dir(run_dir, "inherit"))
  assert budget_lib.baseline_budget(out, result, BEST, recipe, 0) == scratch_budget
  # Done: a re-run keeps it; another --final_init is refused.
  assert polish.polish(run_dir, result, BEST, toy.data, recipe) == out
  with pytest.raises(ValueError, match=r"was made with --final_init=best --final_epochs=3"):
    polish.polish(run_dir, result, CONFIG, toy.data, recipe)
  # Nor is a finished training of another --final_epochs taken for this one's.
  shutil.rmtree(out)
  with pytest.raises(ValueError, match=r"final/scratch was made with --final_init=scratch "
                                       r"--final_epochs=3, not --final_init=best --final_epochs=5"):
    polish.polish(run_dir, result, dataclasses.replace(BEST, final_epochs=5), toy.data, recipe)


def _assert_same_weights(dir_a, dir_b):
  a = keras.models.load_model(os.path.join(dir_a, model_io.MODEL_FILE)).get_weights()
  b = keras.models.load_model(os.path.join(dir_b, model_io.MODEL_FILE)).get_weights()
  assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_nothing_to_polish_when_the_ancestor_wins_or_final_epochs_is_0(bn_run):
  result = bn_run["result"]
  ancestor_won = lineage_lib.EvolutionResult(result.run_dir, lineage_lib.ANCESTOR_ID,
                                           bn_run["parent"], "accuracy_drop", result.lineage)
  assert not polish.needs_polish(ancestor_won, CONFIG)
  assert polish.polish(result.run_dir, ancestor_won, CONFIG, toy.data) == bn_run["parent"]
  no_polish = evolve_config_lib.EvolutionConfig(final_epochs=0)
  assert polish.squishednet_dir(result.run_dir, result, no_polish) == result.winner_dir


def test_fine_tunes_follow_the_training_recipe():
  recipe = train_config_lib.TrainConfig(epochs=12, learning_rate=4e-3, optimizer="sgd",
                                 lr_schedule="constant", weight_decay=1e-4, warmup_epochs=1.0)
  config = evolve_config_lib.EvolutionConfig(offspring_epochs=3, offspring_learning_rate=2e-3,
                                     offspring_warmup_epochs=0.5)
  tune = config.fine_tune_config(recipe)
  assert (tune.epochs, tune.learning_rate, tune.warmup_epochs) == (3, 2e-3, 0.5)
  assert (tune.optimizer, tune.lr_schedule, tune.weight_decay) == ("sgd", "constant", 1e-4)
  scratch = evolve_config_lib.EvolutionConfig(offspring_init="scratch").fine_tune_config(recipe)
  assert scratch.warmup_epochs == 1.0  # newborns warm up like the ancestor
  with pytest.raises(ValueError, match="--teacher must be one of"):
    evolve_config_lib.EvolutionConfig(teacher="oracle")
  with pytest.raises(ValueError, match=r"--final_init must be one of \('scratch', 'inherit', 'best'\), got 'warm'"):
    evolve_config_lib.EvolutionConfig(final_init="warm")
  with pytest.raises(ValueError, match="--final_epochs must be an integer >= 0"):
    evolve_config_lib.EvolutionConfig(final_epochs=-1)


def test_without_distillation_no_teacher_is_recorded(toy_parent_dir, tmp_path):
  config = evolve_config_lib.EvolutionConfig(generations=1, population=1, offspring_epochs=1,
                                     max_accuracy_drop=1.0, distill=False)
  result = evolution.evolve(toy_parent_dir, str(tmp_path / "run"), config, SYNTH, toy.data)
  assert result.lineage["candidates"][0]["teacher"] is None
  assert np.isfinite(result.lineage["candidates"][0]["top1"])


def test_a_killed_offspring_fine_tune_resumes_at_the_next_epoch(toy_parent_dir, tmp_path,
                                                                monkeypatch, backup_every_epoch):
  config = evolve_config_lib.EvolutionConfig(generations=1, population=1, offspring_epochs=3,
                                     max_accuracy_drop=1.0)
  run_dir = str(tmp_path / "run")
  begun = []
  monkeypatch.setattr(train_lib, "fit", toy.fit_that_dies_once(train_lib.fit, begun))
  with pytest.raises(toy.Stop):
    evolution.evolve(toy_parent_dir, run_dir, config, SYNTH, toy.data)
  work = lineage_lib.candidate_dir(run_dir, 1, 0) + ".attempt0" + candidates_lib.WORK_SUFFIX
  assert os.path.isdir(work)
  result = evolution.evolve(toy_parent_dir, run_dir, config, SYNTH, toy.data)
  assert begun == [0, 1, 2]  # epoch 0 once, then the re-run went on from epoch 1
  assert result.lineage["candidates"][0]["status"] == "ok" and not os.path.exists(work)
