r"""Evolution aimed at speed: --cost=latency with --target_speedup, measured on LiteRT.

For every seed, runs the main job (`squish_tf.run`, the demo's budgets unless
overridden) with the latency model driving target mode, then prints, from the
run's own measurements:

- test top-1 of the ancestor and the SquishedNet (the drop, in points);
- the SquishedNet's LiteRT fp32 speed-up over the fp32 ancestor at batch 1,
  interleaved (median per-round ratio, min-max), at the run's resolution and
  at 224 px (the same weights rebuilt at 224x224);
- the int8 SquishedNet's speed-up over the fp32 ancestor;
- the latency model's median |error| on the chosen offspring (predicted ms
  against each offspring timed interleaved with the ancestor).

  python benchmarks/speed_target.py --seeds=0
  python benchmarks/speed_target.py --seeds=0,1 --target_speedup=4 --generations=3

Every run resumes (the job's stages are resumable), so a re-run only prints.
Writes `<run_dir>/summary.json`.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import summary  # noqa: E402
import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0"], "Seeds: each runs the whole job anew.")
flags.DEFINE_string("run_dir", "saved_models/speed_target", "Where the runs go (resumable).")
flags.DEFINE_float("target_speedup", 3.0, "--target_speedup of the runs.")
flags.DEFINE_integer("generations", 3, "--generations of the runs (the most; a run stops once "
                     "the target is met).")
flags.DEFINE_enum("latency_format", "fp32", ["fp32", "int8"], "--latency_format of the runs.")
flags.DEFINE_list("baselines", ["width_scaled"], "--baselines of the runs.")
flags.DEFINE_list("extra", [], "More job options as name=value (e.g. final_epochs=8).")

SUBJECTS = (("fp32 at the run's size", "squishednet/tflite_fp32", None),
            ("fp32 at 224 px", "squishednet/tflite_fp32", 224),
            ("int8 over the fp32 ancestor", "squishednet/tflite_int8", None))
REFERENCE = "ancestor/tflite_fp32"


def _options(seed: int) -> dict:
  options = dict(run_name=f"seed_{seed}", run_dir=os.path.join(FLAGS.run_dir, f"seed_{seed}"),
                 seed=seed, cost="latency", target_speedup=FLAGS.target_speedup,
                 generations=FLAGS.generations, latency_format=FLAGS.latency_format,
                 baselines=",".join(FLAGS.baselines) or "none")
  return summary.extra_options(options, FLAGS.extra)


def run_seed(seed: int) -> dict:
  import squish_tf  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import pairs as speed_pairs  # pylint: disable=g-import-not-at-top

  results = squish_tf.run(**_options(seed))
  data = results.results
  with open(os.path.join(results.run_dir, "benchmark.json")) as f:
    bench = json.load(f)
  models = data["models"]
  out = {"ancestor_top1": models["ancestor"]["top1"],
         "squishednet_top1": models["squishednet"]["top1"],
         "squishednet_size_mb": models["squishednet"].get("size_mb"),
         "squishednet_macs": models["squishednet"].get("macs"),
         "ancestor_macs": models["ancestor"].get("macs"),
         "stop_reason": data.get("stop_reason"), "winner": data.get("winner"),
         "latency_model": data.get("latency_model"), "speedups": {}}
  for label, subject, size in SUBJECTS:
    out["speedups"][label] = speed_pairs.pair_stats(bench, subject, REFERENCE, 1, size)
  for name in FLAGS.baselines:
    if name in models:
      out[f"{name}_top1"] = models[name].get("top1")
  return out


def _ratio(stats) -> str:
  if not stats:
    return "not measured"
  return summary.speed(stats["ratio_median"], stats["ratio_min"], stats["ratio_max"])


def main(argv):
  del argv
  summary.quiet_logging()
  per_seed = {int(s): run_seed(int(s)) for s in FLAGS.seeds}
  print(f"\n--cost=latency --target_speedup={FLAGS.target_speedup} "
        f"--generations={FLAGS.generations} --latency_format={FLAGS.latency_format}")
  for seed, r in per_seed.items():
    model = r["latency_model"] or {}
    error = model.get("median_abs_error_chosen")
    print(f"seed {seed}: winner {r['winner']} ({r['stop_reason']}), "
          f"{r['squishednet_size_mb']:.3f} MB, MACs {r['ancestor_macs']:,} -> "
          f"{r['squishednet_macs']:,}")
    print(f"  test top-1: ancestor {100 * r['ancestor_top1']:.2f}%, SquishedNet "
          f"{100 * r['squishednet_top1']:.2f}% "
          f"({100 * (r['squishednet_top1'] - r['ancestor_top1']):+.2f} points)" +
          "".join(f", {name} {100 * r[f'{name}_top1']:.2f}%" for name in FLAGS.baselines
                  if r.get(f"{name}_top1") is not None))
    for label, _, _ in SUBJECTS:
      print(f"  LiteRT speed-up over the fp32 ancestor, batch 1, {label}: "
            f"{_ratio(r['speedups'][label])}")
    print("  latency model median |error| on the chosen offspring: " +
          ("n/a" if error is None else f"{100 * error:.1f}%") +
          (f" (all {model.get('measured_candidates')} measured: "
           f"{100 * model['median_abs_error_all']:.1f}%)"
           if model.get("median_abs_error_all") is not None else ""))
  if len(per_seed) > 1:
    drops = [100 * (r["squishednet_top1"] - r["ancestor_top1"]) for r in per_seed.values()]
    print(f"mean drop {np.mean(drops):+.2f} points [{min(drops):+.2f} to {max(drops):+.2f}]")
  summary.write_summary(FLAGS.run_dir, {"target_speedup": FLAGS.target_speedup,
                                        "generations": FLAGS.generations,
                                        "latency_format": FLAGS.latency_format,
                                        "extra": FLAGS.extra}, per_seed)


if __name__ == "__main__":
  app.run(main)
