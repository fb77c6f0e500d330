"""Every data source behind two functions: `load(config)` and `load_test(config)`.

  from squish_tf import data
  train_ds, val_ds, info = data.load(data.DataConfig(dataset="shapes10"))
  test_ds, test_info = data.load_test(data.DataConfig(dataset="shapes10"))

Modules: `config` (DataConfig, DatasetInfo, splits and the source records), one module per
source (`folder` with its readability index, `tfds` with ImageNet-10, `shapes10`),
`images` (decoding, hold-outs, pixels), `cache` (where decoded images are kept),
`augment` and `pipeline` (the tf.data pipelines; `load`, `load_test`). See
`squish_tf.data.pipeline` for the splits, caches and sources in full.
"""

from squish_tf.data.config import DataConfig, DatasetInfo
from squish_tf.data.pipeline import load, load_test

__all__ = ["DataConfig", "DatasetInfo", "load", "load_test"]
