"""`JobConfig`: the main job's own options (run dir, stages' formats and comparison artefacts)."""

import dataclasses
from typing import Callable, Optional, Sequence

from squish_tf.bench import config as bench_config_lib
from squish_tf.export import exporter as exporter_lib
from squish_tf.export import qat as qat_lib
from squish_tf.train import baselines as baselines_lib

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
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (tests of the plumbing, whose 1-epoch ancestors are, turn it off).
  """

  run_dir: str
  run_name: str = "demo"
  export_formats: Optional[Sequence[str]] = None
  qat_epochs: int = 1
  qat_learning_rate: float = qat_lib.DEFAULT_LEARNING_RATE
  calibration_images: int = exporter_lib.CALIBRATION_IMAGES
  baselines: Sequence[str] = baselines_lib.DEFAULT_BASELINES
  benchmark: bench_config_lib.BenchmarkConfig = bench_config_lib.BenchmarkConfig()
  eval_images: int = 2000
  classifier_activation: str = "linear"
  dropout_rate: float = 0.5
  batch_norm: bool = True
  check_ancestor: bool = True


StageHook = Callable[[str], None]
