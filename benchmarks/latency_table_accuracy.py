r"""Predicted against measured speed-ups of real networks, the latency table's old rule and new.

The old rule priced only the convolutions and scaled their sum by one slope through the origin,
so max pools and concatenations were a constant share of it, and so was every layer's fixed
cost per invoke. The new table prices each max pool and concatenation on its own channel grid
(`latency_table.MoveOp`) and fits the calibration line with an intercept
(`fit_network_line`). All tables are built from ONE measurement (`latency.measure`:
convolutions, pools, concatenations and calibration networks timed as a run times them): the
old one with the pools and concatenations left out and the line through the origin, a middle
one with the pools but the line through the origin (`through_origin`), and one with the line but
no pools (what the intercept alone does). Last, each run
dir's own cached table (measured in that run's session, read whatever its version: convolutions
only) prices the same networks, against this session's timings: how far a table measured in
another session errs.

The networks: the ancestor, every distinct candidate of the given run dirs
(generations/gen_*/cand_*/spec.json), uniform widths and three non-uniform specs (thin early
and wide late, the reverse, and very thin early). Each is built with random weights (timing
does not depend on them) and all are timed interleaved with the ancestor in one session
(`latency.measure_against`: the median per-round speed-up). Prints, per network, the measured
and predicted speed-ups over the ancestor, then each table's median |error| and worst case,
and the time of a table build with and without the pools and concatenations.

  python benchmarks/latency_table_accuracy.py
  python benchmarks/latency_table_accuracy.py --runs=/tmp/demo_g4 --uniform_widths=0.5

Writes --out (JSON: the measurements' tables, every network's spec and figures).
"""

import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf import files as files_lib  # noqa: E402
from squish_tf.bench import latency  # noqa: E402
from squish_tf.bench import latency_table as latency_table_lib  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", ["/tmp/demo_quiet_run", "/tmp/demo_met_quiet_run", "/tmp/demo_g4",
                           "/tmp/demo_met"],
                  "Run dirs whose candidates are timed (missing ones are skipped).")
flags.DEFINE_string("ancestor", "", "The ancestor's spec.json; default: the first run's "
                    "ancestor/spec.json, else the 64 px 10-class squishednet_base.")
flags.DEFINE_enum("format", "fp32", list(latency_table_lib.FORMATS), "LiteRT model timed.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_list("uniform_widths", ["0.75", "0.4", "0.15"], "Uniform widths timed too.")
flags.DEFINE_integer("max_candidates", 20, "At most this many run candidates (the first found).")
flags.DEFINE_bool("time_old_build", True, "Also time a table build without the pools and "
                  "concatenations (the old build), for the before/after build time.")
flags.DEFINE_string("out", "saved_models/latency_table_accuracy.json", "Where the figures go.")


def load_ancestor() -> spec_lib.NetSpec:
  paths = [FLAGS.ancestor] if FLAGS.ancestor else [
      os.path.join(run, "ancestor", "spec.json") for run in FLAGS.runs]
  for path in paths:
    if os.path.exists(path):
      return spec_lib.load_spec(path)
  return spec_lib.squishednet_base(10, (64, 64, 3))


def split_width(spec: spec_lib.NetSpec, early: float, late: float,
                last_early_fire: int = 3) -> spec_lib.NetSpec:
  """conv1 and the fires up to `last_early_fire` at `early` x their filters, the rest `late`."""
  def scale(filters, factor):
    return max(1, int(round(filters * factor)))

  fires = tuple(spec_lib.FireSpec(*(scale(n, early if number <= last_early_fire else late)
                                    for n in (fire.squeeze, fire.expand1x1, fire.expand3x3)))
                for number, fire in spec.numbered_fires())
  return spec.replace(conv1_filters=scale(spec.conv1_filters, early), fires=fires,
                      name=f"early{early:g}_late{late:g}")


def networks(ancestor: spec_lib.NetSpec):
  """{name: spec}: the ancestor, the runs' distinct candidates, uniform and non-uniform specs."""
  nets = {"ancestor": ancestor}
  seen = {json.dumps(ancestor.architecture_key(), sort_keys=True)}
  found = 0
  for run in FLAGS.runs:
    for path in sorted(glob.glob(os.path.join(run, "generations", "gen_*", "cand_*",
                                              "spec.json"))):
      spec = spec_lib.load_spec(path)
      key = json.dumps(spec.architecture_key(), sort_keys=True)
      if key in seen or found >= FLAGS.max_candidates or spec.input_shape != ancestor.input_shape:
        continue
      seen.add(key)
      found += 1
      generation, candidate = path.split(os.sep)[-3:-1]
      nets[f"{os.path.basename(run)}/{generation[-1]}.{candidate[-1]}"] = spec
  for width in FLAGS.uniform_widths:
    nets[f"uniform {float(width):g}"] = spec_lib.scale_width(ancestor, float(width))
  nets["thin early 0.1/1"] = split_width(ancestor, 0.1, 1.0)
  nets["wide early 1/0.25"] = split_width(ancestor, 1.0, 0.25)
  nets["very thin early"] = split_width(ancestor, 0.06, 0.3)
  return nets


def run_tables(ancestor: spec_lib.NetSpec):
  """{run name: its cached fp32 table} of the run dirs measured for `ancestor`'s architecture."""
  tables = {}
  for run in FLAGS.runs:
    path = os.path.join(run, latency_table_lib.table_file(FLAGS.format))
    if not os.path.exists(path):
      continue
    data = files_lib.read_json(path)
    table = latency_table_lib.LatencyTable.from_json(
        dict(data, version=latency_table_lib.TABLE_VERSION))
    try:
      table.predict(ancestor)
    except ValueError:  # another resolution or architecture
      continue
    tables[os.path.basename(run)] = table
  return tables


def through_origin(table: latency_table_lib.LatencyTable) -> latency_table_lib.LatencyTable:
  """`table` with its calibration line refitted through the origin (`fit_network`): the old
  rule's network fit."""
  table.intercept_ms, table.slope = latency_table_lib.fit_network(
      [point["layers_ms"] for point in table.calibration],
      [point["measured_ms"] for point in table.calibration])
  return table


def timed(function, *args):
  start = time.perf_counter()
  result = function(*args)
  return result, time.perf_counter() - start


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)
  ancestor = load_ancestor()
  fmt, threads = FLAGS.format, FLAGS.threads
  old_build_seconds = None
  if FLAGS.time_old_build:  # what a build cost before: no pools or concatenations converted
    signatures = latency.move_signatures
    latency.move_signatures = lambda spec: []
    try:
      _, old_build_seconds = timed(latency.measure, ancestor, fmt, threads, None)
    finally:
      latency.move_signatures = signatures
  measured, build_seconds = timed(latency.measure, ancestor, fmt, threads, None)
  new = latency_table_lib.build_table(ancestor, fmt, threads, measured)
  convs_line = latency_table_lib.build_table(
      ancestor, fmt, threads, latency_table_lib.Measurements(
          measured.op_ms, measured.overhead_ms, measured.network_ms))
  old = through_origin(convs_line)
  pools_only = through_origin(latency_table_lib.build_table(ancestor, fmt, threads, measured))
  predictors = {"old": old.predict, "pools, origin": pools_only.predict,
                "convs, line": convs_line.predict, "new": new.predict}
  nets = networks(ancestor)
  print(f"timing the ancestor and {len(nets) - 1} networks interleaved ...", flush=True)
  models = {name: latency.spec_tflite(spec, fmt) for name, spec in nets.items()}
  timing = latency.measure_against(models, "ancestor", threads=threads)
  moves_share = new.moves_ms(ancestor) / new.layers_ms(ancestor)
  print(f"\n{fmt}, {ancestor.input_shape[0]} px, {threads} threads. Pools and concatenations: "
        f"{moves_share:.1%} of the ancestor's layer sum. Old: {old.slope:.3f} x layers; pools "
        f"through the origin: {pools_only.slope:.3f} x; new: {new.intercept_ms * 1e3:+.1f} us + "
        f"{new.slope:.3f} x.")
  header = f"{'network':<24}{'conv1':>6}{'params':>9}{'meas ms':>9}{'meas x':>8}"
  print(header + "".join(f"{name + ' x':>17}" for name in predictors))
  rows, errors = [], {name: [] for name in predictors}
  for name, spec in nets.items():
    m = timing[name]
    row = {"name": name, "spec": json.loads(spec.to_json()), "params": spec.params(),
           "measured_ms": m["latency_ms"], "measured_speedup": m["speedup"],
           "measured_range": [m["speedup_min"], m["speedup_max"]]}
    cells = []
    for label, predict in predictors.items():
      speedup = predict(ancestor) / predict(spec)
      row[f"{label}_speedup"] = speedup
      error = speedup / m["speedup"] - 1.0
      if name != "ancestor":
        errors[label].append(abs(error))
      cells.append(f"{speedup:>7.2f} ({error:+6.1%})")
    rows.append(row)
    print(f"{name:<24}{spec.conv1_filters:>6}{spec.params():>9,}{m['latency_ms']:>9.3f}"
          f"{m['speedup']:>8.2f}" + "".join(f"{cell:>17}" for cell in cells))
  summary = {label: {"median_abs_error": float(np.median(values)),
                     "worst_abs_error": float(np.max(values))}
             for label, values in errors.items()}
  print(f"\nover {len(nets) - 1} networks: " + "; ".join(
      f"{label}: median |error| {s['median_abs_error']:.1%}, worst {s['worst_abs_error']:.1%}"
      for label, s in summary.items()))
  for run, table in run_tables(ancestor).items():
    errors = [abs(table.predict(ancestor) / table.predict(nets[row["name"]])
                  / row["measured_speedup"] - 1.0) for row in rows if row["name"] != "ancestor"]
    summary[f"table of {run}"] = {"median_abs_error": float(np.median(errors)),
                                  "worst_abs_error": float(np.max(errors))}
    print(f"{run}'s own table (its session, convolutions only): median |error| "
          f"{np.median(errors):.1%}, worst {np.max(errors):.1%}")
  print(f"table build (measure + build): {build_seconds:.1f} s with pools and concatenations"
        + (f", {old_build_seconds:.1f} s without (the old build), one after the other in this "
           "process" if old_build_seconds is not None else ""))
  out = {"format": fmt, "threads": threads, "image_size": ancestor.input_shape[0],
         "old_table": old.to_json(), "new_table": new.to_json(),
         "rows": rows, "summary": summary, "build_seconds": build_seconds,
         "old_build_seconds": old_build_seconds}
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  files_lib.write_json(FLAGS.out, out)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
