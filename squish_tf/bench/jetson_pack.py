"""The Jetson's pack: the latency table's models as frozen graphs the device's TensorFlow imports.

`squish-profile pack --format=jetson` writes, instead of .tflite files, the same one-convolution
probes, overhead probe and calibration networks (`latency_table.probe_signatures`,
`calibration_specs`) as frozen GraphDefs that pass `jetson.check_portable`: a SavedModel written
by this TensorFlow does not load in the Jetson's TensorFlow 2.7 (docs/deploy.md), a frozen graph
of old ops does. The bundle's `jetson_trt.py --profile_out=...`, shipped in the pack, imports
each there, saves it as a SavedModel with the device's TensorFlow, converts it with TF-TRT and
times it (docs/devices.md).

  conv_graph_def((3, 1, "same", 16, 16, 16, 64, "relu"))   # one probe, random weights
  spec_graph_def(scaled_spec)                                # one calibration network
"""

from typing import Any, Tuple

import numpy as np
import tensorflow as tf

from squish_tf.export import jetson
from squish_tf.net import batch_norm, models
from squish_tf.net import spec as spec_lib

SUFFIX = ".pb"
SCRIPT = jetson.SCRIPT_FILE
INPUT, OUTPUT = jetson.INPUT_NODE + ":0", jetson.OUTPUT_NODE + ":0"


def conv_graph_def(signature: Tuple[Any, ...], seed: int = 0):
  """A one-convolution frozen graph (conv + bias + activation, random weights), input
  `jetson.INPUT_NODE` of shape [batch, H, W, C_in], output `jetson.OUTPUT_NODE`: the probe
  `latency.conv_tflite` converts for LiteRT, for TensorFlow on the Jetson."""
  kernel_size, strides, padding, height, width, in_channels, filters, activation = signature
  rng = np.random.default_rng(seed)
  kernel = rng.normal(0, 0.1, (kernel_size, kernel_size, in_channels, filters)).astype(np.float32)
  bias = rng.normal(0, 0.1, filters).astype(np.float32)
  with tf.Graph().as_default() as graph:
    image = tf.compat.v1.placeholder(tf.float32, [None, height, width, in_channels],
                                     name=jetson.INPUT_NODE)
    output = tf.nn.bias_add(tf.nn.conv2d(image, tf.constant(kernel), strides, padding.upper()),
                            tf.constant(bias))
    if activation == "relu":
      output = tf.nn.relu(output)
  graph_def = jetson.clean_graph_def(graph.as_graph_def(), jetson.INPUT_NODE, output.op.name)
  jetson.check_portable(graph_def)
  return graph_def


def spec_graph_def(spec: spec_lib.NetSpec, seed: int = 0):
  """The deployed network of `spec` with random weights as the bundle's frozen graph (for
  timing only): `latency.spec_tflite`, for TensorFlow on the Jetson."""
  deployed = batch_norm.deployed_spec(spec)
  return jetson.frozen_graph_def(models.build_model(deployed, seed=seed), deployed)


def conv_graph(signature: Tuple[Any, ...]) -> bytes:
  """`conv_graph_def`, serialized: a probe file of the pack."""
  return conv_graph_def(signature).SerializeToString()


def spec_graph(spec: spec_lib.NetSpec) -> bytes:
  """`spec_graph_def`, serialized: a calibration network's file of the pack."""
  return spec_graph_def(spec).SerializeToString()


def script_path() -> str:
  """The script the pack ships: the Jetson bundle's, which measures a pack on the device."""
  return jetson.script_path()
