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

from squish_tf import files as files_lib
from squish_tf.bench import artefacts as artefacts_lib
from squish_tf.bench import benchmark as benchmark_lib
from squish_tf.bench import pairs as pairs_lib
from squish_tf.bench import comparisons as comparisons_lib
from squish_tf.bench import config as bench_config_lib
from squish_tf.bench import runners as runners_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.job import results as job_results_lib
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.report import console as console_lib
from squish_tf.runtime import timing as timing_lib

TINY = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=3, conv1_filters=8,
                        fires=(spec_lib.FireSpec(4, 8, 8),), pool_after=(1,), dropout_rate=0.0,
                        classifier_activation="linear", kernel_initializer="he_uniform",
                        classifier_initializer="glorot_uniform")
# No timing assertions beyond positivity and ordering, so the runs can be short.
FAST = bench_config_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=3,
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
  files_lib.write_bytes(os.path.join(export_dir, "model_fp32.tflite"),
                       tf.lite.TFLiteConverter.from_keras_model(model).convert())
  files_lib.write_bytes(os.path.join(export_dir, "model_int8.tflite"), _tflite_int8(model))
  module = _UInt8Classifier(model)
  tf.saved_model.save(module, os.path.join(export_dir, "saved_model"),
                      signatures={"serving_default": module.serve})
  files_lib.write_text(os.path.join(export_dir, "labels.txt"), "a\nb\nc\n")
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
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(2,), min_seconds=0.0, min_runs=1,
                                         warmup_runs=0)
  runner = runners_lib.load_runner("tflite_int8", os.path.join(export_dir, "model_int8.tflite"),
                                   config.num_threads)
  pixels = images_lib.as_pixels(images[0][:5])
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
  loaded = files_lib.read_json(path)
  assert loaded == json.loads(json.dumps(result))
  settings = loaded["settings"]
  assert settings["batch_sizes"] == [1, 4] and settings["eval_images"] == N_IMAGES
  assert settings["machine"]["cpu_count"] >= 1
  table = console_lib.format_table(loaded)
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
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(2,), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, formats=("tflite_*",))
  entry = benchmark_lib.benchmark_model(model_dir, only_fp32, *images, config)
  assert list(entry["artefacts"]) == ["tflite_fp32"]
  assert entry["missing"] == ["tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_qat_int8"]
  assert entry["reference_artefact"] == "tflite_fp32"
  # Without an export dir only the Keras model is timed; without images, no top-1.
  entry = benchmark_lib.benchmark_model(model_dir, None, config=bench_config_lib.BenchmarkConfig(
      batch_sizes=(1,), min_seconds=0.0, min_runs=2, warmup_runs=0))
  assert list(entry["artefacts"]) == ["keras"]
  assert entry["artefacts"]["keras"]["top1"] is None
  assert entry["artefacts"]["keras"]["batches"]["1"]["images_per_sec"] > 0


def test_clear_errors(model_and_export, images, tmp_path):
  model_dir, export_dir = model_and_export
  with pytest.raises(ValueError, match="does not exist"):
    artefacts_lib.find_artefacts(model_dir, str(tmp_path / "nowhere"))
  empty = tmp_path / "empty_export"
  empty.mkdir()
  (empty / "labels.txt").write_text("a\n")
  with pytest.raises(ValueError, match=r"holds nothing to benchmark.*labels\.txt"):
    artefacts_lib.find_artefacts(model_dir, str(empty))
  with pytest.raises(ValueError, match=r"No artefact matches formats \['onnx'\].*tflite_fp32"):
    artefacts_lib.find_artefacts(model_dir, export_dir, ["onnx"])
  with pytest.raises(ValueError, match=r"takes 32x32 images .* 24x24.*--image_size=32"):
    benchmark_lib.benchmark_model(model_dir, None, np.zeros((2, 24, 24, 3), np.uint8), config=FAST)
  with pytest.raises(ValueError, match="2 images but 3 labels"):
    benchmark_lib.benchmark_model(model_dir, None, images[0][:2], images[1][:3], config=FAST)
  with pytest.raises(ValueError, match=r"batch sizes must be positive integers, got 0"):
    bench_config_lib.BenchmarkConfig(batch_sizes=(1, 0))


def test_two_models_share_images_and_speedups(model_and_export, images):
  model_dir, export_dir = model_and_export
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(1, 4), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, formats=("keras", "tflite_fp32"),
                                         pair_rounds=3, pair_round_seconds=0.005,
                                         pair_max_invokes=20, pair_resolutions=(48, 32))
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
  assert result["interleaved"]["image_size"] == 32  # the run's resolution, beside 48 px
  assert result["version"] == benchmark_lib.BENCHMARK_VERSION == 3
  # Again at 48 px, the model rebuilt there (once: both names are one model dir); 32 px is
  # the files' own size, measured above.
  assert list(result["resolutions"]) == ["48"]
  at48 = result["resolutions"]["48"]
  assert at48["image_size"] == 48 and at48["batch_sizes"] == [1] and at48["errors"] == {}
  assert set(at48["files"]) == {"ancestor/tflite_fp32", "squishednet/tflite_fp32"}
  assert list(at48["interleaved"]["batches"]) == ["1"]
  pair48 = at48["pairs"][name]["1"]
  assert pair48["rounds"] == 3 and pair48["ratio_median"] == sorted(pair48["ratios"])[1]
  assert f"{name}" in console_lib.format_pairs(result).split("at 48 px")[1]
  fields = job_results_lib.litert_fields(result)
  assert fields["ancestor"]["speedup_vs_ancestor"] == {"1": 1.0, "4": 1.0}
  assert fields["squishednet"]["speedup_vs_ancestor"]["1"] == result["pairs"][name]["1"][
      "ratio_median"]
  assert fields["squishednet"]["speedup_at_resolution"] == {"48": {"1": pair48["ratio_median"]}}
  assert fields["ancestor"]["speedup_at_resolution"] == {"48": {"1": 1.0}}
  assert fields["squishednet"]["speedup_vs_ancestor_range"]["4"] == {
      "min": result["pairs"][name]["4"]["ratio_min"],
      "max": result["pairs"][name]["4"]["ratio_max"], "rounds": 3}
  assert name in console_lib.format_pairs(result)
  assert fields["ancestor"]["tflite_fp32_bytes"] == os.path.getsize(
      os.path.join(export_dir, "model_fp32.tflite"))
  assert fields["ancestor"]["tflite_int8_bytes"] is None  # filtered out: not measured
  top1 = [result["models"][m]["artefacts"]["keras"]["top1"] for m in ("ancestor", "squishednet")]
  assert top1[0] == top1[1]


def test_the_jobs_models_take_their_own_formats_pairs_and_settings(model_and_export, images):
  """What the main job's benchmark stage passes: each model's artefacts, pairs against the
  ancestor chosen from what was measured, and its own settings, recorded as given."""
  model_dir, export_dir = model_and_export
  where = {"model_dir": model_dir, "export_dir": export_dir}
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(1,), min_seconds=0.0, min_runs=2,
                                            warmup_runs=0, pair_rounds=3,
                                            pair_round_seconds=0.005, pair_max_invokes=20,
                                            pair_resolutions=(32,))
  measured = []

  def against_the_ancestor(models):
    measured.append(list(models))
    return comparisons_lib.comparison_pairs(models, reference="ancestor")

  run_settings = dict(benchmark_lib.settings(config, eval_images=N_IMAGES), eval_split="test")
  result = benchmark_lib.benchmark_models(
      {"squishednet": dict(where, formats=None),
       "ancestor": dict(where, formats=("keras", "tflite_fp32"))},
      *images, config, pairs=against_the_ancestor, run_settings=run_settings)
  assert list(result["models"]["squishednet"]["artefacts"]) == [
      "keras", "saved_model", "tflite_fp32", "tflite_int8"]
  assert list(result["models"]["ancestor"]["artefacts"]) == ["keras", "tflite_fp32"]
  assert measured == [["squishednet", "ancestor"]]
  assert list(result["pairs"]) == ["squishednet/tflite_fp32 vs ancestor/tflite_fp32",
                                   "squishednet/tflite_int8 vs ancestor/tflite_fp32"]
  assert result["settings"] is run_settings
  assert "load_average_1min_end" not in run_settings["machine"]
  assert list(run_settings)[-1] == "eval_split"
  with pytest.raises(ValueError, match=r"unknown keys \['format'\]; expected model_dir"):
    benchmark_lib.benchmark_models({"ancestor": dict(where, format=None)}, *images, config)


def test_time_runs_respects_minimums():
  calls = []
  latencies = timing_lib.time_runs(lambda: calls.append(1), min_seconds=0.0, min_runs=5,
                                      warmup_runs=2)
  assert len(latencies) == 5 and len(calls) == 7
  stats = timing_lib.latency_stats([0.001, 0.002, 0.004], batch_size=8)
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
    info = data_config_lib.DatasetInfo("toy", ("a", "b", "c"), 0, N_IMAGES, config.image_size)
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
  result = files_lib.read_json(output)
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


# -- a model dir without spec.json (the MobileNetV3 baseline's kind) -------------------

# Hand-counted: conv 16x16x(3x3x3x8) + depthwise 16x16x(3x3x8) + pointwise 16x16x(8x16) + dense
# 16x3 MACs; deployed params: the kernels, one folded bias per batch-norm channel, dense 16x3+3.
MOBILE_MACS = 256 * 216 + 256 * 72 + 256 * 128 + 48
MOBILE_PARAMS = 216 + 8 + 72 + 8 + 128 + 16 + 51


def _mobile_like():
  """A tiny MobileNetV3-like Keras model: bias-free convolutions, batch norm, hard-swish."""
  import keras  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv")(x)
  x = keras.layers.BatchNormalization(name="conv_bn")(x)
  x = keras.layers.Activation("hard_swish")(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
  x = keras.layers.BatchNormalization(name="depthwise_bn")(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.Conv2D(16, 1, use_bias=False, name="project")(x)
  x = keras.layers.BatchNormalization(name="project_bn")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
  return keras.Model(inputs, outputs, name="mobile_like")


@pytest.fixture(scope="module")
def mobile_dir(tmp_path_factory):
  """A model dir as the job writes a Keras-applications baseline: model.keras and metrics.json."""
  directory = str(tmp_path_factory.mktemp("baselines") / "mobilenet_v3_small")
  model = _mobile_like()
  os.makedirs(os.path.join(directory, "export"))
  model_io.save_keras(model, os.path.join(directory, model_io.MODEL_FILE))
  files_lib.write_json(os.path.join(directory, model_io.METRICS_FILE), {"top1": 0.5})
  files_lib.write_bytes(os.path.join(directory, "export", "model_fp32.tflite"),
                       tf.lite.TFLiteConverter.from_keras_model(model).convert())
  return directory


def test_a_model_dir_without_spec_is_described_from_its_keras_model(mobile_dir, tmp_path):
  assert not os.path.exists(os.path.join(mobile_dir, model_io.SPEC_FILE))
  described = artefacts_lib.describe_model(mobile_dir)
  assert described == {"params": MOBILE_PARAMS, "size_mb": MOBILE_PARAMS * 4 / 1e6,
                       "macs": MOBILE_MACS, "image_size": [32, 32, 3], "num_classes": 3,
                       "source": "model.keras"}
  # Only an export: input and classes from its .tflite file, sizes unknown.
  only_export = tmp_path / "exported_only"
  shutil.copytree(os.path.join(mobile_dir, "export"), only_export / "export")
  described = artefacts_lib.describe_model(str(only_export), str(only_export / "export"))
  assert (described["image_size"], described["num_classes"]) == ([32, 32, 3], 3)
  assert (described["params"], described["macs"]) == (None, None)
  # No model at all: say what the dir holds and what to pass.
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match=r"holds no model: expected model\.keras .*\['notes\.txt'\]"
                     r".*baselines/<name>/"):
    artefacts_lib.describe_model(str(empty))
  with pytest.raises(ValueError, match=r"Nothing to benchmark: .* holds \['notes\.txt'\]"):
    benchmark_lib.benchmark_model(str(empty), None, config=FAST)
  with pytest.raises(ValueError, match="does not exist; pass the --model_dir of a trained model"):
    artefacts_lib.describe_model(str(tmp_path / "nowhere"))


def test_a_model_dir_without_spec_is_benchmarked(mobile_dir, images):
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(2,), min_seconds=0.0, min_runs=2,
                                         warmup_runs=0, pair_rounds=0)
  entry = benchmark_lib.benchmark_model(mobile_dir, os.path.join(mobile_dir, "export"), *images,
                                        config)
  assert list(entry["artefacts"]) == ["keras", "tflite_fp32"]
  assert (entry["params"], entry["size_mb"], entry["macs"]) == (
      MOBILE_PARAMS, MOBILE_PARAMS * 4 / 1e6, MOBILE_MACS)
  assert entry["image_size"] == [32, 32, 3]
  assert entry["artefacts"]["tflite_fp32"]["agreement"] == 1.0
  with pytest.raises(ValueError, match=r"takes 32x32 images .* 24x24"):
    benchmark_lib.benchmark_model(mobile_dir, None, np.zeros((2, 24, 24, 3), np.uint8),
                                  config=config)


def test_main_benchmarks_a_model_dir_without_spec(mobile_dir, images, monkeypatch):
  from pipelines import benchmark as main_lib  # pylint: disable=g-import-not-at-top

  pixels, labels = images
  loaded = {}

  def fake_load(config):
    loaded["config"] = config
    val_ds = tf.data.Dataset.from_tensor_slices((pixels, labels)).batch(16)
    return None, val_ds, data_config_lib.DatasetInfo("toy", ("a", "b", "c"), 0, N_IMAGES,
                                              config.image_size)

  monkeypatch.setattr(data_lib, "load", fake_load, raising=False)
  was_parsed = flags.FLAGS.is_parsed()
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["squish-benchmark", f"--model_dir={mobile_dir}", "--image_size=64",
                 "--batch_sizes=1", "--min_seconds=0", "--min_runs=2", "--eval_images=8",
                 "--pair_rounds=0"])
    with pytest.raises(ValueError, match=r"--image_size=64 but .* takes 32x32 images"):
      main_lib.main([])
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["squish-benchmark", f"--model_dir={mobile_dir}", "--batch_sizes=1",
                 "--min_seconds=0", "--min_runs=2", "--eval_images=8", "--pair_rounds=0"])
    main_lib.main([])
  if not was_parsed:
    flags.FLAGS.unparse_flags()
  assert loaded["config"].image_size == 32  # read off the Keras model
  # Default export dir <model_dir>/export, and benchmark.json beside its files.
  result = files_lib.read_json(os.path.join(mobile_dir, "export", "benchmark.json"))
  entry = result["models"]["mobilenet_v3_small"]
  assert list(entry["artefacts"]) == ["keras", "tflite_fp32"]
  assert (entry["params"], entry["macs"]) == (MOBILE_PARAMS, MOBILE_MACS)
  assert entry["artefacts"]["keras"]["top1"] == entry["artefacts"]["tflite_fp32"]["top1"]


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
      # At 224 px (fp32 rebuilt): alone-ish medians 70 and 280 img/s (4x), interleaved
      # ratios [3.0, 3.4, 3.2]; width_scaled could not be rebuilt there.
      "resolutions": {"224": {
          "image_size": 224, "batch_sizes": [1], "errors": {"width_scaled": "no 224"},
          "files": {"ancestor/tflite_fp32": {"bytes": 1}, "squishednet/tflite_fp32": {"bytes": 1}},
          "interleaved": {"rounds": 3, "batches": {"1": {"artefacts": {
              "ancestor/tflite_fp32": {"images_per_sec": {"median": 70.0}},
              "squishednet/tflite_fp32": {"images_per_sec": {"median": 280.0}}}}}},
          "pairs": {
              "squishednet/tflite_fp32 vs ancestor/tflite_fp32": {"1": pair([3.0, 3.4, 3.2])},
              "width_scaled/tflite_fp32 vs ancestor/tflite_fp32": {"1": {"error": "no 224"}}},
      }},
  }


def test_comparison_pairs_put_every_file_against_the_ancestors_fp32():
  models = _fake_benchmark()["models"]
  models["squishednet"]["artefacts"]["keras"] = {"path": "m.keras"}
  assert comparisons_lib.comparison_pairs(models) == [
      ("ancestor/tflite_int8", "ancestor/tflite_fp32"),
      ("squishednet/tflite_fp32", "ancestor/tflite_fp32"),
      ("squishednet/tflite_int8", "ancestor/tflite_fp32"),
      ("width_scaled/tflite_fp32", "ancestor/tflite_fp32")]
  assert comparisons_lib.comparison_pairs(models, reference="nobody") == []
  with pytest.raises(ValueError, match=r"'squishednet/keras' is not a benchmarked \.tflite"):
    comparisons_lib.measure_model_pairs(models, [("squishednet/keras", "ancestor/tflite_fp32")])


def test_litert_fields_take_speedups_from_the_pairs():
  result = _fake_benchmark()
  fp32 = job_results_lib.litert_fields(result, statistic="images_per_sec_p50")
  assert fp32["squishednet"]["litert_images_per_sec"] == {"1": 1000.0}
  assert fp32["squishednet"]["speedup_vs_ancestor"] == {"1": pytest.approx(1.6)}  # not 1.25
  assert fp32["squishednet"]["speedup_vs_ancestor_range"] == {
      "1": {"min": 1.5, "max": 1.7, "rounds": 3}}
  assert fp32["ancestor"]["speedup_vs_ancestor"] == {"1": 1.0}
  assert fp32["width_scaled"]["speedup_vs_ancestor"] == {"1": None}  # unmeasured, not divided
  int8 = job_results_lib.litert_fields(result, artefact="tflite_int8",
                                     reference_artefact="tflite_fp32")
  assert int8["squishednet"]["speedup_vs_ancestor"] == {"1": pytest.approx(3.0)}  # not 2.5
  assert int8["ancestor"]["speedup_vs_ancestor"] == {"1": pytest.approx(1.9)}  # not 1.5
  # At 224 px: the interleaved pair's median, not 280 / 70 = 4.
  assert fp32["squishednet"]["speedup_at_resolution"] == {"224": {"1": pytest.approx(3.2)}}
  assert fp32["squishednet"]["speedup_at_resolution_range"] == {
      "224": {"1": {"min": 3.0, "max": 3.4, "rounds": 3}}}
  assert fp32["squishednet"]["litert_images_per_sec_at_resolution"] == {"224": {"1": 280.0}}
  assert fp32["ancestor"]["speedup_at_resolution"] == {"224": {"1": 1.0}}
  assert fp32["width_scaled"]["speedup_at_resolution"] == {"224": {"1": None}}
  assert int8["squishednet"]["speedup_at_resolution"] == {}  # int8 is not rebuilt at 224


def test_results_and_report_show_the_pairs_median_with_min_max(tmp_path):
  from squish_tf.job import config as job_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import results as job_results_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.report import markdown as report_lib  # pylint: disable=g-import-not-at-top

  dirs = {}
  for name, params in (("ancestor", 727_626), ("squishednet", 140_000)):
    dirs[name] = str(tmp_path / name)
    files_lib.write_json(os.path.join(dirs[name], model_io.METRICS_FILE),
                        {"params": params, "size_mb": params * 4 / 1e6, "macs": 10 * params,
                         "top1": 0.9, "train_epochs": 1, "train_images": 100})
  dirs["width_scaled"] = str(tmp_path / "width_scaled")
  files_lib.write_json(os.path.join(dirs["width_scaled"], model_io.METRICS_FILE),
                      {"params": 141_000, "size_mb": 0.564, "macs": 1_400_000, "top1": 0.88})
  lineage = {"ancestor": {"dir": dirs["ancestor"], "params": 727_626, "size_mb": 2.91,
                          "macs": 7_276_260, "top1": 0.9},
             "candidates": [], "generations": [], "winner": "gen_001/cand_00",
             "stop_reason": "target_met"}
  info = data_config_lib.DatasetInfo("shapes10", tuple("abcdefghij"), 100, 20, 64, test_count=20)
  results = job_results_lib.build_results(
      job_config_lib.JobConfig(run_dir=str(tmp_path)), info, data_config_lib.DataConfig(image_size=64), lineage,
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
  # The run's resolution and 224 px side by side, each from its own interleaved pair.
  assert header.index("Speed-up, 224 px, batch 1") == header.index("Speed-up, 64 px, batch 1") + 1
  assert squished_row["Speed-up, 64 px, batch 1"] == "1.60× [1.50–1.70]"
  assert squished_row["Speed-up, 224 px, batch 1"] == "3.20× [3.00–3.40]"
  assert squished["speedup_at_resolution"] == {"224": {"1": pytest.approx(3.2)}}
  assert squished_row["int8 speed-up, batch 1"] == "3.00× [2.90–3.10]"
  ancestor_row = next(row for label, row in rows.items() if label.startswith("Ancestor"))
  assert ancestor_row["Speed-up, 64 px, batch 1"] == "1.00×"
  assert ancestor_row["Speed-up, 224 px, batch 1"] == "1.00×"
  assert ancestor_row["int8 speed-up, batch 1"] == "1.90× [1.80–2.00]"
  width_row = next(row for label, row in rows.items() if label.startswith("Uniform"))
  assert width_row["Speed-up, 64 px, batch 1"] == "–"  # not 900 / 800 = 1.12×
  assert width_row["Speed-up, 224 px, batch 1"] == "–"  # not rebuilt
  assert "1.25×" not in markdown and "1.12×" not in markdown and "4.00×" not in markdown
  assert "**3.20×** at 224 px" in markdown and "3.00–3.40× over 3 interleaved rounds" in markdown
  assert "**1.60× faster** than the ancestor" in markdown
  assert "1.50–1.70× over 3 interleaved rounds" in markdown
  assert "median of the per-round ratios" in markdown
  assert "1.60× speed b1" in console_lib.format_results_summary(results)


# -- the same network at another resolution -------------------------------------------


def _tflite_probabilities(content, pixels):
  from squish_tf.runtime import litert  # pylint: disable=g-import-not-at-top
  return litert.LiteRTRunner(content, num_threads=1).predict(pixels)


def test_tflite_at_size_keeps_the_weights(model_and_export):
  from squish_tf.bench import pairs as speed_pairs  # pylint: disable=g-import-not-at-top

  model_dir, export_dir = model_and_export
  pixels = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  same = speed_pairs.tflite_at_size(model_dir, 32)
  exported = open(os.path.join(export_dir, "model_fp32.tflite"), "rb").read()
  np.testing.assert_allclose(_tflite_probabilities(same, pixels),
                             _tflite_probabilities(exported, pixels), atol=1e-5)
  # At 48 px: the spec's network at 48 px holding the same weights.
  bigger = speed_pairs.tflite_at_size(model_dir, 48)
  model, _, _ = model_io.load_model_dir(model_dir)
  twin = models.build_model(TINY.replace(input_shape=(48, 48, 3)))
  assert models.copy_weights_by_name(model, twin) > 0
  large = np.random.default_rng(3).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
  np.testing.assert_allclose(_tflite_probabilities(bigger, large),
                             twin.predict_on_batch(large.astype(np.float32)), atol=1e-5)


def test_foreign_models_resize_when_fully_convolutional(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top

  from squish_tf.bench import pairs as speed_pairs  # pylint: disable=g-import-not-at-top

  inputs = keras.Input((32, 32, 3))
  x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
  pooled = keras.layers.GlobalAveragePooling2D()(x)
  conv = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
  resized, stand_in = speed_pairs.resized_model(conv, None, 40)
  assert resized.input_shape == (None, 40, 40, 3) and stand_in.input_shape == (40, 40, 3)
  large = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
  for got, want in zip(resized.get_weights(), conv.get_weights()):
    np.testing.assert_array_equal(got, want)
  assert resized.predict_on_batch(large).shape == (2, 3)
  flat = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
  with pytest.raises(ValueError, match=r"cannot be rebuilt at 40x40.*--pair_resolutions"):
    speed_pairs.resized_model(flat, None, 40)
  with pytest.raises(ValueError, match="smaller than this network's minimum input"):
    speed_pairs.resized_model(models.build_model(TINY), TINY, 4)


def test_pairs_at_another_size_convert_each_model_once_and_record_failures(monkeypatch):
  result = _fake_benchmark()
  models_ = result["models"]
  for name in models_:
    models_[name]["model_dir"] = f"/runs/{name}"
    models_[name]["image_size"] = [64, 64, 3]
  converted = []

  def convert(model_dir, size):
    converted.append((model_dir, size))
    if model_dir.endswith("width_scaled"):
      raise ValueError("width_scaled cannot be rebuilt at 224x224: test")
    return b"tflite"

  timed = {}

  def fake_measure(files, pairs, batch_sizes, *args, **kwargs):
    timed.update(files=dict(files), pairs=list(pairs), batch_sizes=tuple(batch_sizes))
    return {"interleaved": {"batches": {}}, "pairs": {"s vs a": {"1": {"ratio_median": 2.0}}}}

  pairs = comparisons_lib.comparison_pairs(models_)
  monkeypatch.setattr(pairs_lib, "measure_pairs", fake_measure)
  entry = comparisons_lib.measure_pairs_at_size(models_, pairs, 224, FAST, convert=convert)
  # The files' own size is not measured again.
  assert comparisons_lib.measure_pairs_at_size(models_, pairs, 64, FAST, convert=convert) is None
  # Only fp32 against fp32; each model converted once, in pair order, reference first.
  assert converted == [("/runs/ancestor", 224), ("/runs/squishednet", 224),
                       ("/runs/width_scaled", 224)]
  assert timed["pairs"] == [("squishednet/tflite_fp32", "ancestor/tflite_fp32")]
  assert set(timed["files"]) == {"ancestor/tflite_fp32", "squishednet/tflite_fp32"}
  assert timed["batch_sizes"] == (1,)
  assert entry["errors"] == {"width_scaled": "width_scaled cannot be rebuilt at 224x224: test"}
  assert entry["pairs"]["width_scaled/tflite_fp32 vs ancestor/tflite_fp32"] == {
      "1": {"error": "width_scaled cannot be rebuilt at 224x224: test"}}
  assert entry["files"] == {"ancestor/tflite_fp32": {"bytes": 6},
                            "squishednet/tflite_fp32": {"bytes": 6}}


def test_pair_resolutions_config_and_flag():
  from squish_tf.job import flags as flag_defs  # pylint: disable=g-import-not-at-top

  assert bench_config_lib.BenchmarkConfig().pair_resolutions == (224,)
  assert bench_config_lib.BenchmarkConfig(pair_resolutions=[224, 224, 128]).pair_resolutions == (
      224, 128)
  with pytest.raises(ValueError, match=r"pair_resolutions must be positive image sizes"):
    bench_config_lib.BenchmarkConfig(pair_resolutions=(0,))
  assert flag_defs.pair_resolutions_from_flag(["run", "224"]) == (224,)
  assert flag_defs.pair_resolutions_from_flag(["run"]) == ()
  with pytest.raises(ValueError, match=r"--pair_resolutions takes 'run' and positive image sizes"):
    flag_defs.pair_resolutions_from_flag(["run", "big"])


def test_the_benchmark_tells_a_listener_and_the_console_words_it(model_and_export, images):
  """bench/ returns records as it goes; report/console turns them into the lines."""
  model_dir, export_dir = model_and_export
  events = []
  config = bench_config_lib.BenchmarkConfig(
      batch_sizes=(1,), min_seconds=0.0, min_runs=1, warmup_runs=0, pair_rounds=2,
      pair_round_seconds=0.002, pair_max_invokes=5, pair_resolutions=(),
      formats=("tflite_fp32", "tflite_int8"))
  result = benchmark_lib.benchmark_models(
      {"ancestor": {"model_dir": model_dir, "export_dir": export_dir}}, *images, config,
      listener=events.append)
  assert [event["event"] for event in events] == ["model", "artefact", "artefact", "pairs",
                                                   "pair"]
  assert events[1]["result"] is result["models"]["ancestor"]["artefacts"]["tflite_fp32"]
  name = "ancestor/tflite_int8 vs ancestor/tflite_fp32"
  assert (events[4]["batch_size"], events[4]["pair"]) == ("1", name)
  assert events[4]["stats"] is result["pairs"][name]["1"]
  lines = []
  words = console_lib.benchmark_listener(lines.append)
  for event in events + [{"event": "pairs", "image_size": 224, "rounds": 7, "num_threads": 2},
                         {"event": "rebuild_error", "model": "mobilenet_v3_small",
                          "image_size": 224, "error": "fixed input"}]:
    words(event)
  assert lines == [
      "ancestor:",
      console_lib.artefact_line("tflite_fp32", events[1]["result"]),
      console_lib.artefact_line("tflite_int8", events[2]["result"]),
      "speed-ups, interleaved (2 rounds, 2 threads):",
      f"  b1 {name}: {console_lib.format_ratio(events[4]['stats'])}",
      "speed-ups at 224 px, fp32 rebuilt with the same weights, interleaved (7 rounds, 2 "
      "threads):",
      "  mobilenet_v3_small at 224 px: fixed input"]
