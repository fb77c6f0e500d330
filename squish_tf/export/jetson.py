"""The Jetson bundle: a frozen GraphDef that TF 2.7 on JetPack 4.6 can import.

A SavedModel written by this TensorFlow does not load in TF 2.7 (new ops such
as `DisableCopyOnRead`, new attributes such as `debug_name`), so the bundle
carries a frozen GraphDef instead: variables folded into constants, every op
in `ALLOWED_OPS` (ops TF 2.7 has), and no attribute that TF 2.7's op
definitions lack. `jetson_trt.py`, copied into the bundle, imports the graph
on the device, saves a SavedModel with the device's own TensorFlow and runs
TF-TRT there (TensorRT engines are specific to the GPU anyway).

The graph is the deployed network: a model trained with batch norm is first
folded (`batch_norm.deployed_model`: each batch norm's scale and shift go into
its convolution's kernel and bias), so the device sees plain Conv2D + BiasAdd
+ Relu and no FusedBatchNormV3, Rsqrt or AddV2 of two tensors, and the
bundle's spec.json is the deployed spec (`batch_norm` false). The reference
probabilities are the trained Keras model's own, so the device checks the
folding too.

The graph is traced from the (folded) Keras model, then cleaned:

1. control edges and the `NoOp` that freezing leaves behind are dropped, and
   `Identity` nodes (variable reads) are bypassed;
2. `Reshape`/`Squeeze` of constants (Keras 3's bias reshapes) are folded into
   constants;
3. `AddV2(x, c)` with a constant `c` (the Rescaling offset) becomes
   `Sub(x, -c)`, so only ops of the list remain;
4. every attribute that equals its op's default is dropped (the importer
   fills defaults back in, and an attribute added to an op after TF 2.7 has a
   default by TensorFlow's compatibility rules), and what remains is checked
   against `TF27_OP_ATTRS`.

The main job ships the ancestor's bundle beside the SquishedNet's
(`export/jetson/` and `export/jetson_ancestor/`, `place_reference_bundle`),
so the device can time the two interleaved and print the speed-up:

  python3 jetson/jetson_trt.py --reference_bundle_dir jetson_ancestor --precision FP16
"""

import os
import re
import shutil
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants, op_def_registry

from squish_tf import files as files_lib
from squish_tf.data import images as images_lib
from squish_tf.net import batch_norm, model_io
from squish_tf.net import spec as spec_lib

BUNDLE_DIR = "jetson"
# The ancestor's bundle, beside the SquishedNet's in the run's export directory.
REFERENCE_BUNDLE_DIR = "jetson_ancestor"
GRAPH_FILE = "frozen_graph.pb"
INPUT_FILE = "input.json"
LABELS_FILE = "labels.txt"
SCRIPT_FILE = "jetson_trt.py"
REFERENCE_IMAGES_FILE = "reference_images.npy"
REFERENCE_OUTPUTS_FILE = "reference_probabilities.npy"

INPUT_NODE = "image"
OUTPUT_NODE = "probabilities"

# Ops the TF 2.7 build on JetPack 4.6 runs and TF-TRT 8 converts (docs/deploy.md).
ALLOWED_OPS = frozenset({
    "Placeholder", "Const", "Conv2D", "BiasAdd", "Relu", "MaxPool", "ConcatV2", "Mean",
    "Softmax", "Identity", "Cast", "Mul", "Sub", "Reshape", "Squeeze",
})

# Attribute names of those ops in TF 2.7's op definitions
# (tensorflow/core/ops/compat/ops_history_v2/*.pbtxt at v2.7.0). Attributes
# with defaults are dropped when they hold the default, so in practice only
# the required ones (dtype, T, strides, padding, ksize, N, ...) are written.
TF27_OP_ATTRS: Dict[str, frozenset] = {
    "Placeholder": frozenset({"dtype", "shape"}),
    "Const": frozenset({"value", "dtype"}),
    "Conv2D": frozenset({"T", "strides", "use_cudnn_on_gpu", "padding", "explicit_paddings",
                         "data_format", "dilations"}),
    "BiasAdd": frozenset({"T", "data_format"}),
    "Relu": frozenset({"T"}),
    "MaxPool": frozenset({"T", "ksize", "strides", "padding", "explicit_paddings",
                          "data_format"}),
    "ConcatV2": frozenset({"N", "T", "Tidx"}),
    "Mean": frozenset({"keep_dims", "T", "Tidx"}),
    "Softmax": frozenset({"T"}),
    "Identity": frozenset({"T"}),
    "Cast": frozenset({"SrcT", "DstT", "Truncate"}),
    "Mul": frozenset({"T"}),
    "Sub": frozenset({"T"}),
    "Reshape": frozenset({"T", "Tshape"}),
    "Squeeze": frozenset({"T", "squeeze_dims"}),
}


def frozen_graph_def(model, spec: spec_lib.NetSpec) -> tf.compat.v1.GraphDef:
  """The model as a portable frozen GraphDef, batch norm folded.

  Args:
    model: a Keras 3 model built by `squish_tf.net.models.build_model` (ending in
      softmax), with or without batch norm.
    spec: its spec (the input shape; with batch norm, the model is folded
      into its deployed twin first).

  Returns:
    A GraphDef with input `image:0` (float32 [batch, H, W, C] pixels in
    [0, 255]) and output `probabilities:0` (float32 [batch, num_classes]),
    whose nodes pass `check_portable`.
  """
  model, spec = batch_norm.for_export(model, spec)
  height, width, channels = spec.input_shape
  function = tf.function(lambda image: model(image, training=False))
  concrete = function.get_concrete_function(
      tf.TensorSpec([None, height, width, channels], tf.float32, name=INPUT_NODE))
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  graph_def = frozen.graph.as_graph_def()
  if graph_def.library.function:
    raise ValueError(f"Freezing {model.name!r} left {len(graph_def.library.function)} functions "
                     "in the graph; the Jetson bundle needs a flat graph.")
  output = frozen.outputs[0].name.split(":")[0]
  inputs = [node.name for node in graph_def.node if node.op == "Placeholder"]
  if len(inputs) != 1:
    raise ValueError(f"Expected one input placeholder in the frozen graph, found {inputs}.")
  scopes = {model.name}
  layer_names = {layer.name for layer in model.layers}
  cleaned = clean_graph_def(graph_def, inputs[0], output, scopes=scopes, layer_names=layer_names)
  check_portable(cleaned)
  return cleaned


def clean_graph_def(graph_def, input_node: str, output_node: str,
                    scopes: Iterable[str] = (), layer_names: Iterable[str] = ()):
  """A copy of a frozen graph reduced to TF 2.7-portable ops and attributes.

  Args:
    graph_def: a frozen GraphDef (no variables, no function library).
    input_node: its input placeholder; renamed `INPUT_NODE`.
    output_node: the node producing the output; an `Identity` named
      `OUTPUT_NODE` is put after it.
    scopes: model name scopes to strip from node names ("squishednet_base").
    layer_names: layer names whose Keras uniquifying suffix ("conv1_1") is
      stripped, so nodes read "fire2_squeeze1x1/convolution".

  Returns:
    The cleaned GraphDef, topologically ordered, with only the nodes the
    output needs.
  """
  nodes = {node.name: node for node in graph_def.node}
  for name in (input_node, output_node):
    if name not in nodes:
      raise ValueError(f"Node {name!r} is not in the graph.")

  def source(tensor: str) -> str:
    """The producer of a data input, looking through Identity nodes."""
    name, _, port = tensor.partition(":")
    while nodes[name].op == "Identity" and name != input_node:
      name, _, port = nodes[name].input[0].partition(":")
    return name + (":" + port if port and port != "0" else "")

  def data_inputs(node) -> List[str]:
    return [source(t) for t in node.input if not t.startswith("^")]

  # Reachable nodes from the output, in post-order (producers first).
  order: List[str] = []
  seen = set()
  stack = [(source(output_node), False)]
  while stack:
    name, expanded = stack.pop()
    if expanded:
      order.append(name)
      continue
    if name in seen:
      continue
    seen.add(name)
    stack.append((name, True))
    for tensor in reversed(data_inputs(nodes[name])):
      stack.append((tensor.split(":")[0], False))

  constants: Dict[str, np.ndarray] = {}
  out_nodes: Dict[str, Any] = {}  # insertion order is topological
  for name in order:
    original = nodes[name]
    node = tf.compat.v1.NodeDef()
    node.CopyFrom(original)
    del node.input[:]
    node.input.extend(data_inputs(original))
    node.ClearField("device")
    if node.op == "Const":
      constants[name] = tf.make_ndarray(node.attr["value"].tensor)
    elif node.op in ("Reshape", "Squeeze") and node.input[0] in constants:
      node = _fold_constant(node, constants)
      constants[name] = tf.make_ndarray(node.attr["value"].tensor)
    elif node.op in ("AddV2", "Add"):
      node = _add_to_sub(node, constants, out_nodes)
    out_nodes[name] = node

  # Drop constants that only fed folded nodes.
  used = {tensor.split(":")[0] for node in out_nodes.values() for tensor in node.input}
  used.add(source(output_node))
  kept = [node for name, node in out_nodes.items() if name in used]

  renames = _clean_names(kept, input_node, set(scopes), set(layer_names))
  result = tf.compat.v1.GraphDef()
  result.versions.CopyFrom(graph_def.versions)
  for node in kept:
    node.name = renames[node.name]
    inputs = [renames[t.split(":")[0]] + (":" + t.split(":")[1] if ":" in t else "")
              for t in node.input]
    del node.input[:]
    node.input.extend(inputs)
    _strip_attrs(node)
    result.node.add().CopyFrom(node)
  output = result.node.add()
  output.name = OUTPUT_NODE
  output.op = "Identity"
  output.input.append(renames[source(output_node)])
  output.attr["T"].type = tf.float32.as_datatype_enum
  return result


def check_portable(graph_def) -> None:
  """Raises ValueError naming every node TF 2.7 could not import.

  A node fails when its op is not in `ALLOWED_OPS`, an attribute is not in
  TF 2.7's definition of the op, or it has control inputs or a device.
  """
  problems = []
  for node in graph_def.node:
    if node.op not in ALLOWED_OPS:
      problems.append(f"{node.name}: op {node.op} is not in the TF 2.7 list")
      continue
    extra = sorted(set(node.attr) - TF27_OP_ATTRS[node.op])
    if extra:
      problems.append(f"{node.name}: attributes {extra} are not in TF 2.7's {node.op}")
    if any(tensor.startswith("^") for tensor in node.input) or node.device:
      problems.append(f"{node.name}: control inputs or a device placement")
  if graph_def.library.function:
    problems.append(f"{len(graph_def.library.function)} functions in the graph library")
  if problems:
    raise ValueError("The frozen graph would not import in TF 2.7 on the Jetson: "
                     + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else "")
                     + ". Only ops and attributes listed in squish_tf/export/jetson.py travel.")


def graph_ops(graph_def) -> Dict[str, int]:
  """{op: count} of a GraphDef."""
  counts: Dict[str, int] = {}
  for node in graph_def.node:
    counts[node.op] = counts.get(node.op, 0) + 1
  return dict(sorted(counts.items()))


def run_graph_def(graph_def, images: np.ndarray, input_node: str = INPUT_NODE,
                  output_node: str = OUTPUT_NODE) -> np.ndarray:
  """Runs a frozen graph in this TensorFlow (as the Jetson script does in TF 2.7)."""

  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name="")

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  graph = wrapped.graph
  function = wrapped.prune(graph.as_graph_element(input_node + ":0"),
                           graph.as_graph_element(output_node + ":0"))
  return function(tf.constant(np.asarray(images, np.float32))).numpy()


def write_bundle(model, spec: spec_lib.NetSpec, class_names: Sequence[str], bundle_dir: str,
                 reference_images: Optional[np.ndarray] = None) -> Dict[str, Any]:
  """Writes the Jetson bundle into `bundle_dir` (which must not exist yet).

  Files: frozen_graph.pb, spec.json, labels.txt, input.json, jetson_trt.py
  and, when `reference_images` are given, reference_images.npy (uint8) with
  the Keras model's reference_probabilities.npy, so the device (and
  `make compat`) can check the imported graph against Keras.

  The graph and spec.json are the deployed network (batch norm folded, spec
  with `batch_norm` false); the reference probabilities come from `model` as
  given, batch norm and all.

  Returns:
    {"graph_def": the GraphDef, "ops": {op: count}, "input": input.json's content}.
  """
  deployed, deployed_spec = batch_norm.for_export(model, spec)
  graph_def = frozen_graph_def(deployed, deployed_spec)
  os.makedirs(bundle_dir)
  files_lib.write_bytes(os.path.join(bundle_dir, GRAPH_FILE), graph_def.SerializeToString())
  files_lib.write_text(os.path.join(bundle_dir, model_io.SPEC_FILE), deployed_spec.to_json())
  files_lib.write_text(os.path.join(bundle_dir, LABELS_FILE), labels_text(class_names))
  height, width, channels = spec.input_shape
  input_info = {
      "input": {"name": INPUT_NODE + ":0", "shape": [None, height, width, channels],
                "dtype": "float32", "layout": "NHWC", "channels": "RGB",
                "value_range": [0, 255]},
      "output": {"name": OUTPUT_NODE + ":0", "shape": [None, spec.num_classes],
                 "dtype": "float32", "meaning": "class probabilities (softmax), labels.txt order"},
      "preprocessing": "none outside the graph: feed RGB pixels in [0, 255]; the graph rescales.",
      "written_by_tensorflow": tf.__version__,
      "batch_norm_folded": bool(spec.batch_norm),
      "ops": graph_ops(graph_def),
  }
  if reference_images is not None:
    pixels = images_lib.as_pixels(reference_images)
    outputs = np.asarray(model(pixels.astype(np.float32), training=False), np.float32)
    _save_npy(os.path.join(bundle_dir, REFERENCE_IMAGES_FILE), pixels)
    _save_npy(os.path.join(bundle_dir, REFERENCE_OUTPUTS_FILE), outputs)
    input_info["reference"] = {"images": REFERENCE_IMAGES_FILE,
                               "probabilities": REFERENCE_OUTPUTS_FILE,
                               "count": int(pixels.shape[0])}
  files_lib.write_json(os.path.join(bundle_dir, INPUT_FILE), input_info)
  with files_lib.atomic_path(os.path.join(bundle_dir, SCRIPT_FILE)) as temp:
    shutil.copyfile(script_path(), temp)
  return {"graph_def": graph_def, "ops": input_info["ops"], "input": input_info}


def is_bundle(directory: str) -> bool:
  """Whether `directory` holds a Jetson bundle (its graph, input.json and the script)."""
  return all(os.path.isfile(os.path.join(directory, name))
             for name in (GRAPH_FILE, INPUT_FILE, SCRIPT_FILE))


def place_reference_bundle(bundle_dir: str, export_dir: str) -> str:
  """Copies a bundle (the ancestor's) into `export_dir` as `REFERENCE_BUNDLE_DIR`, atomically.

  Its jetson_trt.py is replaced by this version's, so the two bundles carry
  the same script. An existing copy is replaced.

  Returns:
    The copy's path.

  Raises:
    ValueError: `bundle_dir` is not a bundle.
  """
  if not is_bundle(bundle_dir):
    found = sorted(os.listdir(bundle_dir)) if os.path.isdir(bundle_dir) else "nothing"
    raise ValueError(f"{bundle_dir!r} is not a Jetson bundle (expected {GRAPH_FILE}, "
                     f"{INPUT_FILE} and {SCRIPT_FILE}; found {found}). Export the model with "
                     "the jetson format first.")
  target = os.path.join(export_dir, REFERENCE_BUNDLE_DIR)
  with files_lib.atomic_path(target) as temp:
    shutil.copytree(bundle_dir, temp)
    shutil.copyfile(script_path(), os.path.join(temp, SCRIPT_FILE))
  return target


def script_path() -> str:
  """Path of the on-device script shipped in every bundle."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), SCRIPT_FILE)


def labels_text(class_names: Sequence[str]) -> str:
  return "".join(f"{name}\n" for name in class_names)


# -- graph rewrites -------------------------------------------------------------


def _fold_constant(node, constants: Dict[str, np.ndarray]):
  value = constants[node.input[0]]
  if node.op == "Reshape":
    if node.input[1] not in constants:
      raise ValueError(f"{node.name}: Reshape of a constant by a non-constant shape.")
    value = value.reshape(constants[node.input[1]])
  else:
    dims = list(node.attr["squeeze_dims"].list.i)
    value = np.squeeze(value, axis=tuple(dims)) if dims else np.squeeze(value)
  folded = tf.compat.v1.NodeDef()
  folded.name = node.name
  folded.op = "Const"
  folded.attr["dtype"].type = node.attr["T"].type
  folded.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
  return folded


def _add_to_sub(node, constants: Dict[str, np.ndarray], built: Dict[str, Any]):
  """AddV2(x, c) -> Sub(x, -c): AddV2 is not in the Jetson op list."""
  operands = list(node.input)
  const_index = next((i for i, name in enumerate(operands) if name in constants), None)
  if const_index is None:
    raise ValueError(f"{node.name}: AddV2 of two non-constant tensors has no Sub equivalent; "
                     "the Jetson op list would need AddV2.")
  value = constants[operands[const_index]]
  if not np.issubdtype(value.dtype, np.floating):
    raise ValueError(f"{node.name}: AddV2 of a non-float constant cannot become Sub.")
  negated_name = node.name + "/negated"
  negated = tf.compat.v1.NodeDef()
  negated.name = negated_name
  negated.op = "Const"
  negated.attr["dtype"].type = node.attr["T"].type
  negated.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(-value))
  built[negated_name] = negated
  constants[negated_name] = -value
  sub = tf.compat.v1.NodeDef()
  sub.name = node.name
  sub.op = "Sub"
  sub.attr["T"].CopyFrom(node.attr["T"])
  sub.input.extend([operands[1 - const_index], negated_name])
  return sub


def _strip_attrs(node) -> None:
  """Drops internal attributes and attributes that hold their op's default."""
  op_def = op_def_registry.get(node.op)
  if op_def is None:
    raise ValueError(f"{node.name}: op {node.op} is not registered in this TensorFlow.")
  defaults = {attr.name: attr for attr in op_def.attr}
  for key in list(node.attr):
    definition = defaults.get(key)
    if definition is None:
      # "_output_shapes", "_class", "_has_manual_control_dependencies", ...:
      # not part of the op; older importers reject some of them.
      del node.attr[key]
    elif definition.HasField("default_value") and node.attr[key] == definition.default_value:
      del node.attr[key]


def _clean_names(nodes: List[Any], input_node: str, scopes: set, layer_names: set
                 ) -> Dict[str, str]:
  """Readable node names: no model scope, no Keras "_1" scope suffix; unique.

  Weights are named after their role ("conv1/kernel", "conv1/bias") rather
  than after the variable read that freezing replaced.
  """
  names = [node.name for node in nodes]
  by_name = {node.name: node for node in nodes}
  roles: Dict[str, str] = {}
  for node in nodes:
    role = {"Conv2D": "kernel", "BiasAdd": "bias"}.get(node.op)
    if role and len(node.input) > 1 and by_name[node.input[1]].op == "Const":
      roles.setdefault(node.input[1], node.name.rsplit("/", 1)[0] + "/" + role)

  def clean(name: str) -> str:
    name = roles.get(name, name)
    if name == input_node:
      return INPUT_NODE
    parts = name.split("/")
    if len(parts) > 1 and re.sub(r"_\d+$", "", parts[0]) in scopes:
      parts = parts[1:]
    parts = [re.sub(r"_\d+$", "", part) if re.sub(r"_\d+$", "", part) in layer_names else part
             for part in parts]
    return "/".join(parts)

  renames = {name: clean(name) for name in names}
  taken = list(renames.values()) + [OUTPUT_NODE]
  if len(set(taken)) != len(taken):
    # Readability is not worth a wrong graph: keep the original names.
    renames = {name: (INPUT_NODE if name == input_node else name) for name in names}
  return renames


def _save_npy(path: str, array: np.ndarray) -> None:
  with files_lib.atomic_path(path, suffix=".npy") as temp:
    with open(temp, "wb") as handle:
      np.save(handle, array)
