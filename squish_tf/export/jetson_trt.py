#!/usr/bin/env python3
"""TF-TRT conversion and benchmark of a squish_tf Jetson bundle, run on the device.

Made for a Jetson TX1 with JetPack 4.6 (Python 3.6, NVIDIA's TensorFlow 2.7,
TensorRT 8); it needs nothing but the standard library, numpy and tensorflow,
and sits in the bundle next to frozen_graph.pb, input.json and labels.txt. It
reads best whole: one file copied to the device is the unit a user runs there,
so it imports nothing of squish_tf and is not split into modules. Run it as:

  python3 jetson_trt.py --precision FP16 --batch_sizes 1,8
  python3 jetson_trt.py --precision INT8 --calibration_dir ~/calib   # Xavier / Orin only
  python3 jetson_trt.py --precision none        # plain TensorFlow, no TensorRT
  python3 jetson_trt.py --reference_bundle_dir ../jetson_ancestor --precision FP16
  python3 jetson_trt.py --profile_out profile.json --device_name tx1   # in a Jetson pack

Steps: import the frozen graph, save it as a SavedModel with this TensorFlow
(a SavedModel written by a newer TensorFlow does not load in 2.7), check it
against the reference outputs shipped in the bundle, convert it with TF-TRT
(TensorRT engines are specific to the GPU, hence on the device), build one
engine per batch size, then time batches: images/sec and latency percentiles
(warm-up runs excluded). A table goes to stdout and the figures to a JSON
file (default: <bundle>/benchmark_<precision>.json).

With --reference_bundle_dir (the ancestor's bundle, which the main job ships
beside the SquishedNet's as export/jetson_ancestor/), both graphs are
converted and then timed interleaved, A B A B, for --rounds rounds of
--runs / --rounds calls each per batch size: the GPU's clocks and the
board's temperature drift alike for both, so the speed-up (this bundle's
images/s over the reference's) is the median of the per-round ratios,
printed with their min-max beside each model's median images/s: the
SquishedNets paper's 156 -> 256 images/s comparison, measured on one device.

With --profile_out, inside a pack of `squish-profile pack --format=jetson`
(or --pack_dir), it measures a device profile instead, the file `squish
--device_profile` evolves against: every model of the pack's manifest.json
(the latency table's one-convolution probes, the overhead probe and the
calibration networks, as frozen graphs) is imported, saved, converted with
TF-TRT at --precision (FP16 or FP32; one engine, batch 1) and timed
interleaved as squish_tf times its own table (the same rounds and shares,
calibrated invokes per round, the median over rounds). The profile says
runtime "tf-trt" and format "fp16" or "fp32". Where TF-TRT cannot run (a
TensorFlow without TensorRT, no GPU), one warning line says so and the pack
is timed in plain TensorFlow: runtime "tensorflow", format "fp32", as
--precision none asks.

Exit status: 0 done; 2 bad arguments or a refused request (INT8 on a GPU
below compute capability 6.1, such as the TX1's 5.3); 3 this machine cannot
run TF-TRT (TensorFlow built without TensorRT, which includes every pip wheel
from TF 2.18 on, or no CUDA GPU visible).
"""

# Python 3.6 on the device: no dataclasses, no walrus, no f-string "=",
# no positional-only parameters, no postponed annotations.

import argparse
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

PRECISIONS = ("FP32", "FP16", "INT8", "none")
MIN_INT8_COMPUTE_CAPABILITY = (6, 1)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
EXIT_USAGE = 2
EXIT_NO_TENSORRT = 3

# Device profiles (--profile_out): squish_tf's profile schema and its latency table's rounds
# and seconds per model per round (probes, then whole networks), as the pack's measure.py has.
PROFILE_VERSION = 1
PACK_FORMAT = "jetson"
PACK_MANIFEST = "manifest.json"
PROBE_ROUNDS, PROBE_ROUND_SECONDS = 7, 0.02
NETWORK_ROUNDS, NETWORK_ROUND_SECONDS = 11, 0.1
QUICK_ROUNDS, QUICK_ROUND_SECONDS = 2, 0.002
MIN_INVOKES, MAX_INVOKES, CALIBRATION_INVOKES, WARMUP_INVOKES = 5, 200, 5, 3
# The profile's runtime and format of each way of running the pack.
RUNTIME_TFTRT, RUNTIME_TENSORFLOW = "tf-trt", "tensorflow"
PROFILE_FORMATS = {"FP16": "fp16", "FP32": "fp32", "none": "fp32"}


def parse_args(argv):
  """The checked arguments, with the default paths filled in (argparse exits on bad ones)."""
  parser = _parser()
  args = parser.parse_args(argv)
  _check_args(parser, args)
  tag = args.precision.lower()
  if args.profile_out:
    args.work_dir = args.work_dir or os.path.join(args.pack_dir, "trt_profile_" + tag)
  args.work_dir = args.work_dir or os.path.join(args.bundle_dir, "trt_" + tag)
  args.reference_work_dir = ""
  if args.reference_bundle_dir:
    args.reference_work_dir = os.path.join(args.work_dir, "reference")
  # A comparison does not overwrite this bundle's own benchmark file.
  suffix = "_vs_reference.json" if args.reference_bundle_dir else ".json"
  args.output_json = args.output_json or os.path.join(args.bundle_dir,
                                                      "benchmark_" + tag + suffix)
  return args


def _parser():
  here = os.path.dirname(os.path.abspath(__file__))
  parser = argparse.ArgumentParser(
      description="Convert a squish_tf Jetson bundle with TF-TRT and benchmark it.")
  parser.add_argument("--bundle_dir", default=here,
                      help="Directory with frozen_graph.pb and input.json (default: this "
                           "script's directory).")
  parser.add_argument("--precision", default="FP16",
                      help="TensorRT precision: FP32, FP16, INT8, or none for plain TensorFlow "
                           "without TensorRT (default FP16; the TX1 supports FP32 and FP16).")
  parser.add_argument("--batch_sizes", default="1,8",
                      help="Comma-separated batch sizes to build engines for and time.")
  parser.add_argument("--calibration_dir", default="",
                      help="INT8 only: a folder of images (searched recursively) to calibrate on.")
  parser.add_argument("--calibration_images", type=int, default=128,
                      help="INT8 only: how many calibration images to use.")
  parser.add_argument("--warmup_runs", type=int, default=20,
                      help="Untimed runs per batch size before timing.")
  parser.add_argument("--runs", type=int, default=200, help="Timed runs per batch size.")
  parser.add_argument("--max_workspace_mb", type=int, default=512,
                      help="TensorRT builder workspace in MB (the TX1 shares 4 GB with the CPU).")
  parser.add_argument("--work_dir", default="",
                      help="Where the SavedModels go (default: <bundle_dir>/trt_<precision>).")
  parser.add_argument("--output_json", default="",
                      help="Results file (default: <bundle_dir>/benchmark_<precision>.json, "
                           "or benchmark_<precision>_vs_reference.json with "
                           "--reference_bundle_dir).")
  parser.add_argument("--reference_bundle_dir", default="",
                      help="Another bundle (the ancestor's: ../jetson_ancestor in a squish_tf "
                           "export) to time interleaved with this one and print the speed-up.")
  parser.add_argument("--rounds", type=int, default=7,
                      help="With --reference_bundle_dir: interleaved rounds per batch size, "
                           "each running --runs / --rounds calls of each model.")
  parser.add_argument("--profile_out", default="",
                      help="Measure the pack in --pack_dir (squish-profile pack --format=jetson) "
                           "into this device profile for `squish --device_profile` instead of "
                           "benchmarking the bundle.")
  parser.add_argument("--device_name", default="",
                      help="With --profile_out: the device's name, as runs show it (tx1).")
  parser.add_argument("--pack_dir", default=here,
                      help="With --profile_out: the pack's directory, with manifest.json "
                           "(default: this script's directory).")
  parser.add_argument("--threads", type=int, default=0,
                      help="With --profile_out: TensorFlow's CPU threads per op (0: its "
                           "default, recorded as the CPU count).")
  parser.add_argument("--quick", action="store_true",
                      help="With --profile_out: 2 rounds of ~2 ms per model, a smoke test "
                           "whose figures are noisy.")
  return parser


def _check_args(parser, args):
  """Refuses (parser.error) what no run can do; --precision in its canonical spelling."""
  upper = {p.upper(): p for p in PRECISIONS}
  if args.precision.upper() not in upper:
    parser.error("--precision must be one of {}, got {!r}.".format(
        ", ".join(PRECISIONS), args.precision))
  args.precision = upper[args.precision.upper()]
  try:
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
  except ValueError:
    parser.error("--batch_sizes must be integers separated by commas, got {!r}.".format(
        args.batch_sizes))
  if not args.batch_sizes or min(args.batch_sizes) < 1:
    parser.error("--batch_sizes needs at least one size >= 1, got {!r}.".format(
        args.batch_sizes))
  if args.runs < 1 or args.warmup_runs < 0:
    parser.error("--runs must be >= 1 and --warmup_runs >= 0.")
  if args.rounds < 1:
    parser.error("--rounds must be >= 1, got {}.".format(args.rounds))
  if args.profile_out:
    if not args.device_name:
      parser.error("--profile_out needs --device_name, the device's name as runs show it "
                   "(e.g. --device_name tx1).")
    if args.precision not in PROFILE_FORMATS:
      parser.error("--profile_out measures at --precision FP16, FP32 or none, got {}.".format(
          args.precision))
    if args.threads < 0:
      parser.error("--threads must be >= 0, got {}.".format(args.threads))
  if args.precision == "INT8" and not args.calibration_dir:
    parser.error("--precision INT8 needs --calibration_dir, a folder of images like the ones "
                 "the model will see (a few hundred are plenty).")


def build_function(tf, graph_bytes, info, input_shape, work_dir, args, calibration):
  """(loaded SavedModel, its serving_default, its directory): native, or TF-TRT converted."""
  frozen = import_frozen_graph(tf, graph_bytes, info["input"]["name"], info["output"]["name"])
  native_dir = os.path.join(work_dir, "saved_model")
  save_as_saved_model(tf, frozen, input_shape, native_dir)
  model_dir = native_dir
  if args.precision != "none":
    model_dir = os.path.join(work_dir, "saved_model_trt")
    convert_with_tftrt(tf, native_dir, model_dir, args.precision, args.batch_sizes, input_shape,
                       calibration, args.max_workspace_mb * (1 << 20))
  loaded = tf.saved_model.load(model_dir)
  return loaded, loaded.signatures["serving_default"], model_dir


def bundle_name(bundle_dir):
  """A bundle's name for tables: its directory's, or its parent's for an export's jetson/."""
  path = os.path.abspath(bundle_dir)
  name = os.path.basename(path)
  return os.path.basename(os.path.dirname(path)) + "/" + name if name == "jetson" else name


def fail(message, status):
  print("error: " + message, file=sys.stderr)
  return status


def tensorrt_available(tf):
  """Whether this TensorFlow was built with TensorRT (False for pip wheels >= 2.18)."""
  info = tf.sysconfig.get_build_info()
  if "is_tensorrt_build" in info:
    return bool(info["is_tensorrt_build"])
  try:
    # TF builds whose build info lacks the key: ask the TF-TRT module itself.
    from tensorflow.python.compiler.tensorrt import trt_convert
    return bool(trt_convert._pywrap_py_utils.is_tensorrt_enabled())
  except Exception:  # any failure here means no usable TensorRT
    return False


def gpu_compute_capability(tf):
  """(name, (major, minor)) of the first GPU, or None without one."""
  gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    return None
  details = tf.config.experimental.get_device_details(gpus[0])
  return details.get("device_name", gpus[0].name), tuple(details.get("compute_capability",
                                                                     (0, 0)))


def load_bundle(bundle_dir):
  info_path = os.path.join(bundle_dir, "input.json")
  graph_path = os.path.join(bundle_dir, "frozen_graph.pb")
  for path in (info_path, graph_path):
    if not os.path.isfile(path):
      raise IOError("{} not found: --bundle_dir must be a squish_tf Jetson bundle "
                    "(frozen_graph.pb, input.json, labels.txt).".format(path))
  with open(info_path) as handle:
    info = json.load(handle)
  with open(graph_path, "rb") as handle:
    graph_bytes = handle.read()
  return info, graph_bytes


def import_frozen_graph(tf, graph_bytes, input_name, output_name):
  """The frozen GraphDef as a concrete function of this TensorFlow."""
  graph_def = tf.compat.v1.GraphDef()
  graph_def.ParseFromString(graph_bytes)

  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name="")

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  graph = wrapped.graph
  return wrapped.prune(graph.as_graph_element(input_name), graph.as_graph_element(output_name))


def save_as_saved_model(tf, frozen, input_shape, directory):
  """A SavedModel written by this TensorFlow, signature serving_default."""
  module = tf.Module()

  @tf.function(input_signature=[tf.TensorSpec([None] + list(input_shape), tf.float32,
                                              name="image")])
  def serve(image):
    return {"probabilities": frozen(image)}

  module.serve = serve
  tf.saved_model.save(module, directory, signatures={"serving_default": serve})


def read_images(tf, directory, shape, limit):
  """Up to `limit` images from `directory`, as float32 [N, H, W, 3] pixels in [0, 255]."""
  paths = []
  for root, _, files in os.walk(directory):
    for name in sorted(files):
      if name.lower().endswith(IMAGE_SUFFIXES):
        paths.append(os.path.join(root, name))
  paths.sort()
  if not paths:
    raise IOError("No images ({}) under --calibration_dir {!r}.".format(
        ", ".join(IMAGE_SUFFIXES), directory))
  images = []
  for path in paths[:limit]:
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), shape[:2])
    images.append(np.clip(image.numpy(), 0.0, 255.0))
  return np.stack(images).astype(np.float32)


def convert_with_tftrt(tf, saved_model_dir, output_dir, precision, batch_sizes, input_shape,
                       calibration, max_workspace_bytes, minimum_segment_size=3):
  """Converts, builds one engine per batch size and saves; `minimum_segment_size` is TF-TRT's
  (3, its default: smaller runs of convertible ops stay in TensorFlow)."""
  from tensorflow.python.compiler.tensorrt import trt_convert as trt

  # TF 2.7 takes conversion_params only; precision_mode= directly needs TF >= 2.8.
  params = trt.TrtConversionParams(
      precision_mode=precision, max_workspace_size_bytes=max_workspace_bytes,
      maximum_cached_engines=len(batch_sizes), use_calibration=(precision == "INT8"),
      minimum_segment_size=minimum_segment_size)
  converter = trt.TrtGraphConverterV2(input_saved_model_dir=saved_model_dir,
                                      input_saved_model_signature_key="serving_default",
                                      conversion_params=params)
  if precision == "INT8":
    batch = max(1, min(8, len(calibration)))

    def calibration_input():
      for start in range(0, len(calibration) - batch + 1, batch):
        yield (tf.constant(calibration[start:start + batch]),)

    converter.convert(calibration_input_fn=calibration_input)
  else:
    converter.convert()

  def build_input():
    for size in batch_sizes:
      yield (tf.zeros([size] + list(input_shape), tf.float32),)

  converter.build(input_fn=build_input)
  converter.save(output_dir)


def benchmark(tf, function, batch_sizes, input_shape, warmup_runs, runs, seed=0):
  rng = np.random.RandomState(seed)
  rows = []
  for size in batch_sizes:
    pixels = rng.randint(0, 256, size=[size] + list(input_shape)).astype(np.float32)
    batch = tf.constant(pixels)
    for _ in range(warmup_runs):
      function(image=batch)["probabilities"].numpy()
    latencies = []
    for _ in range(runs):
      start = time.perf_counter()
      function(image=batch)["probabilities"].numpy()  # .numpy() waits for the GPU
      latencies.append(time.perf_counter() - start)
    latencies = np.array(latencies) * 1000.0
    rows.append({
        "batch_size": size,
        "images_per_sec": float(size * runs / (latencies.sum() / 1000.0)),
        "latency_ms": {"mean": float(latencies.mean()),
                       "p50": float(np.percentile(latencies, 50)),
                       "p90": float(np.percentile(latencies, 90)),
                       "p99": float(np.percentile(latencies, 99))},
        "warmup_runs": warmup_runs,
        "runs": runs,
    })
  return rows


def time_interleaved(calls, rounds, invokes, clock=time.perf_counter):
  """Runs the calls in turn, round after round: A B A B ...

  Args:
    calls: [(name, zero-argument callable that waits for its result)].
    rounds: how many rounds.
    invokes: calls of each per round: one count for all, or {name: count}.
    clock: seconds (a fake one in tests).

  Returns:
    {name: [seconds per call in round r, for each round]}.
  """
  seconds = dict((name, []) for name, _ in calls)
  for _ in range(rounds):
    for name, call in calls:
      count = invokes[name] if isinstance(invokes, dict) else invokes
      start = clock()
      for _ in range(count):
        call()
      seconds[name].append((clock() - start) / float(count))
  return seconds


def spread(values):
  """Median, min and max of some values."""
  values = np.asarray(values, np.float64)
  return {"median": float(np.median(values)), "min": float(values.min()),
          "max": float(values.max())}


def paired_stats(subject_seconds, reference_seconds, batch_size):
  """Speed-up of the subject over the reference from interleaved rounds.

  Per round r the ratio is reference seconds / subject seconds (> 1: the
  subject is faster); the speed-up is the median of those with their min and
  max, never the ratio of two medians.
  """
  subject = np.asarray(subject_seconds, np.float64)
  reference = np.asarray(reference_seconds, np.float64)
  ratios = reference / subject
  return {"subject_images_per_sec": spread(batch_size / subject),
          "reference_images_per_sec": spread(batch_size / reference),
          "ratio": dict(spread(ratios), ratios=[float(r) for r in ratios]),
          "rounds": int(len(ratios))}


def compare(tf, subject, reference, batch_sizes, input_shape, **timing):
  """Times two serving functions interleaved per batch size: one row per size.

  `timing`: warmup_runs and runs (per batch size), rounds (the runs split into
  that many A B rounds), and optionally clock (default time.perf_counter) and
  seed (of the random pixels, default 0).
  """
  unknown = sorted(set(timing) - {"warmup_runs", "runs", "rounds", "clock", "seed"})
  if unknown:
    raise TypeError("compare() got unexpected timing arguments {}".format(unknown))
  warmup_runs, runs, rounds = timing["warmup_runs"], timing["runs"], timing["rounds"]
  clock, seed = timing.get("clock", time.perf_counter), timing.get("seed", 0)
  rng = np.random.RandomState(seed)
  invokes = max(1, int(np.ceil(runs / float(rounds))))
  rows = []
  for size in batch_sizes:
    batch = tf.constant(rng.randint(0, 256, size=[size] + list(input_shape)).astype(np.float32))

    def call(function, batch=batch):
      return lambda: function(image=batch)["probabilities"].numpy()  # .numpy() waits

    calls = [("subject", call(subject)), ("reference", call(reference))]
    for _, run in calls:
      for _ in range(warmup_runs):
        run()
    seconds = time_interleaved(calls, rounds, invokes, clock=clock)
    row = paired_stats(seconds["subject"], seconds["reference"], size)
    row.update(batch_size=size, invokes_per_round=invokes, warmup_runs=warmup_runs)
    rows.append(row)
  return rows


def print_comparison(rows, subject_name, reference_name):
  print("speed of {} over {} (reference), interleaved; images/sec medians [min-max]".format(
      subject_name, reference_name))
  print("{:>5} {:>24} {:>24} {:>22} {:>7}".format(
      "batch", "images/sec", "reference images/sec", "speed-up", "rounds"))
  for row in rows:
    ratio = row["ratio"]
    mine = row["subject_images_per_sec"]
    theirs = row["reference_images_per_sec"]
    print("{:>5} {:>24} {:>24} {:>22} {:>7}".format(
        row["batch_size"],
        "{:.1f} [{:.1f}-{:.1f}]".format(mine["median"], mine["min"], mine["max"]),
        "{:.1f} [{:.1f}-{:.1f}]".format(theirs["median"], theirs["min"], theirs["max"]),
        "{:.2f}x [{:.2f}-{:.2f}]".format(ratio["median"], ratio["min"], ratio["max"]),
        row["rounds"]))


def reference_check(tf, function, bundle_dir, info):
  """Max |difference| from the Keras outputs shipped in the bundle (None if absent)."""
  reference = info.get("reference")
  if not reference:
    return None
  images_path = os.path.join(bundle_dir, reference["images"])
  outputs_path = os.path.join(bundle_dir, reference["probabilities"])
  if not (os.path.isfile(images_path) and os.path.isfile(outputs_path)):
    return None
  images = np.load(images_path).astype(np.float32)
  expected = np.load(outputs_path)
  got = function(image=tf.constant(images))["probabilities"].numpy()
  return {"max_abs_diff": float(np.abs(got - expected).max()),
          "top1_agreement": float(np.mean(got.argmax(1) == expected.argmax(1))),
          "images": int(images.shape[0])}


def print_table(results):
  print("{:>5} {:>12} {:>9} {:>9} {:>9} {:>9}".format(
      "batch", "images/sec", "mean ms", "p50 ms", "p90 ms", "p99 ms"))
  for row in results["results"]:
    latency = row["latency_ms"]
    print("{:>5} {:>12.1f} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f}".format(
        row["batch_size"], row["images_per_sec"], latency["mean"], latency["p50"],
        latency["p90"], latency["p99"]))


class Refused(Exception):
  """A request this machine or these arguments cannot serve: the message and exit status."""

  def __init__(self, message, status):
    Exception.__init__(self, message)
    self.status = status


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # after parsing: --help and usage errors need no TensorFlow

  if args.profile_out:
    return measure_profile(tf, args)
  try:
    info, graph_bytes = _load(args.bundle_dir, "--bundle_dir")
    input_shape = [int(v) for v in info["input"]["shape"][1:]]
    device = check_device(tf, args.precision)
    calibration = None
    if args.precision == "INT8":
      calibration = _calibration_images(tf, args, input_shape)
    other = _reference_bundle(args, input_shape)
  except Refused as refusal:
    return fail(str(refusal), refusal.status)

  if os.path.isdir(args.work_dir):
    shutil.rmtree(args.work_dir)  # a previous run's engines may be for other batch sizes
  loaded, function, model_dir = build_function(tf, graph_bytes, info, input_shape,
                                               args.work_dir, args, calibration)
  results = {
      "bundle_dir": os.path.abspath(args.bundle_dir),
      "precision": args.precision,
      "saved_model": os.path.abspath(model_dir),
      "tensorflow": tf.__version__,
      "tensorrt_build": tensorrt_available(tf),
      "device": None if device is None else {"name": device[0],
                                             "compute_capability": list(device[1])},
      "input_shape": input_shape,
      "reference": reference_check(tf, function, args.bundle_dir, info),
  }
  if other is None:
    results["results"] = benchmark(tf, function, args.batch_sizes, input_shape,
                                   args.warmup_runs, args.runs)
  else:
    # The loaded objects stay referenced until main returns: signatures need them alive.
    other_loaded, other_function, other_dir = build_function(
        tf, other[1], other[0], input_shape, args.reference_work_dir, args, calibration)
    results["reference_bundle"] = {
        "bundle_dir": os.path.abspath(args.reference_bundle_dir),
        "saved_model": os.path.abspath(other_dir),
        "reference": reference_check(tf, other_function, args.reference_bundle_dir, other[0])}
    results["comparison"] = compare(tf, function, other_function, args.batch_sizes, input_shape,
                                    warmup_runs=args.warmup_runs, runs=args.runs,
                                    rounds=args.rounds)
  print_results(tf, results, args, device)
  write_json(results, args.output_json)
  return 0


def _load(bundle_dir, flag):
  """`load_bundle`, refused with the flag that named the directory."""
  try:
    return load_bundle(bundle_dir)
  except IOError as error:
    raise Refused(str(error).replace("--bundle_dir", flag), EXIT_USAGE)


def check_device(tf, precision):
  """(GPU name, compute capability) TF-TRT runs on; None for --precision none.

  Raises:
    Refused: no TensorRT in this TensorFlow, no GPU, or INT8 on a GPU without it.
  """
  if precision == "none":
    return None
  if not tensorrt_available(tf):
    raise Refused("TensorFlow {} here was built without TensorRT (as are CPU wheels and every "
                  "pip wheel from TF 2.18 on), so --precision {} cannot run; use the Jetson's "
                  "NVIDIA TensorFlow, or --precision none for plain TensorFlow.".format(
                      tf.__version__, precision), EXIT_NO_TENSORRT)
  device = gpu_compute_capability(tf)
  if device is None:
    raise Refused("No CUDA GPU is visible to TensorFlow {}, and TF-TRT needs one; check the "
                  "JetPack install (tf.config.list_physical_devices('GPU') is empty).".format(
                      tf.__version__), EXIT_NO_TENSORRT)
  if precision == "INT8" and device[1] < MIN_INT8_COMPUTE_CAPABILITY:
    raise Refused("INT8 needs compute capability >= {}.{}, but {} is {}.{} (the Jetson TX1 is "
                  "5.3: FP16 and FP32 only); use --precision FP16.".format(
                      MIN_INT8_COMPUTE_CAPABILITY[0], MIN_INT8_COMPUTE_CAPABILITY[1], device[0],
                      device[1][0], device[1][1]), EXIT_USAGE)
  return device


def _calibration_images(tf, args, input_shape):
  try:
    return read_images(tf, args.calibration_dir, input_shape, args.calibration_images)
  except IOError as error:
    raise Refused(str(error), EXIT_USAGE)


def _reference_bundle(args, input_shape):
  """(info, graph bytes) of --reference_bundle_dir, or None without one."""
  if not args.reference_bundle_dir:
    return None
  other = _load(args.reference_bundle_dir, "--reference_bundle_dir")
  other_shape = [int(v) for v in other[0]["input"]["shape"][1:]]
  if other_shape != input_shape:
    raise Refused("--reference_bundle_dir {} takes {} inputs but --bundle_dir {} takes {}; "
                  "a speed-up compares the same input (pass the two bundles of one export)."
                  .format(args.reference_bundle_dir, other_shape, args.bundle_dir,
                          input_shape), EXIT_USAGE)
  return other


def print_results(tf, results, args, device):
  """The run's lines on stdout: the device, the reference checks and the table."""
  print("TensorFlow {}, precision {}, {}".format(
      tf.__version__, args.precision, "plain TensorFlow (no TensorRT)" if device is None
      else "{} (compute capability {}.{})".format(device[0], device[1][0], device[1][1])))
  if results["reference"]:
    print("reference check on {images} images: max |diff| {max_abs_diff:.2e}, top-1 "
          "agreement {top1_agreement:.3f}".format(**results["reference"]))
  if "comparison" not in results:
    print_table(results)
    return
  check = results["reference_bundle"]["reference"]
  if check:
    print("reference bundle's check on {images} images: max |diff| {max_abs_diff:.2e}, "
          "top-1 agreement {top1_agreement:.3f}".format(**check))
  print_comparison(results["comparison"], bundle_name(args.bundle_dir),
                   bundle_name(args.reference_bundle_dir))


def write_json(results, path):
  """`results` as JSON at `path`, written whole (a temporary file renamed)."""
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    os.makedirs(directory)
  temp = path + ".tmp"
  with open(temp, "w") as handle:
    json.dump(results, handle, indent=2, sort_keys=True)
    handle.write("\n")
  os.replace(temp, path)
  print("wrote " + path)


# -- device profiles (--profile_out) ---------------------------------------------


def measure_profile(tf, args):
  """Measures the pack in --pack_dir into the device profile --profile_out; the exit status."""
  start = time.perf_counter()
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  try:
    manifest = read_pack(args.pack_dir)
    precision, device = profile_precision(tf, args.precision)
  except Refused as refusal:
    return fail(str(refusal), refusal.status)
  if os.path.isdir(args.work_dir):
    shutil.rmtree(args.work_dir)
  runtime = RUNTIME_TENSORFLOW if precision == "none" else RUNTIME_TFTRT
  print("measuring {} models of {} with {} {} ({}) ...".format(
      len(manifest["models"]), os.path.abspath(args.pack_dir), runtime, tf.__version__,
      PROFILE_FORMATS[precision]))
  calls, kept, engines = {}, [], 0
  for index, model in enumerate(manifest["models"]):
    loaded, function = pack_function(tf, manifest, model, args, precision)
    kept.append(loaded)  # a signature needs its loaded object alive
    engines += trt_engine_count(function) > 0
    calls[model["name"]] = pack_call(tf, function, model["input_shape"])
    if (index + 1) % 20 == 0:
      print("  {} of {} models loaded".format(index + 1, len(manifest["models"])))
  if precision != "none":
    print("TF-TRT built engines for {} of {} models{}".format(
        engines, len(calls), "" if engines == len(calls) else
        " (the others run in TensorFlow: their times are TensorFlow's)"))
  ms = time_pack(manifest, calls, args.quick)
  threads = args.threads or os.cpu_count() or 1
  profile = profile_json(manifest, ms, args.device_name, runtime, tf.__version__, threads,
                         PROFILE_FORMATS[precision], profile_host(tf, device),
                         round(time.perf_counter() - start, 3))
  write_json(profile, args.profile_out)
  print("device profile of {}: {} {}, {}, {} probes, {:.1f} s; evolve against it with "
        "`squish --device_profile={}`".format(
            args.device_name, runtime, tf.__version__, profile["format"], len(profile["probes"]),
            profile["seconds"], os.path.basename(args.profile_out)))
  return 0


def read_pack(pack_dir):
  """The manifest of a Jetson pack; Refused when `pack_dir` holds none."""
  path = os.path.join(pack_dir, PACK_MANIFEST)
  if not os.path.isfile(path):
    raise Refused("{} not found: --profile_out measures a pack of `squish-profile pack "
                  "--format=jetson`; run this script inside one, or pass --pack_dir.".format(
                      path), EXIT_USAGE)
  with open(path) as handle:
    manifest = json.load(handle)
  if manifest.get("version") != PROFILE_VERSION or manifest.get("format") != PACK_FORMAT:
    raise Refused("{} is a version {!r} {!r} pack; this script measures version {} {!r} "
                  "packs (squish-profile pack --format=jetson; the .tflite packs have "
                  "measure.py).".format(path, manifest.get("version"), manifest.get("format"),
                                        PROFILE_VERSION, PACK_FORMAT), EXIT_USAGE)
  return manifest


def profile_precision(tf, precision):
  """(precision the pack is timed at, GPU or None): plain TensorFlow ("none"), with one warning
  line, where TF-TRT cannot run."""
  try:
    return precision, check_device(tf, precision)
  except Refused as refusal:
    if refusal.status != EXIT_NO_TENSORRT:
      raise
    reason = str(refusal).split(";")[0].split(", so ")[0]
  print("warning: {}; measuring with plain TensorFlow instead: the profile says runtime {!r}, "
        "format fp32, not TF-TRT {}.".format(reason, RUNTIME_TENSORFLOW, precision),
        file=sys.stderr)
  return "none", None


def pack_function(tf, manifest, model, args, precision):
  """(loaded SavedModel, serving_default) of one model of the pack, converted unless "none"."""
  with open(os.path.join(args.pack_dir, model["file"]), "rb") as handle:
    graph_bytes = handle.read()
  frozen = import_frozen_graph(tf, graph_bytes, manifest["input"], manifest["output"])
  work_dir = os.path.join(args.work_dir, model["name"])
  model_dir = os.path.join(work_dir, "saved_model")
  save_as_saved_model(tf, frozen, model["input_shape"], model_dir)
  if precision != "none":
    native_dir, model_dir = model_dir, os.path.join(work_dir, "saved_model_trt")
    # A probe is one convolution (two ops without its ReLU): convert it whatever its size.
    convert_with_tftrt(tf, native_dir, model_dir, precision, [1], model["input_shape"], None,
                       args.max_workspace_mb * (1 << 20), minimum_segment_size=1)
  loaded = tf.saved_model.load(model_dir)
  return loaded, loaded.signatures["serving_default"]


def pack_call(tf, function, input_shape, seed=0):
  """A zero-argument call of `function` on one random image, waiting for its result."""
  pixels = np.random.RandomState(seed).uniform(0, 255, [1] + list(input_shape))
  batch = tf.constant(pixels.astype(np.float32))
  return lambda: function(image=batch)["probabilities"].numpy()


def trt_engine_count(function):
  """TRTEngineOp nodes in a function's graph and the functions it calls."""
  graph_def = function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for library_function in graph_def.library.function:
    nodes.extend(library_function.node_def)
  return sum(1 for node in nodes if node.op == "TRTEngineOp")


def calibrate_invokes(calls, round_seconds, clock=time.perf_counter):
  """{name: calls per round} so that each takes ~round_seconds of a round."""
  counts = {}
  for name, call in calls:
    start = clock()
    for _ in range(CALIBRATION_INVOKES):
      call()
    per_call = max(clock() - start, 0.0) / CALIBRATION_INVOKES
    wanted = round_seconds / per_call if per_call > 0 else MAX_INVOKES
    counts[name] = int(min(max(round(wanted), MIN_INVOKES), MAX_INVOKES))
  return counts


def median_ms(calls, rounds, round_seconds, clock=time.perf_counter):
  """{name: median ms per call over `rounds` interleaved rounds} of [(name, call)]."""
  invokes = calibrate_invokes(calls, round_seconds, clock)
  for _, call in calls:
    for _ in range(WARMUP_INVOKES):
      call()
  seconds = time_interleaved(calls, rounds, invokes, clock=clock)
  return dict((name, float(np.median(values)) * 1e3) for name, values in seconds.items())


def time_pack(manifest, calls, quick=False, clock=time.perf_counter):
  """{model name: median ms}: the probes timed interleaved, then the networks."""
  kinds = dict((model["name"], model["kind"]) for model in manifest["models"])
  probes = [(name, call) for name, call in calls.items() if kinds[name] != "network"]
  networks = [(name, call) for name, call in calls.items() if kinds[name] == "network"]
  print("timing {} probes and {} networks interleaved ...".format(len(probes), len(networks)))
  if quick:
    rounds = ((QUICK_ROUNDS, QUICK_ROUND_SECONDS), (QUICK_ROUNDS, QUICK_ROUND_SECONDS))
  else:
    rounds = ((PROBE_ROUNDS, PROBE_ROUND_SECONDS), (NETWORK_ROUNDS, NETWORK_ROUND_SECONDS))
  ms = median_ms(probes, rounds[0][0], rounds[0][1], clock=clock)
  ms.update(median_ms(networks, rounds[1][0], rounds[1][1], clock=clock))
  return ms


def profile_host(tf, device):
  """What the profile was measured on: the OS's words, the board's, the GPU's and TensorRT's."""
  processor = platform.processor() or None
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as handle:
      for line in handle:
        if line.lower().startswith(("model name", "hardware")):
          processor = line.split(":", 1)[1].strip()
          break
  host = {"system": platform.system(), "machine": platform.machine(), "processor": processor,
          "cpu_count": os.cpu_count()}
  board = "/proc/device-tree/model"  # "NVIDIA Jetson TX1" on L4T
  if os.path.isfile(board):
    with open(board, "rb") as handle:
      host["board"] = handle.read().decode("utf-8", "replace").strip("\x00 \n")
  if device is not None:
    host.update(gpu=device[0], compute_capability=list(device[1]),
                tensorrt=tensorrt_version())
  return host


def tensorrt_version():
  """The TensorRT version TF-TRT is linked against, "8.2.1", or None."""
  try:
    from tensorflow.python.compiler.tensorrt import trt_convert
    return ".".join(str(v) for v in trt_convert._pywrap_py_utils.get_linked_tensorrt_version())
  except Exception:  # an older or newer TF-TRT without it: the version is unknown
    return None


def profile_json(manifest, ms, device, runtime, version, threads, fmt, host, seconds):
  """The device profile of squish_tf's schema (what measure.py writes for a .tflite pack)."""
  probes, networks, overhead = [], [], None
  for model in manifest["models"]:
    if model["kind"] == "probe":
      probes.append({"signature": model["signature"], "ms": ms[model["name"]]})
    elif model["kind"] == "network":
      networks.append({"width": model["width"], "ms": ms[model["name"]]})
    else:
      overhead = ms[model["name"]]
  return {"version": PROFILE_VERSION, "device": device, "runtime": runtime,
          "runtime_version": version, "threads": threads, "format": fmt,
          "image_size": manifest["image_size"], "num_classes": manifest["num_classes"],
          "architecture": manifest["architecture"], "host": host, "source": "timed",
          "seconds": seconds, "probes": probes, "overhead_ms": overhead, "networks": networks}


if __name__ == "__main__":
  sys.exit(main())
