"""measure.py: times a squish-profile pack on the device it runs on and writes a device profile.

`squish-profile pack` copies this file into the pack as measure.py. Run it inside the pack:

  python measure.py --threads=4 --device_name=pixel7 --out=profile.json
  python measure.py --runtime=tflite-micro --device_name=cortex_m_ref --out=profile.json
  python measure.py --op_profiles=csv --threads=4 --device_name=pixel7 --out=profile.json

It needs Python 3.8+, numpy and one runtime: ai-edge-litert or tflite-runtime (LiteRT with
XNNPACK on --threads threads) or tflite-micro (TFLite-Micro's reference kernels, one thread, int8
packs only). No TensorFlow and nothing of squish_tf: it imports the standard library and numpy.

Every model of the pack (manifest.json: one-convolution probes, one-op max pools and
concatenations, the overhead probe and the whole networks of the calibration) is loaded in its
own interpreter, its input set once to random values, and timed interleaved with the others
(A B C ... A B C ..., each model's invokes per round calibrated to take a fixed share of the
round); a model's figure is the median over the rounds of its ms per invoke.
The rounds and shares are those of squish_tf's in-process table.

--op_profiles reads, instead of timing, one CSV per model (DIR/<name>.csv) written by LiteRT's
`benchmark_model --enable_op_profiling=true --op_profiling_output_mode=csv` run over the pack's
models (docs/devices.md): a model's figure is the sum of the avg_ms column of its run-order table.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

PROFILE_VERSION = 1
MANIFEST = "manifest.json"
LITERT_RUNTIME, MICRO_RUNTIME = "ai-edge-litert", "tflite-micro"
RUNTIMES = (LITERT_RUNTIME, "tflite-runtime", MICRO_RUNTIME)
# Rounds and seconds per model per round: probes, then whole networks.
PROBE_ROUNDS, PROBE_ROUND_SECONDS = 7, 0.02
NETWORK_ROUNDS, NETWORK_ROUND_SECONDS = 11, 0.1
MIN_INVOKES, MAX_INVOKES, CALIBRATION_INVOKES, WARMUP_INVOKES = 5, 200, 5, 3
# TFLite-Micro's first arena (bytes); doubled until the model fits, up to the last.
TFLM_ARENA, TFLM_MAX_ARENA = 1 << 20, 256 << 20


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--device_name", required=True, help="The device's name, as runs show it.")
  parser.add_argument("--out", default="profile.json", help="The profile file to write.")
  parser.add_argument("--threads", type=int, default=1, help="Interpreter threads (LiteRT).")
  parser.add_argument("--runtime", default="ai-edge-litert", choices=RUNTIMES,
                      help="The interpreter that times the models.")
  parser.add_argument("--pack", default=".", help="The pack's directory (holds manifest.json).")
  parser.add_argument("--op_profiles", default=None, help=(
      "A directory of benchmark_model op-profiling CSVs, one <name>.csv per model of the "
      "manifest: read them instead of timing here."))
  parser.add_argument("--quick", action="store_true",
                      help="2 rounds of ~2 ms per model: a smoke test, its figures noisy.")
  parser.add_argument("--runtime_version", default=None,
                      help="With --op_profiles: the benchmark_model's LiteRT version, recorded.")
  args = parser.parse_args(argv)
  if args.threads < 1:
    parser.error(f"--threads must be >= 1, got {args.threads}.")
  return args


def read_manifest(pack):
  path = os.path.join(pack, MANIFEST)
  if not os.path.exists(path):
    sys.exit(f"measure.py: no {MANIFEST} in {os.path.abspath(pack)!r}; run it inside a pack "
             "written by `squish-profile pack`, or pass --pack=DIR.")
  with open(path) as handle:
    manifest = json.load(handle)
  if manifest.get("version") != PROFILE_VERSION:
    sys.exit(f"measure.py: {path} is version {manifest.get('version')!r}, this script reads "
             f"{PROFILE_VERSION}; pack again with this squish_tf.")
  if manifest.get("format") == "jetson":
    sys.exit(f"measure.py: {path} is a Jetson pack of frozen graphs: measure it on the Jetson "
             "with its jetson_trt.py --profile_out=profile.json --device_name=NAME.")
  return manifest


def runtime_version(runtime):
  try:
    from importlib import metadata  # Python 3.8+
    return metadata.version(runtime)
  except Exception:  # pylint: disable=broad-except
    return None


def host_info():
  """What the profile was measured on, as far as the OS tells."""
  processor = platform.processor() or None
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo", errors="replace") as handle:
      for line in handle:
        if line.lower().startswith(("model name", "hardware")):
          processor = line.split(":", 1)[1].strip()
          break
  return {"system": platform.system(), "machine": platform.machine(), "processor": processor,
          "cpu_count": os.cpu_count()}


def random_input(shape, dtype, seed=0):
  rng = np.random.default_rng(seed)
  dtype = np.dtype(dtype)
  if dtype.kind == "f":
    return rng.uniform(0, 255, shape).astype(dtype)
  info = np.iinfo(dtype)
  return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def litert_call(runtime, content, threads):
  """A zero-argument invoke of the model in LiteRT (ai-edge-litert or tflite-runtime)."""
  if runtime == "ai-edge-litert":
    from ai_edge_litert.interpreter import Interpreter
  else:
    from tflite_runtime.interpreter import Interpreter
  interpreter = Interpreter(model_content=content, num_threads=threads)
  interpreter.allocate_tensors()
  detail = interpreter.get_input_details()[0]
  interpreter.set_tensor(detail["index"], random_input(detail["shape"], detail["dtype"]))
  return interpreter.invoke


def micro_call(content):
  """A zero-argument invoke of the model in TFLite-Micro (reference kernels)."""
  from tflite_micro.python.tflite_micro import runtime as tflm
  arena = TFLM_ARENA
  while True:
    try:
      interpreter = tflm.Interpreter.from_bytes(content, arena_size=arena)
      break
    except (RuntimeError, ValueError):
      if arena >= TFLM_MAX_ARENA:
        raise
      arena *= 2
  detail = interpreter.get_input_details(0)
  interpreter.set_input(random_input(detail["shape"], detail["dtype"]), 0)
  return interpreter.invoke


def calibrate(calls, round_seconds, clock=time.perf_counter):
  """Invokes per round per model, so that each model's share of a round is ~round_seconds."""
  counts = {}
  for name, call in calls.items():
    start = clock()
    for _ in range(CALIBRATION_INVOKES):
      call()
    per_invoke = max(clock() - start, 0.0) / CALIBRATION_INVOKES
    wanted = round_seconds / per_invoke if per_invoke > 0 else MAX_INVOKES
    counts[name] = int(min(max(round(wanted), MIN_INVOKES), MAX_INVOKES))
  return counts


def time_interleaved(calls, rounds, round_seconds, clock=time.perf_counter):
  """{name: median ms per invoke over `rounds` interleaved rounds}."""
  invokes = calibrate(calls, round_seconds, clock)
  for call in calls.values():
    for _ in range(WARMUP_INVOKES):
      call()
  seconds = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      start = clock()
      for _ in range(invokes[name]):
        call()
      seconds[name].append((clock() - start) / invokes[name])
  return {name: float(np.median(values)) * 1e3 for name, values in seconds.items()}


def timed_ms(manifest, pack, runtime, threads, log, quick=False):
  """{model name: median ms}, each model timed in `runtime` here."""
  if runtime == "tflite-micro" and manifest["format"] != "int8":
    sys.exit("measure.py: tflite-micro runs int8 models; this pack is "
             f"{manifest['format']}. Pack with --format=int8.")
  calls = {"probe": {}, "network": {}}
  for model in manifest["models"]:
    with open(os.path.join(pack, model["file"]), "rb") as handle:
      content = handle.read()
    call = (micro_call(content) if runtime == "tflite-micro"
            else litert_call(runtime, content, threads))
    calls["network" if model["kind"] == "network" else "probe"][model["name"]] = call
  log(f"timing {len(calls['probe'])} probes and {len(calls['network'])} networks with "
      f"{runtime} ({threads} thread{'s' if threads != 1 else ''}) ...")
  probe, network = (((2, 0.002), (2, 0.002)) if quick else
                    ((PROBE_ROUNDS, PROBE_ROUND_SECONDS), (NETWORK_ROUNDS, NETWORK_ROUND_SECONDS)))
  ms = time_interleaved(calls["probe"], *probe)
  ms.update(time_interleaved(calls["network"], *network))
  return ms


def op_profile_ms(text):
  """The sum of avg_ms over the run-order table of the regular runs of one CSV's text.

  benchmark_model prints the initialization's table first, then the regular runs' (after a
  line saying so), each a header "node type, start, first, avg_ms, ..." and rows; a delegated
  model's rows are its delegate nodes.
  """
  lines = text.splitlines()
  start = 0
  for index, line in enumerate(lines):
    if "regular benchmark runs" in line.lower():
      start = index
  tables, current = [], None
  for line in lines[start:]:
    fields = [field.strip() for field in line.split(",")]
    if fields and fields[0] == "node type" and "avg_ms" in fields:
      current = {"column": fields.index("avg_ms"), "ms": []}
      tables.append(current)
    elif current is not None and len(fields) > current["column"]:
      try:
        current["ms"].append(float(fields[current["column"]]))
      except ValueError:
        current = None
    else:
      current = None
  if not tables or not tables[0]["ms"]:
    raise ValueError("no run-order table with an avg_ms column")
  return float(sum(tables[0]["ms"]))


def csv_ms(manifest, directory):
  ms = {}
  for model in manifest["models"]:
    path = os.path.join(directory, model["name"] + ".csv")
    if not os.path.exists(path):
      sys.exit(f"measure.py: --op_profiles has no {path}; run benchmark_model over every model "
               "of models.txt (docs/devices.md).")
    with open(path, errors="replace") as handle:
      try:
        ms[model["name"]] = op_profile_ms(handle.read())
      except ValueError as error:
        sys.exit(f"measure.py: {path}: {error}; expected benchmark_model's "
                 "--op_profiling_output_mode=csv output.")
  return ms


def profile_of(manifest, ms, device, runtime, version, threads, source, seconds):
  """The profile's JSON: the manifest's identity and every model's ms."""
  probes, moves, networks, overhead = [], [], [], None
  for model in manifest["models"]:
    if model["kind"] == "probe":
      probes.append({"signature": model["signature"], "ms": ms[model["name"]]})
    elif model["kind"] == "move":
      moves.append({"signature": model["signature"], "ms": ms[model["name"]]})
    elif model["kind"] == "network":
      networks.append({"width": model["width"], "ms": ms[model["name"]]})
    else:
      overhead = ms[model["name"]]
  return {"version": PROFILE_VERSION, "device": device, "runtime": runtime,
          "runtime_version": version, "threads": threads, "format": manifest["format"],
          "image_size": manifest["image_size"], "num_classes": manifest["num_classes"],
          "architecture": manifest["architecture"], "host": host_info(), "source": source,
          "seconds": seconds, "probes": probes, "overhead_ms": overhead, "networks": networks,
          "moves": moves}


def write_json(path, data):
  """Writes `data` to `path` whole or not at all."""
  temporary = f"{path}.tmp{os.getpid()}"
  with open(temporary, "w") as handle:
    json.dump(data, handle, indent=1)
  os.replace(temporary, path)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  manifest = read_manifest(args.pack)
  start = time.perf_counter()

  def log(message):
    print(f"measure.py: {message}", file=sys.stderr, flush=True)

  if args.op_profiles:
    ms = csv_ms(manifest, args.op_profiles)
    runtime, version, source = "benchmark_model", args.runtime_version, "op_profiling_csv"
  else:
    threads = 1 if args.runtime == "tflite-micro" else args.threads
    try:
      ms = timed_ms(manifest, args.pack, args.runtime, threads, log, args.quick)
    except ImportError as error:
      sys.exit(f"measure.py: --runtime={args.runtime} is not installed ({error}); pip install "
               f"{args.runtime}, or pass another --runtime of {RUNTIMES}.")
    runtime, version, source = args.runtime, runtime_version(args.runtime), "timed"
  threads = 1 if runtime == "tflite-micro" else args.threads
  profile = profile_of(manifest, ms, args.device_name, runtime, version, threads, source,
                       round(time.perf_counter() - start, 3))
  write_json(args.out, profile)
  log(f"wrote {args.out}: {args.device_name}, {runtime} {version or ''}, {manifest['format']}, "
      f"{threads} thread{'s' if threads != 1 else ''}, {len(profile['probes'])} probes, "
      f"{profile['seconds']:.1f} s")


if __name__ == "__main__":
  main()
