"""`ExportConfig`: what the main job exports its SquishedNet to, and the names of the formats.

No TensorFlow is needed to build or check it; `squish_tf.export.exporter` does the exporting.
"""

import dataclasses
from typing import Optional, Sequence

from squish_tf import fields as fields_lib
from squish_tf.export import formats as formats_lib

# The export formats' names: their registry (TensorFlow-free).
FORMATS = formats_lib.names()
# Training images (no augmentation) that calibrate full-int8.
CALIBRATION_IMAGES = 200
# Small: QAT should adapt the weights to quantization, not keep training the model.
QAT_LEARNING_RATE = 1e-5


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """The export's options.

  Attributes:
    formats: formats of the SquishedNet's export (None: all this machine can make).
    qat_epochs: quantization-aware fine-tuning epochs.
    qat_learning_rate: its Adam learning rate.
    calibration_images: training images that calibrate full-int8.
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  formats: Optional[Sequence[str]] = dataclasses.field(default=None, metadata=dict(
      kind="list", help=(
          f"Export formats, comma-separated, from {', '.join(FORMATS)}. Default: all this "
          "machine can produce (tftrt only where TensorFlow has TensorRT).")))
  qat_epochs: int = dataclasses.field(default=1, metadata=dict(
      help="Quantization-aware fine-tuning epochs for qat_int8.", lower_bound=1))
  qat_learning_rate: float = dataclasses.field(default=QAT_LEARNING_RATE, metadata=dict(
      help="Adam learning rate of QAT fine-tuning.", greater_than=0.0))
  calibration_images: int = dataclasses.field(default=CALIBRATION_IMAGES, metadata=dict(
      help="Training images (no augmentation) that calibrate full-int8.", lower_bound=1))

  def __post_init__(self):
    fields_lib.check(self)
