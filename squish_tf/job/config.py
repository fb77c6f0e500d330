"""`JobConfig`: the main job's own options (run dir, run name, baselines) and the stages'
configs it holds; the comparison artefacts. Imports no TensorFlow."""

import dataclasses
from typing import Callable, Sequence

from squish_tf import fields as fields_lib
from squish_tf.bench import config as bench_config_lib
from squish_tf.export import config as export_config_lib
from squish_tf.job import budget_config as budget_config_lib
from squish_tf.train import config as train_config_lib

# The comparison models only need what the report compares: fp32 and int8 TFLite.
COMPARISON_FORMATS = ("fp32", "int8")
COMPARISON_ARTEFACTS = {"ancestor": ("keras", "tflite_fp32", "tflite_int8")}
BASELINE_ARTEFACTS = ("tflite_fp32", "tflite_int8")


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """The main job's settings that are not a stage's own config, and those configs.

  Attributes:
    run_dir: where everything goes (`saved_models/<run_name>`).
    run_name: the run's name in the report and results.json.
    baselines: which baselines to train (empty: none).
    budget: how long its trainings may take (--min_train_steps, --max_minutes).
    model: the ancestor's architecture choices.
    export: the SquishedNet's export.
    benchmark: how to time artefacts and on how many test images.
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (tests of the plumbing, whose 1-epoch ancestors are, turn it off).
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py). The flag --run_dir is unset by default: saved_models/<run_name>.
  run_dir: str = dataclasses.field(metadata=dict(
      help="Where the run goes; default saved_models/<run_name>."))
  run_name: str = dataclasses.field(default="demo", metadata=dict(
      help="Name of the run: its directory is saved_models/<name>. With --run_dir and no "
      "--run_name, the run is named after its directory."))
  baselines: Sequence[str] = dataclasses.field(
      default=train_config_lib.DEFAULT_BASELINES, metadata=dict(kind="list", help=(
          "Baselines trained at the SquishedNet's size, epochs and recipe, comma-separated from "
          f"{', '.join(train_config_lib.BASELINES)}; 'all' for every one, 'none' for none. The "
          "default is what a SquishedNet must beat: the width multiplier, trained from scratch "
          "with the same recipe and epochs. 'ladder' (never in 'all') trains a ladder of "
          "uniform widths, every channel count a multiple of the tile, from 1.25x the "
          "ancestor's speed to past the SquishedNet's: one training per rung, each as long as "
          "a baseline's (4 or 5 at a 2x target), and the report judges the SquishedNet against "
          "the best rung at least as fast.")))
  budget: budget_config_lib.BudgetConfig = budget_config_lib.BudgetConfig()
  model: train_config_lib.ModelConfig = train_config_lib.ModelConfig()
  export: export_config_lib.ExportConfig = export_config_lib.ExportConfig()
  benchmark: bench_config_lib.BenchmarkConfig = bench_config_lib.BenchmarkConfig()
  check_ancestor: bool = True

  def __post_init__(self):
    fields_lib.check(self)


StageHook = Callable[[str], None]
