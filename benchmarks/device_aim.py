r"""SquishedNets aimed at two clocks: each timed on its own clock and on the other's.

For every seed:

1. for every --devices entry (default tflm and cpu_fp32, `squish_tf.bench.profile.BUILT_IN`),
   the main job (`squish_tf.run`, the demo's budgets and --target_speedup) with --device, no
   baselines and only the fp32 and int8 files exported. The devices' runs share the seed's
   ancestor (copied into the later run dirs, which the job then skips) and the devices'
   profiles (one --device_cache_dir for every run);
2. one interleaved timing session (A B C ... A B C ..., --rounds rounds) of the ancestor and
   every device's SquishedNet on every device's clock, each clock as its profile was measured
   (`device_measure.litert_call` / `micro_call`: cpu_fp32 is the fp32 file in LiteRT with
   XNNPACK on 2 threads, tflm the int8 file in TFLite-Micro's reference kernels).

Prints per seed each SquishedNet's widths (conv1 and every fire's squeeze/expand1x1/expand3x3),
parameters, MB and MACs, its test top-1 (the run's results.json), and on each clock its measured
ms, its predicted ms (the device's table) and its speed-up over the ancestor (median per-round
ratio [min-max]) measured and predicted; then, per clock, how many times faster the first
device's SquishedNet runs than the second's (and whether their widths are the same). A run
with a results.json is reused as it is, an unfinished one resumes (the job's stages are
resumable); the timing is redone.
Writes `<run_dir>/summary.json`.

  python benchmarks/device_aim.py --seeds=0,1
  python benchmarks/device_aim.py --seeds=0 --target_speedup=3 --time=false
  python benchmarks/device_aim.py --run_dir=saved_models/device_aim_t2 \
      --extra=survival_temperature=2
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402

from benchmarks import summary  # noqa: E402
import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1"], "Seeds: each trains its own ancestor and runs.")
flags.DEFINE_list("devices", ["tflm", "cpu_fp32"], "Built-in devices aimed at, one run each; "
                  "the ratio printed is the first's SquishedNet against the second's.")
flags.DEFINE_float("target_speedup", 2.0, "--target_speedup of every run.")
flags.DEFINE_string("run_dir", "saved_models/device_aim", "Where the runs go (resumable).")
flags.DEFINE_boolean("time", True, "Time the SquishedNets after a seed's runs (false: runs only).")
flags.DEFINE_integer("rounds", 21, "Interleaved timing rounds.")
flags.DEFINE_float("round_seconds", 0.2, "Seconds per model per round.")
flags.DEFINE_list("extra", [], "More job options as name=value (e.g. generations=3).")

PROFILES_DIR = "profiles"


def _options(seed: int, device: str, run_dir: str) -> dict:
  options = dict(run_name=os.path.basename(run_dir), run_dir=run_dir, seed=seed, cost="latency",
                 target_speedup=FLAGS.target_speedup, device=device,
                 device_cache_dir=os.path.join(FLAGS.run_dir, PROFILES_DIR), baselines="none",
                 formats="fp32,int8", pair_resolutions="run", batch_sizes="1",
                 min_train_steps=0)
  return summary.extra_options(options, FLAGS.extra)


def _widths(spec) -> str:
  """conv1's filters, then squeeze/expand1x1/expand3x3 of every fire."""
  return f"conv1 {spec.conv1_filters}; fires " + " ".join(
      f"{f.squeeze}/{f.expand1x1}/{f.expand3x3}" for f in spec.fires)


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _time_clocks(files: dict, devices: list) -> dict:
  """One interleaved session of every model on every device's clock: `time_interleaved`'s
  result, keyed "<device>/<model>". `files` is {model: {"fp32": bytes, "int8": bytes}}."""
  from squish_tf.bench import device_measure  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import profile as profile_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  calls = {}
  for name in devices:
    device = profile_lib.BUILT_IN[name]
    for model, formats in files.items():
      content = formats[device.format]
      calls[f"{name}/{model}"] = (
          device_measure.micro_call(content) if device.runtime == "tflite-micro"
          else device_measure.litert_call(device.runtime, content, device.threads))
  invokes = timing.calibrate_invokes(calls, round_seconds=FLAGS.round_seconds)
  return timing.time_interleaved(calls, rounds=FLAGS.rounds, invokes=invokes)


def _ratio(timed, subject, reference) -> dict:
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  stats = timing.ratio_stats(timed, subject, reference)
  return {"median": stats["ratio_median"], "min": stats["ratio_min"], "max": stats["ratio_max"]}


def run_seed(seed: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import squish_tf  # pylint: disable=g-import-not-at-top
  from squish_tf import files as files_lib  # pylint: disable=g-import-not-at-top
  from squish_tf import layout  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import devices as devices_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top
  from squish_tf.runtime import timing  # pylint: disable=g-import-not-at-top

  root = os.path.join(FLAGS.run_dir, f"seed_{seed}")
  runs, job_minutes = {}, {}
  for device in FLAGS.devices:
    run_dir = os.path.join(root, device)
    if runs:
      summary.share_ancestor(next(iter(runs.values())), run_dir)
    start = time.time()
    if not os.path.exists(os.path.join(run_dir, layout.RESULTS_FILE)):  # a finished run is reused
      squish_tf.run(**_options(seed, device, run_dir))
    job_minutes[device] = (time.time() - start) / 60
    runs[device] = run_dir
  out = {"job_minutes_this_call": job_minutes, "stage_seconds": {
      device: files_lib.optional_read_json(os.path.join(run_dir, layout.STAGE_TIMES_FILE))
      for device, run_dir in runs.items()}}
  if not FLAGS.time:
    return out
  first = runs[FLAGS.devices[0]]
  export = os.path.join(first, "ancestor", "export")
  specs = {"ancestor": model_io.read_spec(os.path.join(first, "ancestor"))}
  files = {"ancestor": {fmt: _read(os.path.join(export, f"model_{fmt}.tflite"))
                        for fmt in ("fp32", "int8")}}
  results = {}
  for device, run_dir in runs.items():
    results[device] = files_lib.read_json(os.path.join(run_dir, layout.RESULTS_FILE))
    specs[device] = model_io.read_spec(os.path.join(run_dir, layout.SQUISHEDNET_DIR))
    files[device] = {fmt: _read(os.path.join(run_dir, "export", f"model_{fmt}.tflite"))
                     for fmt in ("fp32", "int8")}
  timed = _time_clocks(files, FLAGS.devices)
  tables = {clock: devices_lib.built_in_profile(
      clock, specs["ancestor"], os.path.join(FLAGS.run_dir, PROFILES_DIR)).table(specs["ancestor"])
      for clock in FLAGS.devices}
  models = {}
  for model, spec in specs.items():
    row = {"params": spec.params(), "size_mb": spec.size_mb(), "macs": spec.macs(),
           "widths": _widths(spec), "clocks": {}}
    if model != "ancestor":
      evaluated = results[model]["models"]
      row["top1"] = evaluated["squishednet"]["top1"]
      row["ancestor_top1"] = evaluated.get("ancestor", {}).get("top1")
      row["stop_reason"] = results[model].get("stop_reason")
    for clock in FLAGS.devices:
      name = f"{clock}/{model}"
      row["clocks"][clock] = {
          "measured_ms": float(np.median(timing.seconds_per_invoke(timed, name)) * 1e3),
          "predicted_ms": tables[clock].predict(spec),
          "speedup": _ratio(timed, name, f"{clock}/ancestor")}
    models[model] = row
  aimed, other = FLAGS.devices[0], FLAGS.devices[1]
  out.update(models=models, load_average=timed["load_average"],
             same_widths=models[aimed]["widths"] == models[other]["widths"], ratio={
      clock: _ratio(timed, f"{clock}/{aimed}", f"{clock}/{other}") for clock in FLAGS.devices})
  return out


_pct, _speed = summary.percent, summary.speed_of


def main(argv):
  del argv
  summary.quiet_logging()
  if len(FLAGS.devices) != 2:
    raise app.UsageError(f"--devices takes two built-in devices, got {FLAGS.devices}.")
  start = time.time()
  per_seed = {}
  for seed in FLAGS.seeds:
    per_seed[int(seed)] = run_seed(int(seed))
    _report(per_seed, start)


def _report(per_seed, start):
  """Prints the seeds done so far and writes summary.json (after every seed)."""
  aimed, other = FLAGS.devices
  print(f"\ndevice_aim: --devices={aimed},{other} --target_speedup={FLAGS.target_speedup:g} "
        f"--extra={','.join(FLAGS.extra)}; {FLAGS.rounds} interleaved rounds, every model on "
        "every clock in one session")
  for seed, r in per_seed.items():
    minutes = ", ".join(f"{d} {m:.1f} min" for d, m in r["job_minutes_this_call"].items())
    stages = ", ".join(f"{d} {sum((times or {}).values()) / 60:.1f} min"
                       for d, times in r["stage_seconds"].items())
    print(f"seed {seed} (the jobs' stages: {stages}; this call: {minutes})")
    if "models" not in r:
      continue
    load = r["load_average"]
    print(f"  load average {load['start']:.2f} -> {load['end']:.2f}")
    for model, row in r["models"].items():
      label = "ancestor" if model == "ancestor" else f"aimed at {model}"
      top1 = "" if model == "ancestor" else (
          f", test top-1 {_pct(row['top1'])} (ancestor {_pct(row['ancestor_top1'])}; "
          f"{row['stop_reason']})")
      print(f"  {label}: {row['params']:,} params, {row['size_mb']:.3f} MB, "
            f"{row['macs'] / 1e6:.1f} M MACs{top1}")
      print(f"    widths: {row['widths']}")
      for clock, c in row["clocks"].items():
        # The predicted speed-up: the table's ancestor ms over this model's.
        predicted = r["models"]["ancestor"]["clocks"][clock]["predicted_ms"] / c["predicted_ms"]
        print(f"    on {clock:<8}: {c['measured_ms']:8.3f} ms measured, {c['predicted_ms']:8.3f} "
              f"predicted ({c['predicted_ms'] / c['measured_ms'] - 1:+.1%}), "
              f"{_speed(c['speedup'])} over the ancestor ({predicted:.2f}x predicted)")
    gap = r["models"][aimed]["top1"] - r["models"][other]["top1"]
    if r["same_widths"]:
      print(f"  the SquishedNets aimed at {aimed} and at {other} have the same widths")
    for clock, stats in r["ratio"].items():
      print(f"  on {clock:<8}: aimed at {aimed} runs {_speed(stats)} as fast as aimed at {other}")
    print(f"  test top-1: aimed at {aimed} - aimed at {other} = {100 * gap:+.2f} points")
  print(f"wall time {(time.time() - start) / 60:.1f} min")
  summary.write_summary(FLAGS.run_dir, {"devices": FLAGS.devices,
                                        "target_speedup": FLAGS.target_speedup,
                                        "extra": FLAGS.extra, "rounds": FLAGS.rounds},
                        per_seed)


if __name__ == "__main__":
  app.run(main)
