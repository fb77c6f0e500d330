r"""How far the latency model is from LiteRT: predicted against measured speed-ups, no training.

Measures the latency table of the few-class ancestor (`squish_tf.bench.latency`, as
a `--cost=latency` run does, in a temporary file unless --table is given),
then draws chains of offspring as synthesis draws them at --cost=latency in
target mode (random filter strengths: timing does not depend on the weights,
and a trained network's strengths only change which filters go), builds each
child's deployed .tflite with random weights, and times every child
interleaved with the ancestor (`latency.measure_against`: median per-round
ratio). Prints, per child, the predicted and measured speed-up and the error
of the predicted latency, then the median |error|, which is the figure the
`--cost=latency` stop test and the report rest on.

  python benchmarks/latency_model.py
  python benchmarks/latency_model.py --image_size=224 --chains=2 --generations=5

Writes `--out` (JSON: the table's calibration, every child's spec, layer sum,
prediction and measurement) so other fits can be tried on the same timings.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.bench import latency  # noqa: E402
from squish_tf.bench import latency_table as latency_table_lib  # noqa: E402
from squish_tf.evolve import encoding as synthesis  # noqa: E402
from squish_tf.evolve import environment as environment_lib  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 64, "Input resolution of the ancestor and the table.")
flags.DEFINE_integer("num_classes", 10, "Classes of the ancestor.")
flags.DEFINE_enum("format", "fp32", list(latency_table_lib.FORMATS), "LiteRT model the table times.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("chains", 2, "Independent chains of offspring.")
flags.DEFINE_integer("generations", 5, "Offspring per chain, each the next one's parent.")
flags.DEFINE_float("target_fraction", 0.75, "Expected child/parent latency per generation.")
flags.DEFINE_integer("seed", 0, "Seed of the strengths and the draws.")
flags.DEFINE_string("table", "", "A cached table to read (or write); empty: a temporary one.")
flags.DEFINE_string("out", "saved_models/latency_model.json", "Where the figures go.")


def draw_children(ancestor: spec_lib.NetSpec, table: latency_table_lib.LatencyTable):
  """[(name, spec)]: chains of offspring drawn at --cost=latency in target mode."""
  config = synthesis.SynthesisConfig(env_mode="target", cost="latency",
                                     target_fraction=FLAGS.target_fraction)
  rng = np.random.default_rng(FLAGS.seed)
  children = []
  for chain in range(FLAGS.chains):
    spec = ancestor
    for generation in range(1, FLAGS.generations + 1):
      # Strengths within 0.6-1 of a layer's strongest: P(c) in [0.67, 1], a trained
      # network's spread (wider spreads cut the chain to its floors in four draws).
      strengths = {name: rng.uniform(0.6, 1.0, n) for name, n in spec.prunable_layers()}
      try:
        offspring = environment_lib.sample_offspring(spec, strengths, config, rng, latency=table,
                                               name=f"chain{chain}_gen{generation}")
      except ValueError as error:  # at the floors: the chain ends
        print(f"chain {chain} ends at generation {generation}: {error}")
        break
      spec = offspring.spec
      children.append((spec.name, spec))
  return children


def main(argv):
  del argv
  ancestor = spec_lib.squishednet_base(FLAGS.num_classes, (FLAGS.image_size,) * 2 + (3,))
  with tempfile.TemporaryDirectory(prefix="latency_model_") as work:
    path = FLAGS.table or os.path.join(work, latency_table_lib.table_file(FLAGS.format))
    table = latency.load_or_measure(path, ancestor, FLAGS.format, FLAGS.threads)
  children = draw_children(ancestor, table)
  print(f"timing the ancestor and {len(children)} offspring interleaved ...", flush=True)
  models = {"ancestor": latency.spec_tflite(ancestor, FLAGS.format)}
  models.update({name: latency.spec_tflite(spec, FLAGS.format) for name, spec in children})
  measured = latency.measure_against(models, "ancestor", threads=FLAGS.threads)
  ancestor_predicted = table.predict(ancestor)
  rows, errors, speedup_errors = [], [], []
  print(f"{'model':<16} {'params':>8} {'pred ms':>8} {'meas ms':>8} {'pred x':>7} "
        f"{'meas x':>7} {'error':>7}")
  for name, spec in [("ancestor", ancestor)] + children:
    predicted = table.predict(spec)
    m = measured[name]
    predicted_speedup = ancestor_predicted / predicted
    error = predicted / m["latency_ms"] - 1.0
    speedup_error = predicted_speedup / m["speedup"] - 1.0
    if name != "ancestor":
      errors.append(abs(error))
      speedup_errors.append(abs(speedup_error))
    rows.append({"name": name, "spec": json.loads(spec.to_json()), "params": spec.params(),
                 "macs": spec.macs(), "layers_ms": table.layers_ms(spec),
                 "predicted_ms": predicted, "predicted_speedup": predicted_speedup,
                 "measured": m, "error": error, "speedup_error": speedup_error})
    print(f"{name:<16} {spec.params():>8,} {predicted:>8.3f} {m['latency_ms']:>8.3f} "
          f"{predicted_speedup:>6.2f}x {m['speedup']:>6.2f}x {error:>+7.1%}")
  print(f"median |latency error| {np.median(errors):.1%}, median |speed-up error| "
        f"{np.median(speedup_errors):.1%} over {len(children)} offspring "
        f"({FLAGS.format}, {FLAGS.image_size} px, {FLAGS.threads} threads)")
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, "w") as f:
    json.dump({"table": table.to_json(), "rows": rows,
               "median_abs_error": float(np.median(errors)),
               "median_abs_speedup_error": float(np.median(speedup_errors))}, f, indent=1)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
