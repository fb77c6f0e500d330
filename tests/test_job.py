"""The main job end to end on a tiny shapes10: every file, consistent numbers, resume by stage."""

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
                           shapes10_train_size=320, shapes10_validation_size=96, seed=0)
TRAIN = train_lib.TrainConfig(epochs=1)
EVOLUTION = evolution.EvolutionConfig(generations=1, population=2, offspring_epochs=1,
                                      max_accuracy_drop=1.0)
SYNTH = synthesis.SynthesisConfig(env_mode="target", target_fraction=0.5)
BENCH = benchmark_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=2,
                                      warmup_runs=1)


class _Killed(Exception):
  pass


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A run killed right after the synthesis stage, then re-run to completion."""
  run_dir = str(tmp_path_factory.mktemp("job") / "tiny")
  config = job.JobConfig(run_dir=run_dir, run_name="tiny", baselines=(), benchmark=BENCH,
                         check_ancestor=False,
                         eval_images=64, export_formats=None, qat_epochs=1)
  stages_first, log_second = [], []

  def kill_after_synthesis(stage):
    stages_first.append(stage)
    if stage == "synthesis":
      raise _Killed()

  with pytest.raises(_Killed):
    job.run_job(config, DATA, TRAIN, EVOLUTION, SYNTH, on_stage_done=[kill_after_synthesis],
                log=lambda line: None, verbose=0)
  model_path = os.path.join(run_dir, "ancestor", "model.keras")
  lineage_before = open(os.path.join(run_dir, "lineage.json")).read()
  mtime = os.path.getmtime(model_path)
  results = job.run_job(config, DATA, TRAIN, EVOLUTION, SYNTH, log=log_second.append,
                        flags_text="--run_name=tiny\n",
                        command="squish --flagfile=x", verbose=0)
  return {"run_dir": run_dir, "results": results, "stages_first": stages_first,
          "log": log_second, "ancestor_mtime": mtime, "model_path": model_path,
          "lineage_before": lineage_before}


def test_resume_skips_finished_stages(finished_run):
  assert finished_run["stages_first"] == ["ancestor", "synthesis"]
  log = finished_run["log"]
  assert "[ancestor] already complete, skipped" in log
  assert "[synthesis] already complete, skipped" in log
  assert "[export] ..." in log and "[benchmark] ..." in log
  assert os.path.getmtime(finished_run["model_path"]) == finished_run["ancestor_mtime"]
  lineage = open(os.path.join(finished_run["run_dir"], "lineage.json")).read()
  assert lineage == finished_run["lineage_before"]


def test_every_file_is_there(finished_run):
  run_dir = finished_run["run_dir"]
  expected = [
      "flags.txt", "lineage.json", "benchmark.json", "report.md", "pareto.png", "results.json",
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


def test_results_agree_with_lineage_and_benchmark(finished_run):
  run_dir = finished_run["run_dir"]
  results = json.load(open(os.path.join(run_dir, "results.json")))
  lineage = json.load(open(os.path.join(run_dir, "lineage.json")))
  bench = json.load(open(os.path.join(run_dir, "benchmark.json")))
  assert results == json.loads(json.dumps(finished_run["results"]))
  assert results["winner"] == lineage["winner"]
  winner = next(r for r in lineage["candidates"] if r["id"] == lineage["winner"])
  squished = results["models"]["squishednet"]
  for key in ("params", "size_mb", "macs", "top1"):
    assert squished[key] == pytest.approx(winner[key])
  assert results["models"]["ancestor"]["params"] == lineage["ancestor"]["params"]
  assert [c["id"] for c in results["candidates"]] == [c["id"] for c in lineage["candidates"]]
  for name in ("ancestor", "squishednet"):
    fp32 = bench["models"][name]["artefacts"]["tflite_fp32"]
    assert results["models"][name]["tflite_fp32_bytes"] == fp32["bytes"]
    assert results["models"][name]["litert_images_per_sec"]["1"] == fp32["batches"]["1"][
        "images_per_sec_p50"]
  speedup = squished["speedup_vs_ancestor"]["1"]
  ratio = (squished["litert_images_per_sec"]["1"] /
           results["models"]["ancestor"]["litert_images_per_sec"]["1"])
  assert speedup == pytest.approx(ratio)


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
