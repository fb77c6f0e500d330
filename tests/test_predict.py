"""squish-predict: one line per image, the same answer from keras, SavedModel and .tflite."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import toy
from squish_tf import export as export_lib
from squish_tf.bench import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(toy_parent_dir, tmp_path_factory):
  """The toy parent, exported to a SavedModel and fp32 .tflite (labels.txt beside them)."""
  export_dir = str(tmp_path_factory.mktemp("predict") / "export")
  export_lib.export_all(toy_parent_dir, export_dir, formats="saved_model,fp32")
  return toy_parent_dir, export_dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """Twelve PNGs of the toy classes in class folders c0, c1, c2 (the toy's class names)."""
  root = tmp_path_factory.mktemp("photos")
  images, labels = toy.arrays(12, seed=7)
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = root / f"c{label}"
    folder.mkdir(exist_ok=True)
    png = tf.io.encode_png(np.clip(np.rint(image), 0, 255).astype(np.uint8)).numpy()
    (folder / f"{i:02d}.png").write_bytes(png)
  return str(root)


def test_keras_saved_model_and_tflite_agree_on_the_same_images(exported, photos):
  model_dir, export_dir = exported
  paths = predict.image_paths([photos])
  assert len(paths) == 12 and paths == sorted(paths)
  answers = {}
  for where in (model_dir, os.path.join(export_dir, "saved_model"),
                os.path.join(export_dir, "model_fp32.tflite")):
    model = predict.resolve_model(where)
    assert model.labels == ("c0", "c1", "c2")
    answers[model.kind] = predict.classify(model, paths, top_k=3)
  assert sorted(answers) == ["keras", "saved_model", "tflite"]
  for kind, results in answers.items():
    assert [path for path, _ in results] == paths
    assert [top[0][0] for _, top in results] == [top[0][0] for _, top in answers["keras"]], kind
    for (_, top), (_, reference) in zip(results, answers["keras"]):
      assert [label for label, _ in top] == [label for label, _ in reference]
      np.testing.assert_allclose([p for _, p in top], [p for _, p in reference], atol=1e-4)
      assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
  # The parent learned the toy classes: each image's folder is its top-1 class.
  assert predict.folder_accuracy(answers["tflite"], ("c0", "c1", "c2")) == (1.0, 12)


def test_the_command_prints_a_line_per_image_and_the_accuracy(exported, photos, tmp_path):
  _, export_dir = exported
  one = os.path.join(photos, "c1", sorted(os.listdir(os.path.join(photos, "c1")))[0])
  done = subprocess.run(
      [sys.executable, "-m", "pipelines.predict",
       f"--model={os.path.join(export_dir, 'model_fp32.tflite')}", "--top_k=2",
       "--labels_from_folders", photos, one],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stdout.strip().splitlines()
  assert len(lines) == 14 and lines[-1] == "top-1 accuracy (tflite): 100.00% of 13 images"
  assert lines[12].startswith(one + "  c1 ") and len(lines[12].split("  ")) == 3
  # Bad input: one line naming it, exit 2.
  done = subprocess.run([sys.executable, "-m", "pipelines.predict",
                         f"--model={tmp_path / 'nowhere'}", one],
                        capture_output=True, text=True, timeout=300, cwd=REPO,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
  error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
  assert len(error) == 1 and "nowhere" in error[0] and "does not exist" in error[0]


def test_bad_input_is_named_with_what_to_give(exported, photos, tmp_path):
  _, export_dir = exported
  tflite = predict.resolve_model(os.path.join(export_dir, "model_fp32.tflite"))
  one = predict.image_paths([photos])[0]
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"not a png")
  (tmp_path / "empty").mkdir()
  (tmp_path / "notes.txt").write_text("x")
  for where, message in ((tmp_path / "nowhere", "does not exist"),
                         (broken, "not a .tflite file"),
                         (export_dir, "neither model.keras nor saved_model.pb")):
    with pytest.raises(ValueError, match=message):
      predict.resolve_model(str(where))
  for inputs, message in (([], "no images given"), ([str(tmp_path / "empty")], "holds no image"),
                          ([str(tmp_path / "notes.txt")], "not an image file"),
                          ([str(tmp_path / "gone.png")], "does not exist")):
    with pytest.raises(ValueError, match=message):
      predict.image_paths(inputs)
  with pytest.raises(ValueError, match="broken.png.*could not be decoded"):
    predict.classify(tflite, [str(broken)])
  with pytest.raises(ValueError, match="top_k must be at least 1"):
    predict.classify(tflite, [one], top_k=0)
  shutil.copy(one, tmp_path / "stray.png")
  results = predict.classify(tflite, [str(tmp_path / "stray.png")])
  with pytest.raises(ValueError, match="stray.png.*no class of the model"):
    predict.folder_accuracy(results, tflite.labels)
  with pytest.raises(ValueError, match="needs the model's class names"):
    predict.folder_accuracy(results, ())


def test_a_runs_squishednet_takes_the_ancestors_class_names(exported, tmp_path):
  """The SquishedNet's model dir keeps no class names; its run's ancestor does."""
  model_dir, _ = exported
  run = tmp_path / "run"
  shutil.copytree(model_dir, run / "squishednet")
  (run / "squishednet" / "metrics.json").write_text('{"params": 1}')
  assert predict.resolve_model(str(run / "squishednet")).labels == ()
  (run / "ancestor").mkdir()
  (run / "ancestor" / "metrics.json").write_text('{"class_names": ["red", "green", "blue"]}')
  assert predict.resolve_model(str(run / "squishednet")).labels == ("red", "green", "blue")


def test_a_run_dir_predicts_with_its_squishednet_and_says_which_file(exported, photos, tmp_path):
  model_dir, export_dir = exported
  run = tmp_path / "run"
  (run / "ancestor").mkdir(parents=True)
  (run / "ancestor" / "metrics.json").write_text('{"class_names": ["c0", "c1", "c2"]}')
  (run / "export").mkdir()
  with pytest.raises(ValueError, match="neither exported .*model_fp32.tflite.* nor trained "
                                       ".*squishednet/model.keras"):
    predict.resolve_model(str(run))
  shutil.copytree(model_dir, run / "squishednet")  # trained, not exported yet: its Keras model
  model = predict.resolve_model(str(run))
  assert (model.kind, model.path) == ("keras", str(run / "squishednet" / "model.keras"))
  assert model.labels == ("c0", "c1", "c2") and str(run) in model.note
  for name in ("model_fp32.tflite", "labels.txt"):  # exported: the file the report timed
    shutil.copy(os.path.join(export_dir, name), run / "export" / name)
  model = predict.resolve_model(str(run))
  assert (model.kind, model.path) == ("tflite", str(run / "export" / "model_fp32.tflite"))
  assert model.labels == ("c0", "c1", "c2")
  paths = predict.image_paths([photos])
  direct = predict.resolve_model(os.path.join(export_dir, "model_fp32.tflite"))
  assert predict.classify(model, paths) == predict.classify(direct, paths)
  done = subprocess.run([sys.executable, "-m", "pipelines.predict", f"--model={run}", paths[0]],
                        capture_output=True, text=True, timeout=300, cwd=REPO,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert done.returncode == 0, done.stderr[-2000:]
  assert f"model: {run / 'export' / 'model_fp32.tflite'} (the SquishedNet of run {run})" in (
      done.stderr.splitlines())
  assert len(done.stdout.strip().splitlines()) == 1
  assert done.stdout.startswith(paths[0] + "  c")
