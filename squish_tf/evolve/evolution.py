"""The generation loop of deep evolutionary synthesis.

for g in 1..G: draw `population` offspring from the current parent (seeds
derived from (seed, g, candidate, attempt)), re-estimate their batch-norm
statistics, fine-tune each (distilled from the teacher, on a data stream of
its own), evaluate it on the validation split, time its LiteRT model
interleaved with the ancestor's, and select the fittest among candidates
within the accuracy budget (drop from the ancestor <= `max_accuracy_drop`):
the highest validation top-1 (ties go to fewer parameters), or with
--select=top1_per_ms the least top-1 lost per millisecond saved (on the
ancestor's clock: latencies relative to the ancestor's in the same timing
session, so generations timed at different times compare). Stop
when the size/MAC target is met, G is reached, or no candidate stays within
the budget (the result is then the last parent that did). The final stage
(`squish_tf.evolve.polish`) then trains the winner into `<run_dir>/squishednet/`,
the model the report calls the SquishedNet: by default (`--final_init=best`) its
widths from scratch and its inherited weights fine-tuned, the better on
validation kept.

Nothing here reads the test split: selection and the accuracy budget read
validation only, so the test figures the main job reports were not chosen on.

Everything a run does is in `<run_dir>/lineage.json` (every candidate, chosen
or not) and `<run_dir>/generations/gen_NNN/cand_MM/`, both written atomically
after each candidate, so re-running the same command continues after the last
finished candidate and reproduces an uninterrupted run.
"""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.bench import device_measure
from squish_tf.bench import devices as devices_lib
from squish_tf.bench import latency as latency_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import profile as profile_lib
from squish_tf.evolve import deep_budget
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import registries
from squish_tf.evolve import steering
from squish_tf.evolve import surgery
from squish_tf.evolve.candidates import GenerationTask, Runner
from squish_tf.evolve.config import LATENCY_THREADS, EvolutionConfig
from squish_tf.evolve.targets import TargetFamily, check_targets, measured_speedup
from squish_tf.evolve.lineage import (
  ANCESTOR_ID,
  LINEAGE_FILE,
  EvolutionResult,
  check_or_write_identity,
  evolution_result,
  generation_summary,
  last_chosen,
  load_lineage,
  model_dir_of,
  new_lineage,
  parent_identity,
  run_identity,
)
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib
from squish_tf.train.baselines import DataFn

# Times model dirs interleaved: (model_dirs {name: dir}, reference name, format, threads,
# runtime) -> {name: {"latency_ms", "speedup" (over the reference), "speedup_min",
# "speedup_max"}}.
Measure = Callable[[Mapping[str, str], str, str, int, str], Dict[str, Dict[str, float]]]


@dataclasses.dataclass(frozen=True)
class Options:
  """`evolve`'s keyword options.

  Attributes:
    strategy: tf.distribute strategy for fine-tuning.
    run_flags: everything that identifies the run (flag name -> value); a
      run_dir made with other values is refused, naming the differing flag.
    listeners: called with an event dict after each candidate
      ({"event": "candidate", "record": ...}) and generation
      ({"event": "generation", ...}); console output and tests hook in here.
    verbose: Keras verbosity of fine-tuning ("auto": labelled progress).
    train_config: the training flags (optimizer, schedule, weight decay,
      warm-up) whose recipe every fine-tune follows at the fine-tuning rate.
    targets: the run's targets as the caller resolved and checked them
      (`targets.check_targets`, with the latency table when one is needed)
      before it wrote anything, as the main job does before it trains the
      parent. None: evolve resolves and checks them itself, once the table is
      known, before it writes anything else.
    measure: times a generation's candidates interleaved with the ancestor
      (`Measure`); None: `measure_model_dirs` (LiteRT, as the module names it
      when evolve is called, so tests may replace that default).
  """

  strategy: Optional[tf.distribute.Strategy] = None
  run_flags: Optional[Dict[str, Any]] = None
  listeners: Sequence[Callable[[Dict[str, Any]], None]] = ()
  verbose: Any = 0
  train_config: Optional[train_config_lib.TrainConfig] = None
  targets: Optional[TargetFamily] = None
  measure: Optional[Measure] = None


def evolve(parent_dir: str, run_dir: str, config: EvolutionConfig,
           synth: synthesis.SynthesisConfig, data_fn: DataFn, **options: Any) -> EvolutionResult:
  """Runs (or resumes) deep evolutionary synthesis from a trained parent.

  Args:
    parent_dir: a complete model dir (from training, or an earlier synthesis).
    run_dir: where generations/ and lineage.json go.
    config: the loop's settings.
    synth: the genetic encoding's settings (environment, floors).
    data_fn: returns fresh (train_ds, val_ds, info); called once per
      candidate with `stream=` that candidate's data stream (from its draw
      seed), so every fine-tune sees its own shuffling and augmentation,
      whether or not the run was interrupted, and none replays another's.
    **options: the fields of `Options` (strategy, run_flags, listeners,
      verbose, train_config, targets, measure).

  Returns:
    The winner (the last parent within the accuracy budget) and the lineage.
  """
  run = _Evolution(parent_dir, run_dir, config, synth, data_fn, Options(**options))
  lineage = run.start()
  if lineage.get("complete"):
    return evolution_result(run_dir, lineage)
  runner = Runner(config.workers, run.options.strategy)
  try:
    run.generations(runner)
  finally:
    runner.close()
  last = lineage["generations"][-1] if lineage["generations"] else None
  lineage["winner"] = last_chosen(lineage)
  lineage["stop_reason"] = (last or {}).get("stop_reason") or "generations"
  lineage["family"] = run.targets.members_of(chosen_records(lineage))
  lineage["complete"] = True
  files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
  return evolution_result(run_dir, lineage)


def clock_table(run_dir: str, spec: spec_lib.NetSpec, config: EvolutionConfig,
                progress: Optional[Callable[[str], None]] = print
                ) -> latency_table_lib.LatencyTable:
  """The run's latency table (`devices.clock_table`): --device_profile's, --device's, or
  measured here in --latency_format (cached in the run dir)."""
  return devices_lib.clock_table(run_dir, spec, config.latency_format, LATENCY_THREADS,
                                 device=config.device, device_profile=config.device_profile,
                                 cache_dir=config.device_cache_dir, progress=progress)


class _Evolution:
  """One run of `evolve`: its settings, the ancestor, the targets, the table and the lineage."""

  def __init__(self, parent_dir: str, run_dir: str, config: EvolutionConfig,
               synth: synthesis.SynthesisConfig, data_fn: DataFn, options: Options):
    self.parent_dir, self.run_dir, self.config, self.synth = parent_dir, run_dir, config, synth
    self.data_fn, self.options = data_fn, options
    self.train_config = options.train_config or train_config_lib.TrainConfig()
    self.measure = options.measure or measure_model_dirs
    self.ancestor_model, self.ancestor_spec, self.ancestor_metrics = model_io.load_model_dir(
        parent_dir)
    self.table: Optional[latency_table_lib.LatencyTable] = None
    self.targets: TargetFamily = options.targets
    self.lineage: Dict[str, Any] = {}
    self.runner: Optional[Runner] = None  # the run's, while `generations` runs

  def start(self) -> Dict[str, Any]:
    """Checks the data, the targets and the run's identity; loads or starts the lineage."""
    _, val_ds, info = self.data_fn()
    spec, parent_dir = self.ancestor_spec, self.parent_dir
    if info.num_classes != spec.num_classes:
      raise ValueError(f"The dataset {info.name!r} has {info.num_classes} classes but the parent "
                       f"in {parent_dir!r} was trained for {spec.num_classes}; evolve on the "
                       "data the parent was trained on.")
    if info.image_size != spec.input_shape[0]:
      raise ValueError(f"--image_size={info.image_size} differs from the parent's input size "
                       f"{spec.input_shape[0]}; pass --image_size={spec.input_shape[0]}.")
    micro_budget_lib.MicroBudget.of(self.config).check_floors(spec, self.synth)  # before the table
    if self.config.needs_latency(self.synth):
      # Measured once per run dir (cached; measured again only on another machine, format or
      # architecture), before any candidate is drawn.
      self.table = clock_table(self.run_dir, spec, self.config,
                               progress=print if self.options.verbose else None)
    if self.targets is None:
      self.targets = check_targets(spec, self.config, self.synth, self.table)
    identity = run_identity(parent_dir, self.config, self.synth, self.options.run_flags,
                            self.train_config)
    identity.update(parent_identity(self.ancestor_model, spec))
    check_or_write_identity(self.run_dir, identity)
    lineage = load_lineage(self.run_dir)
    if lineage is None:
      metrics = self.ancestor_metrics
      if "top1" not in metrics:
        metrics = dict(metrics, **train_lib.evaluate(self.ancestor_model, val_ds))
      lineage = new_lineage(parent_dir, spec, metrics)
    if self.table is not None:
      lineage["ancestor"]["predicted_latency_ms"] = self.table.predict(spec)
      lineage["latency_table"] = latency_table_lib.clock_name(self.table)
    self.lineage = lineage
    return lineage

  def _notify(self, event: Dict[str, Any]) -> None:
    for listener in self.options.listeners:
      listener(dict(event, ancestor_top1=self.lineage["ancestor"]["top1"]))

  def _write(self) -> None:
    files_lib.write_json(os.path.join(self.run_dir, LINEAGE_FILE), self.lineage)

  def generations(self, runner: Runner) -> None:
    """The loop over generations; appends to the lineage and writes it after every candidate."""
    self.runner = runner
    parent_id = ANCESTOR_ID
    loaded = (ANCESTOR_ID, self.ancestor_model, self.ancestor_spec)  # the parent in memory
    for generation in range(1, self.config.generations + 1):
      summary = generation_summary(self.lineage, generation)
      if summary is not None:  # finished before an interruption: follow its choice
        if summary["chosen"] is None or summary["stop_reason"]:
          break
        parent_id = summary["chosen"]
        continue
      if loaded[0] != parent_id:
        model, spec, _ = model_io.load_model_dir(model_dir_of(self.run_dir, parent_id,
                                                              self.lineage))
        loaded = (parent_id, model, spec)
      chosen = self.generation(generation, parent_id, loaded[1], loaded[2], runner)
      if chosen is None:
        break
      parent_id = chosen

  def generation(self, generation: int, parent_id: str, parent_model: Any,
                 parent_spec: spec_lib.NetSpec, runner: Runner) -> Optional[str]:
    """Draws, fine-tunes, times and selects one generation; the next parent's id, or None to
    stop."""
    strengths = surgery.layer_strengths(parent_model, parent_spec)
    parent_speedup = _speedup_of(_record_of(self.lineage, parent_id), parent_id,
                                 table_clock=True)
    synth = steering.generation_synthesis(self.synth, self.config, parent_spec, generation,
                                          self.table, self.ancestor_spec, self.targets,
                                          strengths, met=chosen_records(self.lineage),
                                          parent_speedup=parent_speedup)
    # F_l depends on the parent only (target mode root-searches it): once per generation.
    factors = environment_lib.environment_factors(parent_spec, synth, strengths, self.table)
    task = GenerationTask(run_dir=self.run_dir, generation=generation, config=self.config,
                          synth=synth, parent_id=parent_id,
                          parent_dir=model_dir_of(self.run_dir, parent_id, self.lineage),
                          parent_spec=parent_spec, ancestor_spec=self.ancestor_spec,
                          strengths=strengths, factors=factors, data_fn=self.data_fn,
                          verbose=self.options.verbose, train_config=self.train_config,
                          ancestor_dir=os.path.abspath(self.parent_dir), latency=self.table)
    records = self._draw(task, generation, parent_model, runner)
    chosen, stop_reason = self._choose(records, generation, parent_id)
    summary = {"generation": generation, "parent": parent_id,
               "chosen": chosen["id"] if chosen else None, "stop_reason": stop_reason,
               "target_fraction": synth.target_fraction if self.synth.env_mode == "target"
               else None}
    self.lineage["generations"].append(summary)
    self._write()
    self._notify({"event": "generation", "summary": summary, "records": records})
    return None if chosen is None or stop_reason else chosen["id"]

  def _draw(self, task: GenerationTask, generation: int, parent_model: Any,
            runner: Runner) -> List[Dict[str, Any]]:
    """The generation's candidates: those recorded before an interruption, then the rest
    drawn (each diverged draw retried up to --max_retries), recorded as they finish."""
    records = [r for r in self.lineage["candidates"] if r["generation"] == generation]
    todo = []
    for candidate in range(self.config.population):
      if any(r["candidate"] == candidate and r["status"] == "ok" for r in records):
        continue
      attempts = [r for r in records if r["candidate"] == candidate]
      if len(attempts) > self.config.max_retries:
        continue  # every allowed draw diverged; recorded already
      todo.append((candidate, len(attempts)))
    if todo:
      runner.start(len(todo))
    # All first draws start at once (in parallel with workers > 1); results are
    # recorded in candidate order, so lineage.json reads the same either way.
    futures = {c: runner.submit(task, c, a, parent_model) for c, a in todo}
    for candidate, _ in todo:
      record = futures[candidate].result()
      while True:
        self.lineage["candidates"].append(record)
        records.append(record)
        self._write()
        self._notify({"event": "candidate", "record": record})
        if record["status"] != "diverged" or record["attempt"] >= self.config.max_retries:
          break
        record = runner.submit(task, candidate, record["attempt"] + 1, parent_model).result()
    return records

  def _choose(self, records: List[Dict[str, Any]], generation: int,
              parent_id: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """Times the new candidates, selects one (marked chosen) and says why to stop, if so."""
    lineage, config = self.lineage, self.config
    # Every run times its candidates (a few seconds a generation), before selection:
    # --select=top1_per_ms reads the measurements.
    parent = _record_of(lineage, parent_id)
    # A parent recorded before every run measured (a resumed older lineage) is timed too.
    unmeasured_parent = ([parent] if parent_id != ANCESTOR_ID
                         and "measured_latency_ms" not in parent else [])
    _measure_latency(self.run_dir, records + unmeasured_parent, lineage, self.parent_dir,
                     config.measure_clock, self.options.verbose, self.measure)
    chosen = select(records, lineage["ancestor"]["top1"], config.max_accuracy_drop,
                    config.select, parent_top1=parent["top1"],
                    parent_speedup=_speedup_of(parent, parent_id))
    if chosen is None:  # before a stop for accuracy: the deciding ones after deeper fine-tunes
      chosen = deep_budget.choose_deeper(
          records, self._deep_task(parent_id), self.runner,
          lambda deeper: select(deeper, lineage["ancestor"]["top1"], config.max_accuracy_drop,
                                config.select, parent_top1=parent["top1"],
                                parent_speedup=_speedup_of(parent, parent_id)), self._deep_done)
    if chosen is None:
      within = within_accuracy(records, lineage["ancestor"]["top1"], config.max_accuracy_drop)
      return None, "micro_budget" if within else "accuracy_drop"
    chosen["chosen"] = True
    met = self.targets.met(chosen)
    if met:
      chosen["targets_met"] = met  # the family's members it meets, by label
    if self.targets.done(chosen_records(lineage)):
      return chosen, "target_met"
    return chosen, "generations" if generation == config.generations else None

  def _deep_task(self, parent_id: str) -> deep_budget.DeepTask:
    return deep_budget.DeepTask.of(
        self.config, self.run_dir, self.train_config, self.data_fn, self.options.verbose,
        self.lineage["ancestor"], model_dir_of(self.run_dir, parent_id, self.lineage))

  def _deep_done(self, record: Dict[str, Any]) -> None:
    self._write()
    self._notify({"event": "deep", "record": record})


def chosen_records(lineage: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The chosen offspring's records, in generation order."""
  return [r for r in lineage["candidates"] if r.get("chosen") and r["status"] == "ok"]


def _record_of(lineage: Mapping[str, Any], parent_id: str) -> Dict[str, Any]:
  """A parent's record: the ancestor's, or the ok candidate's of that id."""
  if parent_id == ANCESTOR_ID:
    return lineage["ancestor"]
  return next(r for r in lineage["candidates"] if r["id"] == parent_id and r["status"] == "ok")


def _speedup_of(parent: Dict[str, Any], parent_id: str,
                table_clock: bool = False) -> Optional[float]:
  """The parent's measured speed-up over the ancestor (the ancestor's own: 1), or None; with
  `table_clock`, only one measured on the latency table's clock (`measured_speedup`)."""
  if parent_id == ANCESTOR_ID:
    return 1.0
  if table_clock:
    return measured_speedup(parent)
  return (parent.get("measured_speedup") or {}).get("median")


# A reference's .tflite per (model dir, format, its model file's mtime and size): the ancestor
# is timed with every generation, converted once per process.
_REFERENCE_TFLITE: Dict[Tuple[str, str, int, int], bytes] = {}


def measure_model_dirs(model_dirs: Mapping[str, str], reference: str, fmt: str,
                       threads: int = LATENCY_THREADS,
                       runtime: str = device_measure.LITERT_RUNTIME
                       ) -> Dict[str, Dict[str, float]]:
  """`evolve`'s default `measure`: each model dir converted as the export converts
  (`latency.network_tflite`) and timed interleaved with the others on `runtime`
  (`latency.measure_against`, speed-ups over `reference`)."""
  models = {}
  for name, directory in model_dirs.items():
    key = None
    if name == reference:
      # The model file too: a parent retrained in place is converted again.
      stat = os.stat(os.path.join(directory, model_io.MODEL_FILE))
      key = (os.path.abspath(directory), fmt, stat.st_mtime_ns, stat.st_size)
      if key in _REFERENCE_TFLITE:
        models[name] = _REFERENCE_TFLITE[key]
        continue
    model, spec, _ = model_io.load_model_dir(directory)
    models[name] = latency_lib.network_tflite(model, spec, fmt)
    if key is not None:
      _REFERENCE_TFLITE[key] = models[name]
  return latency_lib.measure_against(models, reference, threads=threads, runtime=runtime)


def _measure_latency(run_dir: str, records: List[Dict[str, Any]], lineage: Dict[str, Any],
                     ancestor_dir: str, clock: profile_lib.Clock, verbose: Any,
                     measure: Measure) -> None:
  """Times each new candidate's model interleaved with the ancestor's on `clock` (`measure`);
  records it.

  Runs in every run, in this process once a generation's fine-tunes are done
  (the workers idle), so the timing does not share the cores with training.
  Every ok record gets `measured_latency_ms` and `measured_speedup` (median
  per-round ratio over the ancestor, with min-max) in `measured_format`
  (the clock's: a built-in device's own format, threads and runtime, named in
  `measured_device`; else --latency_format with this machine's LiteRT), and the
  ancestor its `measured_latency_ms` of this session; with a latency table of
  the same clock, records also get `predicted_speedup`, `latency_error` and
  `speedup_error` beside the table's `predicted_latency_ms` (a profile measured
  on another device predicts another clock: no error is computed against it).
  """
  todo = [r for r in records if r["status"] == "ok" and "measured_latency_ms" not in r]
  if not todo:
    return
  model_dirs = {ANCESTOR_ID: ancestor_dir}
  model_dirs.update((record["id"], os.path.join(run_dir, record["dir"])) for record in todo)
  fmt = clock.format
  measured = measure(model_dirs, ANCESTOR_ID, fmt, clock.threads, clock.runtime)
  predicted_ancestor = lineage["ancestor"].get("predicted_latency_ms")
  lineage["ancestor"]["measured_latency_ms"] = measured[ANCESTOR_ID]["latency_ms"]
  for record in todo:
    result = measured[record["id"]]
    record["measured_latency_ms"] = result["latency_ms"]
    record["measured_speedup"] = {"median": result["speedup"], "min": result["speedup_min"],
                                  "max": result["speedup_max"]}
    record["measured_format"] = fmt  # the .tflite timed
    if clock.device is not None:
      record["measured_device"] = clock.device
    if clock.matches_table and predicted_ancestor and record.get("predicted_latency_ms"):
      record["predicted_speedup"] = predicted_ancestor / record["predicted_latency_ms"]
      record["latency_error"] = (record["predicted_latency_ms"] / result["latency_ms"] - 1.0)
      # The same error relative to the ancestor's in this session: what the
      # table gets wrong about this child, apart from how busy the machine is
      # now compared with when the table was measured.
      record["speedup_error"] = record["predicted_speedup"] / result["speedup"] - 1.0
    if verbose:
      predicted = ("" if "predicted_speedup" not in record else
                   f" ({record['predicted_latency_ms']:.3f} ms, "
                   f"{record['predicted_speedup']:.2f}x predicted)")
      where = clock.device or f"{fmt} LiteRT"
      print(f"{record['id']}: {where} {result['latency_ms']:.3f} ms measured, "
            f"{result['speedup']:.2f}x the ancestor{predicted}", flush=True)
  files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)


def select(records: Sequence[Dict[str, Any]], ancestor_top1: float,
           max_accuracy_drop: float, how: str = "top1", parent_top1: Optional[float] = None,
           parent_speedup: Optional[float] = None) -> Optional[Dict[str, Any]]:
  """The fittest record among the ok ones within the accuracy budget and the microcontroller
  budgets (None if none is).

  Args:
    records: a generation's candidate records.
    ancestor_top1: the ancestor's validation top-1 (the budget's reference).
    max_accuracy_drop: the budget, a fraction.
    how: the selection rule (`registries.selections`: "top1", "top1_per_ms";
      `squish_tf.evolve.selection` says how each ranks).
    parent_top1, parent_speedup: the parent's validation top-1 and its
      measured speed-up over the ancestor (the ancestor's own, 1, for
      generation 1); for rules that weigh accuracy against time.
  """
  if how not in registries.selections:
    raise ValueError(f"--select must be one of {registries.selections.names()}, got {how!r}.")
  eligible = [r for r in within_accuracy(records, ancestor_top1, max_accuracy_drop)
              if not over_budget(r)]
  if not eligible:
    return None
  return registries.selections.lookup(how).chosen(eligible, parent_top1, parent_speedup)


def within_accuracy(records: Sequence[Dict[str, Any]], ancestor_top1: float,
                    max_accuracy_drop: float) -> List[Dict[str, Any]]:
  """The ok records within the accuracy budget."""
  return [r for r in records if r["status"] == "ok"
          and ancestor_top1 - r["top1"] <= max_accuracy_drop + 1e-12]


def over_budget(record: Mapping[str, Any]) -> List[str]:
  """Why a record is over the microcontroller budgets (`micro_budget.MicroBudget.record`), or []."""
  return list((record.get("micro") or {}).get("over") or [])
