"""Baselines at the SquishedNet's size: width scaling, tfmot magnitude pruning, MobileNetV3."""

import json
import os

import numpy as np
import pytest
import toy

from squish_tf.net import describe as describe_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.train import baselines
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib


def test_keras_macs_match_the_analytic_count():
  spec = spec_lib.squishednet_base(10, (64, 64, 3))
  assert describe_lib.keras_macs(models.build_model(spec)) == spec.macs()  # pylint: disable=protected-access


def test_pruning_sparsity_leaves_the_target_nonzero():
  spec = spec_lib.squishednet_base(10, (64, 64, 3))
  sparsity = baselines.pruning_sparsity(spec, 100_000)
  kernels = sum(l.params - l.filters for l in spec.layer_shapes())
  biases = spec.params() - kernels
  assert biases + kernels * (1 - sparsity) == pytest.approx(100_000)
  with pytest.raises(ValueError, match="Cannot prune"):
    baselines.pruning_sparsity(spec, 10)


def test_mobilenet_alpha_is_nearest_to_target_in_deployed_params():
  alpha = baselines.mobilenet_alpha_for_params((32, 32, 3), 10, 300_000)
  deployed = lambda a: describe_lib.deployed_params(baselines.mobilenet_v3_small((32, 32, 3), 10, a))
  for other in (alpha * 0.8, alpha * 1.25):
    assert abs(deployed(alpha) - 300_000) <= abs(deployed(other) - 300_000)


def test_deployed_params_fold_batch_norm():
  spec = spec_lib.squishednet_base(10, (64, 64, 3))
  assert describe_lib.deployed_params(models.build_model(spec)) == spec.params()
  plain = spec.replace(batch_norm=False)
  assert describe_lib.deployed_params(models.build_model(plain)) == plain.params()


def test_pruning_fine_tune_follows_the_recipe():
  import tf_keras  # pylint: disable=g-import-not-at-top
  recipe = train_config_lib.TrainConfig(epochs=10, learning_rate=4e-3, weight_decay=1e-4)
  budget = baselines.BaselineBudget(target_params=1000, total_epochs=16, fine_tune_epochs=6,
                                    train_config=recipe, fine_tune_learning_rate=1e-3,
                                    fine_tune_warmup_epochs=1.0)
  tune = budget.fine_tune_config()
  assert (tune.epochs, tune.learning_rate, tune.warmup_epochs, tune.weight_decay) == (
      6, 1e-3, 1.0, 1e-4)
  assert budget.scratch_config().epochs == 16 and budget.scratch_config().learning_rate == 4e-3
  optimizer = baselines._tf_keras_optimizer(tf_keras, tune, steps_per_epoch=10)  # pylint: disable=protected-access
  schedule = optimizer._learning_rate  # pylint: disable=protected-access  (the schedule itself)
  assert float(schedule(0)) == 0.0 and float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(59)) < 1e-4  # cosine to zero at the end


def test_run_baselines_trains_each_at_the_budget_and_skips_when_done(toy_parent_dir, tmp_path,
                                                                    monkeypatch):
  # Half the parent's weights: pruning keeps the toy parent's 100% at every data order tried
  # (6 of 6), where two thirds of them left 36-81% after this short fine-tune.
  target = toy.TINY.params() // 2
  recipe = train_config_lib.TrainConfig(epochs=8, learning_rate=1e-2, warmup_epochs=0.25)
  match = {"width_multiplier": 0.7, "ratio": 1.01}
  budget = baselines.BaselineBudget(target_params=target, total_epochs=2, fine_tune_epochs=2,
                                    train_config=recipe, fine_tune_learning_rate=1e-3,
                                    latency_multiplier=0.7, latency_match=match)
  run_dir = str(tmp_path / "run")
  # The pool of workers=2 in one process: every baseline trains there, none here.
  pools = toy.one_worker_process(monkeypatch)
  dirs = baselines.run_baselines(run_dir, toy_parent_dir, budget, toy.data, workers=2)
  assert len(pools) == 1
  assert sorted(dirs) == sorted(baselines.BASELINES)
  found = {name: json.load(open(os.path.join(d, "metrics.json"))) for name, d in dirs.items()}

  width = found["width_scaled"]
  assert abs(width["params"] - target) / target < 0.1
  assert model_io.read_spec(dirs["width_scaled"]).params() == width["params"]
  assert width["train_epochs"] == 2 and width["train_images"] == 2 * toy.SIZE
  assert width["matched_on"] == "size"

  # The multiplier of equal latency, as the job found it, with the same recipe and epochs.
  fast = found["width_scaled_latency"]
  assert fast["matched_on"] == "latency" and fast["latency_match"] == match
  assert (model_io.read_spec(dirs["width_scaled_latency"]).architecture_key()
          == spec_lib.scale_width(toy.TINY, 0.7).architecture_key())
  assert fast["train_epochs"] == 2 and fast["train_images"] == 2 * toy.SIZE

  distilled = found["width_scaled_distilled"]
  assert distilled["params"] == width["params"] and distilled["teacher"] == "ancestor"
  assert distilled["distill_alpha"] == budget.distill.alpha
  assert (model_io.read_spec(dirs["width_scaled_distilled"]).architecture_key()
          == model_io.read_spec(dirs["width_scaled"]).architecture_key())

  pruned = found["magnitude_pruned"]
  assert pruned["params"] == toy.TINY.params()  # dense: the file does not shrink
  assert pruned["train_epochs"] == budget.fine_tune_epochs
  assert pruned["nonzero_params"] == pytest.approx(target, rel=0.05)
  model, _, _ = model_io.load_model_dir(dirs["magnitude_pruned"])
  assert sum(int(np.count_nonzero(w)) for w in model.get_weights()) == pruned["nonzero_params"]

  mobile = found["mobilenet_v3_small"]
  assert mobile["input_shape"] == [32, 32, 3] and mobile["num_classes"] == 3
  assert mobile["macs"] > 0 and 0 < mobile["alpha"] <= 2
  assert mobile["keras_params"] > mobile["params"]  # batch norm folds into the convolutions
  for metrics in found.values():
    assert 0.0 <= metrics["top1"] <= 1.0
    assert metrics["total_epochs"] == 2
  # The pruned model starts from the trained ancestor. Half its weights pruned and 2 epochs at
  # 1e-3 keep it far above chance (1/3); how far depends on the worker's thread schedule
  # (64%-100% measured).
  assert pruned["top1"] > 0.5

  stamps = {name: os.path.getmtime(os.path.join(d, "model.keras")) for name, d in dirs.items()}
  baselines.run_baselines(run_dir, toy_parent_dir, budget, toy.data)
  assert stamps == {name: os.path.getmtime(os.path.join(d, "model.keras"))
                    for name, d in dirs.items()}

  # Results do not depend on workers: trained one by one in this process (whatever it ran
  # before), the same baselines end with the same weights as in the worker process (where
  # other baselines trained before it).
  again = baselines.run_baselines(str(tmp_path / "again"), toy_parent_dir, budget, toy.data,
                                  names=("width_scaled_distilled",), workers=1)
  for name, directory in again.items():
    ours = model_io.load_model_dir(directory, require_spec=False)[0].get_weights()
    theirs = model_io.load_model_dir(dirs[name], require_spec=False)[0].get_weights()
    for a, b in zip(ours, theirs):
      np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)


def test_unknown_baseline_is_refused(toy_parent_dir, tmp_path):
  budget = baselines.BaselineBudget(target_params=1000, total_epochs=1, fine_tune_epochs=1)
  with pytest.raises(ValueError, match=r"Unknown baselines \['resnet'\]"):
    baselines.run_baselines(str(tmp_path), toy_parent_dir, budget, toy.data, names=["resnet"])


def test_mobilenet_batch_norm_momentum_suits_short_training(tmp_path):
  model = baselines.mobilenet_v3_small((32, 32, 3), 3, 0.25)
  norms = [l for l in model.layers if l.__class__.__name__ == "BatchNormalization"]
  assert norms and all(l.momentum == baselines.BATCH_NORM_MOMENTUM for l in norms)
  path = str(tmp_path / "m.keras")
  model_io.save_keras(model, path)
  import keras  # pylint: disable=g-import-not-at-top
  reloaded = keras.models.load_model(path)
  assert all(l.momentum == baselines.BATCH_NORM_MOMENTUM for l in reloaded.layers
             if l.__class__.__name__ == "BatchNormalization")


def test_baseline_names_parse_like_the_flag():
  assert baselines.parse_names("all") == baselines.BASELINES
  assert baselines.parse_names(["none"]) == () == baselines.parse_names("")
  assert baselines.parse_names("mobilenet_v3_small,width_scaled") == (
      "width_scaled", "mobilenet_v3_small")
  assert baselines.DEFAULT_BASELINES == ("width_scaled", "width_scaled_latency")
  with pytest.raises(ValueError, match=r"Unknown baselines \['resnet'\]"):
    baselines.parse_names("width_scaled,resnet")


def test_the_latency_baseline_needs_its_multiplier(toy_parent_dir, tmp_path):
  budget = baselines.BaselineBudget(target_params=toy.TINY.params() // 3, total_epochs=1,
                                    fine_tune_epochs=1)
  with pytest.raises(ValueError, match="latency_multiplier"):
    baselines.run_baselines(str(tmp_path / "run"), toy_parent_dir, budget, toy.data,
                            names=("width_scaled_latency",))
  assert not os.path.exists(tmp_path / "run" / "baselines" / "width_scaled_latency")


def test_a_killed_baseline_resumes_at_the_next_epoch(toy_parent_dir, tmp_path, monkeypatch,
                                                   backup_every_epoch):
  begun = []
  monkeypatch.setattr(train_lib, "fit", toy.fit_that_dies_once(train_lib.fit, begun))
  budget = baselines.BaselineBudget(target_params=toy.TINY.params() // 3, total_epochs=3,
                                    fine_tune_epochs=1)
  run_dir = str(tmp_path / "run")
  with pytest.raises(toy.Stop):
    baselines.run_baselines(run_dir, toy_parent_dir, budget, toy.data, names=("width_scaled",))
  directory = os.path.join(run_dir, "baselines", "width_scaled")
  assert os.path.isdir(directory + baselines.WORK_SUFFIX) and not os.path.exists(directory)
  baselines.run_baselines(run_dir, toy_parent_dir, budget, toy.data, names=("width_scaled",))
  assert begun == [0, 1, 2]
  assert model_io.is_complete(directory) and not os.path.exists(directory + baselines.WORK_SUFFIX)
