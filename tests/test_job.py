"""The main job end to end on a tiny shapes10: every file, consistent numbers, resume by stage."""

import dataclasses
import json
import os

import numpy as np
import pytest
import toy

import squish_tf
from squish_tf import api
from squish_tf.data import config as data_config_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.job import config as job_config_lib
from squish_tf.job import exporting
from squish_tf.job import run as job
from squish_tf.report import paired as paired_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib

TRAIN = train_config_lib.TrainConfig(epochs=1)
EVOLUTION = evolve_config_lib.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                      max_accuracy_drop=1.0, final_epochs=1)
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.5)


# -- the README's example run, killed after the synthesis stage and re-run ----------------
# (conftest.readme_run: the same run test_api checks as the README's example)


def _run_path(readme_run, *parts):
  return os.path.join(readme_run["abs_run_dir"], *parts)


def test_resume_skips_finished_stages(readme_run):
  killed, resumed = readme_run["calls"]
  assert killed["stages"] == ["ancestor", "synthesis"]
  log = resumed["log"]
  assert "[ancestor] already complete, skipped" in log
  assert "[synthesis] already complete, skipped" in log
  assert "[polish] ..." in log and "[export] ..." in log and "[benchmark] ..." in log
  assert resumed["stages"] == list(job.STAGES)


def test_the_plan_is_printed_before_the_first_training_step(readme_run):
  """Each stage's budget and estimate, then the total, before `[ancestor] ...`; a resumed run
  counts no time for what is done."""
  import re  # pylint: disable=g-import-not-at-top

  first = readme_run["calls"][0]["log"]
  plan_at = next(i for i, line in enumerate(first) if line.startswith("plan (estimated"))
  assert plan_at < first.index("[ancestor] ...")
  assert "total" in first[plan_at] and "ancestor" in first[plan_at]
  with open(os.path.join(readme_run["abs_run_dir"], "plan.json"), encoding="utf-8") as handle:
    plan = json.load(handle)
  assert set(plan["stages"]) == {"ancestor", "synthesis", "polish", "baselines", "export",
                                 "evaluation", "benchmark"}
  assert plan["epochs"] == {"train": 5, "offspring": 1, "final": 1}  # min_train_steps=0
  assert plan["total_seconds"] == pytest.approx(sum(s["seconds"] for s in plan["stages"].values()))
  assert plan["stages"]["ancestor"]["done"] and plan["stages"]["synthesis"]["done"]
  assert plan["stages"]["ancestor"]["seconds"] == 0 and plan["stages"]["export"]["seconds"] > 0
  second = "\n".join(readme_run["calls"][1]["log"])
  assert re.search(r"^\s+ancestor\s+done", second, re.M)


def test_a_refused_re_run_leaves_flags_txt_as_it_was(readme_run, monkeypatch):
  monkeypatch.chdir(readme_run["where"])
  path = _run_path(readme_run, "flags.txt")
  before = open(path, "rb").read()
  population = readme_run["options"]["population"]
  with pytest.raises(ValueError, match=rf"--population was {population}, now {population + 2}"):
    squish_tf.run(**dict(readme_run["options"], population=population + 2),
                  log=lambda line: None, verbose=0)
  assert open(path, "rb").read() == before


def test_the_test_split_is_read_only_once_everything_is_trained(readme_run):
  reads = readme_run["test_reads"]
  assert reads, "the final evaluation never read the test split"
  trained = ["ancestor", "synthesis", "polish", "baselines"]
  for read in reads:  # the export's accuracy pass, the evaluation, the benchmark
    assert read["call"] == 2 and read["finished"][:4] == trained
  model_path = _run_path(readme_run, "ancestor", "model.keras")
  assert os.path.getmtime(model_path) == readme_run["ancestor_mtime"]
  assert open(_run_path(readme_run, "lineage.json")).read() == readme_run["lineage_before"]


def test_every_file_is_there(readme_run):
  plan = api.plan(**readme_run["options"])  # no baselines, fp32 only, one candidate
  assert (tuple(plan.job.baselines), tuple(plan.job.export.formats),
          plan.evolution.population) == ((), ("fp32",), 1)
  expected = [
      "flags.txt", "lineage.json", "benchmark.json", "report.md", "pareto.png", "results.json",
      "evaluation.json", "squishednet/model.keras", "squishednet/metrics.json",
      "ancestor/model.keras", "ancestor/spec.json", "ancestor/metrics.json",
      "generations/gen_001/cand_00/model.keras", "generations/gen_001/cand_00/spec.json",
      "export/export.json", "export/model_fp32.tflite", "export/labels.txt",
      "ancestor/export/model_fp32.tflite", "ancestor/export/model_int8.tflite",
  ]
  missing = [p for p in expected if not os.path.isfile(_run_path(readme_run, p))]
  assert not missing
  leftovers = [name for root, _, files in os.walk(readme_run["abs_run_dir"])
               for name in files + [root]
               if os.path.basename(name).startswith(".") and ".tmp" in name]
  assert not leftovers


def _refuse(constant):
  raise ValueError(f"{constant} is not JSON")


def test_every_json_file_is_strict_json(readme_run):
  found = 0
  for root, _, files in os.walk(readme_run["abs_run_dir"]):
    for name in files:
      if name.endswith(".json"):
        with open(os.path.join(root, name), encoding="utf-8") as handle:
          json.loads(handle.read(), parse_constant=_refuse)  # NaN / Infinity raise
        found += 1
  assert found >= 10


def test_results_agree_with_lineage_and_benchmark(readme_run):
  plan = api.plan(**readme_run["options"])
  read = lambda *parts: json.load(open(_run_path(readme_run, *parts)))
  results, lineage, bench = read("results.json"), read("lineage.json"), read("benchmark.json")
  evaluation, polished = read("evaluation.json"), read("squishednet", "metrics.json")
  assert results == readme_run["results"].results
  assert results["winner"] == lineage["winner"] and results["polished"]
  assert results["accuracy_split"] == "test" and evaluation["split"] == "test"
  winner = next(r for r in lineage["candidates"] if r["id"] == lineage["winner"])
  squished = results["models"]["squishednet"]
  assert polished["polished_from"] == winner["id"]
  for key in ("params", "size_mb", "macs"):
    assert squished[key] == pytest.approx(winner[key])
  # Every accuracy reported is the test split's; validation is kept apart.
  for name in ("ancestor", "squishednet"):
    assert results["models"][name]["top1"] == evaluation["models"][name]["top1"]
    # The benchmark scores the same test images.
    keras_top1 = bench["models"][name]["artefacts"]["keras"]["top1"]
    assert keras_top1 == pytest.approx(evaluation["models"][name]["top1"])
  assert squished["validation_top1"] == polished["top1"]
  # Which images each model gets right, in the split's order: their mean is its top-1, and two
  # models' vectors pair up into the verdict's interval.
  correct = results["test_correct"]
  assert correct["images"] == evaluation["images"] == results["dataset"]["test_count"]
  assert set(correct["models"]) == set(results["models"])
  vectors = {name: paired_lib.unpack_correct(evaluation["models"][name]["correct"],
                                             evaluation["images"])
             for name in evaluation["models"]}
  for name, vector in vectors.items():
    assert vector.mean() == pytest.approx(evaluation["models"][name]["top1"], abs=1e-6), name
  paired = paired_lib.paired_of(correct, "squishednet", "ancestor")
  assert paired["points"] == pytest.approx(
      100 * (squished["top1"] - results["models"]["ancestor"]["top1"]), abs=1e-4)
  for row in results["candidates"]:
    assert row["top1"] == evaluation["models"][row["id"]]["top1"]
    assert row["validation_top1"] == next(
        r["top1"] for r in lineage["candidates"] if r["id"] == row["id"])
  assert bench["settings"]["eval_split"] == "test"
  assert results["models"]["ancestor"]["params"] == lineage["ancestor"]["params"]
  assert [c["id"] for c in results["candidates"]] == [c["id"] for c in lineage["candidates"]]
  # The budget: the ancestor's epochs, the chosen offspring's and --final_epochs, for which
  # the winner's widths trained from scratch and, beside, its inherited weights were polished
  # for --final_epochs (the default --final_init=best); the better on validation was kept.
  # Images count the ancestor, every candidate trained and both final trainings.
  train, loop, batch = plan.train, plan.evolution, plan.data.batch_size
  budget = train.epochs + loop.offspring_epochs + loop.final_epochs
  assert loop.final_init == "best"
  choice = results["final_choice"]
  finals = {init: read("final", init, "metrics.json") for init in ("scratch", "inherit")}
  assert choice == polished["final_choice"] and choice["validation_top1"] == {
      init: metrics["top1"] for init, metrics in finals.items()}
  kept = choice["kept"]
  assert results["final_init"] == polished["final_init"] == kept
  assert polished["top1"] == max(m["top1"] for m in finals.values())
  assert squished["train_epochs"] == budget  # whichever is kept
  assert (finals["scratch"]["train_epochs"], finals["inherit"]["train_epochs"]) == (
      budget, loop.final_epochs)
  assert (finals["scratch"]["teacher"], finals["inherit"]["teacher"]) == (None, "ancestor")
  images = plan.data.shapes10_train_size // batch * batch  # full batches
  assert squished["train_images"] == images * (
      train.epochs + loop.population * loop.offspring_epochs + budget + loop.final_epochs)
  assert ("widths, retrained" if kept == "scratch" else "polished") in squished["label"]
  batch_sizes = [str(size) for size in plan.job.benchmark.batch_sizes]
  for name in ("ancestor", "squishednet"):
    fp32 = bench["models"][name]["artefacts"]["tflite_fp32"]
    assert results["models"][name]["tflite_fp32_bytes"] == fp32["bytes"]
    for size in batch_sizes:
      assert results["models"][name]["litert_images_per_sec"][size] == fp32["batches"][size][
          "images_per_sec_p50"]
  # Speed-ups come from the interleaved pair, not from two throughputs timed apart.
  for size in batch_sizes:
    pair = bench["pairs"]["squishednet/tflite_fp32 vs ancestor/tflite_fp32"][size]
    assert squished["speedup_vs_ancestor"][size] == pair["ratio_median"]
    assert squished["speedup_vs_ancestor_range"][size] == {
        "min": pair["ratio_min"], "max": pair["ratio_max"], "rounds": pair["rounds"]}


def test_report_has_this_runs_numbers(readme_run):
  results = readme_run["results"].results
  report = open(_run_path(readme_run, "report.md")).read()
  assert f"{results['models']['squishednet']['params']:,}" in report
  assert f"{results['models']['ancestor']['params']:,}" in report
  assert "| Gen |" in report and "paper, ImageNet-10, Jetson TX1" in report
  assert results["command"] in report
  png = open(_run_path(readme_run, "pareto.png"), "rb").read()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  height, width = matplotlib.image.imread(_run_path(readme_run, "pareto.png")).shape[:2]
  assert 400 < height < 2000 and 600 < width < 3000



def test_make_demo_plans_a_family_of_two_speedups_without_a_ladder():
  """`make demo`: members at 1.5x and 3x over the ancestor from one evolution of up to four
  generations, each with the final stage; no baseline, so no ladder (the report says so)."""
  from squish_tf.evolve import targets as targets_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import budget as budget_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import estimate as estimate_lib  # pylint: disable=g-import-not-at-top

  demo = api.plan(check_ancestor=False, **_make_demo_options())
  family = targets_lib.TargetFamily.of(demo.evolution, ancestor_ms=1.0)
  assert family.labels == ("1.5x", "3x")
  assert [member.speedup for member in family.members] == pytest.approx([1.5, 3.0])
  assert demo.evolution.generations == 4 and demo.evolution.final_init == "inherit"
  assert demo.evolution.target_speedup is None and demo.job.baselines == ()
  budgets = budget_lib.scale_budgets(demo.train, demo.evolution, 63, 0)
  costs = estimate_lib.StepCosts(0.5, 0.1, 0.2, 0.05)
  every_format = ("saved_model", "fp32", "fp16", "dynamic", "int8", "qat_int8", "jetson")
  plan = estimate_lib.plan_stages(budgets, costs, 16, demo.job.baselines,
                                  member_formats=every_format)
  assert plan.seconds("baselines") == 0
  assert [s.budget for s in plan.stages if s.name in ("synthesis", "polish", "export")] == [
      "4 generations x 2 offspring x 2 epochs + 2 deeper x 4 epochs",
      "2 members x inherit 4 epochs", "3 models, 16 files"]
  # The two members in every format, the ancestor in the two it is compared in.
  assert plan.seconds("export") == (2 * 7 + 2) * estimate_lib.SECONDS_PER_FILE
  assert plan.seconds("benchmark") == 3 * estimate_lib.SECONDS_PER_MODEL["benchmark"]


def test_bad_data_is_refused_before_writing(tmp_path):
  run_dir = str(tmp_path / "nope")
  config = job_config_lib.JobConfig(run_dir=run_dir, baselines=(), check_ancestor=False)
  with pytest.raises(ValueError, match="Unknown dataset"):
    job.run_job(config, data_config_lib.DataConfig(dataset="imagenet11"), TRAIN, EVOLUTION, SYNTH,
                log=lambda line: None)
  assert not os.path.exists(run_dir)


def _make_demo_options():
  """The options of `make demo`'s squish command, read from the Makefile."""
  with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "Makefile"), encoding="utf-8") as handle:
    makefile = handle.read()
  recipe = makefile[makefile.index("\ndemo:"):].splitlines()[2].split()
  assert recipe[0] == "$(BIN)/squish"
  return {arg[2:].split("=")[0]: arg.split("=")[1] for arg in recipe[1:]}


def test_the_budget_rule_keeps_the_demos_steps_and_scales_small_data():
  """`make demo`'s flags keep its epochs; a small dataset trains 12000+ steps, all budgets alike."""
  from squish_tf.job import budget as budget_lib  # pylint: disable=g-import-not-at-top

  demo = api.plan(check_ancestor=False, **_make_demo_options())
  assert demo.synthesis.cost == "latency" and list(demo.evolution.targets) == ["1.5x", "3x"]
  steps = -(-demo.data.shapes10_train_size // demo.data.batch_size)  # the demo's batches
  kept = budget_lib.scale_budgets(demo.train, demo.evolution, steps,
                                  demo.job.budget.min_train_steps)
  assert kept.scale == 1 and kept.train_config == demo.train
  assert kept.evolution_config == demo.evolution
  assert (kept.train_config.epochs, kept.evolution_config.offspring_epochs,
          kept.evolution_config.final_epochs) == (6, 2, 4)
  # The command's default on 1,197 digits at batch 32 (27 steps per epoch): every budget x74.1.
  default = api.plan(check_ancestor=False)
  assert default.job.budget.min_train_steps == 12000 and default.train.epochs == 6
  small = budget_lib.scale_budgets(default.train, default.evolution, 27,
                                   default.job.budget.min_train_steps)
  assert (small.train_config.epochs, small.evolution_config.offspring_epochs,
          small.evolution_config.final_epochs) == (445, 149, 297)
  assert small.train_config.epochs * 27 >= 12000 > (small.train_config.epochs - 1) * 27
  assert small.train_config.learning_rate == default.train.learning_rate
  assert small.train_config.warmup_epochs == default.train.warmup_epochs
  assert "x74.07" in small.describe() and "train_epochs 445" in small.describe()
  # Enough steps already: nothing changes.
  large = budget_lib.scale_budgets(default.train, default.evolution, 2000,
                                   default.job.budget.min_train_steps)
  assert large.scale == 1 and large.train_config.epochs == 6
  with pytest.raises(ValueError, match="steps_per_epoch"):
    budget_lib.scale_budgets(default.train, default.evolution, 0, 4000)


def test_a_bad_test_image_stops_the_job_before_training_and_leaves_the_run_dir(tmp_path,
                                                                              monkeypatch):
  """A corrupt file in the folder's test split: refused before the ancestor's first step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  for split, count in (("train", 6), ("test", 2)):
    for name in ("ant", "bee"):
      for i in range(count):
        path = tmp_path / "photos" / split / name / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(rng.integers(0, 255, (8, 8, 3), np.uint8)).numpy())
  (tmp_path / "photos" / "test" / "bee" / "broken.png").write_bytes(b"\x89PNG cut short")
  data_config = data_config_lib.DataConfig(dataset="folder", data_dir=str(tmp_path / "photos"),
                                           image_size=32, batch_size=4)
  trained = []
  monkeypatch.setattr(train_lib, "fit", lambda *args, **kwargs: trained.append(1))
  existing = tmp_path / "existing"
  (existing / "notes").mkdir(parents=True)
  (existing / "notes" / "keep.txt").write_text("mine")
  for run_dir in (str(tmp_path / "fresh"), str(existing)):
    before = toy.tree(run_dir)
    config = job_config_lib.JobConfig(run_dir=run_dir, baselines=(), check_ancestor=False)
    with pytest.raises(ValueError, match="(?s)1 image file.*test/bee/broken.png"):
      job.run_job(config, data_config, TRAIN, EVOLUTION, SYNTH, flags_text="--x\n",
                  log=lambda line: None)
    assert toy.tree(run_dir) == before and not trained


def test_a_second_run_on_a_locked_run_dir_exits_2_and_writes_nothing(tmp_path):
  """The lock's holder is alive (this process): `squish` stops with one line naming it."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  from squish_tf import lock as lock_lib  # pylint: disable=g-import-not-at-top

  run_dir = str(tmp_path / "busy")
  with lock_lib.RunLock(run_dir, command="squish --run_name=busy"):
    before = toy.tree(run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", f"--run_dir={run_dir}", "--image_size=32",
         "--shapes10_train_size=64", "--shapes10_validation_size=32", "--shapes10_test_size=32",
         "--train_epochs=1"],
        capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pid {os.getpid()}" in errors[0], done.stderr[-2000:]
    assert "squish --run_name=busy" in errors[0]
    assert toy.tree(run_dir) == before


def test_with_workers_the_ancestor_trains_in_a_process_of_its_own(tmp_path, monkeypatch):
  """The main process then holds no training's memory while the workers fine-tune."""

  from squish_tf.runtime import workers  # pylint: disable=g-import-not-at-top

  calls = []

  def in_process(function, *args):  # what the fresh process would run, run here
    calls.append(function)
    return function(*args)

  monkeypatch.setattr(workers, "call_in_fresh_process", in_process)
  # The tiny network: what is checked is where the ancestor trains, not the network.
  monkeypatch.setattr(train_config_lib.ModelConfig, "ancestor_spec",
                      lambda self, num_classes, image_size: toy.TINY.replace(
                          num_classes=num_classes))
  config = job_config_lib.JobConfig(run_dir=str(tmp_path / "run"), baselines=(), check_ancestor=False)
  data = data_config_lib.DataConfig(image_size=32, batch_size=32, shapes10_train_size=64,
                             shapes10_validation_size=32, shapes10_test_size=32)

  def stop(stage):
    raise toy.Stop()

  with pytest.raises(toy.Stop):
    job.run_job(config, data, TRAIN, dataclasses.replace(EVOLUTION, workers=2), SYNTH,
                log=lambda line: None, verbose=0, on_stage_done=[stop])
  assert calls == [job.train_ancestor_dir]
  metrics = json.load(open(tmp_path / "run" / "ancestor" / "metrics.json"))
  assert metrics["train_epochs"] == TRAIN.epochs


def test_a_finished_lineage_is_read_back_as_evolve_returns_it(toy_parent_dir, tmp_path,
                                                               monkeypatch, fast_latency):
  """A skipped synthesis stage reads lineage.json itself, and checks the ancestor as evolve()
  does; evolve() leaves the size and MAC targets to the job, which refused them before.
  (Candidates timed by their MACs: `conftest.fast_latency`.)"""
  import shutil  # pylint: disable=g-import-not-at-top

  from squish_tf.evolve import evolution  # pylint: disable=g-import-not-at-top
  from squish_tf.job import context  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  run_dir = str(tmp_path / "run")
  shutil.copytree(toy_parent_dir, os.path.join(run_dir, "ancestor"))
  evolution_config = dataclasses.replace(EVOLUTION, population=1)
  data = context.RunData(data_config_lib.DataConfig(image_size=32), calibration_images=8)
  data.load = toy.data
  run = context.Run(config=job_config_lib.JobConfig(run_dir=run_dir, baselines=()), data=data,
                    info=toy.data()[2], spec=toy.TINY, train_config=TRAIN,
                    evolution_config=evolution_config, synth=SYNTH, verbose=0)
  checked, lines = [], []
  original_check = evolution.check_targets
  monkeypatch.setattr(evolution, "check_targets",
                      lambda *args: checked.append(args) or original_check(*args))
  stage = context.Stages(run_dir, log=lines.append)
  assert job.finished_evolution(run_dir) is None
  job.synthesis_stage(run, stage)
  assert lines == ["[synthesis] ..."] and not checked
  # evolve() on the complete lineage: what the skipped stage must give, without calling it.
  expected = evolution.evolve(run.ancestor_dir, run_dir, evolution_config, SYNTH, toy.data,
                              train_config=TRAIN)
  assert len(checked) == 1  # on its own, evolve() refuses unreachable targets itself

  def evolve(*args, **kwargs):
    raise AssertionError("evolve() called for a finished lineage")

  monkeypatch.setattr(evolution, "evolve", evolve)
  lines.clear()
  assert job.synthesis_stage(run, stage) == expected
  assert lines == ["[synthesis] already complete, skipped"]
  model, spec, metrics = model_io.load_model_dir(run.ancestor_dir)
  model.set_weights([w * 1.01 for w in model.get_weights()])  # "retrained" in place
  model_io.write_model_dir(run.ancestor_dir, model, spec, metrics)
  with pytest.raises(ValueError, match=r"another parent \(parent.weights_sha256 was"):
    job.synthesis_stage(run, stage)


def _write_folder(root, images, labels, names):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for index, (image, label) in enumerate(zip(images, labels)):
    directory = os.path.join(root, names[label])
    os.makedirs(directory, exist_ok=True)
    tf.io.write_file(os.path.join(directory, f"{index:04d}.png"),
                     tf.io.encode_png(np.asarray(image, np.uint8)))


def test_changing_the_test_labels_changes_no_choice(tmp_path, monkeypatch, fast_latency):
  """The lineage, the polish and the baselines cannot depend on the test split.

  Two runs on the same training and validation images, with the test images'
  labels true in one and permuted in the other, stopped once everything is
  trained (the export, the first to read the test split, adds nothing here).
  Candidates are timed by their MACs (`conftest.fast_latency`): timing reads no split. The
  second run starts from the first one's ancestor (trained before anything reads the test
  split, as every run's is): the stages compared are the ones after it.
  """
  import shutil  # pylint: disable=g-import-not-at-top

  names = ("red", "green", "blue")
  images, labels = toy.arrays(160, seed=7)
  train_config = train_config_lib.TrainConfig(epochs=2, learning_rate=1e-2)
  test_reads = []
  original_load_test = data_lib.load_test

  def recording_load_test(*args, **kwargs):
    test_reads.append(args)
    return original_load_test(*args, **kwargs)

  monkeypatch.setattr(data_lib, "load_test", recording_load_test)
  # The tiny SqueezeNet: what is checked is which split each choice reads, not the network.
  monkeypatch.setattr(train_config_lib.ModelConfig, "ancestor_spec",
                      lambda self, num_classes, image_size: toy.TINY)
  runs = {}
  for variant, test_names in (("true", names), ("permuted", ("green", "blue", "red"))):
    root = str(tmp_path / variant / "data")
    _write_folder(os.path.join(root, "train"), images[:96], labels[:96], names)
    _write_folder(os.path.join(root, "validation"), images[96:128], labels[96:128], names)
    _write_folder(os.path.join(root, "test"), images[128:], labels[128:], test_names)
    data = data_config_lib.DataConfig(dataset="folder", data_dir=root, image_size=32, batch_size=32)
    run_dir = str(tmp_path / variant / "run")
    config = job_config_lib.JobConfig(run_dir=run_dir, baselines=("width_scaled",), check_ancestor=False)
    if runs:
      shutil.copytree(tmp_path / "true" / "run" / "ancestor", os.path.join(run_dir, "ancestor"))

    def stop_once_trained(stage):
      if stage == "baselines":
        raise toy.Stop()

    with pytest.raises(toy.Stop):
      job.run_job(config, data, train_config,
                  dataclasses.replace(EVOLUTION, population=1, workers=1), SYNTH,
                  log=lambda line: None, verbose=0, on_stage_done=[stop_once_trained])
    assert not test_reads
    runs[variant] = {name: json.load(open(os.path.join(run_dir, *path))) for name, path in (
        ("lineage", ["lineage.json"]), ("polish", ["squishednet", "metrics.json"]),
        ("baseline", ["baselines", "width_scaled", "metrics.json"]))}
    # What the permuted labels do see: the test split, as the evaluation reads it.
    runs[variant]["test"] = job.evaluate_on_test(
        {"ancestor": os.path.join(run_dir, "ancestor"),
         "squishednet": os.path.join(run_dir, "squishednet")},
        original_load_test(data)[0], log=lambda line: None)["models"]
  true, permuted = runs["true"], runs["permuted"]
  keys = ("id", "survivors", "params", "top1", "chosen", "seed")
  assert ([{k: r[k] for k in keys} for r in true["lineage"]["candidates"]]
          == [{k: r[k] for k in keys} for r in permuted["lineage"]["candidates"]])
  assert true["lineage"]["generations"] == permuted["lineage"]["generations"]
  assert true["polish"]["top1"] == permuted["polish"]["top1"]  # validation, after the polish
  for key in ("params", "top1", "train_epochs", "train_images"):
    assert true["baseline"][key] == permuted["baseline"][key], key
  # The baseline's budget is the SquishedNet's: the ancestor's, the offspring's and the polish's.
  assert true["baseline"]["train_epochs"] == (train_config.epochs + EVOLUTION.offspring_epochs
                                              + EVOLUTION.final_epochs)
  # ... while the test accuracies do see the permuted labels.
  for name in ("ancestor", "squishednet"):
    assert true["test"][name]["top1"] != permuted["test"][name]["top1"]


class _FakeProcessPool:
  """A pool that says it has worker processes and runs each call when its result is read."""

  in_process = False

  def __init__(self):
    self.submitted = []

  def submit(self, function, *args, **kwargs):
    from squish_tf.runtime import workers  # pylint: disable=g-import-not-at-top
    self.submitted.append(function.__name__)
    return workers.Deferred(function, *args, **kwargs)


@pytest.mark.parametrize("with_workers", [False, True])
def test_exports_with_workers_run_qat_and_comparisons_in_the_pool(monkeypatch, with_workers):
  """The SquishedNet takes the QAT file made in a worker; comparisons draw their own data."""
  from squish_tf import export as export_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.runtime import workers  # pylint: disable=g-import-not-at-top
  calls = []

  def fake_export_all(model_dir, export_dir, formats=None, qat_result=None, **kwargs):
    qat = qat_result() if qat_result is not None else None
    calls.append((model_dir, sorted(kwargs), qat))
    return {"model_dir": model_dir}

  def fake_qat(model_dir, data_config, *args):
    calls.append(("qat", model_dir, data_config))
    return {"tflite": b"qat"}

  monkeypatch.setattr(export_lib, "export_all", fake_export_all)
  monkeypatch.setattr(export_lib, "qat_int8_artefact", fake_qat)
  data_config = data_config_lib.DataConfig(image_size=32)
  todo = {"squishednet": ("sq", "sq/export", "fp32,qat_int8"),
          "ancestor": ("an", "an/export", ("fp32", "int8")),
          "width_scaled": ("ws", "ws/export", ("fp32", "int8"))}
  pool = _FakeProcessPool() if with_workers else workers.WorkerPool(1)
  manifest = exporting.export_models(todo, pool, data_config, lambda: "export data",
                               job_config_lib.JobConfig(run_dir="unused"))
  assert manifest == {"model_dir": "sq"}
  in_main = ["data", "overwrite", "qat_epochs", "qat_learning_rate"]
  if with_workers:
    assert pool.submitted == ["fake_qat", "fake_export_all", "fake_export_all"]
    in_worker = ["calibration_images", "data_config", "overwrite", "qat_epochs",
                 "qat_learning_rate"]
    assert calls == [("qat", "sq", data_config),
                     ("sq", in_main, {"tflite": b"qat"}),
                     ("an", in_worker, None), ("ws", in_worker, None)]
  else:  # one after the other, on the data drawn once; the SquishedNet runs its own QAT
    assert calls == [("sq", in_main, None), ("an", in_main, None), ("ws", in_main, None)]


@pytest.mark.parametrize("final_init", ["scratch", "best"])
def test_with_workers_the_final_trainings_go_beside_the_baselines(tmp_path, monkeypatch,
                                                                  final_init):
  """Known before they train, the final stage's budgets let its trainings share the baselines'
  pool; with --final_init=best the main process then keeps the better of the two."""

  from squish_tf.evolve import lineage as lineage_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.evolve import polish as polish_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import context  # pylint: disable=g-import-not-at-top

  calls = []
  monkeypatch.setattr(job, "planned_budget", lambda *args: "budget")
  monkeypatch.setattr(job, "with_match", lambda run, result, budget: budget)

  def train_baselines(run, budget, beside=()):
    calls.append(("baselines", budget))
    for function, args, kwargs in beside:
      function(*args, **kwargs)

  monkeypatch.setattr(job, "train_baselines", train_baselines)
  monkeypatch.setattr(polish_lib, "polish",
                      lambda *args, only=None, **kwargs: calls.append(("final", only)))
  run_dir = str(tmp_path / "run")
  data = context.RunData(data_config_lib.DataConfig(image_size=32), calibration_images=8)
  run = context.Run(config=job_config_lib.JobConfig(run_dir=run_dir, baselines=("width_scaled",)),
                    data=data, info=toy.data()[2], spec=toy.TINY, train_config=TRAIN,
                    evolution_config=dataclasses.replace(EVOLUTION, workers=2,
                                                         final_init=final_init),
                    synth=SYNTH, verbose=0)
  result = lineage_lib.EvolutionResult(run_dir, "gen_001/cand_00", str(tmp_path / "winner"),
                                       "target", {})
  stage = context.Stages(run_dir, log=lambda line: None)
  assert job.polish_stage(run, stage, result, polish_lib.polish_dir(run_dir)) == "budget"
  if final_init == "scratch":  # trained in a worker; the main process reads it
    assert calls == [("baselines", "budget"), ("final", "scratch"), ("final", None)]
  else:
    assert calls == [("baselines", "budget"), ("final", "scratch"), ("final", "inherit"),
                     ("final", None)]
