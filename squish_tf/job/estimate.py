"""The plan before a run: each stage's budget and its estimated time on this machine.

The training stages' times come from a few timed optimizer steps of the real networks on the
run's own batches (`time_steps`: the ancestor, and a width-scaled network at a quarter of its
parameters for what evolution ends at), multiplied by the steps each stage trains
(`plan_stages`, pure). The stages after training take a constant per file exported (export)
or per model (evaluation, benchmark). `fit_minutes` scales every epoch budget down by one
factor until the plan fits --max_minutes and says what it cut.
"""

import dataclasses
import math
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.export import formats as formats_lib
from squish_tf.job import budget as budget_lib
from squish_tf.job.config import COMPARISON_FORMATS
from squish_tf.job.context import Run, RunData
from squish_tf.layout import PLAN_FILE
from squish_tf.net import ladder as ladder_lib
from squish_tf.train import baseline_registry
from squish_tf.train import trainer as train_lib

# What the stages after training take per model exported, in seconds (the test pass,
# interleaved timing at the default benchmark settings).
SECONDS_PER_MODEL = {"evaluation": 4.0, "benchmark": 12.0}
# What the export takes per file written, in seconds: a LiteRT conversion with its parity check,
# its share of the int8 calibration and of the QAT fine-tune. Every member of a family is
# exported in every format, the ancestor and the baselines in the comparison formats.
SECONDS_PER_FILE = 5.0
# How much faster two or more worker processes finish what one process would train alone: the
# cores are shared, so it is far from the number of workers.
WORKER_GAIN = 1.3
# The network evolution ends at, for the step timing: this fraction of the ancestor's parameters.
SMALL_FRACTION = 0.25
TIMED_STEPS = 4
# Epochs of one batch that time an epoch's own cost (`epoch_seconds`: all but the first).
EPOCH_FITS = 3
# Under this many seconds of training by the step times alone, the epochs' own cost is not
# measured (a fit of one epoch would take longer than it changes the plan).
TINY_TRAINING_SECONDS = 60.0
TRAINING_STAGES = ("ancestor", "synthesis", "polish", "baselines")


@dataclasses.dataclass(frozen=True)
class StepCosts:
  """Seconds, measured: per batch, a training step and an inference pass of each network; per
  training, the first step and pass (tracing, which every fit pays); per batch of the run's
  training pipeline (decoding, augmentation), which shares the cores with the steps."""

  ancestor_train: float
  ancestor_eval: float
  small_train: float
  small_eval: float
  ancestor_trace: float = 0.0
  small_trace: float = 0.0
  data: float = 0.0
  epoch: float = 0.0  # each epoch's own cost in a fit: iterators, callbacks, checkpoint


@dataclasses.dataclass(frozen=True)
class StagePlan:
  """One stage: what it trains and its estimated seconds (0 when already done)."""

  name: str
  seconds: float
  budget: str
  done: bool = False


@dataclasses.dataclass(frozen=True)
class JobPlan:
  """The stages in order, their estimate and what --max_minutes cut (None: nothing)."""

  stages: Tuple[StagePlan, ...]
  cut: Optional[str] = None

  @property
  def total_seconds(self) -> float:
    return sum(stage.seconds for stage in self.stages)

  def seconds(self, name: str) -> float:
    return sum(stage.seconds for stage in self.stages if stage.name == name)

  def describe(self) -> str:
    """The plan as the job prints it before the first training step."""
    lines = ["plan (estimated on this machine from timed steps):"]
    for stage in self.stages:
      when = "done" if stage.done else _minutes(stage.seconds)
      lines.append(f"  {stage.name:<11} {when:>9}  {stage.budget}")
    lines.append(f"  {'total':<11} {_minutes(self.total_seconds):>9}")
    baselines = self.seconds("baselines")
    if baselines and self.total_seconds:
      lines.append(f"  the baselines are {baselines / self.total_seconds:.0%} of it "
                   "(--baselines=none leaves them out)")
    if self.cut:
      lines.append(f"  {self.cut}")
    return "\n".join(lines)

  def to_json(self) -> Dict[str, Any]:
    return {"stages": {s.name: {"seconds": s.seconds, "budget": s.budget, "done": s.done}
                       for s in self.stages},
            "total_seconds": self.total_seconds, "cut": self.cut}


def _minutes(seconds: float) -> str:
  return f"{seconds / 60:.1f} min"


def plan_stages(budgets: budget_lib.Budgets, costs: StepCosts, validation_steps: int,
                baselines: Sequence[str] = (), workers: int = 1,
                stages: Sequence[str] = TRAINING_STAGES + ("export", "evaluation", "benchmark"),
                done: Sequence[str] = (),
                member_formats: Sequence[str] = COMPARISON_FORMATS) -> JobPlan:
  """The stages' estimates for `budgets` at the measured `costs` (pure).

  Evolution's offspring are timed between the ancestor and the small network
  (they shrink from one toward the other; every generation is counted, though
  a target reached early stops it) with the teacher's inference pass
  when distilled, and in a run with a target (which more often than not
  meets a generation with no child within the accuracy budget) one round of
  the deciding candidates' deeper fine-tunes (`evolve.deep_budget`); the
  SquishedNet's final trainings (one set per member of a --targets family) and
  the baselines at the small network's cost, for the lineage's
  epochs (the baselines' equal budget; a ladder counts as `ladder.EXPECTED_RUNGS` of
  them). Worker processes share the cores (`WORKER_GAIN`). The export writes each member in
  `member_formats`, the ancestor and the baselines in the comparison formats.
  """
  train, loop = budgets.train_config, budgets.evolution_config
  steps = budgets.steps_per_epoch
  gain = WORKER_GAIN if workers > 1 else 1.0

  def epochs_cost(epochs: int, train_step: float, eval_step: float, teacher: bool,
                  trace: Optional[float] = None) -> float:
    per_epoch = steps * (train_step + costs.data + (costs.ancestor_eval if teacher else 0.0))
    trace = costs.small_trace if trace is None else trace
    return trace + epochs * (per_epoch + validation_steps * eval_step + costs.epoch)

  middle_train = (costs.ancestor_train + costs.small_train) / 2
  middle_eval = (costs.ancestor_eval + costs.small_eval) / 2
  offspring = loop.generations * loop.population
  deeper = loop.deep_candidates if loop.target_set else 0
  lineage_epochs = train.epochs + loop.generations * loop.offspring_epochs + loop.final_epochs
  finals = {"best": ("scratch", "inherit"), "scratch": ("scratch",),
            "inherit": ("inherit",)}.get(loop.final_init, ())
  members = max(1, len(loop.targets or ()))
  polish = members * sum(epochs_cost(lineage_epochs if init == "scratch" else loop.final_epochs,
                                     costs.small_train, costs.small_eval,
                                     teacher=init == "inherit" and loop.distill)
                         for init in finals)
  baseline = epochs_cost(lineage_epochs, costs.small_train, costs.small_eval, teacher=False)
  trainings = sum(ladder_lib.EXPECTED_RUNGS if baseline_registry.lookup(name).rungs else 1
                  for name in baselines)
  exported = 1 + members + trainings  # the family's members, the ancestor, the baselines
  files = (members * max(len(member_formats), 1)
           + (1 + trainings) * len(COMPARISON_FORMATS))
  plans = {
      "ancestor": StagePlan("ancestor", epochs_cost(train.epochs, costs.ancestor_train,
                                                    costs.ancestor_eval, teacher=False,
                                                    trace=costs.ancestor_trace),
                            f"{train.epochs} epochs x {steps} steps"),
      "synthesis": StagePlan(
          "synthesis", (offspring * epochs_cost(loop.offspring_epochs, middle_train, middle_eval,
                                                teacher=loop.distill)
                        + deeper * epochs_cost(loop.final_epochs, costs.small_train,
                                               costs.small_eval, teacher=loop.distill)) / gain,
          f"{loop.generations} generations x {loop.population} offspring x "
          f"{loop.offspring_epochs} epochs" + (
              f" + {deeper} deeper x {loop.final_epochs} epochs" if deeper else "")),
      "polish": StagePlan("polish", polish / gain, (f"{members} members x " if members > 1
                                                    else "") + (" + ".join(
          f"{init} {lineage_epochs if init == 'scratch' else loop.final_epochs} epochs"
          for init in finals) or "none")),
      "baselines": StagePlan("baselines", trainings * baseline / gain,
                             f"{trainings} x {lineage_epochs} epochs "
                             f"({', '.join(baselines) or 'none'})"),
  }
  plans["export"] = StagePlan("export", SECONDS_PER_FILE * files,
                              f"{exported} models, {files} files")
  for name, seconds in SECONDS_PER_MODEL.items():
    plans[name] = StagePlan(name, seconds * exported, f"{exported} models")
  return JobPlan(tuple(dataclasses.replace(plans[name], seconds=0.0, done=True)
                       if name in done else plans[name] for name in stages))


def fit_minutes(budgets: budget_lib.Budgets, max_minutes: Optional[float],
                plan: Any) -> Tuple[budget_lib.Budgets, JobPlan]:
  """`budgets` cut by one factor so that `plan(budgets)` fits `max_minutes` (None: as is).

  Only the training stages shrink (every epoch budget alike, rounded down, at
  least 1), so the baselines keep the lineage's budget; the plan says what
  was cut.

  Raises:
    ValueError: even one epoch of everything does not fit, with the minutes
      that would.
  """
  planned = plan(budgets)
  limit = None if max_minutes is None else 60.0 * max_minutes
  if limit is None or planned.total_seconds <= limit:
    return budgets, planned
  trained = sum(planned.seconds(name) for name in TRAINING_STAGES)
  fixed = planned.total_seconds - trained
  factor = (limit - fixed) / trained if trained else 0.0
  least = budget_lib.cut_budgets(budgets, 0.0)
  least_plan = plan(least)
  if factor <= 0 or least_plan.total_seconds > limit:
    raise ValueError(
        f"--max_minutes={max_minutes:g} is less than the least this run can take: one epoch of "
        f"every training and the export, evaluation and benchmark come to "
        f"{least_plan.total_seconds / 60:.1f} min here. Give --max_minutes >= "
        f"{math.ceil(least_plan.total_seconds / 60)}, or fewer --generations, --population "
        "or --baselines.")
  while True:
    cut = budget_lib.cut_budgets(budgets, factor)
    cut_plan = plan(cut)
    if cut_plan.total_seconds <= limit:
      break
    factor *= 0.95
  train, loop = budgets.train_config, budgets.evolution_config
  new_train, new_loop = cut.train_config, cut.evolution_config
  said = (f"--max_minutes={max_minutes:g} cut every epoch budget x{factor:.2f} (from "
          f"{planned.total_seconds / 60:.1f} min): train_epochs {train.epochs} -> "
          f"{new_train.epochs}, offspring_epochs {loop.offspring_epochs} -> "
          f"{new_loop.offspring_epochs}, final_epochs {loop.final_epochs} -> "
          f"{new_loop.final_epochs}")
  return cut, dataclasses.replace(cut_plan, cut=said)


def time_steps(spec: Any, batch_size: int, config: train_lib.TrainConfig,
               steps: int = TIMED_STEPS,
               worth_an_epoch: Optional[Callable[[float, float, float], bool]] = None
               ) -> Tuple[float, float, float, float]:
  """(seconds per training step, per inference batch, of the first step and batch) of `spec`.

  The model is built and compiled as a fit builds it and steps on a batch of
  `batch_size` random pixels (the time does not depend on them; the run's
  pipelines and random streams are left untouched); the first step and pass
  (the traces) are timed apart. When `worth_an_epoch`, given the three times,
  says so, what each epoch of a fit costs beyond its steps (callbacks, the
  validation pass's set-up) is timed too, by short fits of one batch of the
  same pixels (`epoch_seconds`): the run's own pipelines would add the first
  epoch's decoding, which its later epochs read from the cache.

  Returns:
    (train step, inference batch, traces, epoch overhead) in seconds.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top

  from squish_tf.net import models  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (batch_size,) + tuple(spec.input_shape)).astype(np.float32)
  labels = rng.integers(0, spec.num_classes, batch_size).astype(np.int32)
  model = models.build_model(spec, seed=0)
  train_lib.compile_model(model, config, steps_per_epoch=100)
  start = time.perf_counter()
  model.train_on_batch(images, labels)
  model.test_on_batch(images, labels)
  trace_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    model.train_on_batch(images, labels)
  train_seconds = (time.perf_counter() - start) / steps
  start = time.perf_counter()
  for _ in range(steps):
    model.test_on_batch(images, labels)
  eval_seconds = (time.perf_counter() - start) / steps
  overhead = 0.0
  if worth_an_epoch is not None and worth_an_epoch(train_seconds, eval_seconds, trace_seconds):
    batch = tf.data.Dataset.from_tensors((images, labels))
    per_epoch = epoch_seconds(model, batch, batch, epochs=EPOCH_FITS)
    overhead = max(0.0, per_epoch - train_seconds - eval_seconds)
  return train_seconds, eval_seconds, trace_seconds, overhead


def epoch_seconds(model: Any, train_ds: Any, val_ds: Any, epochs: int = 1) -> float:
  """Seconds per epoch of `model.fit` on these pipelines with a training's callbacks (the
  periodic backup, TensorBoard and CSV logs, in a scratch directory); past the first epoch when `epochs` > 1.
  The model's steps are traced already (`time_steps`), so one epoch is close to a later one."""
  import tempfile  # pylint: disable=g-import-not-at-top

  import keras  # pylint: disable=g-import-not-at-top

  class Clock(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.times = []

    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.times.append(time.perf_counter() - self.start)

  clock = Clock()
  with tempfile.TemporaryDirectory() as scratch:
    os.makedirs(os.path.join(scratch, "logs"))
    logs = os.path.join(scratch, "logs")
    callbacks = [clock, train_lib.PeriodicBackup(os.path.join(scratch, "backup")),
                 keras.callbacks.TensorBoard(logs, write_graph=False, profile_batch=0),
                 keras.callbacks.CSVLogger(os.path.join(logs, "history.csv"))]
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, shuffle=False,
              callbacks=callbacks)
  later = clock.times[1:] or clock.times
  return sum(later) / len(later)


def time_batches(train_ds: Any, batches: int = 2 * TIMED_STEPS) -> float:
  """Seconds per batch of a training pipeline (a fresh one: this draws from its stream)."""
  iterator = iter(train_ds)
  next(iterator)  # the pipeline's start-up
  start, count = time.perf_counter(), 0
  for _ in range(batches):
    try:
      next(iterator)
    except StopIteration:
      break
    count += 1
  return (time.perf_counter() - start) / count if count else 0.0


def measure_costs(spec: Any, batch_size: int, config: train_lib.TrainConfig,
                  small: bool = True, data_fn: Optional[Callable[[], Any]] = None,
                  worth_an_epoch: Callable[[StepCosts], bool] = lambda costs: True
                  ) -> StepCosts:
  """The ancestor's and (`small`) a quarter-size width-scaled network's step times here, and
  (with `data_fn`, returning fresh (train_ds, ...) pipelines) the data's time per batch and,
  when `worth_an_epoch` says so of the costs without it, each epoch's own cost."""
  from squish_tf.net import spec as spec_lib  # pylint: disable=g-import-not-at-top

  data = 0.0 if data_fn is None else time_batches(data_fn()[0])
  small_costs = None
  if small:
    small_spec = spec_lib.width_for_params(spec, max(1, int(spec.params() * SMALL_FRACTION)))
    small_costs = time_steps(small_spec, batch_size, config)

  def costs_of(ancestor: Sequence[float]) -> StepCosts:
    other = ancestor if small_costs is None else small_costs
    return StepCosts(*ancestor[:2], *other[:2], ancestor[2], other[2], data,
                     ancestor[3] if len(ancestor) > 3 else 0.0)

  def epoch_worth_it(train: float, evaluate: float, trace: float) -> bool:
    return data_fn is not None and worth_an_epoch(costs_of((train, evaluate, trace)))

  return costs_of(time_steps(spec, batch_size, config, worth_an_epoch=epoch_worth_it))


def validation_steps(val_ds: Any) -> int:
  """Batches of one validation pass."""
  return max(0, int(val_ds.cardinality()))


def plan_run(run: Run, budgets: budget_lib.Budgets, validation_batches: int,
             done: Sequence[str] = ()) -> Tuple[budget_lib.Budgets, JobPlan]:
  """The main job's plan for `run` at `budgets`, fitted to its --max_minutes (`plan_budgets`)."""
  return plan_budgets(run.spec, run.data_config.batch_size, budgets, validation_batches,
                      run.config.budget.max_minutes, run.run_dir, baselines=run.config.baselines,
                      workers=run.evolution_config.workers if run.in_workers else 1, done=done,
                      data_fn=run.data.load,
                      member_formats=formats_lib.parse_formats(run.config.export.formats,
                                                               with_data=True))


def plan_budgets(spec: Any, batch_size: int, budgets: budget_lib.Budgets,
                 validation_batches: int, max_minutes: Optional[float], record_dir: str,
                 baselines: Sequence[str] = (), workers: int = 1,
                 stages: Sequence[str] = TRAINING_STAGES + ("export", "evaluation", "benchmark"),
                 done: Sequence[str] = (), data_fn: Optional[Callable[[], Any]] = None,
                 member_formats: Sequence[str] = COMPARISON_FORMATS
                 ) -> Tuple[budget_lib.Budgets, JobPlan]:
  """`stages`' plan at `budgets` from timed steps of `spec` (the ancestor) and of the data
  (`data_fn`: fresh pipelines), fitted to `max_minutes` (`fit_minutes`).

  A re-run with the same --max_minutes keeps the epochs that `record_dir`'s
  plan.json recorded (an estimate taken under another load would cut
  differently, and a run's identity includes its epochs).
  """
  def plan_at(some: budget_lib.Budgets, costs: StepCosts) -> JobPlan:
    return plan_stages(some, costs, validation_batches, baselines, workers, stages=stages,
                       done=done, member_formats=member_formats)

  def worth_an_epoch(costs: StepCosts) -> bool:  # a tiny training's epochs cost next to nothing
    planned = plan_at(budgets, costs)
    return sum(planned.seconds(name) for name in TRAINING_STAGES) >= TINY_TRAINING_SECONDS

  costs = measure_costs(spec, batch_size, budgets.train_config,
                        small=any(name in stages for name in TRAINING_STAGES[1:]),
                        data_fn=data_fn, worth_an_epoch=worth_an_epoch)

  def plan(some: budget_lib.Budgets) -> JobPlan:
    return plan_at(some, costs)

  recorded = files_lib.optional_read_json(os.path.join(record_dir, PLAN_FILE)) or {}
  epochs = recorded.get("epochs")
  if max_minutes is not None and recorded.get("max_minutes") == max_minutes and epochs:
    loop = budgets.evolution_config
    kept = dataclasses.replace(
        budgets, train_config=dataclasses.replace(budgets.train_config, epochs=epochs["train"]),
        evolution_config=dataclasses.replace(loop, offspring_epochs=epochs["offspring"],
                                             final_epochs=epochs["final"]))
    return kept, dataclasses.replace(plan(kept), cut=recorded.get("cut"))
  return fit_minutes(budgets, max_minutes, plan)


def write_plan(run_dir: str, budgets: budget_lib.Budgets, plan: JobPlan,
               max_minutes: Optional[float]) -> None:
  """plan.json: the estimate, and the epochs a re-run with the same --max_minutes keeps."""
  files_lib.write_json(os.path.join(run_dir, PLAN_FILE), dict(
      plan.to_json(), max_minutes=max_minutes, batch_size=budgets.batch_size,
      steps_per_epoch=budgets.steps_per_epoch,
      epochs={"train": budgets.train_config.epochs,
              "offspring": budgets.evolution_config.offspring_epochs,
              "final": budgets.evolution_config.final_epochs}))


def budgeted_run(config: Any, data_config: data_config_lib.DataConfig,
                 train_config: train_lib.TrainConfig, evolution_config: Any,
                 stages_done: Callable[[Run], Sequence[str]],
                 **run_fields) -> Tuple[Run, Any, Any, budget_lib.Budgets, JobPlan]:
  """The job's `Run` on its data at the budget rule's batch and epochs, and its plan.

  Loads the data (every image decode-checked), reloads it at `budget.batch_for`'s batch when
  that differs from --batch_size, scales the epochs (`budget.budgets_for`), times the networks'
  steps and fits --max_minutes (`plan_run`). Writes nothing.

  Returns:
    (run, train_ds, val_ds, budgets, plan); the budget line is logged when the rule is on.
  """
  floor, calibration = config.budget.min_train_steps, config.export.calibration_images
  data = RunData(data_config_lib.in_run(data_config, config.run_dir, evolution_config.workers),
                 calibration)
  train_ds, val_ds, info = data.load()
  given_batch = data.config.batch_size
  batch = budget_lib.batch_for(given_batch, info.train_count, floor)
  if batch != given_batch:
    data = RunData(dataclasses.replace(data.config, batch_size=batch), calibration)
    train_ds, val_ds, info = data.load()
  budgets = budget_lib.budgets_for(train_config, evolution_config, int(train_ds.cardinality()),
                                   floor, batch, given_batch)
  spec = config.model.ancestor_spec(info.num_classes, data.config.image_size)
  run = Run(config=config, data=data, info=info, spec=spec,
            train_config=budgets.train_config, evolution_config=budgets.evolution_config,
            **run_fields)
  budgets, plan = plan_run(run, budgets, int(val_ds.cardinality()), done=stages_done(run))
  run = dataclasses.replace(run, train_config=budgets.train_config,
                            evolution_config=budgets.evolution_config)
  if budgets.scale != 1 or floor > 0:
    run.log(budgets.describe())
  return run, train_ds, val_ds, budgets, plan
