"""absl flag definitions shared by every main, with the same names everywhere.

The flags are the options declared on the config dataclasses' fields
(`squish_tf.job.options`: name, type, default, help, bounds). Each `define_*`
function registers one group of them once (safe to call from several mains in
one process) and records their names, so `flags_text()` can write exactly the
flags that matter into `flags.txt`, re-runnable with `--flagfile`.
`*_config_from_flags()` fill the same fields from the parsed flags; the mains
stay thin.
"""

import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Sequence, Tuple

from absl import app, flags, logging

from squish_tf import files as files_lib
from squish_tf.bench import config as bench_config_lib
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.export import config as export_config_lib
from squish_tf.job import budget_config as budget_config_lib
from squish_tf.job import config as job_config_lib
from squish_tf.job import options as options_lib
from squish_tf.net import model_io
from squish_tf.train import config as train_config_lib

FLAGS = flags.FLAGS
_DEFINED: List[str] = []
# The data flags that decide what evolution trains and selects on: a run dir
# made with other values is refused. (Test-split sizes are not among them:
# nothing before the final evaluation reads the test split.)
DATA_IDENTITY_FLAGS = ("dataset", "data_dir", "image_size", "batch_size", "validation_split",
                       "test_split", "augment", "shapes10_train_size",
                       "shapes10_validation_size")


def _define(group: str) -> None:
  """Defines the flags of one group of options (options_lib.GROUPS) that are not defined yet."""
  for option in options_lib.group(group):
    if option.name in FLAGS:
      continue
    options_lib.define([option])  # registered as this module's flags
    _DEFINED.append(option.name)


def define_data_flags() -> None:
  """--dataset, --data_dir, --image_size, --batch_size, ... (shared by every main)."""
  _define("data")


def define_train_flags() -> None:
  """--train_epochs, --learning_rate, --optimizer, ... and the distribution flags."""
  _define("train")
  define_distribution_flags()


def define_distribution_flags() -> None:
  """--distribution_strategy, --tpu."""
  _define("distribution")


def define_synthesis_flags() -> None:
  """The generation loop's and the genetic encoding's flags (see docs/method.md)."""
  _define("synthesis")


def define_export_flags() -> None:
  """--formats, --qat_epochs, --qat_learning_rate, --calibration_images."""
  _define("export")


def define_benchmark_flags() -> None:
  """--batch_sizes, --num_threads, --eval_images, --min_seconds, --min_runs, --pair_resolutions."""
  _define("benchmark")


def define_budget_flags() -> None:
  """--min_train_steps, --max_minutes: the budget rule, the same in every main that trains."""
  _define("budget")


def _fields_from_flags(config: type, values, **given) -> Dict[str, Any]:
  """`config`'s fields that are options, from their flags in `values`; `given` ones as given."""
  fields = dict(given)
  for option in options_lib.declared(config):
    if option.field not in fields:
      value = getattr(values, option.name)
      convert = _FIELD_FROM_FLAG.get(option.name)
      fields[option.field] = value if convert is None else convert(value)
  return fields


def benchmark_config_from_flags(formats=None, values=None) -> bench_config_lib.BenchmarkConfig:
  """The benchmark flags' BenchmarkConfig, benchmarking `formats` (None: every artefact)."""
  config = bench_config_lib.BenchmarkConfig
  return config(**_fields_from_flags(config, _values(values), formats=formats))


def _batch_sizes(values) -> Tuple[int, ...]:
  """--batch_sizes ("1", "8") -> (1, 8)."""
  try:
    return tuple(int(size) for size in values)
  except ValueError:
    raise ValueError(f"--batch_sizes must be comma-separated integers, got "
                     f"{','.join(values)!r}.") from None


def pair_resolutions_from_flag(values) -> Tuple[int, ...]:
  """--pair_resolutions ("run", "224", ...) -> the extra sizes, (224,); "run" is always timed."""
  sizes = []
  for value in values:
    value = str(value).strip().lower()
    if value == "run":
      continue
    if not value.isdigit() or int(value) < 1:
      raise ValueError(f"--pair_resolutions takes 'run' and positive image sizes, comma-separated "
                       f"(e.g. run,224), got {','.join(map(str, values))!r}.")
    sizes.append(int(value))
  return tuple(sizes)


def _baselines(values) -> Tuple[str, ...]:
  """--baselines -> baseline names ('all' and 'none' expanded)."""
  return train_config_lib.parse_names(values)


# The flags whose values the config fields take in another form: flag -> the field's value.
_FIELD_FROM_FLAG = {
    "augment": ",".join,  # DataConfig parses "translate,flip" as the command line spells it
    "batch_sizes": _batch_sizes,
    "pair_resolutions": pair_resolutions_from_flag,
    "baselines": _baselines,
}


def job_config_from_flags(values=None, check_ancestor: bool = True) -> job_config_lib.JobConfig:
  """The main job's JobConfig (`squish`'s flags): run dir, ancestor, exports, baselines,
  benchmark."""
  v = _values(values)
  name_run_after_its_dir(v)
  fields = _fields_from_flags(job_config_lib.JobConfig, v, run_dir=run_dir_from_flags(v),
                              check_ancestor=check_ancestor)
  return job_config_lib.JobConfig(**fields, model=model_config_from_flags(v),
                                  budget=budget_config_from_flags(v),
                                  export=export_config_from_flags(v),
                                  benchmark=benchmark_config_from_flags(values=v))


def model_config_from_flags(values=None) -> train_config_lib.ModelConfig:
  """The ancestor's architecture flags' ModelConfig."""
  config = train_config_lib.ModelConfig
  return config(**_fields_from_flags(config, _values(values)))


def budget_config_from_flags(values=None) -> budget_config_lib.BudgetConfig:
  """The budget flags' BudgetConfig (--min_train_steps, --max_minutes)."""
  config = budget_config_lib.BudgetConfig
  return config(**_fields_from_flags(config, _values(values)))


def export_config_from_flags(values=None) -> export_config_lib.ExportConfig:
  """The export flags' ExportConfig."""
  config = export_config_lib.ExportConfig
  return config(**_fields_from_flags(config, _values(values)))


def name_run_after_its_dir(values=None) -> None:
  """With --run_dir and no --run_name, --run_name becomes the run dir's name (flags.txt too)."""
  v = _values(values)
  if v.run_dir and not v["run_name"].present:
    v.run_name = os.path.basename(os.path.normpath(os.path.expanduser(v.run_dir))) or v.run_name


def run_dir_from_flags(values=None) -> str:
  """--run_dir, or saved_models/<--run_name>."""
  v = _values(values)
  return v.run_dir or os.path.join("saved_models", v.run_name)


def evolution_config_from_flags(values=None) -> evolve_config_lib.EvolutionConfig:
  """The synthesis flags' EvolutionConfig; the data's --seed seeds evolution too."""
  v = _values(values)
  config = evolve_config_lib.EvolutionConfig
  return config(**_fields_from_flags(config, v, seed=v.seed))


def synthesis_config_from_flags(values=None) -> synthesis.SynthesisConfig:
  """The synthesis flags' SynthesisConfig."""
  config = synthesis.SynthesisConfig
  return config(**_fields_from_flags(config, _values(values)))


def flag_values(names: Sequence[str]) -> dict:
  """{"--name": value} of the given flags, for run identity checks."""
  return {f"--{name}": FLAGS[name].value for name in names}


def data_config_from_flags(values=None) -> data_config_lib.DataConfig:
  """The data flags' DataConfig."""
  config = data_config_lib.DataConfig
  return config(**_fields_from_flags(config, _values(values)))


def train_config_from_flags(epochs_flag: str = "train_epochs",
                            values=None) -> train_config_lib.TrainConfig:
  """The training flags' TrainConfig, training for --`epochs_flag` epochs."""
  v = _values(values)
  config = train_config_lib.TrainConfig
  return config(**_fields_from_flags(config, v, epochs=getattr(v, epochs_flag)))


def _values(values):
  """The parsed flags: absl's FLAGS unless another registry (squish_tf.api's) is given."""
  return FLAGS if values is None else values


def strategy(name: str, tpu: str = ""):
  """The tf.distribute strategy `name` (--distribution_strategy), or None for "off" (the
  default strategy, worker processes allowed)."""
  if name == "off":
    return None
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  return train_lib.get_distribution_strategy(name, tpu)


def strategy_from_flags():
  """The --distribution_strategy of the parsed flags (`strategy`)."""
  return strategy(FLAGS.distribution_strategy, FLAGS.tpu)


def defined_flag_names() -> List[str]:
  """The squish_tf flags registered so far, in definition order."""
  return [name for name in _DEFINED if name in FLAGS]


def flags_text(extra: Sequence[str] = ()) -> str:
  """squish_tf's flags and the main's own `extra` ones, one per line, as --flagfile reads them."""
  lines = []
  for name in defined_flag_names() + [n for n in extra if n in FLAGS]:
    flag = FLAGS[name]
    if flag.value is None:
      continue
    lines.append(flag.serialize())
  return "\n".join(lines) + "\n"


def write_flags_file(directory: str, extra: Sequence[str] = ()) -> None:
  """Writes flags.txt (atomically) into `directory`."""
  files_lib.write_text(os.path.join(directory, model_io.FLAGS_FILE), flags_text(extra))


def run(main: Callable[[List[str]], None]) -> None:
  """app.run(main), printing input errors as one clear line instead of a traceback.

  A ValueError (bad flag combination, missing data, wrong model dir) becomes
  `error: <message>` on stderr and exit status 2; `--verbosity=1` adds the
  traceback. Without --verbosity, absl logs at WARNING: TensorFlow's SavedModel
  writers log every asset and function at INFO, which would drown the progress.
  """

  # absl's --help lists the key flags of the module named by sys.argv[0]: for a console
  # script (`squish`) that is the script, not the module that defines and adopts them.
  for flag in FLAGS.get_key_flags_for_module(main.__module__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def guarded(argv):
    if not FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
      if logging.get_verbosity() >= logging.DEBUG:
        traceback.print_exc()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)

  app.run(guarded)
