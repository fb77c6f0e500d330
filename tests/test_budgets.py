"""Budgets on small data, the plan before a run, --max_minutes, and the stage commands' budgets."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from squish_tf import api
from squish_tf.job import budget as budget_lib
from squish_tf.job import estimate as estimate_lib
from squish_tf.train import progress as progress_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COSTS = estimate_lib.StepCosts(ancestor_train=0.2, ancestor_eval=0.06, small_train=0.08,
                               small_eval=0.02)


def write_folder(root, per_class=12, classes=3, size=32):
  """Class folders of PNGs; image i of the folder is filled with the value i (a name to find)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  index = 0
  for label in range(classes):
    folder = root / f"c{label}"
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(per_class):
      pixels = np.full((size, size, 3), index, np.uint8)
      pixels[..., label] = 200  # learnable: the class's channel is bright
      (folder / f"{index:03d}.png").write_bytes(tf.io.encode_png(pixels).numpy())
      index += 1
  return str(root)


def test_a_tiny_folder_gets_bounded_budgets_and_every_image_in_some_epoch(tmp_path):
  """110 images at the default batch: no longer 1 step and 46 images left out per epoch, nor
  thousands of epochs; on a real folder every training image is trained on within two epochs."""
  from squish_tf.data import pipeline as data_lib  # pylint: disable=g-import-not-at-top

  default = api.plan(check_ancestor=False)
  assert default.data.batch_size == 64 and default.job.budget.min_train_steps == 12000
  batch = budget_lib.batch_for(64, 110, default.job.budget.min_train_steps)
  assert batch == 12 and 110 // batch == 9 and 110 - 9 * batch == 2  # 2 left out, < 9 steps
  budgets = budget_lib.budgets_for(default.train, default.evolution, 110 // batch,
                                   default.job.budget.min_train_steps, batch, 64)
  assert budgets.train_config.epochs == budget_lib.MAX_TRAIN_EPOCHS and budgets.capped
  scale = budget_lib.MAX_TRAIN_EPOCHS / default.train.epochs
  assert budgets.evolution_config.offspring_epochs == int(np.ceil(2 * scale))
  assert budgets.evolution_config.final_epochs == int(np.ceil(4 * scale))
  assert "batch 12 (--batch_size=64" in budgets.describe()
  assert f"capped at {budget_lib.MAX_TRAIN_EPOCHS}" in budgets.describe()
  for count in range(1, 400):  # every split: >= 8 steps where it can, < steps left out
    chosen = budget_lib.fitting_batch_size(64, count)
    steps = max(1, count // chosen)
    assert 1 <= chosen <= 64 and count - steps * chosen < max(steps, chosen)
    if count >= 16:
      assert steps >= budget_lib.MIN_STEPS_PER_EPOCH
    if chosen < 64:  # shrunk to fit: nearly equal full batches of two images or more
      assert chosen >= min(2, count)  # batch norm's statistics need two
      assert count - steps * chosen < (steps if chosen > 2 else chosen)

  root = write_folder(tmp_path / "photos")
  config = dataclasses.replace(
      api.plan(check_ancestor=False, dataset="folder", data_dir=root, image_size=32,
               augment="none").data, cache="memory")
  _, _, info = data_lib.load(config)
  batch = budget_lib.batch_for(config.batch_size, info.train_count, 12000)
  train_ds, _, info = data_lib.load(dataclasses.replace(config, batch_size=batch))
  steps = int(train_ds.cardinality())
  assert batch < info.train_count and steps >= 2
  seen = []
  for _ in range(2):
    epoch = {int(image[0, 0, 1]) if label != 1 else int(image[0, 0, 0])
             for images, labels in train_ds for image, label in zip(images.numpy(),
                                                                     labels.numpy())}
    assert info.train_count - len(epoch) < steps  # fewer left out than steps
    seen.append(epoch)
  assert len(seen[0] | seen[1]) == info.train_count  # none left out of every epoch


def test_the_demo_keeps_its_steps_under_the_rule():
  """--min_train_steps=0 (the demo's): the batch and epochs as given, on any data size."""
  demo = api.plan(check_ancestor=False, min_train_steps=0, cost="latency", target_speedup=2)
  assert budget_lib.batch_for(64, 4000, 0) == 64 and budget_lib.batch_for(64, 50, 0) == 64
  kept = budget_lib.budgets_for(demo.train, demo.evolution, 62, 0, 64, 64)
  assert kept.scale == 1 and kept.train_config == demo.train
  assert kept.evolution_config == demo.evolution
  # The 6,000 photos and 5,000 digits (65 and 54 steps at batch 64) keep their budgets.
  default = api.plan(check_ancestor=False)
  for train_count, epochs in ((4200, 185), (3500, 223)):
    batch = budget_lib.batch_for(64, train_count, 12000)
    budgets = budget_lib.budgets_for(default.train, default.evolution, train_count // batch,
                                     12000, batch, 64)
    assert batch == 64 and budgets.train_config.epochs == epochs and not budgets.capped


def test_max_minutes_never_plans_more_than_it_allows():
  default = api.plan(check_ancestor=False)
  budgets = budget_lib.budgets_for(default.train, default.evolution, 40, 12000, 64, 64)

  def plan(some):
    return estimate_lib.plan_stages(some, COSTS, 10, ("width_scaled", "width_scaled_latency"),
                                    workers=2)

  full = plan(budgets)
  assert full.total_seconds > 60 * 60  # 12,000 steps of the ancestor alone take 40 min here
  assert full.seconds("ancestor") == pytest.approx(
      budgets.train_config.epochs * (40 * 0.2 + 10 * 0.06))
  kept, same = estimate_lib.fit_minutes(budgets, None, plan)
  assert kept == budgets and same.cut is None
  for minutes in (5, 15, 45, 90, 1000):
    cut, planned = estimate_lib.fit_minutes(budgets, minutes, plan)
    assert planned.total_seconds <= 60 * minutes
    assert planned.total_seconds == pytest.approx(plan(cut).total_seconds)
    if full.total_seconds > 60 * minutes:
      assert cut.train_config.epochs < budgets.train_config.epochs
      assert f"--max_minutes={minutes} cut every epoch budget" in planned.cut
      assert f"train_epochs {budgets.train_config.epochs} -> {cut.train_config.epochs}" in (
          planned.cut)
      # One factor for every budget: the lineage keeps its proportions (rounded down).
      factor = cut.train_config.epochs / budgets.train_config.epochs
      assert cut.evolution_config.final_epochs <= max(
          1, budgets.evolution_config.final_epochs * factor + 1)
    else:
      assert cut == budgets and planned.cut is None
  with pytest.raises(ValueError, match=r"--max_minutes=0.5 is less than the least"):
    estimate_lib.fit_minutes(budgets, 0.5, plan)
  text = full.describe()
  assert text.startswith("plan (estimated on this machine") and "total" in text
  assert "the baselines are" in text and "--baselines=none" in text


def test_a_run_with_a_target_plans_one_round_of_deeper_fine_tunes():
  """The deciding candidates' deeper fine-tunes (--deep_candidates x --final_epochs at the small
  network's cost) are planned once in a run with a target, never without one or at 0."""
  default = api.plan(check_ancestor=False)
  budgets = budget_lib.budgets_for(default.train, default.evolution, 40, 0, 64, 64)
  loop = budgets.evolution_config

  def synthesis(**changes):
    some = dataclasses.replace(budgets, evolution_config=dataclasses.replace(loop, **changes))
    return estimate_lib.plan_stages(some, COSTS, 10).stages[1]

  plain = synthesis()
  aimed = synthesis(target_speedup=2.0)
  one_fine_tune = loop.final_epochs * (40 * (COSTS.small_train + COSTS.ancestor_eval)
                                       + 10 * COSTS.small_eval) + COSTS.small_trace
  assert aimed.seconds - plain.seconds == pytest.approx(loop.deep_candidates * one_fine_tune)
  assert loop.deep_candidates == 2 and aimed.budget.endswith(
      f" + 2 deeper x {loop.final_epochs} epochs")
  assert synthesis(target_speedup=2.0, deep_candidates=0).seconds == plain.seconds
  assert "deeper" not in plain.budget


def test_the_plan_times_real_steps_of_both_networks(real_step_costs):
  """`measure_costs` (which the other tests replace with fixed costs) times the ancestor's and
  the quarter-size network's steps and traces, and with data the data's batches and (when
  worth it) each epoch's own cost."""
  import toy  # pylint: disable=g-import-not-at-top

  from squish_tf.net import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import config as train_config_lib  # pylint: disable=g-import-not-at-top

  # One fire: each measurement builds and traces its networks, whatever their size.
  one_fire = toy.TINY.replace(conv1_filters=8, fires=(spec_lib.FireSpec(4, 8, 8),),
                              pool_after=(1,))
  config = train_config_lib.TrainConfig(epochs=1)
  costs = estimate_lib.measure_costs(one_fire, 8, config, small=False)
  for name in ("ancestor_train", "ancestor_eval", "ancestor_trace"):
    assert getattr(costs, name) > 0, (name, costs)
  assert costs.small_train == costs.ancestor_train  # small=False: one network stands for both
  assert costs.data == 0 and costs.epoch == 0  # no data given: neither is measured
  with_data = estimate_lib.measure_costs(one_fire, 8, config, data_fn=toy.data)
  assert with_data.small_train > 0 and with_data.data > 0 and with_data.epoch > 0
  never = estimate_lib.measure_costs(one_fire, 8, config, small=False, data_fn=toy.data,
                                     worth_an_epoch=lambda costs: False)
  assert never.data > 0 and never.epoch == 0  # a tiny training: its epochs' cost is not timed


def test_progress_prints_every_n_epochs_with_the_time_left(capsys):
  """A 225-epoch fit prints about 20 lines, each but the last with its ETA; a short one, all."""
  assert progress_lib.line_every(6) == 1 and progress_lib.line_every(225) == 12
  progress = progress_lib.Progress("ancestor", 8, tty=False)
  progress.params = {"epochs": 225}
  progress.on_train_begin()
  for epoch in range(225):
    progress.on_epoch_begin(epoch)
    progress.on_epoch_end(epoch, {"loss": 0.5, "top1": 0.9})
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 1 + 225 // 12 + 1  # the first, every 12th, the last
  assert lines[0].startswith("ancestor epoch 1/225") and lines[-1].startswith(
      "ancestor epoch 225/225")
  assert all("ETA " in line for line in lines[:-1]) and "ETA" not in lines[-1]
  short = progress_lib.Progress("polish", 8, tty=False)
  short.params = {"epochs": 4}
  short.on_train_begin()
  for epoch in range(4):
    short.on_epoch_begin(epoch)
    short.on_epoch_end(epoch, {"loss": 0.5})
  assert len(capsys.readouterr().out.splitlines()) == 4
  assert progress_lib.format_duration(185) == "3m05s"


def test_squish_synthesize_scales_its_budgets_as_squish_does_and_logs_them(tmp_path,
                                                                         toy_parent_dir):
  """The same budget line as `squish` on the same folder and flags, and the epochs it gives."""
  root = write_folder(tmp_path / "photos", per_class=8)
  flags = dict(dataset="folder", data_dir=root, image_size=32, train_epochs=1,
               offspring_epochs=1, final_epochs=1, generations=1, population=1,
               min_train_steps=40, workers=1, augment="none")
  squish = api.plan(check_ancestor=False, estimate=True, run_dir=str(tmp_path / "squish"),
                    **flags)
  budgets = squish.budgets
  assert budgets.batch_size < 64 and budgets.scale > 1  # the rule changed both
  run_dir = tmp_path / "synth"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  result = subprocess.run(
      [sys.executable, "-m", "pipelines.synthesize", f"--parent_dir={toy_parent_dir}",
       f"--run_dir={run_dir}", "--final_init=inherit", "--max_accuracy_drop=1.0",
       *[f"--{name}={value}" for name, value in flags.items()]],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert budgets.describe() in lines
  plan_at = next(i for i, line in enumerate(lines) if line.startswith("plan (estimated"))
  assert lines.index(budgets.describe()) < plan_at
  import json  # pylint: disable=g-import-not-at-top

  recorded = json.load(open(run_dir / "plan.json"))
  assert recorded["epochs"] == {"train": budgets.train_config.epochs,
                                "offspring": budgets.evolution_config.offspring_epochs,
                                "final": budgets.evolution_config.final_epochs}
  assert recorded["batch_size"] == budgets.batch_size
  polished = json.load(open(run_dir / "squishednet" / "metrics.json"))
  assert polished["train_epochs"] >= budgets.evolution_config.final_epochs
