"""The one LiteRT runner: its quantization rule, resizing, outputs, and that everyone uses it."""

import os

import numpy as np
import pytest
import tensorflow as tf

from squish_tf import export as export_lib
from squish_tf.bench import benchmark as benchmark_lib
from squish_tf.bench import config as bench_config_lib
from squish_tf.bench import pairs as speed_pairs
from squish_tf.bench import runners as runners_lib
from squish_tf.export import exporter
from squish_tf.export import tflite as tflite_lib
from squish_tf.net import models
from squish_tf.net import spec as spec_lib
from squish_tf.runtime import litert

TINY = spec_lib.NetSpec(input_shape=(16, 16, 3), num_classes=3, conv1_filters=8,
                        fires=(spec_lib.FireSpec(4, 8, 8),), pool_after=(1,), dropout_rate=0.0,
                        classifier_activation="linear", kernel_initializer="he_uniform",
                        classifier_initializer="glorot_uniform")


# -- the quantization rule, on fake parameters --------------------------------------


def test_int8_with_zero_point_minus_128_and_scale_1_shifts_pixels():
  pixels = np.array([0, 1, 127, 128, 255, 300, -5], np.float32)
  q = litert.quantize(pixels, scale=1.0, zero_point=-128, dtype=np.int8)
  assert q.dtype == np.int8
  np.testing.assert_array_equal(q, [-128, -127, -1, 0, 127, 127, -128])  # clipped at both ends
  np.testing.assert_allclose(litert.dequantize(q[:5], 1.0, -128), pixels[:5])


def test_scale_half_doubles_and_clips():
  pixels = np.array([0, 50, 100, 127.5, 200], np.float32)
  np.testing.assert_array_equal(litert.quantize(pixels, 0.5, 0, np.uint8), [0, 100, 200, 255, 255])
  np.testing.assert_array_equal(litert.quantize(pixels, 0.5, -128, np.int8),
                                [-128, -28, 72, 127, 127])
  # Real value = scale * (q - zero_point): in range, quantizing loses at most scale / 2.
  x = np.linspace(0, 63.5, 200).astype(np.float32)
  back = litert.dequantize(litert.quantize(x, 0.5, -128, np.int8), 0.5, -128)
  assert np.abs(back - x).max() <= 0.25 + 1e-6


def test_rounding_is_tflites_round_then_zero_point():
  # q = round(x / scale) + zero_point, round = std::round (half away from zero), as
  # TFLite's QUANTIZE kernel. scale 2, zero point 1: x = 1 -> 0.5 -> 1 -> 2 and
  # x = 3 -> 1.5 -> 2 -> 3. numpy's half-to-even gives 1 for the first as
  # round(x/s) + zp and 2 for the second as round(x/s + zp): the two old rules.
  x = np.array([1.0, 3.0, 5.0], np.float32)
  np.testing.assert_array_equal(litert.quantize(x, 2.0, 1, np.uint8), [2, 3, 4])
  assert int(np.round(1.0 / 2.0) + 1) == 1 and int(np.round(3.0 / 2.0 + 1)) == 2
  np.testing.assert_array_equal(litert.quantize(np.array([-1.0, -3.0]), 2.0, 0, np.int8), [-1, -2])
  # Just below a tie rounds down (no float error from adding 0.5).
  assert litert.quantize(np.array([np.nextafter(np.float32(0.5), 0)]), 1.0, 0, np.uint8)[0] == 0


def test_unquantized_integer_input_takes_the_values_and_floats_are_refused():
  np.testing.assert_array_equal(litert.quantize(np.array([0.0, 7.4, 255.0, 256.0]), 0.0, 0,
                                                np.uint8), [0, 7, 255, 255])
  with pytest.raises(ValueError, match="integer dtype, got float32"):
    litert.quantize(np.zeros(2), 1.0, 0, np.float32)
  np.testing.assert_array_equal(litert.dequantize(np.array([0.5], np.float32), 0.1, 3), [0.5])
  np.testing.assert_allclose(litert.dequantize(np.array([0, 128, 255], np.uint8), 1 / 256, 0),
                             [0, 0.5, 255 / 256])


# -- the runner on real files --------------------------------------------------------


def _int_model(model, input_type):
  rng = np.random.default_rng(1)

  def representative():
    for _ in range(8):
      yield [rng.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)]

  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = representative
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  converter.inference_input_type = input_type
  converter.inference_output_type = tf.uint8
  return converter.convert()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  root = tmp_path_factory.mktemp("litert")
  model = models.build_model(TINY, seed=0)
  out = {"model": model}
  for name, content in (("fp32", tf.lite.TFLiteConverter.from_keras_model(model).convert()),
                        ("uint8", _int_model(model, tf.uint8)),
                        ("int8", _int_model(model, tf.int8))):
    path = str(root / f"model_{name}.tflite")
    with open(path, "wb") as handle:
      handle.write(content)
    out[name] = path
  return out


@pytest.fixture(scope="module")
def pixels():
  return np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)


def test_fp32_runner_matches_keras_from_path_and_bytes(files, pixels):
  expected = np.asarray(files["model"](pixels.astype(np.float32)))
  for source in (files["fp32"], open(files["fp32"], "rb").read()):
    runner = litert.LiteRTRunner(source, num_threads=2)
    got = runner.predict(pixels, batch_size=4)  # batches 4 and 2: resized in between
    assert got.dtype == np.float32 and got.shape == (6, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
  assert runner.input_shape == [16, 16, 3] and runner.input_size == (16, 16)
  assert runner.input_quantization is None and runner.input_info() == {"dtype": "float32"}
  summary = runner.io_summary()
  assert summary["input"]["dtype"] == "float32" and summary["input"]["shape"] == [-1, 16, 16, 3]
  assert summary["output"]["shape"] == [-1, 3] and "scale" not in summary["output"]
  ops = runner.op_counts()
  # conv1, the fire's squeeze, expand1x1 and expand3x3, conv10.
  assert ops == litert.op_counts(files["fp32"]) and ops["CONV_2D"] == 5
  with pytest.raises(ValueError, match=r"Expected images of shape \[batch, 16, 16, 3\]"):
    runner.set_input(np.zeros((1, 8, 8, 3), np.uint8))


def test_int8_input_is_quantized_with_the_files_parameters(files, pixels, monkeypatch):
  runner = litert.LiteRTRunner(files["int8"])
  scale, zero_point = runner.input_quantization
  assert runner.input_dtype == np.int8 and zero_point == -128
  assert scale == pytest.approx(1.0, abs=0.01)  # calibrated on [0, 255]
  np.testing.assert_array_equal(runner.quantize_input(pixels),
                                litert.quantize(pixels, scale, zero_point, np.int8))
  expected = np.asarray(files["model"](pixels.astype(np.float32)))
  got = runner.predict(pixels)
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=0.05)  # uint8 output dequantized (1/256 steps)
  # Fake parameters: the runner applies the one rule with whatever the file says.
  monkeypatch.setitem(runner.input_details, "quantization", (0.5, -100))
  np.testing.assert_array_equal(runner.quantize_input(pixels),
                                litert.quantize(pixels, 0.5, -100, np.int8))
  assert runner.input_info() == {"dtype": "int8", "scale": 0.5, "zero_point": -100}
  uint8 = litert.LiteRTRunner(files["uint8"])
  np.testing.assert_array_equal(uint8.quantize_input(pixels),
                                litert.quantize(pixels, *uint8.input_quantization, np.uint8))


def test_prepared_calls_of_two_batch_sizes_can_alternate(files, pixels):
  runner = litert.LiteRTRunner(files["uint8"])
  one, four = runner.prepare(pixels[:1]), runner.prepare(pixels[:4])
  expected = runner.predict(pixels[:4])
  for _ in range(2):
    assert one().shape == (1, 3)
    raw = four()
    assert raw.dtype == np.uint8 and raw.shape == (4, 3)
    np.testing.assert_array_equal(runner.dequantize_output(raw), expected)


# -- one runner everywhere -----------------------------------------------------------


def test_export_names_are_the_shared_runner():
  # one name for the runner: no alias of it in export
  assert not hasattr(tflite_lib, "TFLiteRunner") and not hasattr(export_lib, "TFLiteRunner")
  assert tflite_lib.run_tflite is litert.run_tflite and export_lib.run_tflite is litert.run_tflite
  assert tflite_lib.op_counts is litert.op_counts and export_lib.op_counts is litert.op_counts
  # no second runner, and no alias of the shared one's names, in the benchmark
  assert not hasattr(benchmark_lib, "_TFLiteRunner") and not hasattr(runners_lib, "UnsupportedBatch")


def test_export_parity_benchmark_and_pairs_construct_the_shared_runner(files, pixels, tmp_path,
                                                                       monkeypatch):
  built = []

  class Recording(litert.LiteRTRunner):

    def __init__(self, model, num_threads=litert.DEFAULT_NUM_THREADS):
      built.append(os.path.basename(str(model)) if isinstance(model, str) else "<bytes>")
      super().__init__(model, num_threads)

  monkeypatch.setattr(litert, "LiteRTRunner", Recording)
  content = open(files["fp32"], "rb").read()
  keras_eval = np.asarray(files["model"](pixels.astype(np.float32)))
  entry = exporter._tflite_entry(  # pylint: disable=protected-access
      str(tmp_path), "fp32", content, pixels, None, keras_eval, 4, 2)
  assert built == ["model_fp32.tflite"] and entry["parity"]["max_abs_diff"] < 1e-4
  config = bench_config_lib.BenchmarkConfig(batch_sizes=(1,), min_seconds=0.0, min_runs=1,
                                         warmup_runs=0)
  artefact = runners_lib.load_runner("tflite_int8", files["int8"], config.num_threads)
  assert isinstance(artefact.runner, litert.LiteRTRunner) and built[-1] == "model_int8.tflite"
  speed_pairs.measure_pairs({"a": files["fp32"], "b": files["uint8"]}, [("b", "a")],
                            batch_sizes=(1,), rounds=1, min_invokes=1, max_invokes=1)
  assert built[-2:] == ["model_fp32.tflite", "model_uint8.tflite"]
