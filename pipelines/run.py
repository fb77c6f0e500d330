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

import os

from absl import flags, logging

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
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top

  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # SavedModel writers log every asset at INFO
  config = flag_defs.job_config_from_flags()
  run_dir = config.run_dir
  run_flags = flag_defs.flag_values(flag_defs.DATA_IDENTITY_FLAGS)
  results = job.run_job(
      config, flag_defs.data_config_from_flags(), flag_defs.train_config_from_flags(),
      flag_defs.evolution_config_from_flags(), flag_defs.synthesis_config_from_flags(),
      strategy=flag_defs.strategy_from_flags(),
      flags_text=flag_defs.flags_text(MAIN_FLAGS),
      command=f"squish --flagfile={os.path.join(run_dir, 'flags.txt')}",
      run_flags=run_flags)
  from squish_tf.report import console as console_lib  # pylint: disable=g-import-not-at-top
  print(console_lib.format_results_summary(results))
  print(f"\nreport: {os.path.join(run_dir, 'report.md')}")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
