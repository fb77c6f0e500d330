"""The main job from Python (a notebook): `squish_tf.run(...)` is `squish ...` without a shell.

  import squish_tf
  results = squish_tf.run(run_name="photos", dataset="folder", data_dir="~/photos",
                          image_size=128, target_size_mb=0.6)
  print(results)                      # the console summary the CLI prints
  results.squishednet.top1, results.squishednet.size_mb

The keyword options are the `squish` command's flag names with the same
defaults, values and checks (a list option takes a list or a comma-separated
string, as on the command line). The run is the CLI's run: it goes to
`saved_models/<run_name>` unless `run_dir` is given, writes `flags.txt` so
`squish --flagfile=<run_dir>/flags.txt` reproduces (and resumes) it, and a
re-run of the same call resumes where it stopped. The result is a
`RunResults` built from the run's results.json; `RunResults.load(run_dir)`
reads a finished run's.

`plan(**options)` is the pure part: options -> the library's config objects.
The options are the command's flags, from the same declarations
(`squish_tf.job.options`); they are parsed by absl's own flag parsers and
serializers, registered in a private `FlagValues` (never the global
`absl.flags.FLAGS`, which a notebook does not parse). `squish` (pipelines/run.py)
and `run` assemble a run the same way: `plan_from_flags` (the CLI's FLAGS, or
that registry) then `execute`.

Importing this module loads no TensorFlow, nor do `defaults`, `option_names` and
`RunResults.load`, nor `plan` unless `formats` names one this machine may not make (tftrt:
TensorFlow says); `run` does.
"""

import contextlib
import dataclasses
import difflib
import os
from typing import Any, Callable, Dict, List, Optional

from absl import flags, logging

from squish_tf import files as files_lib
from squish_tf import layout
from squish_tf import records
from squish_tf.job import flags as flag_defs
from squish_tf.job import options as options_lib
from squish_tf.job import preflight
from squish_tf.net import model_io
from squish_tf.report import console as console_lib
from squish_tf.report import markdown as report_lib

RESULTS_FILE = layout.RESULTS_FILE
# Keyword arguments of `run` that are not flags of the `squish` command.
RUN_KEYWORDS = ("verbose", "log", "check_ancestor")


def option_names() -> List[str]:
  """Every option `run` takes that is a `squish` flag, in the CLI's order."""
  return [option.name for option in options_lib.squish_options()]


def defaults() -> Dict[str, Any]:
  """{option: the `squish` command's default}, as absl gives it (lists are lists)."""
  return {option.name: _copy(option.default) for option in options_lib.squish_options()}


def _copy(value: Any) -> Any:
  return list(value) if isinstance(value, list) else value


def _flag_values() -> flags.FlagValues:
  """A private registry holding the main's flags (so parsing and serializing are absl's)."""
  registry = flags.FlagValues()
  options_lib.define(options_lib.squish_options(), flag_values=registry)
  registry.mark_as_parsed()
  return registry


def _unknown(names, valid) -> ValueError:
  parts = []
  for name in sorted(names):
    close = difflib.get_close_matches(name, valid, n=1)
    parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
  return ValueError(f"Unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)}; "
                    f"squish_tf.run takes: {', '.join(valid)}.")


def _set(flag: flags.Flag, value: Any) -> None:
  """Parses a Python value into `flag` like the command line parses --name=value."""
  name = flag.name
  if value is None:
    if flag.default is not None:
      raise ValueError(f"Option {name} cannot be None (the CLI's default is "
                       f"{flag.default!r}).")
    flag.value = None
    return
  if isinstance(value, os.PathLike):
    value = os.fspath(value)
  if isinstance(value, bool) and not flag.boolean:
    raise ValueError(f"Option {name} takes {flag.flag_type()} values, not {value!r}.")
  if isinstance(flag.parser, flags.ListParser) and isinstance(value, (list, tuple)):
    value = [str(item) for item in value]
  try:
    flag.parse(value)
  except flags.Error as error:
    raise ValueError(f"Bad option {name}={value!r}: {error}") from None


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """What `run(**options)` will do: the configs `pipelines/run.py` would build from the flags.

  Attributes:
    options: every option's effective value, in the CLI's order.
    job, data, train, evolution, synthesis: the configs passed to `job.run_job`.
    distribution_strategy, tpu: the --distribution_strategy (built when the run starts).
    run_flags: the data flags that are part of the run's identity.
    flags_text: the flags.txt the run writes (`squish --flagfile` reads it).
    command: the squish command that reproduces the run.
    budgets: with `plan(estimate=True)`, the epochs and batch the run trains
      with on its data (`job.budget.Budgets`); else None.
    estimate: with `plan(estimate=True)`, the plan the run prints before its
      first training step (`job.estimate.JobPlan`: each stage's budget and
      estimated seconds on this machine, `total_seconds`, what --max_minutes
      cut; `describe()` is the printed text); else None.
  """

  options: Dict[str, Any]
  job: Any
  data: Any
  train: Any
  evolution: Any
  synthesis: Any
  distribution_strategy: str
  tpu: str
  run_flags: Dict[str, Any]
  flags_text: str
  command: str
  budgets: Any = None
  estimate: Any = None


def plan(check_ancestor: bool = True, estimate: bool = False, **options) -> RunPlan:
  """Options (the `squish` flag names) -> the configs, as the `squish` command maps its flags.

  Without `estimate`, pure: reads and writes no file and builds no TensorFlow
  object. The values a later stage reads (export formats, the dataset's name,
  image sizes the ancestor takes) are checked here (`job.preflight`). The
  epoch budgets are the flags' values: the job applies the budget rule once it
  knows the data's size (`job.budget.budgets_for`, logged as "budget: ..."),
  and each model's metrics.json records what it trained. With `estimate`, the
  data is loaded and the networks' steps are timed as the run does before its
  first step, and `budgets` and `estimate` say what it will train and how long
  that takes here (a folder's readability index goes to the run's data cache,
  as the run's would; nothing else is written).

  Args:
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (JobConfig.check_ancestor). Not a CLI flag: the CLI always checks;
      only tests of the plumbing, whose 1-epoch ancestors are at chance, turn
      it off (and `squish --flagfile` then refuses to reproduce such a run).
    estimate: also load the data and time the networks: `budgets`, `estimate`.
    **options: flag values; the others keep the CLI's defaults.

  Raises:
    ValueError: an unknown option (the message suggests the nearest and lists
      every valid one) or a value the CLI would refuse.
  """
  registry = _flag_values()
  names = option_names()
  unknown = set(options) - set(names)
  if unknown:
    raise _unknown(unknown, names + list(RUN_KEYWORDS))
  for name, value in options.items():
    _set(registry[name], value)
  return plan_from_flags(registry, check_ancestor=check_ancestor, estimate=estimate)


def plan_from_flags(values: flags.FlagValues, check_ancestor: bool = True,
                    estimate: bool = False) -> RunPlan:
  """The run that parsed flags ask for: the CLI's `FLAGS` (`squish`) or `plan`'s registry.

  The same functions build the configs either way (`job.flags.*_config_from_flags`), and
  the values a later stage reads are checked before the lock, flags.txt or any data
  (`job.preflight`). With `estimate`, also the budgets and the plan the run would print
  (`plan`'s `estimate`).
  """
  names = option_names()
  job_config = flag_defs.job_config_from_flags(values, check_ancestor=check_ancestor)
  data = flag_defs.data_config_from_flags(values)
  preflight.check_job(job_config, data)  # what a later stage reads: formats, sizes, names
  # flags.txt: the options that are set, in the CLI's order (`--flagfile` reads it back).
  lines = [values[name].serialize() for name in names if values[name].value is not None]
  train = flag_defs.train_config_from_flags(values=values)
  loop = flag_defs.evolution_config_from_flags(values)
  encoding = flag_defs.synthesis_config_from_flags(values)
  preflight.check_micro_budget(loop, encoding, data)  # floors over --max_arena_kb, ...
  budgets = job_plan = None
  if estimate:
    budgets, job_plan = _estimate(job_config, data, train, loop, encoding)
  return RunPlan(
      options={name: _copy(values[name].value) for name in names},
      job=job_config, data=data,
      train=train, evolution=loop, synthesis=encoding,
      distribution_strategy=values.distribution_strategy, tpu=values.tpu,
      run_flags={f"--{name}": _copy(values[name].value)
                 for name in flag_defs.DATA_IDENTITY_FLAGS},
      flags_text="\n".join(lines) + "\n",
      command=f"squish --flagfile={os.path.join(job_config.run_dir, model_io.FLAGS_FILE)}",
      budgets=budgets, estimate=job_plan)


def _estimate(job_config, data, train, loop, encoding):
  """(budgets, plan) as `job.run_job` makes them before its first step (`budgeted_run`)."""
  # pylint: disable=g-import-not-at-top
  from squish_tf.job import estimate as estimate_lib
  from squish_tf.job import run as job
  # pylint: enable=g-import-not-at-top

  _, _, _, budgets, job_plan = estimate_lib.budgeted_run(
      job_config, data, train, loop, job.stages_done, synth=encoding,
      log=lambda line: None)
  return budgets, job_plan


def execute(spec: RunPlan, log: Callable[[str], None] = print,
            verbose: Any = "auto") -> "RunResults":
  """Runs (or resumes) a planned run: how `run` and the `squish` command both run the job.

  Builds the distribution strategy, runs every stage (`job.run.run_job`), logs the console
  summary and where the report is, and returns the run's results (read back from its
  results.json).
  """
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top  (TensorFlow)

  with _quiet_absl_logging():
    job.run_job(spec.job, spec.data, spec.train, spec.evolution, spec.synthesis,
                strategy=flag_defs.strategy(spec.distribution_strategy, spec.tpu),
                flags_text=spec.flags_text, command=spec.command, run_flags=spec.run_flags,
                log=log, verbose=verbose)
  results = RunResults.load(spec.job.run_dir)
  log(str(results))
  log(f"\nreport: {results.report_path}")
  return results


# One model of a run (results.json's `models` entry): the record the job writes.
ModelResult = records.ModelResult


@dataclasses.dataclass(frozen=True)
class RunResults:
  """A run's results, from its results.json; `str()` is the CLI's console summary.

  Attributes:
    run_dir: the run's directory.
    report_path, pareto_path, frontier_path: report.md, pareto.png and frontier.png in it.
    results: results.json as a dict (every figure the report shows).
    winner, polished, stop_reason: evolution's outcome.
    wall_seconds: {stage: seconds, "total": their sum}.
    models: {name: ModelResult}, the ancestor, the SquishedNet and the baselines.
  """

  run_dir: str
  report_path: str
  pareto_path: str
  frontier_path: str
  results: Dict[str, Any] = dataclasses.field(repr=False)
  winner: Optional[str]
  polished: bool
  stop_reason: Optional[str]
  wall_seconds: Dict[str, float] = dataclasses.field(repr=False)
  models: Dict[str, ModelResult] = dataclasses.field(repr=False)

  @classmethod
  def from_results(cls, run_dir: str, results: Dict[str, Any]) -> "RunResults":
    record = records.Results.from_json(results)
    return cls(run_dir=run_dir, report_path=os.path.join(run_dir, report_lib.REPORT_FILE),
               pareto_path=os.path.join(run_dir, report_lib.PARETO_FILE),
               frontier_path=os.path.join(run_dir, report_lib.FRONTIER_FILE), results=results,
               winner=record.winner, polished=bool(record.polished),
               stop_reason=record.stop_reason, wall_seconds=dict(record.wall_seconds or {}),
               models=record.models)

  @classmethod
  def load(cls, run_dir: str) -> "RunResults":
    """A finished run's results (its results.json); no TensorFlow needed."""
    run_dir = os.fspath(run_dir)
    path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} not found: {run_dir} is not a finished run (run it, or "
                              "re-run it to resume).")
    return cls.from_results(run_dir, files_lib.read_json(path))

  @property
  def squishednet(self) -> ModelResult:
    return self.models["squishednet"]

  @property
  def ancestor(self) -> ModelResult:
    return self.models["ancestor"]

  def __str__(self) -> str:
    return console_lib.format_results_summary(self.results)

  def _repr_pretty_(self, printer, cycle):  # IPython / Jupyter display
    printer.text(repr(self) if cycle else str(self))


@contextlib.contextmanager
def _quiet_absl_logging():
  """Like the CLI: absl logging at WARNING unless the user chose a verbosity."""
  if not flags.FLAGS["verbosity"].using_default_value:
    yield
    return
  before = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)  # SavedModel writers log every asset at INFO
  try:
    yield
  finally:
    logging.set_verbosity(before)
    flags.FLAGS["verbosity"].using_default_value = True


def run(*, verbose: Any = "auto", log: Callable[[str], None] = print,
        check_ancestor: bool = True, **options) -> RunResults:
  """Runs (or resumes) the main job, as `squish` with these flags would; returns its results.

  Args:
    verbose: Keras verbosity of every fit ("auto", 0, 1, 2); progress lines
      are labelled by model.
    log: where the stage lines and the final summary go (default print).
    check_ancestor: see `plan` (for tests of the plumbing only).
    **options: the `squish` command's flags by name (`dataset`, `image_size`,
      `generations`, `target_size_mb`, `baselines`, `formats`, `batch_sizes`,
      `run_name`, `run_dir`, ...; `option_names()` lists them, `defaults()`
      gives their defaults). List options take a list or a comma-separated
      string.

  Returns:
    The run's RunResults (read back from its results.json).

  Raises:
    ValueError: an unknown option or a value the CLI would refuse; anything
      the CLI reports as `error: ...` (missing data, a refused re-run, ...).
  """
  return execute(plan(check_ancestor=check_ancestor, **options), log=log, verbose=verbose)
