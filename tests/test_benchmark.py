"""Benchmark: artefacts found and skipped, bytes, accuracy agreement, timing shape, errors, main,
and speed-ups that come from the interleaved pairs (on fake timings; no timing is asserted)."""

import json
import os
import shutil

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from squish_tf import benchmark as benchmark_lib
from squish_tf import data as data_lib
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import models
from squish_tf import spec as spec_lib

TINY = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=3, conv1_filters=8,
                        fires=(spec_lib.FireSpec(4, 8, 8),), pool_after=(1,), dropout_rate=0.0,
                        classifier_activation="linear", kernel_initializer="he_uniform",
                        classifier_initializer="glorot_uniform")
# No timing assertions beyond positivity and ordering, so the runs can be short.
FAST = benchmark_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=3,
                                     warmup_runs=1, eval_batch_size=16, pair_rounds=3,
                                     pair_round_seconds=0.005)
N_IMAGES = 40


class _UInt8Classifier(tf.Module):
  """A SavedModel as the export writes it: serving_default takes uint8 pixels."""

  def __init__(self, model):
    super().__init__()
    self.model = model

  @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8, name="images")])
  def serve(self, images):
    return {"probabilities": self.model(tf.cast(images, tf.float32), training=False)}


def _tflite_int8(model):
  rng = np.random.default_rng(1)

  def representative():
    for _ in range(8):
      yield [rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)]

  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = representative
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  converter.inference_input_type = tf.uint8
  converter.inference_output_type = tf.int8
  return converter.convert()


@pytest.fixture(scope="module")
def model_and_export(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  model = models.build_model(TINY, seed=0)
  model_dir = str(root / "ancestor")
  model_io.write_model_dir(model_dir, model, TINY, metrics_lib.spec_metrics(TINY))
  export_dir = str(root / "export")
  os.makedirs(export_dir)
  model_io.write_bytes(os.path.join(export_dir, "model_fp32.tflite"),
                       tf.lite.TFLiteConverter.from_keras_model(model).convert())
  model_io.write_bytes(os.path.join(export_dir, "model_int8.tflite"), _tflite_int8(model))
  module = _UInt8Classifier(model)
  tf.saved_model.save(module, os.path.join(export_dir, "saved_model"),
                      signatures={"serving_default": module.serve})
  model_io.write_text(os.path.join(export_dir, "labels.txt"), "a\nb\nc\n")
  return model_dir, export_dir


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (N_IMAGES, 32, 32, 3)).astype(np.float32)
  labels = rng.integers(0, 3, N_IMAGES).astype(np.int32)
  return pixels, labels


@pytest.fixture(scope="module")
def result(model_and_export, images):
  model_dir, export_dir = model_and_export
  return benchmark_lib.benchmark_models(
      {"ancestor": {"model_dir": model_dir, "export_dir": export_dir}}, *images, FAST)


def test_every_artefact_is_measured(result, model_and_export):
  model_dir, export_dir = model_and_export
  entry = result["models"]["ancestor"]
  assert list(entry["artefacts"]) == ["keras", "saved_model", "tflite_fp32", "tflite_int8"]
  assert entry["missing"] == ["tflite_fp16", "tflite_dynamic", "tflite_qat_int8"]
  assert (entry["params"], entry["macs"]) == (TINY.params(), TINY.macs())
  assert entry["image_size"] == [32, 32, 3]
  assert entry["reference_artefact"] == "keras"
  arts = entry["artefacts"]
  assert arts["keras"]["bytes"] == os.path.getsize(os.path.join(model_dir, "model.keras"))
  assert arts["tflite_fp32"]["bytes"] == os.path.getsize(
      os.path.join(export_dir, "model_fp32.tflite"))
  saved_model_bytes = sum(os.path.getsize(os.path.join(root, f))
                          for root, _, files in os.walk(os.path.join(export_dir, "saved_model"))
                          for f in files)
  assert arts["saved_model"]["bytes"] == saved_model_bytes
  assert arts["tflite_int8"]["input"]["dtype"] == "uint8"
  assert arts["saved_model"]["input"] == {"dtype": "uint8"}
  for name, art in arts.items():
    assert 0.0 <= art["top1"] <= 1.0, name
    assert 0.0 <= art["agreement"] <= 1.0, name
    assert set(art["batches"]) == {"1", "4"}, name
    for stats in art["batches"].values():
      latency = stats["latency_ms"]
      assert stats["images_per_sec"] > 0 and stats["images_per_sec_p50"] > 0
      assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
      assert stats["runs"] >= FAST.min_runs


def test_float_artefacts_agree_with_keras(result):
  arts = result["models"]["ancestor"]["artefacts"]
  # Same weights, same uint8 pixels: the float conversions predict the same classes.
  assert arts["saved_model"]["top1"] == arts["keras"]["top1"]
  assert arts["tflite_fp32"]["top1"] == arts["keras"]["top1"]
  assert arts["tflite_fp32"]["agreement"] == 1.0
  assert arts["saved_model"]["agreement"] == 1.0


def test_int8_input_is_quantized_and_output_dequantized(model_and_export, images, result):
  model_dir, export_dir = model_and_export
  config = benchmark_lib.BenchmarkConfig(batch_sizes=(2,), min_seconds=0.0, min_runs=1,
                                         warmup_runs=0)
  runner = benchmark_lib._load_runner("tflite_int8", os.path.join(export_dir, "model_int8.tflite"),
                                      config)
  pixels = data_lib.as_pixels(images[0][:5])
  probabilities = runner.probabilities(runner.invoke(runner.feed(pixels)))
  assert probabilities.dtype == np.float32
  # Dequantized softmax outputs close to the float model's on the same pixels.
  model, _, _ = model_io.load_model_dir(model_dir)
  expected = model.predict_on_batch(pixels.astype(np.float32))
  np.testing.assert_allclose(probabilities, expected, atol=0.05)
  assert result["models"]["ancestor"]["artefacts"]["tflite_int8"]["agreement"] >= 0.8


def test_json_round_trip_and_table(result, tmp_path):
  path = str(tmp_path / "benchmark.json")
  benchmark_lib.write_benchmark(path, result)
  assert os.listdir(tmp_path) == ["benchmark.json"]  # no temporary left behind
  loaded = benchmark_lib.read_benchmark(path)
  assert loaded == json.loads(json.dumps(result))
  settings = loaded["settings"]
  assert settings["batch_sizes"] == [1, 4] and settings["eval_images"] == N_IMAGES
  assert settings["machine"]["cpu_count"] >= 1
  table = benchmark_lib.format_table(loaded)
  for text in ("ancestor", "keras", "saved_model", "tflite_int8", "tflite_fp16", "not exported",
               "b4 img/s"):
    assert text in table
  keras_top1 = f"{100 * loaded['models']['ancestor']['artefacts']['keras']['top1']:.2f}"
  assert keras_top1 in table


def test_formats_filter_and_missing_formats(model_and_export, images, tmp_path):
  model_dir, export_dir = model_and_export
  only_fp32 = str(tmp_path / "export")
  os.makedirs(only_fp32)
  shutil.copy(os.path.join(export_dir, "model_fp32.tflite"), only_fp32)
  config = benchmark_lib.BenchmarkConfig(batch_sizes=(2,), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, formats=("tflite_*",))
  entry = benchmark_lib.benchmark_model(model_dir, only_fp32, *images, config)
  assert list(entry["artefacts"]) == ["tflite_fp32"]
  assert entry["missing"] == ["tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_qat_int8"]
  assert entry["reference_artefact"] == "tflite_fp32"
  # Without an export dir only the Keras model is timed; without images, no top-1.
  entry = benchmark_lib.benchmark_model(model_dir, None, config=benchmark_lib.BenchmarkConfig(
      batch_sizes=(1,), min_seconds=0.0, min_runs=2, warmup_runs=0))
  assert list(entry["artefacts"]) == ["keras"]
  assert entry["artefacts"]["keras"]["top1"] is None
  assert entry["artefacts"]["keras"]["batches"]["1"]["images_per_sec"] > 0


def test_clear_errors(model_and_export, images, tmp_path):
  model_dir, export_dir = model_and_export
  with pytest.raises(ValueError, match="does not exist"):
    benchmark_lib.find_artefacts(model_dir, str(tmp_path / "nowhere"))
  empty = tmp_path / "empty_export"
  empty.mkdir()
  (empty / "labels.txt").write_text("a\n")
  with pytest.raises(ValueError, match=r"holds nothing to benchmark.*labels\.txt"):
    benchmark_lib.find_artefacts(model_dir, str(empty))
  with pytest.raises(ValueError, match=r"No artefact matches formats \['onnx'\].*tflite_fp32"):
    benchmark_lib.find_artefacts(model_dir, export_dir, ["onnx"])
  with pytest.raises(ValueError, match=r"takes 32x32 images .* 24x24.*--image_size=32"):
    benchmark_lib.benchmark_model(model_dir, None, np.zeros((2, 24, 24, 3), np.uint8), config=FAST)
  with pytest.raises(ValueError, match="2 images but 3 labels"):
    benchmark_lib.benchmark_model(model_dir, None, images[0][:2], images[1][:3], config=FAST)
  with pytest.raises(ValueError, match=r"batch sizes must be positive integers, got 0"):
    benchmark_lib.BenchmarkConfig(batch_sizes=(1, 0))


def test_two_models_share_images_and_speedups(model_and_export, images):
  model_dir, export_dir = model_and_export
  config = benchmark_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, formats=("keras", "tflite_fp32"),
                                         pair_rounds=3, pair_round_seconds=0.005,
                                         pair_max_invokes=20)
  where = {"model_dir": model_dir, "export_dir": export_dir}
  result = benchmark_lib.benchmark_models({"ancestor": where, "squishednet": where}, *images,
                                          config)
  # The two fp32 files ran interleaved, one session per batch size.
  name = "squishednet/tflite_fp32 vs ancestor/tflite_fp32"
  assert list(result["pairs"]) == [name]
  for size in ("1", "4"):
    pair = result["pairs"][name][size]
    assert pair["rounds"] == 3 and len(pair["ratios"]) == 3
    assert pair["ratio_min"] <= pair["ratio_median"] <= pair["ratio_max"]
    assert pair["ratio_median"] == sorted(pair["ratios"])[1]
    session = result["interleaved"]["batches"][size]
    assert list(session["artefacts"]) == ["ancestor/tflite_fp32", "squishednet/tflite_fp32"]
    assert all(1 <= n <= 20 for n in session["invokes"].values())
    assert set(session["load_average"]) == {"start", "end"} and session["errors"] == {}
    stats = session["artefacts"]["ancestor/tflite_fp32"]["images_per_sec"]
    assert stats["min"] <= stats["q1"] <= stats["median"] <= stats["q3"] <= stats["max"]
  assert result["interleaved"]["rounds"] == 3 and result["interleaved"]["num_threads"] == 2
  assert result["version"] == benchmark_lib.BENCHMARK_VERSION == 2
  fields = benchmark_lib.litert_fields(result)
  assert fields["ancestor"]["speedup_vs_ancestor"] == {"1": 1.0, "4": 1.0}
  assert fields["squishednet"]["speedup_vs_ancestor"]["1"] == result["pairs"][name]["1"][
      "ratio_median"]
  assert fields["squishednet"]["speedup_vs_ancestor_range"]["4"] == {
      "min": result["pairs"][name]["4"]["ratio_min"],
      "max": result["pairs"][name]["4"]["ratio_max"], "rounds": 3}
  assert name in benchmark_lib.format_pairs(result)
  assert fields["ancestor"]["tflite_fp32_bytes"] == os.path.getsize(
      os.path.join(export_dir, "model_fp32.tflite"))
  assert fields["ancestor"]["tflite_int8_bytes"] is None  # filtered out: not measured
  top1 = [result["models"][m]["artefacts"]["keras"]["top1"] for m in ("ancestor", "squishednet")]
  assert top1[0] == top1[1]


def test_time_runs_respects_minimums():
  calls = []
  latencies = benchmark_lib.time_runs(lambda: calls.append(1), min_seconds=0.0, min_runs=5,
                                      warmup_runs=2)
  assert len(latencies) == 5 and len(calls) == 7
  stats = benchmark_lib.latency_stats([0.001, 0.002, 0.004], batch_size=8)
  assert stats["images_per_sec"] == pytest.approx(8 * 3 / 0.007)
  assert stats["latency_ms"]["p50"] == pytest.approx(2.0)
  assert stats["images_per_sec_p50"] == pytest.approx(8 / 0.002)


def test_main_writes_benchmark_json(model_and_export, images, monkeypatch, capsys):
  from pipelines import benchmark as main_lib  # pylint: disable=g-import-not-at-top

  model_dir, export_dir = model_and_export
  pixels, labels = images
  loaded = {}

  def fake_load(config):
    loaded["config"] = config
    val_ds = tf.data.Dataset.from_tensor_slices((pixels, labels)).batch(16)
    info = data_lib.DatasetInfo("toy", ("a", "b", "c"), 0, N_IMAGES, config.image_size)
    return None, val_ds, info

  # raising=False: data.load may not exist yet while the data module is built.
  monkeypatch.setattr(data_lib, "load", fake_load, raising=False)
  output = os.path.join(os.path.dirname(model_dir), "out", "benchmark.json")
  was_parsed = flags.FLAGS.is_parsed()
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()  # so that only these flags count as given (`.present`)
    flags.FLAGS(["squish-benchmark", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                 "--batch_sizes=1,2", "--min_seconds=0", "--min_runs=2", "--eval_images=24",
                 "--formats=keras,tflite_fp32,tflite_int8", "--pair_rounds=2",
                 f"--output={output}"])
    main_lib.main([])
  if not was_parsed:
    flags.FLAGS.unparse_flags()  # leave the process's flags as other tests expect them
  assert loaded["config"].image_size == 32  # from the model's spec, not the flag's default
  result = model_io.read_json(output)
  entry = result["models"]["ancestor"]
  assert list(entry["artefacts"]) == ["keras", "tflite_fp32", "tflite_int8"]
  assert result["settings"]["eval_images"] == 24 and result["settings"]["batch_sizes"] == [1, 2]
  assert result["settings"]["pair_rounds"] == 2
  # The int8 file's speed-up over fp32, measured interleaved.
  pair = "ancestor/tflite_int8 vs ancestor/tflite_fp32"
  assert list(result["pairs"]) == [pair]
  assert {size: stats["rounds"] for size, stats in result["pairs"][pair].items()} == {"1": 2,
                                                                                    "2": 2}
  out = capsys.readouterr().out
  assert "tflite_fp32" in out and pair in out


# -- speed-ups come from the pairs (fake timings) -------------------------------------


def _fake_benchmark():
  """A benchmark dict whose pairs disagree with the separately timed throughputs.

  Timed alone, the SquishedNet's fp32 file gave 1000 img/s and the ancestor's
  800 (1.25x); interleaved, the per-round ratios were [1.5, 1.7, 1.6] (median
  1.6). int8: 2000 img/s alone (2.5x), interleaved [2.9, 3.1, 3.0].
  """

  def artefact(bytes_, speeds):
    return {"path": "x.tflite", "bytes": bytes_, "top1": 0.9, "agreement": 1.0,
            "batches": {size: {"images_per_sec": ips, "images_per_sec_p50": ips}
                        for size, ips in speeds.items()}}

  def pair(ratios):
    return {"ratio_median": float(np.median(ratios)), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "rounds": len(ratios), "ratios": ratios}

  return {
      "version": 2, "settings": {"machine": {"cpu_count": 2}, "num_threads": 2},
      "models": {
          "ancestor": {"artefacts": {"tflite_fp32": artefact(3_000_000, {"1": 800.0}),
                                     "tflite_int8": artefact(800_000, {"1": 1200.0})}},
          "squishednet": {"artefacts": {"tflite_fp32": artefact(600_000, {"1": 1000.0}),
                                        "tflite_int8": artefact(170_000, {"1": 2000.0})}},
          "width_scaled": {"artefacts": {"tflite_fp32": artefact(610_000, {"1": 900.0})}},
      },
      "pairs": {
          "ancestor/tflite_int8 vs ancestor/tflite_fp32": {"1": pair([1.8, 1.9, 2.0])},
          "squishednet/tflite_fp32 vs ancestor/tflite_fp32": {"1": pair([1.5, 1.7, 1.6])},
          "squishednet/tflite_int8 vs ancestor/tflite_fp32": {"1": pair([2.9, 3.1, 3.0])},
          # width_scaled's pair was not measured: no speed-up, not 900 / 800.
      },
  }


def test_comparison_pairs_put_every_file_against_the_ancestors_fp32():
  models = _fake_benchmark()["models"]
  models["squishednet"]["artefacts"]["keras"] = {"path": "m.keras"}
  assert benchmark_lib.comparison_pairs(models) == [
      ("ancestor/tflite_int8", "ancestor/tflite_fp32"),
      ("squishednet/tflite_fp32", "ancestor/tflite_fp32"),
      ("squishednet/tflite_int8", "ancestor/tflite_fp32"),
      ("width_scaled/tflite_fp32", "ancestor/tflite_fp32")]
  assert benchmark_lib.comparison_pairs(models, reference="nobody") == []
  with pytest.raises(ValueError, match=r"'squishednet/keras' is not a benchmarked \.tflite"):
    benchmark_lib.measure_model_pairs(models, [("squishednet/keras", "ancestor/tflite_fp32")])


def test_litert_fields_take_speedups_from_the_pairs():
  result = _fake_benchmark()
  fp32 = benchmark_lib.litert_fields(result, statistic="images_per_sec_p50")
  assert fp32["squishednet"]["litert_images_per_sec"] == {"1": 1000.0}
  assert fp32["squishednet"]["speedup_vs_ancestor"] == {"1": pytest.approx(1.6)}  # not 1.25
  assert fp32["squishednet"]["speedup_vs_ancestor_range"] == {
      "1": {"min": 1.5, "max": 1.7, "rounds": 3}}
  assert fp32["ancestor"]["speedup_vs_ancestor"] == {"1": 1.0}
  assert fp32["width_scaled"]["speedup_vs_ancestor"] == {"1": None}  # unmeasured, not divided
  int8 = benchmark_lib.litert_fields(result, artefact="tflite_int8",
                                     reference_artefact="tflite_fp32")
  assert int8["squishednet"]["speedup_vs_ancestor"] == {"1": pytest.approx(3.0)}  # not 2.5
  assert int8["ancestor"]["speedup_vs_ancestor"] == {"1": pytest.approx(1.9)}  # not 1.5


def test_results_and_report_show_the_pairs_median_with_min_max(tmp_path):
  from squish_tf import job  # pylint: disable=g-import-not-at-top
  from squish_tf import report as report_lib  # pylint: disable=g-import-not-at-top

  dirs = {}
  for name, params in (("ancestor", 727_626), ("squishednet", 140_000)):
    dirs[name] = str(tmp_path / name)
    model_io.write_json(os.path.join(dirs[name], model_io.METRICS_FILE),
                        {"params": params, "size_mb": params * 4 / 1e6, "macs": 10 * params,
                         "top1": 0.9, "train_epochs": 1, "train_images": 100})
  dirs["width_scaled"] = str(tmp_path / "width_scaled")
  model_io.write_json(os.path.join(dirs["width_scaled"], model_io.METRICS_FILE),
                      {"params": 141_000, "size_mb": 0.564, "macs": 1_400_000, "top1": 0.88})
  lineage = {"ancestor": {"dir": dirs["ancestor"], "params": 727_626, "size_mb": 2.91,
                          "macs": 7_276_260, "top1": 0.9},
             "candidates": [], "generations": [], "winner": "gen_001/cand_00",
             "stop_reason": "target_met"}
  info = data_lib.DatasetInfo("shapes10", tuple("abcdefghij"), 100, 20, 64, test_count=20)
  results = job.build_results(
      job.JobConfig(run_dir=str(tmp_path)), info, data_lib.DataConfig(image_size=64), lineage,
      dirs["squishednet"], {"width_scaled": dirs["width_scaled"]}, _fake_benchmark(),
      {"models": {}}, {}, None)
  squished = results["models"]["squishednet"]
  assert squished["speedup_vs_ancestor"] == {"1": pytest.approx(1.6)}
  assert squished["speedup_vs_ancestor_range"]["1"] == {"min": 1.5, "max": 1.7, "rounds": 3}
  assert squished["int8_speedup_vs_ancestor"] == {"1": pytest.approx(3.0)}
  assert squished["int8_speedup_vs_ancestor_range"]["1"]["max"] == 3.1
  assert squished["litert_images_per_sec"] == {"1": 1000.0}
  assert squished["litert_int8_images_per_sec"] == {"1": 2000.0}
  assert results["models"]["width_scaled"]["speedup_vs_ancestor"] == {"1": None}
  markdown = report_lib.render_markdown(results)
  header = next(line for line in markdown.splitlines() if line.startswith("| Model |"))
  header = [c.strip() for c in header.strip("|").split("|")]
  rows = {}
  for line in markdown.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and len(cells) == len(header):
      rows[cells[0]] = dict(zip(header, cells))
  squished_row = next(row for label, row in rows.items() if label.startswith("**SquishedNet"))
  assert squished_row["Speed-up, batch 1"] == "1.60× [1.50–1.70]"
  assert squished_row["int8 speed-up, batch 1"] == "3.00× [2.90–3.10]"
  ancestor_row = next(row for label, row in rows.items() if label.startswith("Ancestor"))
  assert ancestor_row["Speed-up, batch 1"] == "1.00×"
  assert ancestor_row["int8 speed-up, batch 1"] == "1.90× [1.80–2.00]"
  width_row = next(row for label, row in rows.items() if label.startswith("Uniform"))
  assert width_row["Speed-up, batch 1"] == "–"  # not 900 / 800 = 1.12×
  assert "1.25×" not in markdown and "1.12×" not in markdown
  assert "**1.60× faster** than the ancestor" in markdown
  assert "1.50–1.70× over 3 interleaved rounds" in markdown
  assert "median of the per-round ratios" in markdown
  assert "1.60× speed b1" in report_lib.format_results_summary(results)
