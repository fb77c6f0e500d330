"""Export refuses bad input with errors a user can act on, and never half-writes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.export import exporter
from squish_tf.export import tflite as tflite_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib

SMALL = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=4, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7)),
                         pool_after=(1, 2), dropout_rate=0.0, kernel_initializer="he_uniform",
                         classifier_activation="linear", classifier_initializer="normal_0.01")
NO_DATA = data_config_lib.DataConfig(dataset="none", image_size=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("errors") / "model")
  model_io.write_model_dir(directory, models.build_model(SMALL, seed=0), SMALL,
                           {"class_names": ["w", "x", "y", "z"]})
  return directory


def _leftovers(parent):
  return [name for name in os.listdir(parent) if name.startswith(".export")]


def test_model_dir_without_a_model(tmp_path):
  with pytest.raises(ValueError, match="does not exist; pass the --model_dir of a trained"):
    exporter.export_all(str(tmp_path / "nowhere"), data_config=NO_DATA)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match="holds no spec.json"):
    exporter.export_all(str(empty), data_config=NO_DATA)
  (empty / "spec.json").write_text(SMALL.to_json())
  with pytest.raises(ValueError, match="holds no model.keras: there is no model to export"):
    exporter.export_all(str(empty), data_config=NO_DATA)
  assert sorted(os.listdir(empty)) == ["spec.json"]


def test_unknown_format_lists_the_known_ones(model_dir):
  with pytest.raises(ValueError) as error:
    exporter.export_all(model_dir, formats="fp32,onnx", data_config=NO_DATA)
  message = str(error.value)
  assert "['onnx']" in message
  for name in exporter.FORMATS:
    assert name in message
  assert not os.path.exists(os.path.join(model_dir, "export"))


@pytest.mark.parametrize("formats", ["int8", "saved_model,qat_int8"])
def test_int8_and_qat_need_data(model_dir, formats):
  for config in (NO_DATA, None, data_config_lib.DataConfig(dataset="", image_size=32)):
    with pytest.raises(ValueError, match=r"need training images .* pass the data flags"):
      exporter.export_all(model_dir, formats=formats, data_config=config)
  assert not os.path.exists(os.path.join(model_dir, "export"))


def test_default_formats_without_data_leave_out_int8_and_qat():
  assert exporter.parse_formats(None, with_data=False) == [
      "saved_model", "fp32", "fp16", "dynamic", "jetson"]
  assert exporter.parse_formats("", with_data=True) == exporter.available_formats(True)
  assert "tftrt" not in exporter.available_formats(True)  # no TensorRT in TF >= 2.18 wheels
  assert exporter.parse_formats("jetson, FP32,fp32", with_data=False) == ["fp32", "jetson"]


def test_tftrt_refused_where_tensorflow_has_no_tensorrt(model_dir):
  with pytest.raises(ValueError, match="built without TensorRT"):
    exporter.export_all(model_dir, formats="tftrt", data_config=NO_DATA)


def test_existing_export_dir_needs_overwrite(model_dir, tmp_path):
  target = tmp_path / "export"
  target.mkdir()
  (target / "keep.txt").write_text("mine")
  with pytest.raises(ValueError, match="already exists; pass --overwrite"):
    exporter.export_all(model_dir, str(target), formats="fp32", data_config=NO_DATA)
  assert os.listdir(target) == ["keep.txt"]
  manifest = exporter.export_all(model_dir, str(target), formats="fp32", data_config=NO_DATA,
                                 overwrite=True)
  assert sorted(os.listdir(target)) == ["export.json", "labels.txt", "model_fp32.tflite"]
  assert manifest["parity_source"] == "random_pixels"
  assert manifest["formats"]["fp32"]["parity"]["max_abs_diff"] <= 1e-4
  assert manifest["class_names"] == ["w", "x", "y", "z"]
  assert not _leftovers(tmp_path)


def test_image_size_must_match_the_model(model_dir):
  with pytest.raises(ValueError, match=r"--image_size is 64, but the model takes 32x32"):
    exporter.export_all(model_dir, formats="int8", data_config=data_config_lib.DataConfig(image_size=64))


def test_failure_midway_leaves_nothing_on_disk(model_dir, tmp_path, monkeypatch):
  def broken(*args, **kwargs):
    raise RuntimeError("converter crashed")

  monkeypatch.setattr(tflite_lib, "convert_saved_model", broken)
  target = tmp_path / "export"
  with pytest.raises(RuntimeError, match="converter crashed"):
    exporter.export_all(model_dir, str(target), formats="saved_model,fp32", data_config=NO_DATA)
  assert not target.exists()
  assert os.listdir(tmp_path) == []


def test_main_reports_errors_in_one_line_and_exits_2(model_dir, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  done = subprocess.run([sys.executable, "-m", "pipelines.export", f"--model_dir={model_dir}",
                         f"--export_dir={tmp_path / 'out'}", "--formats=fp32,onnx"],
                        capture_output=True, text=True, env=env, timeout=300,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert done.returncode == 2
  assert "error: Unknown export format(s) ['onnx']; known formats are" in done.stderr
  assert not (tmp_path / "out").exists()


def test_bn_spec_with_a_model_without_batch_norm_is_refused(tmp_path):
  directory = str(tmp_path / "mismatch")
  model_io.write_model_dir(directory, models.build_model(SMALL, seed=0), SMALL, {})
  files_lib.write_text(os.path.join(directory, model_io.SPEC_FILE),
                      SMALL.replace(batch_norm=True).to_json())
  with pytest.raises(ValueError, match="the model and spec disagree"):
    exporter.export_all(directory, str(tmp_path / "export"), formats="fp32", data_config=NO_DATA)
  assert not (tmp_path / "export").exists()
  assert not _leftovers(tmp_path)


def test_foreign_model_exports_as_it_is_and_refuses_spec_formats(tmp_path):
  """A baseline-like Keras model (its own batch norm, no spec.json): no folding, no Jetson."""
  inputs = keras.Input((32, 32, 3), name="image")
  x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
  x = keras.layers.Conv2D(6, 3, use_bias=False)(x)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(4, activation="softmax")(x)
  model = keras.Model(inputs, outputs, name="foreign")
  bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
  rng = np.random.default_rng(0)
  bn.set_weights([rng.uniform(0.5, 2, 6), rng.normal(0, 0.5, 6), rng.normal(0, 0.3, 6),
                  rng.uniform(0.5, 2, 6)])
  directory = tmp_path / "baseline"
  directory.mkdir()
  model_io.save_keras(model, str(directory / model_io.MODEL_FILE))
  files_lib.write_json(str(directory / model_io.METRICS_FILE),
                      {"baseline": "foreign", "input_shape": [32, 32, 3], "num_classes": 4,
                       "params": int(model.count_params())})
  with pytest.raises(ValueError, match=r"Formats \['jetson'\] need a SqueezeNet-family model"):
    exporter.export_all(str(directory), str(tmp_path / "refused"), formats="fp32,jetson",
                        data_config=NO_DATA)
  manifest = exporter.export_all(str(directory), str(tmp_path / "export"),
                                 formats="saved_model,fp32", data_config=NO_DATA)
  assert manifest["model"]["name"] == "foreign" and manifest["model"]["batch_norm_folded"] is False
  for name in ("saved_model", "fp32"):
    assert manifest["formats"][name]["parity"]["max_abs_diff"] <= 1e-4
  assert not (tmp_path / "refused").exists()
