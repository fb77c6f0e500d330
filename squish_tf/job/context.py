"""What every stage of the main job shares: the run (`Run`), its data read through one place
(`RunData`), and the stage mechanics (`Stages`: skip if complete, time, call the hooks)."""

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence

import tensorflow as tf

from squish_tf import export as export_lib
from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import targets as targets_lib
from squish_tf.job.config import JobConfig, StageHook
from squish_tf.layout import ANCESTOR_DIR, LADDER_FILE, LATENCY_MATCH_FILE, STAGE_TIMES_FILE
from squish_tf.net import ladder as ladder_lib
from squish_tf.net import spec as spec_lib
from squish_tf.train import baseline_registry
from squish_tf.train import config as train_config_lib


class RunData:
  """The run's data: every stage reads it through here.

  `load()` makes fresh training and validation pipelines on every call (a
  `functools.partial`, so worker processes can take it as their data_fn):
  each stage that trains calls it where it trains, in the same order on every
  resume, and that keeps a seed's figures the same. `test()` reads the test
  split, once, and is called only by the stages that run once everything is
  trained; `export_data()` draws the export's images once for every model
  the job exports.
  """

  def __init__(self, config: data_config_lib.DataConfig, calibration_images: int):
    self.config = config
    self.load = functools.partial(data_lib.load, config)
    self._calibration_images = calibration_images
    self._test: Optional[tf.data.Dataset] = None
    self._export_data: Optional[export_lib.ExportData] = None

  def test(self) -> tf.data.Dataset:
    """The test pipeline (unshuffled, so the evaluation and the benchmark share it)."""
    if self._test is None:
      # Looked up at call time: the module's function is the one reading the test split.
      self._test = data_lib.load_test(self.config)[0]
    return self._test

  def export_data(self) -> export_lib.ExportData:
    """The export's images (calibration, QAT, parity), drawn once for every model exported."""
    if self._export_data is None:
      self._export_data = export_lib.load_export_data(
          self.config, calibration_images=self._calibration_images)
    return self._export_data


@dataclasses.dataclass(frozen=True)
class JobOptions:
  """`run_job`'s keyword options.

  Attributes:
    strategy: tf.distribute strategy (None: this process, or worker processes).
    flags_text: flags.txt to write once the run is accepted (None: none).
    command: the command line the report quotes and the lock names.
    run_flags: the data flags that are part of the run's identity.
    on_stage_done: called with each stage's name as it finishes.
    log: where the stage lines and the stages' own lines go.
    verbose: Keras verbosity of every fit.
  """

  strategy: Optional[tf.distribute.Strategy] = None
  flags_text: Optional[str] = None
  command: Optional[str] = None
  run_flags: Optional[Dict[str, Any]] = None
  on_stage_done: Sequence[StageHook] = ()
  log: Callable[[str], None] = print
  verbose: Any = "auto"


@dataclasses.dataclass(frozen=True)
class Run:
  """One call of the main job: its configs, data and ancestor, what every stage takes.

  Attributes:
    config: the job's own options.
    data: the run's data (`RunData`; its config is the run's, caches in the run dir).
    info: what the training data is (classes, sizes), from the first `data.load()`.
    spec: the ancestor's spec.
    train_config / evolution_config / synth: the training, evolution and
      encoding settings.
    strategy: tf.distribute strategy (None: this process, or worker processes).
    run_flags: everything that identifies the run (flag name -> value).
    command: the command line the report quotes.
    log: where the stage lines and the stages' own lines go.
    verbose: Keras verbosity of every fit.
    latency_match: baselines/latency_match.json (`run.latency_match`), read
      once (a property; `set_latency_match` keeps the one the job makes).
    ladder: baselines/ladder.json (`job.ladder`), the same way (`set_ladder`).
  """

  config: JobConfig
  data: RunData
  info: data_config_lib.DatasetInfo
  spec: spec_lib.NetSpec
  train_config: train_config_lib.TrainConfig
  evolution_config: evolve_config_lib.EvolutionConfig
  synth: synthesis.SynthesisConfig
  strategy: Optional[tf.distribute.Strategy] = None
  run_flags: Optional[Dict[str, Any]] = None
  command: Optional[str] = None
  log: Callable[[str], None] = print
  verbose: Any = "auto"
  # What the run read or made once: {"latency_match": ...} (the dataclass is frozen, this is not).
  _kept: Dict[str, Any] = dataclasses.field(default_factory=dict, init=False, repr=False,
                                            compare=False)

  @property
  def run_dir(self) -> str:
    return self.config.run_dir

  @property
  def ancestor_dir(self) -> str:
    return os.path.join(self.config.run_dir, ANCESTOR_DIR)

  @property
  def data_config(self) -> data_config_lib.DataConfig:
    return self.data.config

  @property
  def latency_match(self) -> Optional[Dict[str, Any]]:
    """How width_scaled_latency's multiplier was matched (`run.latency_match`), None before it
    is: baselines/latency_match.json, read once it exists (the run's only writer of it, the
    job, hands it over with `set_latency_match`)."""
    return self._read_once("latency_match", LATENCY_MATCH_FILE)

  @property
  def ladder(self) -> Optional[Dict[str, Any]]:
    """The width ladder's rungs (`job.ladder.plan_ladder`), None before the job chose them:
    baselines/ladder.json, read as `latency_match` is (`set_ladder`)."""
    return self._read_once("ladder", LADDER_FILE)

  def _read_once(self, key: str, name: str) -> Optional[Dict[str, Any]]:
    if key not in self._kept:
      made = files_lib.optional_read_json(os.path.join(self.run_dir, "baselines", name))
      if made is None:
        return None  # not made yet: read again when next asked
      self._kept[key] = made
    return self._kept[key]

  @property
  def targets(self) -> Optional[targets_lib.TargetFamily]:
    """The run's targets as the job resolved and checked them before writing
    (`set_targets`). A Run the job did not check has them resolved without a table when it
    needs none, and None when it does (evolve then resolves and checks them itself)."""
    if "targets" in self._kept:
      return self._kept["targets"]
    if self.evolution_config.needs_latency(self.synth):
      return None
    return targets_lib.TargetFamily.of(self.evolution_config)

  def set_targets(self, targets: targets_lib.TargetFamily) -> None:
    self._kept["targets"] = targets

  def set_latency_match(self, match: Dict[str, Any]) -> None:
    """Keeps the match the job just made (and wrote): `latency_match` reads no file then."""
    self._kept["latency_match"] = match

  def set_ladder(self, ladder: Dict[str, Any]) -> None:
    """Keeps the ladder the job just chose (and wrote): `ladder` reads no file then."""
    self._kept["ladder"] = ladder

  @property
  def baseline_dirs(self) -> Dict[str, str]:
    """{model name: dir} of the baselines asked for: less the latency-matched one
    (`width_scaled_latency`) when its match found the size-matched one within tolerance in
    latency (`run.latency_match`); the ladder as one model per rung once they are chosen
    (`run.ladder`; before, its own name, a dir that holds no model)."""
    chosen = [baseline_registry.lookup(name) for name in self.config.baselines]
    match = (self.latency_match if any(b.latency_matched for b in chosen) else None) or {}
    ladder = (self.ladder if any(b.rungs for b in chosen) else None) or {}
    names = []
    for baseline in chosen:
      if baseline.rungs and ladder:
        names += [ladder_lib.rung_name(baseline.name, rung["width_multiplier"])
                  for rung in ladder["rungs"]]
      elif not (baseline.latency_matched and match.get("trained") is False):
        names.append(baseline.name)
    return {name: os.path.join(self.run_dir, "baselines", name) for name in names}

  @property
  def in_workers(self) -> bool:
    """Trainings go to worker processes (none under a strategy: it cannot leave this one)."""
    return self.strategy is None and self.evolution_config.workers > 1

  def identity(self) -> Dict[str, Any]:
    """What the run's lineage depends on, flag by flag (`lineage.run_identity`), parent aside."""
    return lineage_lib.run_identity(self.ancestor_dir, self.evolution_config, self.synth,
                                    self.run_flags, self.train_config)


class Stages:
  """Runs the job's stages: skips a complete one, times the others in stage_times.json, and
  calls every hook after each stage, run or skipped, in order."""

  def __init__(self, run_dir: str, hooks: Sequence[StageHook] = (),
               log: Callable[[str], None] = print):
    self._path = os.path.join(run_dir, STAGE_TIMES_FILE)
    self.times: Dict[str, float] = files_lib.optional_read_json(self._path) or {}
    self._hooks = tuple(hooks)
    self._log = log

  def __call__(self, name: str, done: bool, work: Callable[[], Any], note: str = "") -> Any:
    """Runs `work` unless `done`; returns what it returned (None when skipped)."""
    out = None
    if done:
      self._log(f"[{name}] already complete, skipped")
    else:
      self._log(f"[{name}] ...{note}")
      start = time.time()
      out = work()
      self.times[name] = self.times.get(name, 0.0) + time.time() - start
      files_lib.write_json(self._path, self.times)
    self.finished(name)
    return out

  def finished(self, name: str) -> None:
    """Calls every hook with `name` (the report, which is neither skipped nor timed, too)."""
    for hook in self._hooks:
      hook(name)
