"""The options of the `squish` command and of `squish_tf.run`, each declared once.

An option is a field of a config dataclass whose metadata holds its help:

  image_size: int = dataclasses.field(default=64, metadata=dict(
      help="Images are resized to image_size x image_size.", lower_bound=1))

It is the flag --image_size of every main that defines the data flags and the keyword
`image_size` of `squish_tf.run`, with the field's name, type and default. The metadata may add
  flag:          the option's name where it is not the field's (--train_epochs: `epochs`);
  kind:          an absl DEFINE_<kind> where the field's type says none ("list");
  flag_default:  the command's default where it is not the library's (--workers);
  lower_bound, upper_bound:  for integers and floats;
  enum_values:   the values of an enum.
A list option's default is its field's items as strings. The config modules import nothing for
this (squish_tf.evolve.encoding stays free of TensorFlow). Flags that set no config field
(--distribution_strategy, --tpu) are declared in `_flag_only` below.

`LAYOUT` places every option in a group, one `job.flags.define_<group>_flags()` each, in the
order --help, flags.txt and `squish_tf.api.option_names()` list them; an option declared but not
placed (or placed but not declared) is an error as soon as a group is asked for. job/flags.py
defines the flags and builds the configs from them; squish_tf.api takes the same options.

Importing this module loads no TensorFlow: the configs are imported when a group is asked for.
"""

import dataclasses
import functools
import types
import typing
from typing import Any, Dict, Iterable, Optional, Tuple

from absl import flags

# Flags registered through `define` belong to the module that calls it (squish_tf.job.flags for
# the shared groups, pipelines/run.py for its own), for --help and --helpfull.
flags.disclaim_key_flags()

# The groups of the main job's options, in its order; each name is declared once, on a config
# field or in `_flag_only`.
LAYOUT = (
    ("data", ("dataset", "data_dir", "image_size", "batch_size", "validation_split",
              "test_split", "augment", "skip_bad_images", "cache", "shapes10_train_size",
              "shapes10_validation_size", "shapes10_test_size", "seed")),
    ("train", ("train_epochs", "learning_rate", "optimizer", "lr_schedule", "weight_decay",
               "warmup_epochs", "classifier_activation", "dropout_rate", "batch_norm")),
    ("distribution", ("distribution_strategy", "tpu")),
    ("synthesis", ("generations", "population", "offspring_epochs", "offspring_learning_rate",
                   "offspring_warmup_epochs", "offspring_init", "final_init", "final_epochs",
                   "distill", "distill_alpha", "distill_temperature", "teacher",
                   "target_size_mb", "target_macs", "target_latency_ms", "target_speedup",
                   "latency_format", "max_accuracy_drop", "max_retries", "target_fraction",
                   "target_gamma", "env_mode", "env_factor", "cost", "gamma", "f_min",
                   "min_filters", "min_fraction", "channel_multiple", "workers",
                   "select",
                   "survival_temperature")),
    ("export", ("formats", "qat_epochs", "qat_learning_rate", "calibration_images")),
    ("benchmark", ("batch_sizes", "num_threads", "eval_images", "min_seconds", "min_runs",
                   "pair_resolutions")),
    ("budget", ("min_train_steps", "max_minutes")),
    ("job", ("run_name", "run_dir", "baselines")),
)
KINDS = ("string", "integer", "float", "boolean", "enum", "list")
_METADATA_KEYS = ("help", "flag", "kind", "flag_default", "lower_bound", "upper_bound",
                  "enum_values")
_KIND_OF_TYPE = {bool: "boolean", int: "integer", float: "float", str: "string"}


@dataclasses.dataclass(frozen=True)
class Option:
  """One option: an absl flag of the mains and a keyword of `squish_tf.run`.

  Attributes:
    name: the flag's name.
    kind: absl's DEFINE_<kind>, one of KINDS.
    default: the flag's default (a list of strings for a list; copy it before use).
    help: the flag's help.
    lower_bound, upper_bound: an integer's or a float's bounds (None: unbounded).
    enum_values: an enum's values.
    field: the config field it is declared on (None for a flag that sets no field).
  """

  name: str
  kind: str
  default: Any
  help: str
  lower_bound: Any = None
  upper_bound: Any = None
  enum_values: Optional[Tuple[str, ...]] = None
  field: Optional[str] = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Option {self.name}: kind must be one of {KINDS}, got {self.kind!r}.")
    if (self.kind == "enum") != (self.enum_values is not None):
      raise ValueError(f"Option {self.name}: enum_values go with kind 'enum' and only with it.")
    bounded = self.lower_bound is not None or self.upper_bound is not None
    if bounded and self.kind not in ("integer", "float"):
      raise ValueError(f"Option {self.name}: only integers and floats take bounds.")


@functools.lru_cache(maxsize=None)
def declared(config: type) -> Tuple[Option, ...]:
  """The options declared on the fields of the dataclass `config`, in field order."""
  hints = typing.get_type_hints(config)
  found = []
  for field in dataclasses.fields(config):
    meta = field.metadata
    if "help" not in meta:
      continue
    where = f"{config.__name__}.{field.name}"
    unknown = sorted(set(meta) - set(_METADATA_KEYS))
    if unknown:
      raise TypeError(f"{where}: unknown option metadata {unknown}; known: {_METADATA_KEYS}.")
    if "flag_default" in meta:
      default = meta["flag_default"]
    elif field.default is not dataclasses.MISSING:
      default = field.default
    elif field.default_factory is not dataclasses.MISSING:
      default = field.default_factory()
    else:  # a required field (JobConfig.run_dir): its flag is unset unless given
      default = None
    kind = meta.get("kind") or ("enum" if "enum_values" in meta
                                else _kind_of(hints[field.name], where))
    if kind == "list" and default is not None:
      default = [str(item) for item in default]
    enum_values = meta.get("enum_values")
    found.append(Option(
        name=meta.get("flag", field.name), kind=kind, default=default, help=meta["help"],
        lower_bound=meta.get("lower_bound"), upper_bound=meta.get("upper_bound"),
        enum_values=None if enum_values is None else tuple(enum_values), field=field.name))
  return tuple(found)


def _kind_of(annotation: Any, where: str) -> str:
  """The absl kind of a plain field type: bool, int, float, str, or Optional of one of them."""
  members = [annotation]
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
  if len(members) == 1 and members[0] in _KIND_OF_TYPE:
    return _KIND_OF_TYPE[members[0]]
  raise TypeError(f"{where}: its type {annotation} names no flag kind; give the option a kind "
                  f"(one of {KINDS}).")


def configs() -> Tuple[type, ...]:
  """The config dataclasses whose fields declare options."""
  # pylint: disable=g-import-not-at-top
  from squish_tf.bench import config as bench_config_lib
  from squish_tf.data import config as data_config_lib
  from squish_tf.evolve import config as evolve_config_lib
  from squish_tf.evolve import encoding
  from squish_tf.job import config as job_config_lib
  from squish_tf.train import trainer as train_lib
  # pylint: enable=g-import-not-at-top

  return (data_config_lib.DataConfig, train_lib.TrainConfig, evolve_config_lib.EvolutionConfig,
          encoding.SynthesisConfig, bench_config_lib.BenchmarkConfig, job_config_lib.JobConfig)


def _flag_only() -> Tuple[Option, ...]:
  """The options that set no config field: the strategy is built from them when a main runs."""
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  return (
      Option("distribution_strategy", "enum", "off",
             "tf.distribute strategy: off, one_device, mirrored, multi_worker_mirrored "
             "(cluster from TF_CONFIG) or tpu.",
             enum_values=tuple(train_lib.DISTRIBUTION_STRATEGIES)),
      Option("tpu", "string", "", "TPU name or address for --distribution_strategy=tpu."),
  )


@functools.lru_cache(maxsize=None)
def _by_name() -> Dict[str, Option]:
  """Every declared option by name, checked against LAYOUT."""
  found: Dict[str, Option] = {}
  for option in [option for config in configs() for option in declared(config)] + list(
      _flag_only()):
    if option.name in found:
      raise ValueError(f"Option {option.name} is declared twice.")
    found[option.name] = option
  placed = [name for _, names in LAYOUT for name in names]
  twice = sorted({name for name in placed if placed.count(name) > 1})
  unplaced = [name for name in found if name not in placed]
  undeclared = [name for name in placed if name not in found]
  if twice or unplaced or undeclared:
    raise ValueError(f"squish_tf.job.options.LAYOUT must place every declared option once: "
                     f"placed twice {twice}, not placed {unplaced}, not declared {undeclared}.")
  return found


def group(name: str) -> Tuple[Option, ...]:
  """The options of one group of LAYOUT ("data", "train", ...), in their order."""
  by_name = _by_name()
  return tuple(by_name[option] for option in dict(LAYOUT)[name])


def squish_options() -> Tuple[Option, ...]:
  """Every option of the main job (`squish`, `squish_tf.run`), in its command-line order."""
  return tuple(option for name, _ in LAYOUT for option in group(name))


def define(options: Iterable[Option], flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Registers `options` as absl flags in `flag_values`, as flags of the calling module."""
  for option in options:
    default = option.default
    if option.kind == "list" and default is not None:
      default = list(default)  # each flag its own list, as absl's parser keeps the object
    if option.kind == "enum":
      flags.DEFINE_enum(option.name, default, list(option.enum_values), option.help,
                        flag_values=flag_values)
      continue
    bounds = {key: value for key, value in (("lower_bound", option.lower_bound),
                                            ("upper_bound", option.upper_bound))
              if value is not None}
    define_kind = getattr(flags, f"DEFINE_{option.kind}")
    define_kind(option.name, default, option.help, flag_values=flag_values, **bounds)
