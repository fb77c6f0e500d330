"""`JobConfig`: the main job's own options (run dir, stages' formats and comparison artefacts)."""

import dataclasses
from typing import Callable, Optional, Sequence

from squish_tf.bench import config as bench_config_lib
from squish_tf.export import exporter as exporter_lib
from squish_tf.export import qat as qat_lib
from squish_tf.net import spec as spec_lib
from squish_tf.train import baselines as baselines_lib

# The floor of optimizer steps the command's budgets scale up to (job.budget.scale_budgets).
DEFAULT_MIN_TRAIN_STEPS = 12000
# The comparison models only need what the report compares: fp32 and int8 TFLite.
COMPARISON_FORMATS = ("fp32", "int8")
COMPARISON_ARTEFACTS = {"ancestor": ("keras", "tflite_fp32", "tflite_int8")}
BASELINE_ARTEFACTS = ("tflite_fp32", "tflite_int8")


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Stage settings of the main job that are not another module's config.

  Attributes:
    run_dir: where everything goes (`saved_models/<run_name>`).
    run_name: a label for the report.
    export_formats: formats of the SquishedNet's export (None: all this machine can make).
    qat_epochs: quantization-aware fine-tuning epochs.
    qat_learning_rate: its Adam learning rate.
    calibration_images: training images that calibrate full-int8.
    baselines: which baselines to train (empty: none).
    benchmark: how to time artefacts.
    eval_images: test images for the benchmark's accuracy pass.
    classifier_activation / dropout_rate / batch_norm: ancestor spec choices.
    min_train_steps: the floor of optimizer steps that scales every epoch
      budget up on small data (`job.budget.budgets_for`; 0: epochs and batch
      as given).
    max_minutes: the most minutes the job's plan may take (`job.estimate`;
      None: no limit).
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (tests of the plumbing, whose 1-epoch ancestors are, turn it off).
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py). The flag --run_dir is unset by default: saved_models/<run_name>.
  run_dir: str = dataclasses.field(metadata=dict(
      help="Where the run goes; default saved_models/<run_name>."))
  run_name: str = dataclasses.field(default="demo", metadata=dict(
      help="Name of the run: its directory is saved_models/<name>."))
  min_train_steps: int = dataclasses.field(default=0, metadata=dict(
      flag_default=DEFAULT_MIN_TRAIN_STEPS, lower_bound=0, help=(
          "The least optimizer steps the ancestor trains for: when --train_epochs of this "
          "data give fewer, every epoch budget (--train_epochs, --offspring_epochs, "
          "--final_epochs, hence the baselines') is scaled up by the same factor, so small "
          "datasets train as long as large ones, up to a cap in epochs, with a batch of at most "
          "an eighth of the training split (see docs/budgets.md); 0 keeps the epochs and the "
          "batch as given.")))
  max_minutes: Optional[float] = dataclasses.field(default=None, metadata=dict(
      lower_bound=0.0, help=(
          "Scale every epoch budget down by one factor so that the plan printed at the start "
          "(each stage's estimated time on this machine) fits this many minutes, and say what "
          "was cut; unset: no limit.")))
  export_formats: Optional[Sequence[str]] = dataclasses.field(default=None, metadata=dict(
      flag="formats", kind="list", help=(
          f"Export formats, comma-separated, from {', '.join(exporter_lib.FORMATS)}. Default: "
          f"all this machine can produce ({', '.join(exporter_lib.available_formats())}).")))
  qat_epochs: int = dataclasses.field(default=1, metadata=dict(
      help="Quantization-aware fine-tuning epochs for qat_int8.", lower_bound=1))
  qat_learning_rate: float = dataclasses.field(default=qat_lib.DEFAULT_LEARNING_RATE, metadata=dict(
      help="Adam learning rate of QAT fine-tuning.", lower_bound=0.0))
  calibration_images: int = dataclasses.field(
      default=exporter_lib.CALIBRATION_IMAGES, metadata=dict(
          help="Training images (no augmentation) that calibrate full-int8.", lower_bound=1))
  baselines: Sequence[str] = dataclasses.field(
      default=baselines_lib.DEFAULT_BASELINES, metadata=dict(kind="list", help=(
          "Baselines trained at the SquishedNet's size, epochs and recipe, comma-separated from "
          f"{', '.join(baselines_lib.BASELINES)}; 'all' for every one, 'none' for none. The "
          "default is what a SquishedNet must beat: the width multiplier, trained from scratch "
          "with the same recipe and epochs.")))
  benchmark: bench_config_lib.BenchmarkConfig = bench_config_lib.BenchmarkConfig()
  eval_images: int = dataclasses.field(default=2000, metadata=dict(
      help="Test images to measure top-1 on (the same for every artefact).", lower_bound=1))
  classifier_activation: str = dataclasses.field(default="linear", metadata=dict(
      enum_values=spec_lib.CLASSIFIER_ACTIVATIONS,
      help="Activation on conv10: linear (squish_tf's default) or relu (as published)."))
  dropout_rate: float = dataclasses.field(default=0.5, metadata=dict(
      help="Dropout before conv10.", lower_bound=0.0, upper_bound=0.99))
  batch_norm: bool = dataclasses.field(default=True, metadata=dict(help=(
      "Batch normalisation after conv1 and every fire convolution of the ancestor (folded into "
      "the convolutions in every export).")))
  check_ancestor: bool = True


StageHook = Callable[[str], None]
