"""Classifying image files with any artefact of a model: the library of `squish-predict`.

  model = predict.resolve_model("saved_models/demo/export/model_int8.tflite")
  for path, top in predict.classify(model, predict.image_paths(["cat.jpg", "photos/"])):
    print(predict.format_line(path, top))

A model is a model directory (model.keras), a SavedModel directory
(saved_model.pb), a .tflite file or a run directory (its SquishedNet: the
export's fp32 .tflite, else squishednet/model.keras; `Model.note` says so),
run by the benchmark's runners
(`squish_tf.bench.runners`: LiteRT for .tflite, with its input quantization).
Its labels are the export's labels.txt beside it (an export directory holds
both), else the class names in the model directory's metrics.json (or, in a
run directory, the ancestor's), else the class indices. Images are decoded and resized exactly as training saw them
(`squish_tf.data.images`: bilinear with antialiasing, rounded to uint8 pixels).
"""

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf import layout as layout_lib
from squish_tf.bench import runners as runners_lib
from squish_tf.data import images as images_lib
from squish_tf.data.config import IMAGE_EXTENSIONS
from squish_tf.export import tflite as tflite_lib
from squish_tf.net import model_io

LABELS_FILE = "labels.txt"
KERAS_FILE = "model.keras"
SAVED_MODEL_PB = "saved_model.pb"
_FORMS = ("a model directory (holding model.keras), a SavedModel directory (holding "
          "saved_model.pb), a .tflite file or a run directory (its SquishedNet)")


@dataclasses.dataclass(frozen=True)
class Model:
  """An artefact to classify with: its runner kind, path and class labels."""

  kind: str  # "keras", "saved_model" or "tflite"
  path: str
  labels: Tuple[str, ...]
  note: Optional[str] = None  # why this file, when --model named something else (a run dir)


def resolve_model(path: str) -> Model:
  """The artefact at `path` and its labels; a ValueError says what is accepted."""
  if not path or not os.path.exists(path):
    raise ValueError(f"--model {path!r} does not exist; give {_FORMS}.")
  if os.path.isfile(path):
    if not path.endswith(".tflite"):
      raise ValueError(f"--model {path!r} is a file but not a .tflite file; give {_FORMS}.")
    return Model("tflite", path, _labels(os.path.dirname(path)))
  if os.path.isfile(os.path.join(path, SAVED_MODEL_PB)):
    return Model("saved_model", path, _labels(os.path.dirname(os.path.normpath(path)), path))
  if os.path.isfile(os.path.join(path, KERAS_FILE)):
    # A run's models share its ancestor's classes (the SquishedNet's dir keeps no names).
    return Model("keras", os.path.join(path, KERAS_FILE),
                 _labels(os.path.join(path, "export"), path,
                         os.path.join(os.path.dirname(os.path.normpath(path)), "ancestor")))
  if is_run_dir(path):
    return dataclasses.replace(resolve_model(run_squishednet(path)),
                               note=f"the SquishedNet of run {path}")
  raise ValueError(f"--model {path!r} is a directory with neither {KERAS_FILE} nor "
                   f"{SAVED_MODEL_PB}; give {_FORMS}.")


def is_run_dir(path: str) -> bool:
  """A main job's run dir: its ancestor, and its SquishedNet's dir or export beside it."""
  return os.path.isdir(os.path.join(path, layout_lib.ANCESTOR_DIR)) and any(
      os.path.isdir(os.path.join(path, name))
      for name in (layout_lib.SQUISHEDNET_DIR, layout_lib.EXPORT_DIR))


def run_squishednet(run_dir: str) -> str:
  """A run's SquishedNet, as `resolve_model` takes it: the fp32 .tflite of its export (what
  the report times and scores, labels.txt beside it), else its trained model dir."""
  exported = os.path.join(run_dir, layout_lib.EXPORT_DIR, tflite_lib.FILES["fp32"])
  if os.path.isfile(exported):
    return exported
  trained = os.path.join(run_dir, layout_lib.SQUISHEDNET_DIR)
  if os.path.isfile(os.path.join(trained, KERAS_FILE)):
    return trained
  raise ValueError(
      f"--model {run_dir!r} is a run dir whose SquishedNet is neither exported "
      f"({layout_lib.EXPORT_DIR}/{tflite_lib.FILES['fp32']}) nor trained "
      f"({layout_lib.SQUISHEDNET_DIR}/{KERAS_FILE}) yet: finish the run (re-run its command), "
      f"or give {_FORMS}.")


def _labels(*directories: str) -> Tuple[str, ...]:
  """labels.txt in the first directory that has one, else metrics.json's class names."""
  for directory in directories:
    path = os.path.join(directory, LABELS_FILE)
    if os.path.isfile(path):
      with open(path, encoding="utf-8") as handle:
        return tuple(line.rstrip("\n") for line in handle if line.strip())
  for directory in directories:
    metrics = files_lib.optional_read_json(os.path.join(directory, model_io.METRICS_FILE))
    if metrics and metrics.get("class_names"):
      return tuple(metrics["class_names"])
  return ()


def image_paths(inputs: Sequence[str]) -> List[str]:
  """Image files named or found (recursively, sorted) in named folders, in the order given."""
  if not inputs:
    raise ValueError("no images given: name image files or folders after the flags, e.g. "
                     "squish-predict --model=PATH cat.jpg photos/.")
  found = []
  for item in inputs:
    if os.path.isdir(item):
      inside = sorted(os.path.join(root, name) for root, _, names in os.walk(item)
                      for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
      if not inside:
        raise ValueError(f"folder {item!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}).")
      found.extend(inside)
    elif os.path.isfile(item):
      if not item.lower().endswith(IMAGE_EXTENSIONS):
        raise ValueError(f"{item!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
      found.append(item)
    else:
      raise ValueError(f"{item!r} does not exist; name image files or folders.")
  return found


def load_pixels(path: str, size: Tuple[int, int]) -> np.ndarray:
  """uint8 [1, H, W, 3]: the file decoded and resized as the training pipelines do."""
  try:
    image = images_lib.decode_image(tf.io.read_file(path))
  except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
    raise ValueError(f"{path!r} could not be decoded as JPEG/PNG/BMP/GIF "
                     f"({error.message.splitlines()[0]}).") from None
  if size[0] != size[1]:
    raise ValueError(f"the model takes {size[0]}x{size[1]} images; squish models are square.")
  return images_lib.resize(image, size[0]).numpy()[None]


def classify(model: Model, paths: Sequence[str], top_k: int = 3,
             num_threads: int = 2) -> List[Tuple[str, List[Tuple[str, float]]]]:
  """[(path, [(label, probability), ...top_k])] for every image, one invoke per image."""
  if top_k < 1:
    raise ValueError(f"--top_k must be at least 1, got {top_k}.")
  runner = runners_lib.load_runner(model.kind, model.path, num_threads)
  results = []
  for path in paths:
    pixels = load_pixels(path, runner.input_size)
    probabilities = runner.probabilities(runner.invoke(runner.feed(pixels)))[0]
    if model.labels and len(model.labels) != len(probabilities):
      raise ValueError(f"the model has {len(probabilities)} classes but its labels list "
                       f"{len(model.labels)}; check labels.txt beside {model.path!r}.")
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    results.append((path, [(label_of(model, int(i)), float(probabilities[i])) for i in order]))
  return results


def label_of(model: Model, index: int) -> str:
  """Class `index`'s label (the index itself when the model came without labels)."""
  return model.labels[index] if model.labels else str(index)


def format_line(path: str, top: Sequence[Tuple[str, float]]) -> str:
  """"photos/cat/1.jpg  cat 0.912  dog 0.071  fox 0.010"."""
  return "  ".join([path] + [f"{label} {probability:.3f}" for label, probability in top])


def folder_accuracy(results: Sequence[Tuple[str, Sequence[Tuple[str, float]]]],
                    labels: Sequence[str]) -> Tuple[float, int]:
  """(top-1 accuracy, images) where each image's class is the folder holding it."""
  if not labels:
    raise ValueError("--labels_from_folders needs the model's class names: put the export's "
                     "labels.txt beside the model, or use its model directory.")
  known = set(labels)
  correct = 0
  for path, top in results:
    truth = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if truth not in known:
      raise ValueError(f"--labels_from_folders: {path!r} sits in folder {truth!r}, which is no "
                       f"class of the model ({', '.join(labels)}).")
    correct += top[0][0] == truth
  return correct / len(results), len(results)


def accuracy_line(accuracy: float, count: int, model: Optional[Model] = None) -> str:
  """"top-1 accuracy (tflite): 93.75% of 16 images"."""
  where = f" ({model.kind})" if model is not None else ""
  return f"top-1 accuracy{where}: {100 * accuracy:.2f}% of {count} images"
