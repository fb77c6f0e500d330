"""Benchmark: artefacts found and skipped, bytes, accuracy agreement, timing shape, errors, main."""

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
                                     warmup_runs=1, eval_batch_size=16)
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
  config = benchmark_lib.BenchmarkConfig(batch_sizes=(1,), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, formats=("keras", "tflite_fp32"))
  where = {"model_dir": model_dir, "export_dir": export_dir}
  result = benchmark_lib.benchmark_models({"ancestor": where, "squishednet": where}, *images,
                                          config)
  fields = benchmark_lib.litert_fields(result)
  assert fields["ancestor"]["speedup_vs_ancestor"] == {"1": 1.0}
  assert fields["squishednet"]["speedup_vs_ancestor"]["1"] > 0
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
                 "--formats=keras,tflite_fp32", f"--output={output}"])
    main_lib.main([])
  if not was_parsed:
    flags.FLAGS.unparse_flags()  # leave the process's flags as other tests expect them
  assert loaded["config"].image_size == 32  # from the model's spec, not the flag's default
  result = model_io.read_json(output)
  entry = result["models"]["ancestor"]
  assert list(entry["artefacts"]) == ["keras", "tflite_fp32"]
  assert result["settings"]["eval_images"] == 24 and result["settings"]["batch_sizes"] == [1, 2]
  assert "tflite_fp32" in capsys.readouterr().out
