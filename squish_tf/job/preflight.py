"""The options a later stage reads, checked as soon as they are parsed.

A misspelt export format or dataset name, or an image size the network cannot take, would
otherwise surface at the stage that reads it: after the run dir is locked, flags.txt written,
the data loaded and the ancestor trained. Every main (and `squish_tf.run`) calls
`check_options` right after building its configs, before it writes, locks or loads anything;
a refused option is one `ValueError` naming what was given and what is known.

The checks need no TensorFlow (a refusal is as quick as the command line's parse), except to
ask whether this machine makes a format that may be unavailable (tftrt) when one is named.
"""

import functools
from typing import Optional, Sequence

from squish_tf.data import config as data_config_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.export import formats as formats_lib
from squish_tf.net import spec as spec_lib

# The dataset names that take no suffix; "tfds:NAME" takes any non-empty NAME.
_PLAIN_DATASETS = tuple(name for name in data_config_lib.KNOWN_DATASETS if ":" not in name)
_TFDS_PREFIX = "tfds:"


@functools.lru_cache(maxsize=None)
def ancestor_min_image_size() -> int:
  """The smallest square input the ancestor (SqueezeNet v1.1's macroarchitecture) takes."""
  return spec_lib.squishednet_base(num_classes=2).min_input_size()


def check_dataset_name(name: str) -> None:
  """Refuses a --dataset that names no source, listing the known ones."""
  if name in _PLAIN_DATASETS or (name.startswith(_TFDS_PREFIX) and len(name) > len(_TFDS_PREFIX)):
    return
  raise ValueError(f"Unknown dataset {name!r}; known datasets are "
                   f"{', '.join(data_config_lib.KNOWN_DATASETS)} (e.g. tfds:cifar10).")


def check_image_size(flag: str, size: int, min_size: int, network: str = "the ancestor") -> None:
  """Refuses an image size below `min_size`, the smallest input `network` takes."""
  if size < min_size:
    raise ValueError(f"--{flag}={size} is below {network}'s smallest input, {min_size} px "
                     f"(conv1 and its max pools must leave at least 1x1); pass "
                     f"--{flag}={min_size} or more.")


def check_options(data: Optional[data_config_lib.DataConfig] = None,
                  formats: Optional[Sequence[str]] = None,
                  min_image_size: Optional[int] = None,
                  pair_resolutions: Sequence[int] = ()) -> None:
  """Refuses, before anything is written, locked or loaded, what a later stage would refuse.

  Args:
    data: the data flags' config: its values (`data_config.check_config`), its dataset
      name and a folder source's --data_dir are checked; None (or --dataset=none, the
      export's "no data") when the main loads no data.
    formats: the export formats asked for (`--formats`; empty: the default), checked against
      the registered formats (`formats.names()`) and what this machine and the data can make
      (int8 and qat_int8 need training images); None when the main exports nothing.
    min_image_size: the smallest input of the network the data feeds (None: not checked).
    pair_resolutions: other sizes the benchmark rebuilds the networks at.

  Raises:
    ValueError: the first option refused, with the known values.
  """
  with_data = formats_lib.has_data(data)
  if with_data:
    data_config_lib.check_config(data)
    check_dataset_name(data.dataset)
    data_config_lib.check_folder(data)
    if min_image_size is not None:
      check_image_size("image_size", data.image_size, min_image_size)
  if formats:  # none named: the default, every format this machine makes
    formats_lib.parse_formats(list(formats), with_data=with_data)
  if min_image_size is not None:
    for size in pair_resolutions:
      check_image_size("pair_resolutions", size, min_image_size)


def check_job(job, data: data_config_lib.DataConfig) -> None:
  """`check_options` for the main job (`squish`, `squish_tf.run`): its `JobConfig` and data."""
  check_options(data, formats=job.export.formats or (), min_image_size=ancestor_min_image_size(),
                pair_resolutions=job.benchmark.pair_resolutions)


def check_micro_budget(evolution, synth, data: data_config_lib.DataConfig) -> None:
  """Refuses --max_arena_kb / --max_flash_kb that the floors cannot fit at the data's image
  size (`micro_budget.MicroBudget.check_floors`), before the data are read: the fewest classes
  stand in for the dataset's (the run checks its own again once it knows them)."""
  budget = micro_budget_lib.MicroBudget.of(evolution)
  if budget.any and formats_lib.has_data(data):
    ancestor = spec_lib.squishednet_base(num_classes=2,
                                         input_shape=(data.image_size, data.image_size, 3))
    budget.check_floors(ancestor, synth)
