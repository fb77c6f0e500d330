"""The options of the `squish` command and of `squish_tf.run`, each declared once.

An option is a field of a config dataclass whose metadata holds its help:

  image_size: int = dataclasses.field(default=64, metadata=dict(
      help="Images are resized to image_size x image_size.", lower_bound=1))

It is the flag --image_size of every main that defines the data flags and the keyword
`image_size` of `squish_tf.run`, with the field's name, type and default. The metadata may add
  flag:          the option's name where it is not the field's (--train_epochs: `epochs`);
  kind:          an absl DEFINE_<kind> where the field's type says none ("list");
  flag_default:  the command's default where it is not the library's (--workers);
  lower_bound, upper_bound:  for integers and floats (absl checks them too);
  greater_than, less_than:   strict bounds (absl has none: a field with one is checked by its
                             config alone, its inclusive bound too);
  enum_values:   the values of an enum.
Every config checks its fields against these in one place (`squish_tf.fields.check`).
A list option's default is its field's items as strings. The config modules import nothing for
this, and no TensorFlow (tests/test_layout.py checks it). Flags that set no config field
(--distribution_strategy, --tpu) are declared in `_FLAG_ONLY` below.

An option's group is its config's: `GROUPS` orders the groups, one
`job.flags.define_<group>_flags()` each, in the order --help, flags.txt and
`squish_tf.api.option_names()` list them. job/flags.py defines the flags and builds the
configs from them; squish_tf.api takes the same options.

Importing this module loads no TensorFlow.
"""

import dataclasses
import functools
import types
import typing
from typing import Any, Dict, Iterable, Optional, Tuple

from absl import flags

from squish_tf.bench import config as bench_config_lib
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding
from squish_tf.export import config as export_config_lib
from squish_tf.job import budget_config as budget_config_lib
from squish_tf.job import config as job_config_lib
from squish_tf.train import config as train_config_lib

# Flags registered through `define` belong to the module that calls it (squish_tf.job.flags for
# the shared groups, pipelines/run.py for its own), for --help and --helpfull.
flags.disclaim_key_flags()

# The groups of the main job's options, in its order: a group's options are the fields of its
# configs that declare one, in field order (and, for "distribution", the flags that set no field).
GROUPS = (
    ("data", (data_config_lib.DataConfig,)),
    ("train", (train_config_lib.TrainConfig, train_config_lib.ModelConfig)),
    ("distribution", ()),
    ("synthesis", (evolve_config_lib.EvolutionConfig, encoding.SynthesisConfig)),
    ("export", (export_config_lib.ExportConfig,)),
    ("benchmark", (bench_config_lib.BenchmarkConfig,)),
    ("budget", (budget_config_lib.BudgetConfig,)),
    ("job", (job_config_lib.JobConfig,)),
)
KINDS = ("string", "integer", "float", "boolean", "enum", "list")
_METADATA_KEYS = ("help", "flag", "kind", "flag_default", "lower_bound", "upper_bound",
                  "greater_than", "less_than", "enum_values")
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
        # An interval absl could only half-check (it has no strict bounds) is the config's alone.
        **({} if "greater_than" in meta or "less_than" in meta else dict(
            lower_bound=meta.get("lower_bound"), upper_bound=meta.get("upper_bound"))),
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
  return tuple(config for _, group_configs in GROUPS for config in group_configs)


# The options that set no config field: the strategy is built from them when a main runs.
_FLAG_ONLY = {"distribution": (
    Option("distribution_strategy", "enum", "off",
           "tf.distribute strategy: off, one_device, mirrored, multi_worker_mirrored "
           "(cluster from TF_CONFIG) or tpu.",
           enum_values=train_config_lib.DISTRIBUTION_STRATEGIES),
    Option("tpu", "string", "", "TPU name or address for --distribution_strategy=tpu."),
)}


@functools.lru_cache(maxsize=None)
def _groups() -> Dict[str, Tuple[Option, ...]]:
  """Every group's options, each name declared once."""
  found = {name: tuple(option for config in group_configs for option in declared(config))
           + _FLAG_ONLY.get(name, ()) for name, group_configs in GROUPS}
  names = [option.name for options in found.values() for option in options]
  twice = sorted({name for name in names if names.count(name) > 1})
  if twice:
    raise ValueError(f"Options declared twice: {twice}.")
  return found


def group(name: str) -> Tuple[Option, ...]:
  """The options of one group of GROUPS ("data", "train", ...), in their order."""
  return _groups()[name]


def squish_options() -> Tuple[Option, ...]:
  """Every option of the main job (`squish`, `squish_tf.run`), in its command-line order."""
  return tuple(option for name, _ in GROUPS for option in group(name))


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
