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
   numbers) and refuses --precision FP16 with exit status 3 (no TensorRT);
4. the Jetson pack's jetson_trt.py --profile_out measures the pack: TF-TRT
   FP16 asked for, one warning line, then plain TensorFlow, and a profile of
   squish_tf's schema (runtime "tensorflow" at this version, format fp32,
   every probe and calibration network timed), which read_jetson_profile.py
   then reads in the main venv.

Exits non-zero on the first failure. Not collected by pytest.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

# The export's bound for folded batch norm vs Keras' (float32 rounding of another order).
TOLERANCE = 1e-4
PACK_DIR, PROFILE_FILE = "pack_jetson", "profile_tf_compat.json"
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
  check_profile(work_dir, env)
  print("compat OK")


def check_profile(work_dir, env):
  """The pack's jetson_trt.py measures it into a device profile (TF-TRT FP16 asked for)."""
  pack = os.path.join(work_dir, PACK_DIR)
  manifest = json.load(open(os.path.join(pack, "manifest.json")))
  output = os.path.abspath(os.path.join(work_dir, PROFILE_FILE))
  start = time.perf_counter()
  # As a user runs it: inside the pack, no --pack_dir.
  done = subprocess.run([sys.executable, "jetson_trt.py", "--profile_out", output,
                         "--device_name", "compat_tf" + tf.__version__],
                        capture_output=True, text=True, env=env, cwd=pack)
  seconds = time.perf_counter() - start
  if done.returncode != 0:
    sys.exit(f"FAILED: jetson_trt.py --profile_out exited {done.returncode}:\n"
             f"{done.stderr[-3000:]}")
  warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
  if len(warnings) != 1 or "runtime 'tensorflow'" not in warnings[0]:
    sys.exit(f"FAILED: expected one warning line of the fallback to plain TensorFlow, got:\n"
             f"{done.stderr[-2000:]}")
  profile = json.load(open(output))
  kinds = [model["kind"] for model in manifest["models"]]
  expected = {"version": 1, "runtime": "tensorflow", "runtime_version": tf.__version__,
              "format": "fp32", "image_size": manifest["image_size"], "source": "timed"}
  got = {key: profile.get(key) for key in expected}
  if got != expected:
    sys.exit(f"FAILED: the profile's fields {got}, expected {expected}")
  probe_ms = [probe["ms"] for probe in profile["probes"]]
  network_ms = [network["ms"] for network in profile["networks"]]
  if (len(probe_ms), len(network_ms)) != (kinds.count("probe"), kinds.count("network")):
    sys.exit(f"FAILED: {len(probe_ms)} probes and {len(network_ms)} networks in the profile, "
             f"{kinds.count('probe')} and {kinds.count('network')} in the pack")
  if min(probe_ms + network_ms + [profile["overhead_ms"]]) <= 0:
    sys.exit("FAILED: a model of the profile timed at 0 ms or less")
  print(f"  jetson_trt.py --profile_out: {warnings[0][:90]}...")
  print(f"    {len(manifest['models'])} models of {pack} ({manifest['image_size']} px) in "
        f"{seconds:.1f} s (the script's own count: {profile['seconds']:.1f} s); overhead "
        f"{profile['overhead_ms']:.3f} ms, networks {min(network_ms):.3f}-{max(network_ms):.3f} "
        f"ms; wrote {output}")


if __name__ == "__main__":
  main()
