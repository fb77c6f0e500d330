"""Native libraries' lines (the TFLite converter's, LiteRT's) go to the run's log, not the console."""

import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from squish_tf.export import tflite as tflite_lib
from squish_tf.runtime import native_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUANTIZER_LINE = "fully_quantize:"
DELEGATE_LINE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def _tiny_model():
  return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                           keras.layers.GlobalAveragePooling2D(), keras.layers.Softmax()])


def _int8_converter():
  converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_model())
  images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3))
  tflite_lib.set_full_integer(converter, images)
  return converter


def test_without_a_log_native_lines_show(capfd):
  with native_log.captured():
    os.write(2, b"a native line\n")
  assert capfd.readouterr().err == "a native line\n"
  assert native_log.log_path() is None


def test_with_a_log_native_lines_go_to_it_and_the_console_comes_back(capfd, tmp_path):
  path = tmp_path / "run" / "native.log"
  with native_log.logging_to(str(path)):
    assert not path.exists()  # nothing written before a captured block runs
    with native_log.captured():
      os.write(2, b"first\n")
    with native_log.captured():
      os.write(2, b"second\n")
    os.write(2, b"outside a block\n")
  os.write(2, b"after\n")
  assert capfd.readouterr().err == "outside a block\nafter\n"
  assert path.read_text() == "first\nsecond\n"
  assert native_log.log_path() is None


def test_the_converters_settings_line_goes_to_the_log(capfd, tmp_path):
  tflite_lib.convert(_int8_converter())
  assert QUANTIZER_LINE in capfd.readouterr().err  # the line the log keeps off the console

  path = tmp_path / "native.log"
  with native_log.logging_to(str(path)):
    content = tflite_lib.convert(_int8_converter())
  assert QUANTIZER_LINE not in capfd.readouterr().err
  assert QUANTIZER_LINE in path.read_text()
  assert content[4:8] == b"TFL3"


_RUNNER = """
import sys
from squish_tf.runtime import litert, native_log
if sys.argv[2]:
  with native_log.logging_to(sys.argv[2]):
    litert.LiteRTRunner(sys.argv[1])
else:
  litert.LiteRTRunner(sys.argv[1])
print("made")
"""


def test_litert_delegate_line_goes_to_the_log(tmp_path):
  """LiteRT says it once per process: each case runs in a fresh one (without TensorFlow)."""
  model = tmp_path / "model.tflite"
  model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(_tiny_model()).convert())
  log = tmp_path / "native.log"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
  plain, logged = (subprocess.run([sys.executable, "-c", _RUNNER, str(model), where],
                                  capture_output=True, text=True, env=env, check=True, cwd=ROOT)
                   for where in ("", str(log)))
  assert DELEGATE_LINE in plain.stderr and plain.stdout == "made\n"
  assert DELEGATE_LINE not in logged.stderr and logged.stdout == "made\n"
  assert DELEGATE_LINE in log.read_text()
