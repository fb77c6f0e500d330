"""Image-classifier metadata in .tflite files: labels round-trip, outputs unchanged (~5 s)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from squish_tf.export import metadata
from squish_tf.export import tflite as tflite_lib
from squish_tf.runtime import litert

CLASS_NAMES = ("circle", "square", "triangle")
LABELS_TEXT = "".join(f"{name}\n" for name in CLASS_NAMES)  # labels.txt, as the export writes it


def _images(n=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def plain():
  """{"fp32", "int8"}: a tiny classifier's .tflite bytes (float and full-integer, uint8 I/O)."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((8, 8, 3), name="image")
  hidden = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
  outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(
      keras.layers.GlobalAveragePooling2D()(hidden))
  model = keras.Model(inputs, outputs)
  function = tf.function(lambda image: model(image)).get_concrete_function(
      tf.TensorSpec((None, 8, 8, 3), tf.float32))
  fp32 = tflite_lib.converter_for(function).convert()
  converter = tflite_lib.converter_for(function)
  tflite_lib.set_full_integer(converter, _images(16, seed=1))
  return {"fp32": fp32, "int8": converter.convert()}


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_outputs_are_identical_with_and_without_metadata(plain, name):
  tagged = metadata.with_metadata(plain[name], LABELS_TEXT, name="tiny")
  assert tagged != plain[name]
  images = _images()
  without = litert.LiteRTRunner(plain[name], num_threads=1)
  with_metadata = litert.LiteRTRunner(tagged, num_threads=1)
  raw_with, raw_without = with_metadata.prepare(images)(), without.prepare(images)()
  assert raw_with.dtype == raw_without.dtype  # uint8 for int8: the very bytes the file gives
  np.testing.assert_array_equal(raw_with, raw_without)
  np.testing.assert_array_equal(with_metadata.predict(images), without.predict(images))
  assert with_metadata.op_counts() == without.op_counts()


@pytest.mark.parametrize("name, pixel_type", [("fp32", "float32"), ("int8", "uint8")])
def test_labels_and_image_input_read_back(plain, name, pixel_type):
  tagged = metadata.with_metadata(plain[name], LABELS_TEXT, name="tiny")
  assert metadata.read_labels(tagged) == list(CLASS_NAMES)
  assert metadata.associated_files(tagged) == {"labels.txt": LABELS_TEXT.encode()}
  summary = metadata.read_metadata(tagged)
  assert summary["name"] == "tiny" and summary["min_parser_version"] == "1.0.0"
  (image,), (probability,) = summary["input"], summary["output"]
  assert image == {"name": "image", "type": pixel_type, "range": [0.0, 255.0],
                   "normalization": {"mean": [0.0], "std": [1.0]}, "associated_files": []}
  assert probability["type"] == pixel_type
  assert probability["range"] == [0.0, 255.0 if pixel_type == "uint8" else 1.0]
  assert probability["associated_files"] == [{"name": "labels.txt",
                                              "type": "TENSOR_AXIS_LABELS"}]
  entry = metadata.manifest_entry(tagged)
  assert entry["input"]["type"] == pixel_type and entry["associated_files"] == ["labels.txt"]


def test_metadata_is_replaced_not_stacked(plain):
  once = metadata.with_metadata(plain["fp32"], LABELS_TEXT)
  renamed = "".join(f"{name}_x\n" for name in CLASS_NAMES)
  again = metadata.with_metadata(once, renamed)
  assert metadata.read_labels(again) == [f"{name}_x" for name in CLASS_NAMES]
  assert metadata.with_metadata(once, LABELS_TEXT) == once
  assert len(again) - len(renamed) == len(once) - len(LABELS_TEXT)


def test_a_plain_file_has_none_and_label_counts_must_match(plain):
  assert metadata.read_metadata(plain["fp32"]) is None
  assert metadata.associated_files(plain["fp32"]) == {}
  with pytest.raises(ValueError, match="2 labels for a model with 3 classes"):
    metadata.with_metadata(plain["fp32"], "a\nb\n")
