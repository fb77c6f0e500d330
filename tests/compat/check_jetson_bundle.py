r"""Checks a Jetson bundle in an older TensorFlow (`make compat` runs it in TF 2.12).

  .compat-venv/bin/python tests/compat/check_jetson_bundle.py build/compat

TF 2.12 is the oldest TensorFlow for Python 3.11; a graph it imports without
complaint uses no op or attribute newer than it, which is the property the
Jetson's TF 2.7 needs. Checks, using nothing but numpy and tensorflow:

1. frozen_graph.pb imports (the importer rejects unknown ops and attributes)
   and is the BN-folded graph: no batch-norm op, spec.json without batch norm;
2. its outputs match the Keras model's (saved by make_jetson_bundle.py in the
   main venv, batch norm unfolded) on the bundle's reference images and on
   shapes10 images, within the export's parity bound;
3. jetson_trt.py runs here with --precision none (a benchmark JSON with
   numbers) and refuses --precision FP16 with exit status 3 (no TensorRT).

Exits non-zero on the first failure. Not collected by pytest.
"""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

# The export's bound for folded batch norm vs Keras' (float32 rounding of another order).
TOLERANCE = 1e-4
BATCH_NORM_OPS = {"FusedBatchNorm", "FusedBatchNormV3", "Rsqrt", "AddV2"}


def run_graph(graph_def, images, input_name, output_name):
  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name="")

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  graph = wrapped.graph
  function = wrapped.prune(graph.as_graph_element(input_name),
                           graph.as_graph_element(output_name))
  return function(tf.constant(images.astype(np.float32))).numpy()


def compare(what, got, expected):
  diff = float(np.abs(got - expected).max())
  agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
  print(f"  {what}: max |diff| {diff:.2e}, top-1 agreement {agreement:.3f} "
        f"({len(got)} images)")
  if diff > TOLERANCE or agreement < 1.0:
    sys.exit(f"FAILED: {what} differs from Keras by {diff:.2e} (tolerance {TOLERANCE}).")


def main():
  if len(sys.argv) != 2:
    sys.exit(f"usage: {sys.argv[0]} WORK_DIR  (as written by make_jetson_bundle.py)")
  work_dir = sys.argv[1]
  bundle = os.path.join(work_dir, "export", "jetson")
  info = json.load(open(os.path.join(bundle, "input.json")))
  print(f"TensorFlow {tf.__version__} checking {bundle} "
        f"(written by TensorFlow {info['written_by_tensorflow']})")
  graph_def = tf.compat.v1.GraphDef()
  with open(os.path.join(bundle, "frozen_graph.pb"), "rb") as handle:
    graph_def.ParseFromString(handle.read())
  ops = sorted({node.op for node in graph_def.node})
  print(f"  {len(graph_def.node)} nodes, ops {ops}")
  spec = json.load(open(os.path.join(bundle, "spec.json")))
  if BATCH_NORM_OPS & set(ops) or spec.get("batch_norm"):
    sys.exit(f"FAILED: the bundle is not BN-folded: ops {sorted(BATCH_NORM_OPS & set(ops))}, "
             f"spec.json batch_norm {spec.get('batch_norm')}.")
  print(f"  batch norm folded (the model had it: {info.get('batch_norm_folded')})")
  names = (info["input"]["name"], info["output"]["name"])
  reference = info["reference"]
  compare("bundle reference images",
          run_graph(graph_def, np.load(os.path.join(bundle, reference["images"])), *names),
          np.load(os.path.join(bundle, reference["probabilities"])))
  compare("shapes10 validation images",
          run_graph(graph_def, np.load(os.path.join(work_dir, "shapes10_images.npy")), *names),
          np.load(os.path.join(work_dir, "shapes10_keras_probabilities.npy")))

  script = os.path.join(bundle, "jetson_trt.py")
  output = os.path.join(work_dir, "benchmark_none.json")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  done = subprocess.run([sys.executable, script, "--precision", "none", "--batch_sizes", "1,8",
                         "--warmup_runs", "3", "--runs", "20", "--output_json", output],
                        capture_output=True, text=True, env=env)
  if done.returncode != 0:
    sys.exit(f"FAILED: jetson_trt.py --precision none exited {done.returncode}:\n"
             f"{done.stderr[-3000:]}")
  results = json.load(open(output))
  print("  jetson_trt.py --precision none:")
  print("    " + done.stdout.strip().replace("\n", "\n    "))
  if not results["reference"] or results["reference"]["max_abs_diff"] > TOLERANCE:
    sys.exit(f"FAILED: the script's reference check: {results['reference']}")
  if not all(row["images_per_sec"] > 0 for row in results["results"]):
    sys.exit(f"FAILED: no throughput figures in {output}")
  done = subprocess.run([sys.executable, script, "--precision", "FP16"], capture_output=True,
                        text=True, env=env)
  refusal = [line for line in done.stderr.splitlines() if line.startswith("error:")]
  if done.returncode != 3 or len(refusal) != 1:
    sys.exit(f"FAILED: --precision FP16 should exit 3 with one error line, got "
             f"{done.returncode}:\n{done.stderr[-2000:]}")
  print(f"  jetson_trt.py --precision FP16: exit 3, {refusal[0]}")
  print("compat OK")


if __name__ == "__main__":
  main()
