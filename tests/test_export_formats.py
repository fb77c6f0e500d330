"""Every export format of a trained model: parity with Keras, sizes, manifest, fresh loads."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from squish_tf import data as data_lib
from squish_tf import model_io
from squish_tf import shapes10
from squish_tf import spec as spec_lib
from squish_tf import train as train_lib
from squish_tf.export import exporter
from squish_tf.export import saved_model as saved_model_lib
from squish_tf.export import tflite as tflite_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32

# Ten well-separated colours; class k is a square patch of colour k on a random
# background, with pixel noise. shapes10 would be the natural choice, but at
# 32 px it takes far longer than a test can afford to leave chance level, and
# int8 agreement is only a real bar on a model confident enough to have logit
# margins: this set trains to ~85% validation top-1 with confident predictions
# in ~15 s, and its pixels span [0, 255] like camera images.
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                    [128, 128, 128], [20, 20, 20]], np.float32)
CLASS_NAMES = tuple(f"colour_{k}" for k in range(10))


def _patches10(n, seed):
  """(uint8 images [n, 32, 32, 3], int32 labels [n])."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.int32)
  images = rng.uniform(0, 255, (n, 1, 1, 3)) * np.ones((1, SIZE, SIZE, 1))
  for i in range(n):
    side = rng.integers(12, 21)
    row, col = rng.integers(0, SIZE - side, 2)
    images[i, row:row + side, col:col + side] = PALETTE[labels[i]]
  images = images + rng.normal(0, 30, images.shape)
  return np.clip(np.round(images), 0, 255).astype(np.uint8), labels


def _pipeline(images, labels, shuffle):
  ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels))
  if shuffle:
    ds = ds.shuffle(len(labels), seed=0)
  return ds.batch(32)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
  """A 10-class squishednet_base at 32 px, trained by `train_model_dir` (~15 s)."""
  directory = str(tmp_path_factory.mktemp("trained") / "ancestor")
  train_images, train_labels = _patches10(1500, seed=0)
  val_images, val_labels = _patches10(300, seed=1)
  info = data_lib.DatasetInfo("patches10", CLASS_NAMES, 1500, 300, SIZE)
  spec = spec_lib.squishednet_base(num_classes=10, input_shape=(SIZE, SIZE, 3))
  train_lib.train_model_dir(directory, spec, data_lib.DataConfig(image_size=SIZE),
                            train_lib.TrainConfig(epochs=8, learning_rate=1e-3),
                            _pipeline(train_images, train_labels, True),
                            _pipeline(val_images, val_labels, False), info, seed=0, verbose=0)
  return directory


@pytest.fixture(scope="module")
def export_data():
  train_images, train_labels = _patches10(1500, seed=0)
  val_images, val_labels = _patches10(300, seed=1)
  return exporter.ExportData(
      calibration_images=train_images[:200], train_ds=_pipeline(train_images, train_labels, True),
      eval_images=val_images, eval_labels=val_labels, class_names=CLASS_NAMES,
      description={"dataset": "patches10"})


@pytest.fixture(scope="module")
def exported(trained_model_dir, export_data, tmp_path_factory):
  export_dir = str(tmp_path_factory.mktemp("exported") / "export")
  manifest = exporter.export_all(trained_model_dir, export_dir, formats=None, data=export_data,
                                 qat_epochs=1)
  return export_dir, manifest


@pytest.fixture(scope="module")
def keras_model(trained_model_dir):
  return model_io.load_model_dir(trained_model_dir)[0]


def test_trained_model_is_confident(keras_model, export_data):
  probabilities = np.asarray(keras_model(export_data.eval_images.astype(np.float32)))
  assert np.mean(probabilities.argmax(1) == export_data.eval_labels) > 0.7
  assert np.median(probabilities.max(1)) > 0.8  # margins large enough for int8 to be tested


def test_all_formats_written_with_manifest(exported):
  export_dir, manifest = exported
  assert list(manifest["formats"]) == ["saved_model", "fp32", "fp16", "dynamic", "int8",
                                       "qat_int8", "jetson"]
  on_disk = json.load(open(os.path.join(export_dir, exporter.MANIFEST_FILE)))
  assert on_disk == json.loads(json.dumps(manifest))
  for name in ("model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite",
               "model_int8.tflite", "model_qat_int8.tflite", "labels.txt",
               "saved_model/saved_model.pb", "jetson/frozen_graph.pb", "jetson/jetson_trt.py"):
    assert name in manifest["files"], name
  for path, size in manifest["files"].items():
    assert os.path.getsize(os.path.join(export_dir, path)) == size
  for entry in manifest["formats"].values():
    assert entry["bytes"] == sum(entry["files"].values()) > 0
  assert open(os.path.join(export_dir, "labels.txt")).read().split() == list(CLASS_NAMES)
  assert manifest["class_names"] == list(CLASS_NAMES)
  assert manifest["parity_source"] == "validation" and manifest["parity_images"] == 64
  assert manifest["data"]["calibration_images"] == 200
  assert not [n for n in os.listdir(os.path.dirname(export_dir)) if n.startswith(".")]


def test_parity_with_keras(exported):
  formats = exported[1]["formats"]
  assert formats["saved_model"]["parity"]["max_abs_diff"] <= 1e-5
  assert set(formats["saved_model"]["parity"]["signatures"]) == {"serving_default",
                                                                 "serving_float"}
  assert formats["fp32"]["parity"]["max_abs_diff"] <= 1e-4
  assert formats["jetson"]["parity"]["max_abs_diff"] <= 1e-5
  assert formats["fp16"]["parity"]["top1_agreement"] >= 0.99
  for name in ("int8", "qat_int8"):
    assert formats[name]["parity"]["images"] == 64
    assert formats[name]["parity"]["top1_agreement"] >= 0.95, (name, formats[name]["parity"])


def test_accuracy_reported_for_every_tflite(exported):
  manifest = exported[1]
  keras_accuracy = manifest["keras"]["accuracy"]
  assert keras_accuracy > 0.7
  for name in tflite_lib.FILES:
    accuracy = manifest["formats"][name]["accuracy"]
    assert abs(accuracy - keras_accuracy) <= 0.05, (name, accuracy, keras_accuracy)
  assert manifest["data"]["eval_images"] == 300


def test_int8_files_are_at_most_30_percent_of_fp32(exported):
  formats = exported[1]["formats"]
  fp32 = formats["fp32"]["bytes"]
  for name in ("int8", "qat_int8"):
    assert formats[name]["bytes"] <= 0.30 * fp32
    assert formats[name]["bytes_vs_fp32"] == pytest.approx(formats[name]["bytes"] / fp32)
  assert formats["fp16"]["bytes"] <= 0.55 * fp32


def test_full_integer_models_take_uint8_pixels_and_give_uint8(exported):
  for name in ("int8", "qat_int8"):
    io = exported[1]["formats"][name]["io"]
    assert io["input"]["dtype"] == "uint8" and io["output"]["dtype"] == "uint8"
    assert io["input"]["scale"] == pytest.approx(1.0, abs=1e-5)  # raw camera bytes
    assert io["input"]["zero_point"] == 0
    assert io["output"]["scale"] == pytest.approx(1 / 256)
    assert io["input"]["shape"] == [-1, SIZE, SIZE, 3]


def test_runner_accepts_uint8_and_float_pixels(exported, export_data, keras_model):
  export_dir, _ = exported
  pixels = export_data.eval_images[:10]
  for name in ("fp32", "int8"):
    path = os.path.join(export_dir, tflite_lib.FILES[name])
    from_uint8 = tflite_lib.run_tflite(path, pixels, num_threads=2, batch_size=4)
    from_float = tflite_lib.run_tflite(path, pixels.astype(np.float32), batch_size=7)
    np.testing.assert_array_equal(from_uint8, from_float)
    assert from_uint8.shape == (10, 10) and from_uint8.dtype == np.float32
    np.testing.assert_allclose(from_uint8.sum(1), 1.0, atol=0.03)
  runner = tflite_lib.TFLiteRunner(os.path.join(export_dir, "model_fp32.tflite"))
  runner.set_batch(pixels[:3])
  runner.invoke()
  np.testing.assert_allclose(runner.output(), np.asarray(keras_model(pixels[:3].astype("float32"))),
                             atol=1e-4)
  with pytest.raises(ValueError, match=r"Expected images of shape \[batch, 32, 32, 3\]"):
    runner.set_batch(np.zeros((2, 16, 16, 3), np.uint8))


def test_saved_model_loads_in_a_fresh_process_and_takes_uint8(exported, export_data, keras_model,
                                                             tmp_path):
  export_dir, _ = exported
  pixels = export_data.eval_images[:8]
  np.save(tmp_path / "pixels.npy", pixels)
  np.save(tmp_path / "expected.npy", np.asarray(keras_model(pixels.astype(np.float32))))
  script = textwrap.dedent(f"""
      import numpy as np, tensorflow as tf
      loaded = tf.saved_model.load({os.path.join(export_dir, 'saved_model')!r})
      serve = loaded.signatures["serving_default"]
      spec = serve.structured_input_signature[1]["image"]
      assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3], spec
      pixels = np.load({str(tmp_path / 'pixels.npy')!r})
      got = serve(image=tf.constant(pixels))["probabilities"].numpy()
      floats = loaded.signatures["serving_float"](image=tf.constant(pixels, tf.float32))
      expected = np.load({str(tmp_path / 'expected.npy')!r})
      floats = floats["probabilities"].numpy()
      print(float(np.abs(got - expected).max()), float(np.abs(floats - expected).max()))
      """)
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 0, done.stderr[-2000:]
  uint8_diff, float_diff = map(float, done.stdout.split()[-2:])
  assert uint8_diff <= 1e-5 and float_diff <= 1e-5


def test_saved_model_signature_helper(exported, export_data, keras_model):
  path = os.path.join(exported[0], saved_model_lib.DIRECTORY)
  predict = saved_model_lib.load_signature(path)
  pixels = export_data.eval_images[:4]
  np.testing.assert_allclose(predict(pixels), np.asarray(keras_model(pixels.astype("float32"))),
                             atol=1e-5)
  with pytest.raises(ValueError, match="has no signature 'serve_bytes'"):
    saved_model_lib.load_signature(path, "serve_bytes")


def test_representative_images_come_unaugmented_from_the_training_split():
  config = data_lib.DataConfig(dataset="shapes10", image_size=SIZE, batch_size=50, augment=True,
                               shapes10_train_size=120, shapes10_validation_size=60)
  data = exporter.load_export_data(config, calibration_images=100, max_eval_images=60)
  train, _ = shapes10.generate(120, SIZE, 0, "train")
  validation, validation_labels = shapes10.generate(60, SIZE, 0, "validation")
  assert data.calibration_images.shape == (100, SIZE, SIZE, 3)
  assert data.calibration_images.dtype == np.uint8
  originals = {image.tobytes() for image in train}
  assert all(image.tobytes() in originals for image in data.calibration_images)
  np.testing.assert_array_equal(data.eval_images, validation)
  np.testing.assert_array_equal(data.eval_labels, validation_labels)
  assert data.class_names == shapes10.CLASS_NAMES
  assert data.description["augment_for_qat"] is True


def test_int8_export_through_the_data_flags(trained_model_dir, tmp_path):
  config = data_lib.DataConfig(dataset="shapes10", image_size=SIZE, batch_size=50,
                               shapes10_train_size=150, shapes10_validation_size=80)
  manifest = exporter.export_all(trained_model_dir, str(tmp_path / "export"), formats="int8",
                                 data_config=config)
  assert manifest["data"]["dataset"] == "shapes10"
  assert manifest["data"]["calibration_images"] == 150
  assert manifest["data"]["eval_images"] == 80
  assert manifest["formats"]["int8"]["accuracy"] is not None
  assert sorted(os.listdir(tmp_path / "export")) == ["export.json", "labels.txt",
                                                     "model_int8.tflite"]


def test_main_exports_and_prints_the_table(trained_model_dir, tmp_path):
  export_dir = tmp_path / "from_main"
  done = subprocess.run(
      [sys.executable, "-m", "pipelines.export", f"--model_dir={trained_model_dir}",
       f"--export_dir={export_dir}", "--formats=fp32,jetson", "--dataset=none"],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 0, done.stderr[-2000:]
  manifest = json.load(open(export_dir / "export.json"))
  assert list(manifest["formats"]) == ["fp32", "jetson"]
  assert manifest["model"]["input_shape"] == [SIZE, SIZE, 3]  # --image_size from the model
  assert "fp32" in done.stdout and "jetson" in done.stdout and "random-pixel" in done.stdout
