"""Every export format of a trained model: parity with Keras, sizes, manifest, fresh loads.

The trained model is the ancestor as evolution starts from it, with batch
norm; every export folds it (QAT in the converter), which the op-list tests
check against the same spec without batch norm.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.data import shapes10
from squish_tf.export import exporter
from squish_tf.export import metadata as metadata_lib
from squish_tf.export import saved_model as saved_model_lib
from squish_tf.export import tflite as tflite_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.runtime import litert
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib

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
  """A 10-class squishednet_base (batch norm) at 32 px, trained by `train_model_dir`."""
  directory = str(tmp_path_factory.mktemp("trained") / "ancestor")
  train_images, train_labels = _patches10(1500, seed=0)
  val_images, val_labels = _patches10(300, seed=1)
  info = data_config_lib.DatasetInfo("patches10", CLASS_NAMES, 1500, 300, SIZE)
  spec = spec_lib.squishednet_base(num_classes=10, input_shape=(SIZE, SIZE, 3), batch_norm=True)
  train_lib.train_model_dir(directory, spec, data_config_lib.DataConfig(image_size=SIZE),
                            train_config_lib.TrainConfig(epochs=5, learning_rate=3e-3),
                            _pipeline(train_images, train_labels, True),
                            _pipeline(val_images, val_labels, False), info, seed=0, verbose=0)
  return directory


@pytest.fixture(scope="module")
def export_data():
  train_images, train_labels = _patches10(1500, seed=0)
  val_images, val_labels = _patches10(300, seed=1)
  # QAT's epoch on a fifth of the training images: its cost is mostly building and tracing
  # the fake-quantized twin, and its files agree with Keras as well as after the whole set.
  return exporter.ExportData(
      calibration_images=train_images[:200],
      train_ds=_pipeline(train_images[:320], train_labels[:320], True),
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
  assert manifest["data"]["accuracy_split"] == "validation"  # ExportData's default
  assert manifest["data"]["calibration_images"] == 200
  assert manifest["model"]["batch_norm_folded"] is True
  assert not [n for n in os.listdir(os.path.dirname(export_dir)) if n.startswith(".")]


def test_every_tflite_carries_classifier_metadata_with_the_runs_labels(exported):
  from squish_tf.export import metadata  # pylint: disable=g-import-not-at-top

  export_dir, manifest = exported
  with open(os.path.join(export_dir, exporter.LABELS_FILE), encoding="utf-8") as handle:
    labels_txt = handle.read()
  assert labels_txt.splitlines() == list(CLASS_NAMES)
  for name in exporter.TFLITE_FORMATS:
    with open(os.path.join(export_dir, tflite_lib.FILES[name]), "rb") as handle:
      content = handle.read()
    assert metadata.read_labels(content) == list(CLASS_NAMES), name
    assert metadata.associated_files(content) == {"labels.txt": labels_txt.encode()}, name
    entry = manifest["formats"][name]["metadata"]
    pixels = "uint8" if name in ("int8", "qat_int8") else "float32"
    assert entry["input"] == {"name": "image", "type": pixels, "range": [0.0, 255.0],
                              "normalization": {"mean": [0.0], "std": [1.0]}}, name
    assert entry["output"]["type"] == pixels and entry["associated_files"] == ["labels.txt"]


def test_parity_with_keras(exported):
  # Against the Keras model with its batch norms: the float formats are folded.
  formats = exported[1]["formats"]
  assert formats["saved_model"]["parity"]["max_abs_diff"] <= 1e-4
  assert set(formats["saved_model"]["parity"]["signatures"]) == {"serving_default",
                                                                 "serving_float"}
  assert formats["fp32"]["parity"]["max_abs_diff"] <= 1e-4
  assert formats["jetson"]["parity"]["max_abs_diff"] <= 1e-4
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
  runner = litert.LiteRTRunner(os.path.join(export_dir, "model_fp32.tflite"))
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
  assert uint8_diff <= 1e-4 and float_diff <= 1e-4  # folded batch norm vs Keras'


def test_saved_model_signature_helper(exported, export_data, keras_model):
  path = os.path.join(exported[0], saved_model_lib.DIRECTORY)
  predict = saved_model_lib.load_signature(path)
  pixels = export_data.eval_images[:4]
  np.testing.assert_allclose(predict(pixels), np.asarray(keras_model(pixels.astype("float32"))),
                             atol=1e-4)
  with pytest.raises(ValueError, match="has no signature 'serve_bytes'"):
    saved_model_lib.load_signature(path, "serve_bytes")


def _shapes10_config(augment=True, **sizes):
  sizes = {"shapes10_train_size": 120, "shapes10_validation_size": 60,
           "shapes10_test_size": 50, **sizes}
  return data_config_lib.DataConfig(dataset="shapes10", image_size=SIZE, batch_size=50, augment=augment,
                             **sizes)


def test_representative_images_come_unaugmented_from_the_training_split():
  data = exporter.load_export_data(_shapes10_config(), calibration_images=100,
                                   max_eval_images=60)
  train, _ = shapes10.generate(120, SIZE, 0, "train")
  assert data.calibration_images.shape == (100, SIZE, SIZE, 3)
  assert data.calibration_images.dtype == np.uint8
  originals = {image.tobytes() for image in train}
  assert all(image.tobytes() in originals for image in data.calibration_images)
  assert data.class_names == shapes10.CLASS_NAMES
  assert data.description["augment_for_qat"] is True


@pytest.mark.parametrize("augment", [True, False])
def test_the_export_caches_one_training_pipeline(monkeypatch, augment):
  # QAT's pipeline may cache (a folder's decoded images); the plain one that
  # only gives the calibration images must not hold a second copy.
  loads, original = [], data_lib.load

  def recording_load(config, *args, **kwargs):
    loads.append((bool(config.augment), config.cache))
    return original(config, *args, **kwargs)

  monkeypatch.setattr(data_lib, "load", recording_load)
  exporter.load_export_data(_shapes10_config(augment=augment), calibration_images=20,
                            max_eval_images=10)
  caching = [load for load in loads if load[1] != data_config_lib.NONE]
  assert caching == [(augment, "auto")], loads


def test_accuracy_images_come_from_the_test_split():
  data = exporter.load_export_data(_shapes10_config(), calibration_images=100,
                                   max_eval_images=60)
  test, test_labels = shapes10.generate(50, SIZE, 0, "test")
  np.testing.assert_array_equal(data.eval_images, test)
  np.testing.assert_array_equal(data.eval_labels, test_labels)
  assert data.eval_split == "test"
  assert data.description["accuracy_split"] == "test"
  assert data.description["test_count"] == 50


def test_accuracy_images_fall_back_to_validation_without_a_test_split(monkeypatch):
  def no_test_split(config):
    raise ValueError("folder has no test/ folder and test_split is 0")

  monkeypatch.setattr(data_lib, "load_test", no_test_split)
  data = exporter.load_export_data(_shapes10_config(), calibration_images=20,
                                   max_eval_images=60)
  validation, validation_labels = shapes10.generate(60, SIZE, 0, "validation")
  np.testing.assert_array_equal(data.eval_images, validation)
  np.testing.assert_array_equal(data.eval_labels, validation_labels)
  assert data.eval_split == "validation"
  assert data.description["accuracy_split"] == "validation"
  assert data.description["accuracy_split_reason"]


def test_int8_export_through_the_data_flags(trained_model_dir, tmp_path):
  config = data_config_lib.DataConfig(dataset="shapes10", image_size=SIZE, batch_size=50,
                               shapes10_train_size=150, shapes10_validation_size=80,
                               shapes10_test_size=70)
  manifest = exporter.export_all(trained_model_dir, str(tmp_path / "export"), formats="int8",
                                 data_config=config)
  assert manifest["data"]["dataset"] == "shapes10"
  assert manifest["data"]["calibration_images"] == 150
  assert manifest["data"]["eval_images"] == 70  # the test split
  assert manifest["data"]["accuracy_split"] == "test" and manifest["parity_source"] == "test"
  assert manifest["formats"]["int8"]["accuracy"] is not None
  assert sorted(os.listdir(tmp_path / "export")) == ["export.json", "labels.txt",
                                                     "model_int8.tflite"]
  # TensorFlow Lite for Microcontrollers runs the int8 file: LiteRT's reference kernels'
  # outputs exactly, the flash it takes and the arena it needed.
  micro = manifest["formats"]["int8"]["micro"]
  assert micro["flash_bytes"] == os.path.getsize(tmp_path / "export" / "model_int8.tflite")
  assert micro["outputs_equal"] and micro["max_abs_diff"] == 0 and micro["images"] == 4
  assert 1024 < micro["arena_bytes"] < 16 << 20 and micro["top1_agreement_xnnpack"] >= 0.5


def _toy_folders(root):
  """The toy colours (`toy.arrays`) as class folders of PNGs, train/validation/test: the tiny
  network's data through the data flags."""
  import toy  # pylint: disable=g-import-not-at-top

  for split, (count, seed) in {"train": (96, 0), "validation": (32, 1), "test": (32, 2)}.items():
    images, labels = toy.arrays(count, seed)
    for index, (image, label) in enumerate(zip(images_lib.as_pixels(images), labels)):
      folder = os.path.join(root, split, f"c{label}")
      os.makedirs(folder, exist_ok=True)
      tf.io.write_file(os.path.join(folder, f"{index:03d}.png"), tf.io.encode_png(image))
  return root


@pytest.fixture(scope="module")
def bn_free_qat(bn_free_trained_dir, tmp_path_factory):
  """(data config, result) of `qat_int8_artefact` on the tiny network and the toy colours as
  a folder: what the main job's worker makes from the data flags."""
  config = data_config_lib.DataConfig(
      dataset="folder", image_size=SIZE, batch_size=32,
      data_dir=_toy_folders(str(tmp_path_factory.mktemp("colours"))))
  return config, exporter.qat_int8_artefact(bn_free_trained_dir, config, qat_epochs=1,
                                            calibration_images=64)


def test_qat_made_elsewhere_is_the_file_the_export_ships(bn_free_trained_dir, bn_free_qat,
                                                          tmp_path):
  """What the main job's worker makes from the data flags, `export_all(qat_result=)` takes
  (the tiny network: what is checked is the hand-over, not the network)."""
  trained_model_dir = bn_free_trained_dir
  config, made = bn_free_qat
  assert made["epochs"] == 1 and made["tflite"][:8] and len(made["history"]["loss"]) == 1
  taken = []
  manifest = exporter.export_all(trained_model_dir, str(tmp_path / "export"), formats="qat_int8",
                                 data_config=config, calibration_images=64,
                                 qat_result=lambda: taken.append(1) or made)
  assert taken == [1]
  # The file the worker made, with the run's labels as metadata (as every .tflite ships).
  with open(tmp_path / "export" / "labels.txt", encoding="utf-8") as f:
    labels = f.read()
  with open(tmp_path / "export" / "model_qat_int8.tflite", "rb") as f:
    assert f.read() == metadata_lib.with_metadata(
        made["tflite"], labels, name=model_io.read_spec(trained_model_dir).name)
  assert manifest["formats"]["qat_int8"]["qat"]["epochs"] == 1
  assert manifest["formats"]["qat_int8"]["accuracy"] is not None
  with pytest.raises(ValueError, match="qat_epochs >= 1"):
    exporter.qat_int8_artefact(trained_model_dir, config, qat_epochs=0)


def test_main_exports_and_prints_the_table(bn_free_trained_dir, tmp_path):
  """The command on the tiny network: what is checked is the command, not the network."""
  export_dir = tmp_path / "from_main"
  done = subprocess.run(
      [sys.executable, "-m", "pipelines.export", f"--model_dir={bn_free_trained_dir}",
       f"--export_dir={export_dir}", "--formats=fp32,jetson", "--dataset=none"],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 0, done.stderr[-2000:]
  manifest = json.load(open(export_dir / "export.json"))
  assert list(manifest["formats"]) == ["fp32", "jetson"]
  assert manifest["model"]["input_shape"] == [SIZE, SIZE, 3]  # --image_size from the model
  assert "fp32" in done.stdout and "jetson" in done.stdout and "random-pixel" in done.stdout


# -- batch norm is folded in every export ---------------------------------------------

# Small enough to export in seconds; pool_after and fires as in the Jetson tests.
SMALL = spec_lib.NetSpec(input_shape=(SIZE, SIZE, 3), num_classes=5, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7),
                                spec_lib.FireSpec(5, 8, 8)),
                         pool_after=(1, 3), dropout_rate=0.5, kernel_initializer="he_uniform",
                         classifier_activation="linear", classifier_initializer="he_normal",
                         batch_norm=True, name="small_bn")
# Batch-norm arithmetic a TFLite file would show if folding had not happened.
BN_OPS = {"MUL", "ADD", "SUB", "RSQRT", "SQRT", "DIV", "SQUARED_DIFFERENCE"}


def _randomize_batch_norm(model, seed):
  import toy  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(seed).uniform(0, 255, (32,) + model.input_shape[1:])
  return toy.randomize_batch_norm(model, images, seed)


@pytest.fixture(scope="module")
def bn_pair(tmp_path_factory):
  """SMALL with randomized batch norm and SMALL without, exported without data (random pixels)."""
  root = tmp_path_factory.mktemp("bn_pair")
  names = {"class_names": list("abcde")}
  with_bn = _randomize_batch_norm(models.build_model(SMALL, seed=0), seed=1)
  plain_spec = SMALL.replace(batch_norm=False, name="small")
  model_io.write_model_dir(str(root / "bn"), with_bn, SMALL, names)
  model_io.write_model_dir(str(root / "plain"), models.build_model(plain_spec, seed=0),
                           plain_spec, names)
  bn = exporter.export_all(str(root / "bn"), str(root / "bn_export"),
                           formats="saved_model,fp32,fp16,dynamic,jetson")
  plain = exporter.export_all(str(root / "plain"), str(root / "plain_export"),
                              formats="fp32,dynamic,jetson")
  return with_bn, bn, plain


def test_bn_fixture_really_exercises_folding(bn_pair):
  with_bn = bn_pair[0]
  layers = [layer for layer in with_bn.layers if isinstance(layer, keras.layers.BatchNormalization)]
  assert len(layers) == len(SMALL.layer_shapes()) - 1  # every conv but conv10
  gamma, beta, mean, variance = (np.concatenate(w) for w in zip(*(l.get_weights() for l in layers)))
  assert (gamma < 0).any() and np.abs(beta).max() > 0.5
  assert np.abs(mean).max() > 1.0 and np.abs(variance - 1).max() > 0.5
  probabilities = np.asarray(with_bn(np.random.default_rng(2).uniform(
      0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)))
  # Far from uniform (0.2) and from one-hot: parity means something.
  assert 0.35 < probabilities.max(1).mean() < 0.95


def test_fp32_tflite_of_a_bn_model_has_the_ops_of_the_same_spec_without_bn(bn_pair):
  _, bn, plain = bn_pair
  for name in ("fp32", "dynamic"):
    ops = bn["formats"][name]["ops"]
    assert ops == plain["formats"][name]["ops"], (name, ops, plain["formats"][name]["ops"])
    assert ops["CONV_2D"] == len(SMALL.layer_shapes())
    assert not BN_OPS & set(ops), ops
  assert bn["formats"]["jetson"]["ops"] == plain["formats"]["jetson"]["ops"]


def test_bn_exports_match_the_keras_model_with_batch_norm(bn_pair):
  _, bn, _ = bn_pair
  formats = bn["formats"]
  assert bn["model"]["batch_norm_folded"] is True
  assert bn["model"]["params"] == SMALL.params()
  for name in ("saved_model", "fp32", "jetson"):
    assert formats[name]["parity"]["max_abs_diff"] <= 1e-4, (name, formats[name]["parity"])
  assert formats["fp16"]["parity"]["max_abs_diff"] <= 2e-2
  assert formats["fp16"]["parity"]["top1_agreement"] >= 0.95
  bundle = os.path.join(bn["export_dir"], "jetson")
  assert spec_lib.load_spec(os.path.join(bundle, "spec.json")) == SMALL.replace(batch_norm=False)
  assert json.load(open(os.path.join(bundle, "input.json")))["batch_norm_folded"] is True


def test_every_tflite_of_the_trained_bn_model_is_folded(exported, trained_model_dir):
  spec = model_io.read_spec(trained_model_dir)
  assert spec.batch_norm
  expected = {"CONV_2D": len(spec.layer_shapes()), "CONCATENATION": len(spec.fires),
              "MAX_POOL_2D": len(spec.pool_after), "MEAN": 1, "SOFTMAX": 1}
  formats = exported[1]["formats"]
  assert formats["fp32"]["ops"] == formats["dynamic"]["ops"] == expected
  assert formats["fp16"]["ops"] == {**expected, "DEQUANTIZE": formats["fp16"]["ops"]["DEQUANTIZE"]}
  assert formats["int8"]["ops"] == {**expected, "QUANTIZE": 2}  # uint8 in, uint8 out
  # QAT keeps the fake-quantized Rescaling as one MUL and one ADD; batch norm is folded.
  assert formats["qat_int8"]["ops"] == {**expected, "QUANTIZE": 2, "MUL": 1, "ADD": 1}


def test_qat_twin_keeps_batch_norm_and_ranges_start_at_the_relu_outputs(bn_pair):
  from squish_tf.export import qat  # pylint: disable=g-import-not-at-top

  with_bn = bn_pair[0]
  qat_model = qat.quantize_aware_model(with_bn, SMALL)
  wrapped = {layer.layer.name: layer for layer in qat_model.layers if hasattr(layer, "layer")}
  for name in ("conv1", "fire2_squeeze1x1"):
    assert type(wrapped[name + "_bn"].layer).__name__ == "BatchNormalization"
    for got, want in zip(wrapped[name + "_bn"].layer.get_weights(),
                         with_bn.get_layer(name + "_bn").get_weights()):
      np.testing.assert_array_equal(got, want)
  pixels = np.random.default_rng(3).uniform(0, 255, (32, SIZE, SIZE, 3)).astype(np.float32)
  # preprocess, conv1_relu, per fire squeeze1x1_relu and concat, conv10, avgpool: min and max.
  assert qat.calibrate_ranges(qat_model, with_bn, pixels) == 2 * (4 + 2 * len(SMALL.fires))
  relu = keras.Model(with_bn.input, with_bn.get_layer("conv1_relu").output)(pixels)
  ranges = {w.name.split("/")[-1].split(":")[0]: float(w.numpy())
            for w in wrapped["conv1_relu"].weights if "output_m" in w.name}
  assert ranges == {"output_min": 0.0, "output_max": pytest.approx(float(np.max(relu)))}
  assert not [w for w in wrapped["conv1"].weights if "post_activation" in w.name]


@pytest.fixture(scope="module")
def bn_free_trained_dir(tmp_path_factory):
  """toy.TINY (no batch norm) trained to ~100% on the toy colours (a few seconds)."""
  import toy  # pylint: disable=g-import-not-at-top

  directory = str(tmp_path_factory.mktemp("bn_free") / "model")
  train, val, info = toy.data()
  train_lib.train_model_dir(directory, toy.TINY.replace(batch_norm=False),
                            data_config_lib.DataConfig(image_size=32),
                            train_config_lib.TrainConfig(epochs=8, learning_rate=1e-2, warmup_epochs=0),
                            train, val, info, seed=0, verbose=0)
  return directory


def test_qat_int8_of_a_bn_free_model(bn_free_trained_dir, bn_free_qat, tmp_path):
  """The tiny network without batch norm: its int8 and QAT files agree with Keras. (Its QAT
  file is the one `qat_int8_artefact` made on the same toy colours: one QAT serves both
  tests.)"""
  import toy  # pylint: disable=g-import-not-at-top

  images, labels = toy.arrays(96, seed=5)
  data = exporter.ExportData(calibration_images=images_lib.as_pixels(toy.arrays(64, seed=0)[0]),
                             train_ds=toy.data()[0], eval_images=images_lib.as_pixels(images),
                             eval_labels=labels, class_names=("c0", "c1", "c2"))
  manifest = exporter.export_all(bn_free_trained_dir, str(tmp_path / "export"),
                                 formats="fp32,int8,qat_int8", data=data,
                                 qat_result=lambda: bn_free_qat[1])
  formats = manifest["formats"]
  assert manifest["model"]["batch_norm_folded"] is False
  assert manifest["keras"]["accuracy"] >= 0.9
  assert formats["fp32"]["parity"]["max_abs_diff"] <= 1e-4
  for name in ("int8", "qat_int8"):
    assert formats[name]["parity"]["top1_agreement"] >= 0.95, (name, formats[name]["parity"])
  assert formats["qat_int8"]["ops"] == {**formats["int8"]["ops"], "MUL": 1, "ADD": 1}


# MediaPipe Tasks needs absl-py 2.x (`make mediapipe`); where it cannot be imported the
# app-loader test is skipped, saying why (docs/mediapipe.md).
MEDIAPIPE_IMAGES = 32


def _mediapipe():
  try:
    import mediapipe  # pylint: disable=g-import-not-at-top
    from mediapipe.tasks import python as tasks  # pylint: disable=g-import-not-at-top
    from mediapipe.tasks.python import vision  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    pytest.skip(f"mediapipe cannot be imported here ({error}): it needs absl-py 2.x, which "
                "tensorflow-model-optimization's pin excludes; `make mediapipe` runs this test "
                "in a venv of its own")
  return mediapipe, tasks, vision


def test_every_tflite_loads_in_mediapipe_with_its_labels_and_agrees_with_litert(
    exported, export_data):
  """What an Android, iOS or Python app does with the file: MediaPipe Tasks' ImageClassifier
  reads the input normalisation and the labels from the metadata."""
  mediapipe, tasks, vision = _mediapipe()
  export_dir, _ = exported
  pixels = export_data.eval_images[:MEDIAPIPE_IMAGES]
  for name in exporter.TFLITE_FORMATS:
    path = os.path.join(export_dir, tflite_lib.FILES[name])
    probabilities = litert.LiteRTRunner(path).predict(pixels)
    options = vision.ImageClassifierOptions(
        base_options=tasks.BaseOptions(model_asset_path=path), max_results=1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
      for image, litert_row in zip(pixels, probabilities):
        result = classifier.classify(mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB,
                                                     data=np.ascontiguousarray(image)))
        top = result.classifications[0].categories[0]
        assert top.category_name == CLASS_NAMES[top.index], name
        # Top-1 agrees: MediaPipe's class is LiteRT's most probable (a tie counts either way).
        assert litert_row[top.index] == pytest.approx(litert_row.max(), abs=1e-6), (
            name, top.index, int(litert_row.argmax()))
        assert top.score == pytest.approx(litert_row.max(), abs=1e-3), name
