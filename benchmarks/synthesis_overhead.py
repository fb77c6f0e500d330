"""Synthesis overhead per offspring: sampling (numpy) and surgery (Keras), training excluded.

Measures what evolution pays per candidate before fine-tuning starts, on the
ancestor macroarchitecture at the paper's 224 px:

  once per parent      strengths read from the model; environmental factors
                       (a root search in --env_mode=target)
  per offspring        sampling: expected size + Bernoulli draw + child spec
                       surgery: build the child model and slice every kernel
                       and bias out of the parent (--offspring_init=inherit)

The first offspring pays Keras' one-off start-up and is reported separately.
Target: sampling + surgery <= 1 s per offspring.

  python benchmarks/synthesis_overhead.py --offspring=20 --image_size=224
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.evolve import encoding as synthesis  # noqa: E402
from squish_tf.evolve import environment as environment_lib  # noqa: E402
from squish_tf.evolve import surgery  # noqa: E402
from squish_tf.net import models  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402

_OFFSPRING = flags.DEFINE_integer("offspring", 20, "Offspring to time.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input size of the parent.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 10, "Classes of the parent.")
_ENV_MODE = flags.DEFINE_enum("env_mode", "constant", list(synthesis.ENV_MODES),
                              "Environmental factor mode.")
_ENV_FACTOR = flags.DEFINE_float("env_factor", 0.8, "F for constant / cost_weighted.")
_TARGET_FRACTION = flags.DEFINE_float("target_fraction", 0.5, "Expected child fraction (target).")
_OFFSPRING_INIT = flags.DEFINE_enum("offspring_init", "inherit", list(surgery.OFFSPRING_INITS),
                                    "Inherit sliced weights or start from scratch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the parent weights and the draws.")

TARGET_SECONDS = 1.0


def _summary(label: str, seconds) -> str:
  values = [1e3 * s for s in seconds]
  return (f"{label:<34s} mean {statistics.mean(values):8.1f} ms   median "
          f"{statistics.median(values):8.1f} ms   max {max(values):8.1f} ms")


def main(argv):
  del argv
  size = _IMAGE_SIZE.value
  parent_spec = spec_lib.squishednet_base(_NUM_CLASSES.value, (size, size, 3))
  config = synthesis.SynthesisConfig(env_mode=_ENV_MODE.value, env_factor=_ENV_FACTOR.value,
                                     target_fraction=_TARGET_FRACTION.value)
  parent = models.build_model(parent_spec, seed=_SEED.value)

  start = time.perf_counter()
  strengths = surgery.layer_strengths(parent, parent_spec)
  strengths_seconds = time.perf_counter() - start
  start = time.perf_counter()
  factors = environment_lib.environment_factors(parent_spec, config, strengths)
  factors_seconds = time.perf_counter() - start

  def one(generation: int, candidate: int):
    rng = np.random.default_rng((_SEED.value, generation, candidate))
    start = time.perf_counter()
    offspring = environment_lib.sample_offspring(parent_spec, strengths, config, rng, factors=factors)
    sampled = time.perf_counter()
    child, _ = surgery.build_child(parent, parent_spec, offspring.survivors,
                                   offspring_init=_OFFSPRING_INIT.value, seed=candidate)
    built = time.perf_counter()
    return offspring, child, sampled - start, built - sampled

  _, _, warm_sampling, warm_surgery = one(0, 0)  # warm-up, not in the statistics
  sampling, surgery_times, totals, params = [], [], [], []
  for candidate in range(_OFFSPRING.value):
    offspring, child, sample_seconds, surgery_seconds = one(1, candidate)
    assert child.count_params() == offspring.spec.params()
    sampling.append(sample_seconds)
    surgery_times.append(surgery_seconds)
    totals.append(sample_seconds + surgery_seconds)
    params.append(offspring.spec.params())

  print(f"parent: {parent_spec.name} at {size}x{size}, {parent_spec.params():,} params, "
        f"{parent_spec.macs():,} MACs; env_mode={config.env_mode}, "
        f"offspring_init={_OFFSPRING_INIT.value}, {_OFFSPRING.value} offspring")
  print(f"children: params mean {statistics.mean(params):,.0f} "
        f"(min {min(params):,}, max {max(params):,}); expected "
        f"{offspring.expected_params:,.0f}")
  print(f"once per parent: strengths {1e3 * strengths_seconds:.1f} ms, environmental factors "
        f"{1e3 * factors_seconds:.1f} ms")
  print(f"first offspring (Keras start-up): sampling {1e3 * warm_sampling:.1f} ms, surgery "
        f"{1e3 * warm_surgery:.1f} ms")
  print(_summary("sampling (numpy)", sampling))
  print(_summary("surgery (build child + slice)", surgery_times))
  print(_summary("total per offspring", totals))
  verdict = "OK" if statistics.mean(totals) <= TARGET_SECONDS else "OVER TARGET"
  print(f"target <= {TARGET_SECONDS:.1f} s per offspring: {verdict}")


if __name__ == "__main__":
  app.run(main)
