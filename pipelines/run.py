r"""The main job: your images in, a SquishedNet and the evidence to trust it out.

  squish                                   # shapes10 at 64 px, saved_models/demo/
  squish --dataset=folder --data_dir=~/photos --image_size=128 --run_name=photos \
      --target_size_mb=0.6 --generations=5

Trains the few-class SqueezeNet v1.1 ancestor, evolves it by deep evolutionary
synthesis to the targets, exports the SquishedNet (SavedModel, TFLite fp32 /
fp16 / dynamic / int8 / QAT-int8, Jetson TF-TRT bundle) and the ancestor,
trains the baselines, benchmarks everything with LiteRT and writes report.md,
pareto.png, frontier.png and results.json into saved_models/<run_name>/. Re-running the same
command resumes: every finished stage is skipped.
"""

from absl import flags

import pipelines
from squish_tf import api
from squish_tf.job import flags as flag_defs
from squish_tf.job import options as options_lib

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flag_defs.define_train_flags()
flag_defs.define_synthesis_flags()
flag_defs.define_export_flags()
flag_defs.define_benchmark_flags()
flag_defs.define_budget_flags()
# This main's own flags (--run_name, --run_dir, --baselines, declared on
# JobConfig): defined from here, they are listed under this module.
options_lib.define(options_lib.group("job"))
MAIN_FLAGS = tuple(option.name for option in options_lib.group("job"))
# --help lists the shared flags too (they are defined in flag_defs, not in this module).
flags.adopt_module_key_flags(flag_defs)

def main(argv):
  del argv
  plan = api.plan_from_flags(FLAGS)  # every flag checked, nothing written yet
  pipelines.import_tensorflow()
  api.execute(plan)  # as squish_tf.run does


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
