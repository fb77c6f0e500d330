"""One candidate offspring: sample, rebuild, inherit and fine-tune it (in this process or a
worker), with the seeds that make it reproducible and the cached result a resumed run reads."""

import dataclasses
import os
import shutil
import time
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import surgery
from squish_tf.evolve.config import EvolutionConfig
from squish_tf.evolve.lineage import ANCESTOR_ID, candidate_dir, candidate_id
from squish_tf.layout import WORK_SUFFIX
from squish_tf.net import batch_norm as bn_lib
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.runtime import workers as workers_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib
from squish_tf.train.baselines import DataFn
from squish_tf.train.distill import teacher_fn
from squish_tf.train.trainer import images_per_epoch


def draw_seed(seed: int, generation: int, candidate: int, attempt: int) -> List[int]:
  """The entropy of one draw: the same (seed, g, c, attempt) always gives the same masks."""
  return [int(seed), int(generation), int(candidate), int(attempt)]


def keras_seed(entropy: Sequence[int]) -> int:
  """A 31-bit seed for Keras (fine-tuning order, dropout) from a draw's entropy."""
  return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] % (2**31 - 1))


@dataclasses.dataclass(frozen=True)
class GenerationTask:
  """What every offspring of one generation needs; picklable for worker processes."""

  run_dir: str
  generation: int
  config: EvolutionConfig
  synth: synthesis.SynthesisConfig
  parent_id: str
  parent_dir: str
  parent_spec: spec_lib.NetSpec
  ancestor_spec: spec_lib.NetSpec
  strengths: Dict[str, np.ndarray]
  factors: Dict[str, float]
  data_fn: DataFn
  verbose: Any
  train_config: train_config_lib.TrainConfig
  ancestor_dir: str
  latency: Optional[latency_table_lib.LatencyTable] = None

  @property
  def teacher_dir(self) -> Optional[str]:
    if not self.config.distill:
      return None
    return self.parent_dir if self.config.teacher == "parent" else self.ancestor_dir


_MODELS: Dict[str, Any] = {}  # per process: model dir -> loaded model (parents, teachers)


def load_cached(model_dir: str):
  """The model of `model_dir`, loaded once per process (a parent or teacher is read-only here).

  Holds the models of one generation at most (its parent and teacher), so
  memory stays flat over a run.
  """
  model_dir = os.path.abspath(model_dir)
  if model_dir not in _MODELS:
    if len(_MODELS) >= 2:
      _MODELS.clear()
    _MODELS[model_dir] = model_io.load_model_dir(model_dir)[0]
  return _MODELS[model_dir]


def _candidate_in_worker(task: "GenerationTask", candidate: int, attempt: int) -> Dict[str, Any]:
  """Entry point of a worker process: load the parent once per process, make one candidate."""
  return _make_candidate(task, candidate, attempt, load_cached(task.parent_dir), None)


class Runner:
  """Makes candidates in this process (workers=1) or in a pool of worker processes."""

  def __init__(self, workers: int, strategy: Optional[tf.distribute.Strategy]):
    # A distribution strategy lives in this process and cannot be shipped to workers.
    self._workers = workers if strategy is None else 1
    self._strategy = strategy
    self._pool = workers_lib.WorkerPool(1)
    self._parallel = False

  def start(self, jobs: int) -> None:
    """Notes the candidates due: workers start the first time more than one is (and once)."""
    self._parallel = self._parallel or jobs > 1

  def _pool_for(self, population: int) -> workers_lib.WorkerPool:
    """The pool: workers once more than one job was due (started once, then kept)."""
    if self._parallel and self._workers > 1 and self._pool.in_process:
      # No more workers than candidates per generation: each gets cores / workers.
      self._pool = workers_lib.WorkerPool(min(self._workers, population))
      self._workers = self._pool.plan.workers  # capped by the GPUs visible: not asked again
    return self._pool

  def call(self, population: int, function, *args):
    """function(*args) in a worker, or in this process with strategy= the run's (a picklable
    module-level function, as a candidate's); a future of its result."""
    if self._pool_for(population).in_process:
      return self._pool.submit(function, *args, strategy=self._strategy)
    return self._pool.submit(function, *args)

  def submit(self, task: "GenerationTask", candidate: int, attempt: int, parent_model):
    if self._pool_for(task.config.population).in_process:
      # Computed when its result is read: each candidate is recorded before the next starts.
      return self._pool.submit(_make_candidate, task, candidate, attempt, parent_model,
                               self._strategy)
    return self._pool.submit(_candidate_in_worker, task, candidate, attempt)

  def close(self) -> None:
    self._pool.close()


def _make_candidate(task: GenerationTask, candidate: int, attempt: int, parent_model,
                    strategy) -> Dict[str, Any]:
  run_dir, generation, config, synth = task.run_dir, task.generation, task.config, task.synth
  parent_spec, ancestor_spec = task.parent_spec, task.ancestor_spec
  start = time.time()
  entropy = draw_seed(config.seed, generation, candidate, attempt)
  rng = np.random.default_rng(entropy)
  offspring = environment_lib.sample_offspring(parent_spec, task.strengths, synth, rng,
                                         factors=task.factors, latency=task.latency)
  seed = keras_seed(entropy)
  keras.utils.set_random_seed(seed)
  # The candidate's own data stream: no fine-tune replays the ancestor's first epochs.
  train_ds, val_ds, info = task.data_fn(stream=seed)

  def model_fn():
    child, _ = surgery.build_child(parent_model, parent_spec, offspring.survivors,
                                   offspring_init=config.offspring_init, seed=seed)
    if config.offspring_init == "inherit":
      # Removing input channels shifts every consumer's pre-BN statistics.
      bn_lib.recalibrate(child, train_ds, train_lib.RECALIBRATION_BATCHES)
    return child

  label = candidate_id(generation, candidate) + (f" (retry {attempt})" if attempt else "")
  fit_config = config.fine_tune_config(task.train_config)
  directory = candidate_dir(run_dir, generation, candidate)
  # Every finished epoch is backed up here: a killed fine-tune resumes at the next epoch.
  work_dir = f"{directory}.attempt{attempt}{WORK_SUFFIX}"
  result = train_lib.fit(model_fn, train_ds, None, fit_config, strategy=strategy,
                         work_dir=work_dir, images_per_epoch=info.train_count,
                         verbose=task.verbose, teacher_fn=teacher_fn(task.teacher_dir, strategy),
                         distill=config.distill_config(), label=label)
  drawn = dict(
      _drawn(task, candidate, attempt, entropy, offspring), train_epochs=fit_config.epochs,
      train_images=fit_config.epochs * images_per_epoch(train_ds, info),
      teacher=task.teacher_dir and (ANCESTOR_ID if task.teacher_dir == task.ancestor_dir
                                    else task.parent_id))
  if result.diverged or not _weights_finite(result.model):
    shutil.rmtree(work_dir, ignore_errors=True)
    return records.Candidate.make(
        **drawn, **metrics_lib.spec_metrics(offspring.spec, ancestor_spec), status="diverged",
        chosen=False, top1=None, wall_seconds=time.time() - start, dir=None).to_json()
  evaluation = train_lib.evaluate(result.model, val_ds)
  record = records.Candidate.make(
      **drawn, **metrics_lib.model_metrics(offspring.spec, evaluation, ancestor_spec),
      fine_tune_images_per_sec=result.train_images_per_sec, status="ok", chosen=False,
      dir=os.path.relpath(directory, run_dir), wall_seconds=time.time() - start).to_json()
  metrics = {k: v for k, v in record.items() if k != "survivors"}
  with files_lib.atomic_path(directory) as temp:
    model_io.write_model_dir(temp, result.model, offspring.spec, metrics)
  shutil.rmtree(work_dir, ignore_errors=True)
  return record


def _drawn(task: GenerationTask, candidate: int, attempt: int, entropy: List[int],
           offspring) -> Dict[str, Any]:
  """A candidate's record fields of its draw: which it was, its seed and environmental
  factors, the survivors and what the draw expected them to cost."""
  return dict(
      id=candidate_id(task.generation, candidate), generation=task.generation,
      candidate=candidate, attempt=attempt, parent=task.parent_id, seed=entropy,
      env_mode=task.synth.env_mode, env_factor=float(np.mean(list(offspring.factors.values()))),
      layer_env_factors={k: float(v) for k, v in offspring.factors.items()},
      survivors=synthesis.survivors_to_json(offspring.survivors),
      expected_params=float(offspring.expected_params),
      expected_macs=float(offspring.expected_macs),
      **({} if offspring.expected_latency_ms is None else {
          "expected_latency_ms": float(offspring.expected_latency_ms),
          "predicted_latency_ms": float(offspring.predicted_latency_ms)}),
      **_micro(task.config, offspring.spec))


def _micro(config: EvolutionConfig, spec: spec_lib.NetSpec) -> Dict[str, Any]:
  """{"micro": its predicted footprint and the budgets it is over} with a budget, else {}."""
  budget = micro_budget_lib.MicroBudget.of(config)
  return {"micro": budget.record(spec)} if budget.any else {}


def _weights_finite(model) -> bool:
  return all(np.all(np.isfinite(w)) for w in model.get_weights())
