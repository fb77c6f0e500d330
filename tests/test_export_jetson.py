"""The Jetson bundle: a frozen graph TF 2.7 can import, and the on-device script.

SMALL has no batch norm; SMALL_BN is the same network with it (random,
non-trivial statistics), whose bundle must be the folded graph: the same ops
as SMALL's, nothing TF 2.7 lacks, and Keras' outputs.
"""

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from squish_tf.export import jetson
from squish_tf.net import models
from squish_tf.net import spec as spec_lib

SMALL = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=5, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7),
                                spec_lib.FireSpec(5, 8, 8)),
                         pool_after=(1, 3), dropout_rate=0.5, kernel_initializer="he_uniform",
                         classifier_activation="linear", classifier_initializer="normal_0.01")
SMALL_BN = SMALL.replace(batch_norm=True, classifier_initializer="he_normal")

# Modules Python 3.6's standard library does not have (JetPack 4.6 runs 3.6.9).
NEWER_STDLIB = {"dataclasses", "contextvars", "graphlib", "zoneinfo", "tomllib"}
# Library calls newer than Python 3.6 that parse fine on 3.6 but fail when run.
NEWER_CALLS = ("perf_counter_ns", "capture_output", "removeprefix", "removesuffix", "math.prod",
               "nullcontext", "breakpoint(", "asyncio.run(", "fromisoformat",
               "statistics.quantiles")


@pytest.fixture(scope="module")
def model():
  return models.build_model(SMALL, seed=3)


@pytest.fixture(scope="module")
def bundle(model, tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("jetson") / jetson.BUNDLE_DIR)
  reference = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  result = jetson.write_bundle(model, SMALL, ["a", "b", "c", "d", "e"], directory, reference)
  return directory, result


def _pixels(n=16, seed=1):
  return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def bn_model():
  """SMALL_BN with random gamma (some negative) and beta, statistics from data, then perturbed."""
  import toy  # pylint: disable=g-import-not-at-top
  return toy.randomize_batch_norm(models.build_model(SMALL_BN, seed=3), _pixels(32, seed=5), 4)


@pytest.fixture(scope="module")
def bn_bundle(bn_model, tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("jetson_bn") / jetson.BUNDLE_DIR)
  reference = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  result = jetson.write_bundle(bn_model, SMALL_BN, list("abcde"), directory, reference)
  return directory, result


def test_frozen_graph_uses_only_listed_ops_and_tf27_attributes(bundle):
  directory, _ = bundle
  graph_def = tf.compat.v1.GraphDef()
  with open(os.path.join(directory, jetson.GRAPH_FILE), "rb") as handle:
    graph_def.ParseFromString(handle.read())
  assert not graph_def.library.function
  ops = {node.op for node in graph_def.node}
  assert ops <= jetson.ALLOWED_OPS, ops - jetson.ALLOWED_OPS
  assert {"Conv2D", "BiasAdd", "Relu", "MaxPool", "ConcatV2", "Mean", "Softmax"} <= ops
  for node in graph_def.node:
    assert set(node.attr) <= jetson.TF27_OP_ATTRS[node.op], (node.name, sorted(node.attr))
    assert not any(name.startswith("_") for name in node.attr), node.name
    assert "debug_name" not in node.attr
    assert not any(tensor.startswith("^") for tensor in node.input), node.name
  names = [node.name for node in graph_def.node]
  assert len(names) == len(set(names))
  assert {jetson.INPUT_NODE, jetson.OUTPUT_NODE, "conv1/kernel", "conv1/bias"} <= set(names)


def test_frozen_graph_matches_keras(model, bundle):
  _, result = bundle
  pixels = _pixels()
  got = jetson.run_graph_def(result["graph_def"], pixels)
  np.testing.assert_allclose(got, np.asarray(model(pixels, training=False)), rtol=0, atol=1e-5)


def test_bundle_files_describe_the_graph(bundle, model):
  directory, result = bundle
  assert sorted(os.listdir(directory)) == sorted([
      jetson.GRAPH_FILE, "spec.json", jetson.LABELS_FILE, jetson.INPUT_FILE, jetson.SCRIPT_FILE,
      jetson.REFERENCE_IMAGES_FILE, jetson.REFERENCE_OUTPUTS_FILE])
  info = json.load(open(os.path.join(directory, jetson.INPUT_FILE)))
  assert info["input"] == {"name": "image:0", "shape": [None, 32, 32, 3], "dtype": "float32",
                           "layout": "NHWC", "channels": "RGB", "value_range": [0, 255]}
  assert info["output"]["name"] == "probabilities:0"
  assert info["output"]["shape"] == [None, 5]
  assert open(os.path.join(directory, jetson.LABELS_FILE)).read().split() == list("abcde")
  assert spec_lib.load_spec(os.path.join(directory, "spec.json")) == SMALL
  images = np.load(os.path.join(directory, jetson.REFERENCE_IMAGES_FILE))
  expected = np.load(os.path.join(directory, jetson.REFERENCE_OUTPUTS_FILE))
  assert images.dtype == np.uint8 and images.shape == (6, 32, 32, 3)
  np.testing.assert_allclose(expected, np.asarray(model(images.astype(np.float32))), atol=1e-6)
  with open(os.path.join(directory, jetson.SCRIPT_FILE)) as copied:
    assert copied.read() == open(jetson.script_path()).read()


def test_check_portable_names_what_would_not_import(bundle):
  _, result = bundle
  graph_def = tf.compat.v1.GraphDef()
  graph_def.CopyFrom(result["graph_def"])
  conv = next(node for node in graph_def.node if node.op == "Conv2D")
  conv.attr["debug_name"].s = b"x"
  relu = next(node for node in graph_def.node if node.op == "Relu")
  relu.op = "Relu6"
  with pytest.raises(ValueError) as error:
    jetson.check_portable(graph_def)
  message = str(error.value)
  assert f"{conv.name}: attributes ['debug_name']" in message
  assert f"{relu.name}: op Relu6 is not in the TF 2.7 list" in message


def test_add_of_two_tensors_is_refused_rather_than_kept():
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
    tf.identity(tf.add(x, x), name="out")
  with pytest.raises(ValueError, match="AddV2 of two non-constant tensors"):
    jetson.clean_graph_def(graph.as_graph_def(), "x", "out")


def test_script_is_python36_and_imports_only_stdlib_numpy_tensorflow():
  source = open(jetson.script_path()).read()
  tree = ast.parse(source, feature_version=(3, 6))
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0 and node.module != "__future__", ast.dump(node)
      imported.add(node.module)
  tops = {name.split(".")[0] for name in imported}
  assert {"numpy", "tensorflow", "argparse", "json"} <= tops
  outside = {top for top in tops if top not in sys.stdlib_module_names} - {"numpy", "tensorflow"}
  assert not outside
  assert not tops & NEWER_STDLIB
  for call in NEWER_CALLS:
    assert call not in source, call
  for node in ast.walk(tree):
    if isinstance(node, ast.arguments):
      assert not node.posonlyargs
    if isinstance(node, ast.FormattedValue):
      # feature_version does not catch 3.8's f"{x=}"; the script uses .format() only.
      raise AssertionError("f-string in the device script")


def _run_script(directory, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, os.path.join(directory, jetson.SCRIPT_FILE), *args],
                        capture_output=True, text=True, env=env, timeout=300)


def test_script_benchmarks_plain_graph_with_precision_none(bundle):
  directory, _ = bundle
  output = os.path.join(os.path.dirname(directory), "bench.json")
  done = _run_script(directory, "--precision", "none", "--batch_sizes", "1,4",
                     "--warmup_runs", "2", "--runs", "5", "--output_json", output)
  assert done.returncode == 0, done.stderr[-2000:]
  results = json.load(open(output))
  assert results["precision"] == "none"
  assert results["reference"]["max_abs_diff"] <= 1e-5
  assert results["reference"]["top1_agreement"] == 1.0
  assert [row["batch_size"] for row in results["results"]] == [1, 4]
  for row in results["results"]:
    assert row["images_per_sec"] > 0
    latency = row["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert row["runs"] == 5 and row["warmup_runs"] == 2
  assert "images/sec" in done.stdout


def test_script_refuses_tensorrt_precisions_without_tensorrt(bundle):
  directory, _ = bundle
  done = _run_script(directory, "--precision", "FP16")
  assert done.returncode == 3
  lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1
  assert "built without TensorRT" in lines[0] and "--precision none" in lines[0]
  assert not os.path.exists(os.path.join(directory, "trt_fp16"))


def test_script_needs_calibration_dir_for_int8(bundle):
  directory, _ = bundle
  done = _run_script(directory, "--precision", "INT8")
  assert done.returncode == 2
  assert "--calibration_dir" in done.stderr


def test_script_refuses_int8_on_a_tx1(bundle, tmp_path, monkeypatch, capsys):
  directory, _ = bundle
  loaded = importlib.util.spec_from_file_location("jetson_trt", jetson.script_path())
  script = importlib.util.module_from_spec(loaded)
  loaded.loader.exec_module(script)
  monkeypatch.setattr(script, "tensorrt_available", lambda tf: True)
  monkeypatch.setattr(script, "gpu_compute_capability", lambda tf: ("NVIDIA Tegra X1", (5, 3)))
  status = script.main(["--bundle_dir", directory, "--precision", "INT8",
                        "--calibration_dir", str(tmp_path)])
  assert status == 2
  message = capsys.readouterr().err
  assert "INT8 needs compute capability >= 6.1" in message and "5.3" in message
  assert "--precision FP16" in message


def test_bn_bundle_is_the_folded_graph_with_the_ops_of_the_bn_free_one(bn_bundle, bundle):
  directory, result = bn_bundle
  graph_def = tf.compat.v1.GraphDef()
  with open(os.path.join(directory, jetson.GRAPH_FILE), "rb") as handle:
    graph_def.ParseFromString(handle.read())
  jetson.check_portable(graph_def)
  assert jetson.graph_ops(graph_def) == result["ops"] == bundle[1]["ops"]
  assert not {"FusedBatchNormV3", "Rsqrt", "AddV2", "Add"} & set(result["ops"])
  assert result["ops"]["Conv2D"] == result["ops"]["BiasAdd"] == len(SMALL.layer_shapes())
  assert result["ops"]["Mul"] == result["ops"]["Sub"] == 1  # the Rescaling, as without BN
  for node in graph_def.node:
    assert set(node.attr) <= jetson.TF27_OP_ATTRS[node.op], (node.name, sorted(node.attr))
  names = {node.name for node in graph_def.node}
  assert {"conv1/kernel", "conv1/bias", "fire2_squeeze1x1/bias"} <= names
  assert not [name for name in names if "_bn" in name or "batchnorm" in name.lower()]


def test_bn_bundle_matches_the_keras_model_with_batch_norm(bn_model, bn_bundle):
  directory, result = bn_bundle
  pixels = _pixels(32, seed=6)
  expected = np.asarray(bn_model(pixels, training=False))
  got = jetson.run_graph_def(result["graph_def"], pixels)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
  # Neither near-uniform (0.2) nor one-hot, so the bound means something.
  assert 0.35 < expected.max(1).mean() < 0.95
  # The unfolded conv + BN would differ: folding really moved the weights.
  plain = models.build_model(SMALL, seed=3)
  for name in [layer.name for layer in SMALL.layer_shapes()]:
    kernel = bn_model.get_layer(name).get_weights()[0]
    bias = (np.zeros(kernel.shape[-1], np.float32) if name != "conv10"
            else bn_model.get_layer(name).get_weights()[1])
    plain.get_layer(name).set_weights([kernel, bias])
  assert np.abs(np.asarray(plain(pixels)) - expected).max() > 0.05
  images = np.load(os.path.join(directory, jetson.REFERENCE_IMAGES_FILE))
  reference = np.load(os.path.join(directory, jetson.REFERENCE_OUTPUTS_FILE))
  np.testing.assert_allclose(reference, np.asarray(bn_model(images.astype(np.float32))),
                             atol=1e-6)  # the trained model's own outputs, not the folded twin's
  np.testing.assert_allclose(jetson.run_graph_def(result["graph_def"], images), reference,
                             atol=1e-4)


def test_bn_bundle_describes_the_deployed_network(bn_bundle):
  directory, _ = bn_bundle
  assert spec_lib.load_spec(os.path.join(directory, "spec.json")) == SMALL_BN.replace(
      batch_norm=False)
  info = json.load(open(os.path.join(directory, jetson.INPUT_FILE)))
  assert info["batch_norm_folded"] is True
  assert info["output"]["shape"] == [None, 5]


def test_frozen_graph_def_folds_a_bn_model_given_directly(bn_model):
  graph_def = jetson.frozen_graph_def(bn_model, SMALL_BN)
  assert "FusedBatchNormV3" not in jetson.graph_ops(graph_def)
  unfolded = tf.function(lambda image: bn_model(image, training=False)).get_concrete_function(
      tf.TensorSpec([None, 32, 32, 3], tf.float32))
  # What the graph would hold without folding: batch norm's own arithmetic.
  raw_ops = {op.type for op in unfolded.graph.get_operations()}
  assert raw_ops & {"FusedBatchNormV3", "Rsqrt", "AddV2"}, raw_ops


# -- two bundles: the SquishedNet's and the ancestor's, timed interleaved on the device ----


def _script():
  loaded = importlib.util.spec_from_file_location("jetson_trt", jetson.script_path())
  script = importlib.util.module_from_spec(loaded)
  loaded.loader.exec_module(script)
  return script


class _Clock:
  """Time that moves only when a fake model runs."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_script_interleaves_and_takes_the_median_of_per_round_ratios():
  script, clock, order = _script(), _Clock(), []
  # Seconds per call in rounds 0, 1, 2: the subject stalls in the last round.
  latencies = {"subject": [1e-3, 1e-3, 5e-3], "reference": [2e-3, 3e-3, 4e-3]}
  done = {"subject": 0, "reference": 0}

  def model(name):
    def call():
      order.append(name)
      clock.now += latencies[name][done[name] // 2]
      done[name] += 1
    return call

  seconds = script.time_interleaved([("subject", model("subject")),
                                     ("reference", model("reference"))], rounds=3, invokes=2,
                                    clock=clock)
  assert order == (["subject"] * 2 + ["reference"] * 2) * 3  # A B A B, two calls each
  for name in latencies:
    np.testing.assert_allclose(seconds[name], latencies[name])
  stats = script.paired_stats(seconds["subject"], seconds["reference"], batch_size=4)
  np.testing.assert_allclose(stats["ratio"]["ratios"], [2.0, 3.0, 0.8])
  assert stats["ratio"]["median"] == pytest.approx(2.0)  # not 3e-3 / 1e-3, the medians' ratio
  assert (stats["ratio"]["min"], stats["ratio"]["max"]) == (pytest.approx(0.8), pytest.approx(3))
  assert stats["subject_images_per_sec"]["median"] == pytest.approx(4000.0)
  assert stats["reference_images_per_sec"]["median"] == pytest.approx(4 / 3e-3)
  assert stats["rounds"] == 3


def test_script_compare_times_both_functions_per_batch_size(capsys):
  script, clock = _script(), _Clock()
  calls = {"squishednet": [], "ancestor": []}

  class _Output:
    def numpy(self):
      return None

  def function(name, ms_per_image):
    def serve(image):
      calls[name].append(image.shape[0])
      clock.now += ms_per_image * 1e-3 * image.shape[0]
      return {"probabilities": _Output()}
    return serve

  class _FakeTF:
    constant = staticmethod(np.asarray)

  rows = script.compare(_FakeTF, function("squishednet", 1.0), function("ancestor", 1.6),
                        [1, 4], [8, 8, 3], warmup_runs=2, runs=10, rounds=4, clock=clock)
  assert [row["batch_size"] for row in rows] == [1, 4]
  for row in rows:
    assert row["invokes_per_round"] == 3 and row["rounds"] == 4  # ceil(10 / 4) calls a round
    assert row["ratio"]["median"] == pytest.approx(1.6)
  assert rows[1]["subject_images_per_sec"]["median"] == pytest.approx(1000.0)
  assert rows[1]["reference_images_per_sec"]["median"] == pytest.approx(625.0)
  for name in calls:  # 2 warm-up and 4 x 3 timed calls per batch size
    assert calls[name] == [1] * 14 + [4] * 14
  script.print_comparison(rows, "export/jetson", "jetson_ancestor")
  out = capsys.readouterr().out
  assert "speed of export/jetson over jetson_ancestor" in out
  assert "1.60x [1.60-1.60]" in out and "1000.0 [1000.0-1000.0]" in out


def test_script_refuses_a_reference_bundle_of_another_input(bundle, tmp_path, capsys):
  directory, _ = bundle
  other = str(tmp_path / "other")
  shutil.copytree(directory, other)
  info = json.load(open(os.path.join(other, jetson.INPUT_FILE)))
  info["input"]["shape"] = [None, 64, 64, 3]
  json.dump(info, open(os.path.join(other, jetson.INPUT_FILE), "w"))
  script = _script()
  assert script.main(["--bundle_dir", directory, "--reference_bundle_dir", other,
                      "--precision", "none"]) == 2
  message = capsys.readouterr().err
  assert "[64, 64, 3]" in message and "[32, 32, 3]" in message and "same input" in message
  assert script.main(["--bundle_dir", directory, "--reference_bundle_dir",
                      str(tmp_path / "missing"), "--precision", "none"]) == 2
  assert "--reference_bundle_dir must be a squish_tf Jetson bundle" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_bundles(model, bn_model, tmp_path_factory):
  """The job's export: the SquishedNet's bundle, and the ancestor's copied beside it."""
  from squish_tf.export import exporter  # pylint: disable=g-import-not-at-top
  from squish_tf.net import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("two_bundles")
  dirs = {}
  for name, keras_model, spec in (("squishednet", model, SMALL), ("ancestor", bn_model, SMALL_BN)):
    dirs[name] = str(root / name)
    model_io.write_model_dir(dirs[name], keras_model, spec, metrics_lib.spec_metrics(spec))
  export_dir = str(root / "export")
  exporter.export_all(dirs["squishednet"], export_dir, formats="fp32,jetson")
  ancestor_export = os.path.join(dirs["ancestor"], "export")
  exporter.export_all(dirs["ancestor"], ancestor_export, formats="jetson")
  copied = jetson.place_reference_bundle(os.path.join(ancestor_export, jetson.BUNDLE_DIR),
                                         export_dir)
  return export_dir, ancestor_export, copied


def test_the_export_ships_both_bundles(two_bundles):
  export_dir, ancestor_export, copied = two_bundles
  assert copied == os.path.join(export_dir, jetson.REFERENCE_BUNDLE_DIR)
  for name in (jetson.BUNDLE_DIR, jetson.REFERENCE_BUNDLE_DIR):
    assert jetson.is_bundle(os.path.join(export_dir, name)), name
    assert open(os.path.join(export_dir, name, jetson.SCRIPT_FILE)).read() == open(
        jetson.script_path()).read()
  # The copy is the ancestor's bundle, file for file (the deployed, BN-folded spec).
  source = os.path.join(ancestor_export, jetson.BUNDLE_DIR)
  assert sorted(os.listdir(copied)) == sorted(os.listdir(source))
  for name in (jetson.GRAPH_FILE, "spec.json", jetson.REFERENCE_OUTPUTS_FILE):
    assert open(os.path.join(copied, name), "rb").read() == open(
        os.path.join(source, name), "rb").read()
  assert spec_lib.load_spec(os.path.join(copied, "spec.json")) == SMALL_BN.replace(
      batch_norm=False)
  # Re-placing replaces; the export itself is still complete; a non-bundle is refused.
  from squish_tf.export import exporter  # pylint: disable=g-import-not-at-top
  jetson.place_reference_bundle(source, export_dir)
  assert exporter.is_complete(export_dir)
  assert not [n for n in os.listdir(export_dir) if n.startswith(".")]  # no temporaries left
  with pytest.raises(ValueError, match=r"is not a Jetson bundle .*jetson format"):
    jetson.place_reference_bundle(export_dir, export_dir)


def test_script_compares_the_two_bundles_with_precision_none(two_bundles):
  export_dir, _, _ = two_bundles
  output = os.path.join(export_dir, "paired.json")
  done = _run_script(os.path.join(export_dir, jetson.BUNDLE_DIR), "--precision", "none",
                     "--reference_bundle_dir", os.path.join(export_dir,
                                                            jetson.REFERENCE_BUNDLE_DIR),
                     "--batch_sizes", "1,2", "--warmup_runs", "1", "--runs", "6", "--rounds",
                     "3", "--output_json", output)
  assert done.returncode == 0, done.stderr[-2000:]
  results = json.load(open(output))
  assert "results" not in results  # the two ran interleaved instead of one alone
  assert results["reference"]["max_abs_diff"] <= 1e-5
  assert results["reference_bundle"]["reference"]["max_abs_diff"] <= 1e-4
  assert [row["batch_size"] for row in results["comparison"]] == [1, 2]
  for row in results["comparison"]:
    assert row["rounds"] == 3 and row["invokes_per_round"] == 2
    ratio = row["ratio"]
    assert len(ratio["ratios"]) == 3 and ratio["min"] <= ratio["median"] <= ratio["max"]
    assert ratio["median"] == sorted(ratio["ratios"])[1]
  assert "speed of export/jetson over jetson_ancestor" in done.stdout
  assert "speed-up" in done.stdout
