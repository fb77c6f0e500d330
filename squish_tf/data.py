"""Every data source behind one function: `load(config)`.

INTERFACE (implemented by the data work):
  load(config: DataConfig) -> (train_ds, val_ds, DatasetInfo)
  train_ds / val_ds: batched (global batch), prefetched tf.data pipelines of
    (images float32 [B, H, W, 3] in [0, 255], labels int32 [B]).
"""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What to load and how; mirrors the data flags one to one."""

  dataset: str = "shapes10"
  data_dir: Optional[str] = None
  image_size: int = 64
  batch_size: int = 64
  validation_split: float = 0.2
  seed: int = 0
  augment: bool = True
  skip_bad_images: bool = False
  shapes10_train_size: int = 6000
  shapes10_validation_size: int = 1500


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  class_names: Tuple[str, ...]
  train_count: int
  validation_count: int
  image_size: int
  skipped_images: int = 0

  @property
  def num_classes(self) -> int:
    return len(self.class_names)
