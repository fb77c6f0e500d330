"""The main job end to end on a tiny shapes10: every file, consistent numbers, resume by stage."""

import dataclasses
import json
import os

import numpy as np
import pytest

from squish_tf import benchmark as benchmark_lib
from squish_tf import data as data_lib
from squish_tf import evolution
from squish_tf import job
from squish_tf import synthesis
from squish_tf import train as train_lib

DATA = data_lib.DataConfig(dataset="shapes10", image_size=32, batch_size=32,
                           shapes10_train_size=320, shapes10_validation_size=96,
                           shapes10_test_size=64, seed=0)
TRAIN = train_lib.TrainConfig(epochs=1)
EVOLUTION = evolution.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                      max_accuracy_drop=1.0, final_epochs=1)
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.5)
BENCH = benchmark_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=2,
                                      warmup_runs=1)


class _Killed(Exception):
  pass


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A run killed right after the synthesis stage, then re-run to completion.

  Every read of the test split is recorded with the stages finished before it.
  """
  run_dir = str(tmp_path_factory.mktemp("job") / "tiny")
  config = job.JobConfig(run_dir=run_dir, run_name="tiny", baselines=("width_scaled",),
                         benchmark=BENCH, check_ancestor=False,
                         eval_images=64, export_formats=None, qat_epochs=1)
  stages_first, log_second, stages_done, test_reads = [], [], [], []

  def kill_after_synthesis(stage):
    stages_first.append(stage)
    if stage == "synthesis":
      raise _Killed()

  original = data_lib.load_test

  def recording_load_test(*args, **kwargs):
    test_reads.append(list(stages_done))
    return original(*args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(data_lib, "load_test", recording_load_test)
    with pytest.raises(_Killed):
      job.run_job(config, DATA, TRAIN, EVOLUTION, SYNTH, on_stage_done=[kill_after_synthesis],
                  log=lambda line: None, verbose=0)
    assert not test_reads
    model_path = os.path.join(run_dir, "ancestor", "model.keras")
    lineage_before = open(os.path.join(run_dir, "lineage.json")).read()
    mtime = os.path.getmtime(model_path)
    results = job.run_job(config, DATA, TRAIN, EVOLUTION, SYNTH, log=log_second.append,
                          flags_text="--run_name=tiny\n", command="squish --flagfile=x",
                          verbose=0, on_stage_done=[stages_done.append])
  return {"run_dir": run_dir, "results": results, "stages_first": stages_first,
          "log": log_second, "ancestor_mtime": mtime, "model_path": model_path,
          "lineage_before": lineage_before, "test_reads": test_reads,
          "stages_done": stages_done}


def test_resume_skips_finished_stages(finished_run):
  assert finished_run["stages_first"] == ["ancestor", "synthesis"]
  log = finished_run["log"]
  assert "[ancestor] already complete, skipped" in log
  assert "[synthesis] already complete, skipped" in log
  assert "[polish] ..." in log and "[export] ..." in log and "[benchmark] ..." in log
  assert finished_run["stages_done"] == list(job.STAGES)


def test_a_refused_re_run_leaves_flags_txt_as_it_was(finished_run):
  path = os.path.join(finished_run["run_dir"], "flags.txt")
  before = open(path, "rb").read()
  config = job.JobConfig(run_dir=finished_run["run_dir"], baselines=(), check_ancestor=False)
  with pytest.raises(ValueError, match=r"--population was 2, now 3"):
    job.run_job(config, DATA, TRAIN, dataclasses.replace(EVOLUTION, population=3), SYNTH,
                flags_text="--population=3\n", log=lambda line: None, verbose=0)
  assert open(path, "rb").read() == before


def test_the_test_split_is_read_only_once_everything_is_trained(finished_run):
  reads = finished_run["test_reads"]
  assert reads, "the final evaluation never read the test split"
  trained = ["ancestor", "synthesis", "polish", "baselines"]
  for finished in reads:  # the export's accuracy pass, the evaluation, the benchmark
    assert finished[:4] == trained
  assert os.path.getmtime(finished_run["model_path"]) == finished_run["ancestor_mtime"]
  lineage = open(os.path.join(finished_run["run_dir"], "lineage.json")).read()
  assert lineage == finished_run["lineage_before"]


def test_every_file_is_there(finished_run):
  run_dir = finished_run["run_dir"]
  expected = [
      "flags.txt", "lineage.json", "benchmark.json", "report.md", "pareto.png", "results.json",
      "evaluation.json", "squishednet/model.keras", "squishednet/metrics.json",
      "baselines/width_scaled/metrics.json", "baselines/width_scaled/export/model_fp32.tflite",
      "ancestor/model.keras", "ancestor/spec.json", "ancestor/metrics.json",
      "generations/gen_001/cand_00/model.keras", "generations/gen_001/cand_01/spec.json",
      "export/export.json", "export/saved_model/saved_model.pb", "export/model_fp32.tflite",
      "export/model_fp16.tflite", "export/model_int8.tflite", "export/model_qat_int8.tflite",
      "export/model_dynamic.tflite", "export/jetson/frozen_graph.pb", "export/jetson/spec.json",
      "export/jetson/labels.txt", "export/jetson/jetson_trt.py", "export/labels.txt",
      "ancestor/export/model_fp32.tflite", "ancestor/export/model_int8.tflite",
  ]
  missing = [p for p in expected if not os.path.isfile(os.path.join(run_dir, p))]
  assert not missing
  leftovers = [name for root, _, files in os.walk(run_dir) for name in files + [root]
               if os.path.basename(name).startswith(".") and ".tmp" in name]
  assert not leftovers


def _refuse(constant):
  raise ValueError(f"{constant} is not JSON")


def test_every_json_file_is_strict_json(finished_run):
  found = 0
  for root, _, files in os.walk(finished_run["run_dir"]):
    for name in files:
      if name.endswith(".json"):
        with open(os.path.join(root, name), encoding="utf-8") as handle:
          json.loads(handle.read(), parse_constant=_refuse)  # NaN / Infinity raise
        found += 1
  assert found >= 10


def test_results_agree_with_lineage_and_benchmark(finished_run):
  run_dir = finished_run["run_dir"]
  results = json.load(open(os.path.join(run_dir, "results.json")))
  lineage = json.load(open(os.path.join(run_dir, "lineage.json")))
  bench = json.load(open(os.path.join(run_dir, "benchmark.json")))
  evaluation = json.load(open(os.path.join(run_dir, "evaluation.json")))
  polished = json.load(open(os.path.join(run_dir, "squishednet", "metrics.json")))
  assert results == json.loads(json.dumps(finished_run["results"]))
  assert results["winner"] == lineage["winner"] and results["polished"]
  assert results["accuracy_split"] == "test" and evaluation["split"] == "test"
  winner = next(r for r in lineage["candidates"] if r["id"] == lineage["winner"])
  squished = results["models"]["squishednet"]
  assert polished["polished_from"] == winner["id"]
  for key in ("params", "size_mb", "macs"):
    assert squished[key] == pytest.approx(winner[key])
  # Every accuracy reported is the test split's; validation is kept apart.
  for name in ("ancestor", "squishednet", "width_scaled"):
    assert results["models"][name]["top1"] == evaluation["models"][name]["top1"]
  for name in ("ancestor", "squishednet"):  # the benchmark scores the same test images
    keras_top1 = bench["models"][name]["artefacts"]["keras"]["top1"]
    assert keras_top1 == pytest.approx(evaluation["models"][name]["top1"])
  assert squished["validation_top1"] == polished["top1"]
  for row in results["candidates"]:
    assert row["top1"] == evaluation["models"][row["id"]]["top1"]
    assert row["validation_top1"] == next(
        r["top1"] for r in lineage["candidates"] if r["id"] == row["id"])
  assert bench["settings"]["eval_split"] == "test"
  assert results["models"]["ancestor"]["params"] == lineage["ancestor"]["params"]
  assert [c["id"] for c in results["candidates"]] == [c["id"] for c in lineage["candidates"]]
  # The budget: the ancestor's epoch, the chosen offspring's and the polish's; images
  # count every candidate trained.
  assert squished["train_epochs"] == 1 + 1 + 1
  images = 320  # full batches of 32
  assert squished["train_images"] == images * (1 + 2 + 1)
  assert results["models"]["width_scaled"]["train_epochs"] == squished["train_epochs"]
  for name in ("ancestor", "squishednet"):
    fp32 = bench["models"][name]["artefacts"]["tflite_fp32"]
    assert results["models"][name]["tflite_fp32_bytes"] == fp32["bytes"]
    assert results["models"][name]["litert_images_per_sec"]["1"] == fp32["batches"]["1"][
        "images_per_sec_p50"]
  # Speed-ups come from the interleaved pair, not from two throughputs timed apart.
  pair = bench["pairs"]["squishednet/tflite_fp32 vs ancestor/tflite_fp32"]["1"]
  assert squished["speedup_vs_ancestor"]["1"] == pair["ratio_median"]
  assert squished["speedup_vs_ancestor_range"]["1"] == {
      "min": pair["ratio_min"], "max": pair["ratio_max"], "rounds": pair["rounds"]}


def test_report_has_this_runs_numbers(finished_run):
  run_dir = finished_run["run_dir"]
  results = finished_run["results"]
  report = open(os.path.join(run_dir, "report.md")).read()
  assert f"{results['models']['squishednet']['params']:,}" in report
  assert f"{results['models']['ancestor']['params']:,}" in report
  assert "| Gen |" in report and "paper, ImageNet-10, Jetson TX1" in report
  assert "squish --flagfile=x" in report
  png = open(os.path.join(run_dir, "pareto.png"), "rb").read()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  height, width = matplotlib.image.imread(os.path.join(run_dir, "pareto.png")).shape[:2]
  assert 400 < height < 2000 and 600 < width < 3000


def test_bad_data_is_refused_before_writing(tmp_path):
  run_dir = str(tmp_path / "nope")
  config = job.JobConfig(run_dir=run_dir, baselines=(), check_ancestor=False)
  with pytest.raises(ValueError, match="Unknown dataset"):
    job.run_job(config, data_lib.DataConfig(dataset="imagenet11"), TRAIN, EVOLUTION, SYNTH,
                log=lambda line: None)
  assert not os.path.exists(run_dir)


def _write_folder(root, images, labels, names):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for index, (image, label) in enumerate(zip(images, labels)):
    directory = os.path.join(root, names[label])
    os.makedirs(directory, exist_ok=True)
    tf.io.write_file(os.path.join(directory, f"{index:04d}.png"),
                     tf.io.encode_png(np.asarray(image, np.uint8)))


def test_changing_the_test_labels_changes_no_choice(tmp_path):
  """The lineage, the polish and the baselines' inputs cannot depend on the test split."""
  import toy  # pylint: disable=g-import-not-at-top
  names = ("red", "green", "blue")
  images, labels = toy.arrays(160, seed=7)
  runs = {}
  for variant, test_names in (("true", names), ("permuted", ("green", "blue", "red"))):
    root = str(tmp_path / variant / "data")
    _write_folder(os.path.join(root, "train"), images[:96], labels[:96], names)
    _write_folder(os.path.join(root, "validation"), images[96:128], labels[96:128], names)
    _write_folder(os.path.join(root, "test"), images[128:], labels[128:], test_names)
    data = data_lib.DataConfig(dataset="folder", data_dir=root, image_size=32, batch_size=32)
    run_dir = str(tmp_path / variant / "run")
    config = job.JobConfig(run_dir=run_dir, baselines=(), check_ancestor=False,
                           export_formats=("fp32",))

    def stop_after_evaluation(stage):
      if stage == "evaluation":
        raise _Killed()

    with pytest.raises(_Killed):  # the benchmark and report add nothing here
      job.run_job(config, data, train_lib.TrainConfig(epochs=2, learning_rate=1e-2),
                  dataclasses.replace(EVOLUTION, population=1), SYNTH, log=lambda line: None,
                  verbose=0, on_stage_done=[stop_after_evaluation])
    runs[variant] = [json.load(open(os.path.join(run_dir, name))) for name in
                     ("evaluation.json", "lineage.json", "squishednet/metrics.json")]
  (true, true_lineage, true_polish), (permuted, permuted_lineage, permuted_polish) = (
      runs["true"], runs["permuted"])
  keys = ("id", "survivors", "params", "top1", "chosen", "seed")
  assert ([{k: r[k] for k in keys} for r in true_lineage["candidates"]]
          == [{k: r[k] for k in keys} for r in permuted_lineage["candidates"]])
  assert true_lineage["generations"] == permuted_lineage["generations"]
  assert true_polish["top1"] == permuted_polish["top1"]  # validation, after the polish
  # ... while the reported (test) accuracy did see the permuted labels.
  for name in ("ancestor", "squishednet"):
    assert true["models"][name]["top1"] != permuted["models"][name]["top1"]
