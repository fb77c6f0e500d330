r"""Built-in devices: how long packing and measuring takes, and how close their tables predict.

For each --devices entry (`squish_tf.bench.profile.BUILT_IN`), at the few-class ancestor of
--image_size px: packs and measures its profile from scratch (`devices.built_in_profile` in a
fresh cache, timed), builds the table, then draws --children offspring in a chain as a
`--cost=latency` run draws them (random strengths, target mode on that table), converts each in
the device's format and times them with the ancestor interleaved in the device's runtime
(measure.py's own timing). Prints, per device, the calibration networks' median |error|
(in-sample: the slope is fitted on them) and the offspring's (held out).

  python benchmarks/device_profiles.py --devices=cpu_fp32,cpu_int8,tflm
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf import files as files_lib  # noqa: E402
from squish_tf.bench import device_measure  # noqa: E402
from squish_tf.bench import devices as devices_lib  # noqa: E402
from squish_tf.bench import latency  # noqa: E402
from squish_tf.bench import profile as profile_lib  # noqa: E402
from squish_tf.evolve import encoding as synthesis  # noqa: E402
from squish_tf.evolve import environment as environment_lib  # noqa: E402
from squish_tf.train import config as train_config_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("devices", list(profile_lib.DEVICES), "Built-in devices to measure.")
flags.DEFINE_integer("image_size", 64, "Input resolution of the ancestor.")
flags.DEFINE_integer("num_classes", 10, "Classes of the ancestor.")
flags.DEFINE_integer("children", 4, "Offspring drawn in one chain and timed (held out).")
flags.DEFINE_float("target_fraction", 0.8, "Expected child/parent latency per generation.")
flags.DEFINE_integer("seed", 0, "Seed of the strengths and the draws.")
flags.DEFINE_string("out", "saved_models/device_profiles.json", "Where the figures go.")


def draw_children(ancestor, table):
  """[(name, spec)]: one chain of offspring drawn at --cost=latency in target mode."""
  config = synthesis.SynthesisConfig(env_mode="target", cost="latency",
                                     target_fraction=FLAGS.target_fraction)
  rng = np.random.default_rng(FLAGS.seed)
  spec, children = ancestor, []
  for generation in range(1, FLAGS.children + 1):
    strengths = {name: rng.uniform(0.6, 1.0, n) for name, n in spec.prunable_layers()}
    spec = environment_lib.sample_offspring(spec, strengths, config, rng, latency=table,
                                            name=f"gen{generation}").spec
    children.append((spec.name, spec))
  return children


def time_on_device(device, models):
  """{name: median ms} of .tflite `models` timed interleaved in the device's runtime."""
  calls = {name: (device_measure.micro_call(content) if device.runtime == "tflite-micro"
                  else device_measure.litert_call(device.runtime, content, device.threads))
           for name, content in models.items()}
  return device_measure.time_interleaved(calls, device_measure.NETWORK_ROUNDS,
                                         device_measure.NETWORK_ROUND_SECONDS)


def main(argv):
  del argv
  ancestor = train_config_lib.ModelConfig().ancestor_spec(FLAGS.num_classes, FLAGS.image_size)
  results = {}
  for name in FLAGS.devices:
    device = profile_lib.BUILT_IN[name]
    with tempfile.TemporaryDirectory(prefix=f"device_{name}_") as cache:
      start = time.perf_counter()
      profile = devices_lib.built_in_profile(name, ancestor, cache)
      seconds = time.perf_counter() - start
    table = profile.table(ancestor)
    calibration = [abs(c["predicted_ms"] / c["measured_ms"] - 1.0) for c in table.calibration]
    children = draw_children(ancestor, table)
    models = {"ancestor": latency.spec_tflite(ancestor, device.format)}
    models.update({child: latency.spec_tflite(spec, device.format) for child, spec in children})
    measured = time_on_device(device, models)
    rows = []
    ancestor_ratio = table.predict(ancestor) / measured["ancestor"]
    for child, spec in [("ancestor", ancestor)] + children:
      predicted = table.predict(spec)
      error = predicted / measured[child] - 1.0
      # The same error relative to the ancestor's in this session: the machine's load when the
      # profile was measured and now does not enter it.
      speedup_error = ancestor_ratio / (predicted / measured[child]) - 1.0
      rows.append({"name": child, "params": spec.params(), "predicted_ms": predicted,
                   "measured_ms": measured[child], "error": error,
                   "speedup_error": speedup_error})
      print(f"{name:<9} {child:<9} {spec.params():>8,} predicted {predicted:8.3f} ms, measured "
            f"{measured[child]:8.3f} ms ({error:+.1%}; speed-up over the ancestor "
            f"{rows[-1]['speedup_error']:+.1%})", flush=True)
    held_out = [abs(row["error"]) for row in rows[1:]]  # the ancestor is calibration width 1
    held_out_speedup = [abs(row["speedup_error"]) for row in rows[1:]]
    results[name] = {"profile": profile.describe(), "pack_and_measure_seconds": seconds,
                     "profile_seconds": profile.seconds, "channel_multiple": table.channel_multiple,
                     "calibration": table.calibration,
                     "calibration_median_abs_error": float(np.median(calibration)),
                     "rows": rows, "held_out_median_abs_error": float(np.median(held_out)),
                     "held_out_median_abs_speedup_error": float(np.median(held_out_speedup))}
    print(f"{name}: {profile.describe()}; pack + measure {seconds:.0f} s (measure.py "
          f"{profile.seconds:.0f} s); median |error| {np.median(calibration):.1%} on the "
          f"{len(calibration)} calibration widths (fitted on them), {np.median(held_out):.1%} on "
          f"{len(children)} offspring (held out; of their speed-up over the ancestor "
          f"{np.median(held_out_speedup):.1%})", flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  files_lib.write_json(FLAGS.out, results)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
