"""Every data source behind two functions: `load(config)` and `load_test(config)`.

  from squish_tf import data
  train_ds, val_ds, info = data.load(data.DataConfig(dataset="shapes10"))
  test_ds, test_info = data.load_test(data.DataConfig(dataset="shapes10"))

Modules: `config` (DataConfig, DatasetInfo, splits and the source records), one module per
source (`folder` with its readability index, `tfds` with ImageNet-10, `shapes10`),
`images` (decoding, hold-outs, pixels), `cache` (where decoded images are kept),
`augment` and `pipeline` (the tf.data pipelines; `load`, `load_test`). See
`squish_tf.data.pipeline` for the splits, caches and sources in full.

Importing the package (or its `config`) loads no TensorFlow: `load` and `load_test` import
the pipelines when first used.
"""

import importlib

from squish_tf.data.config import DataConfig, DatasetInfo

_PIPELINE = ("load", "load_test")


def __getattr__(name):
  if name in _PIPELINE:
    return getattr(importlib.import_module("squish_tf.data.pipeline"), name)
  raise AttributeError(f"module 'squish_tf.data' has no attribute {name!r}")


__all__ = ["DataConfig", "DatasetInfo", "load", "load_test"]
