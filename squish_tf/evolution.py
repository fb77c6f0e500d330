"""The generation loop of deep evolutionary synthesis.

for g in 1..G: draw `population` offspring from the current parent (seeds
derived from (seed, g, candidate, attempt)), re-estimate their batch-norm
statistics, fine-tune each (distilled from the teacher, on a data stream of
its own), evaluate it on the validation split, and select the fittest: the
highest validation top-1 among candidates within the accuracy budget (drop
from the ancestor <= `max_accuracy_drop`; ties go to fewer parameters). Stop
when the size/MAC target is met, G is reached, or no candidate stays within
the budget (the result is then the last parent that did). `polish` then
fine-tunes the winner for `final_epochs` (distilled) into `<run_dir>/
squishednet/`: the model the report calls the SquishedNet.

Nothing here reads the test split: selection and the accuracy budget read
validation only, so the test figures the main job reports were not chosen on.

Everything a run does is in `<run_dir>/lineage.json` (every candidate, chosen
or not) and `<run_dir>/generations/gen_NNN/cand_MM/`, both written atomically
after each candidate, so re-running the same command continues after the last
finished candidate and reproduces an uninterrupted run.
"""

import dataclasses
import hashlib
import logging
import math
import os
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from squish_tf import batch_norm as bn_lib
from squish_tf import data as data_lib
from squish_tf import distill as distill_lib
from squish_tf import latency as latency_lib
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import spec as spec_lib
from squish_tf import surgery
from squish_tf import synthesis
from squish_tf import train as train_lib
from squish_tf import workers as workers_lib

LINEAGE_FILE = "lineage.json"
CONFIG_FILE = "evolution_config.json"
GENERATIONS_DIR = "generations"
POLISH_DIR = "squishednet"
POLISH_ID = "squishednet"
# How the winner becomes the SquishedNet (`squish_tf.polish`).
FINAL_INITS = ("scratch", "inherit")
ANCESTOR_ID = "ancestor"
LINEAGE_VERSION = 1
# A size target is aimed at this fraction of itself (see _generation_synthesis).
TARGET_MARGIN = 0.95
# LiteRT threads of the latency table and of the candidates' measured latency
# (the benchmark's default).
LATENCY_THREADS = 2
# A fine-tune's Keras backup and TensorBoard logs, beside the model dir it will become.
WORK_SUFFIX = ".work"

# data_fn(stream=k): fresh (train_ds, val_ds, info); `stream` picks the training
# split's shuffle and augmentation order (0: the ancestor's), never the data.
DataFn = Callable[..., Tuple[tf.data.Dataset, tf.data.Dataset, data_lib.DatasetInfo]]


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
  """The generation loop's settings; field names are the flag names.

  Attributes:
    generations: G, the most generations to run.
    population: offspring drawn per generation.
    offspring_epochs: fine-tuning epochs per offspring.
    offspring_learning_rate: peak learning rate of fine-tuning (offspring and
      the final polish); the rest of the recipe (optimizer, schedule, weight
      decay) is the training flags'.
    offspring_warmup_epochs: linear warm-up of every fine-tune, in epochs.
    offspring_init: "inherit" (weights sliced from the parent) or "scratch"
      (fresh weights, trained with the ancestor's warm-up).
    final_init: how the winner becomes the SquishedNet (`squish_tf.polish`):
      "scratch" trains its widths from fresh weights for the lineage's budget
      (ancestor + chosen offspring + final_epochs) as the baselines train;
      "inherit" fine-tunes its inherited weights for final_epochs (the polish).
    final_epochs: the final stage's share of the lineage's budget: the
      polish's epochs, or what scratch training adds to the lineage's epochs
      (0 skips the stage and ships the winner as evolved).
    distill: offspring fine-tunes and the polish learn from the teacher's
      softened predictions as well as the labels.
    distill_alpha: weight of the distillation term (0 = labels only).
    distill_temperature: softening temperature.
    teacher: "ancestor" or "parent" (the offspring's own parent; the polish
      then learns from the ancestor all the same).
    target_size_mb: stop once the chosen offspring is at most this size (None: no target).
    target_macs: stop once the chosen offspring has at most this many MACs (None: no target).
    target_latency_ms: stop once the chosen offspring's predicted LiteRT
      latency (the measured table, `squish_tf.latency`) is at most this.
    target_speedup: stop once the chosen offspring is predicted this many
      times faster than the ancestor (a latency target of ancestor / speedup).
    latency_format: the LiteRT model the latency table times: "fp32", or
      "int8" when the deployment target is int8.
    max_accuracy_drop: largest allowed drop of validation top-1 from the
      ancestor, as a fraction (0.05 = 5 points). It gates offspring after
      their short fine-tunes, before the polish recovers the winner (measured:
      offspring 2-4 points down recovered to within 0.5 of the ancestor).
    max_retries: fresh draws allowed per candidate whose loss diverges.
    seed: the run's seed; every draw's seed derives from (seed, g, candidate, attempt).
    target_fraction: env_mode=target's expected child/parent size per
      generation; None derives it from the size target and the generations left.
    workers: processes that fine-tune a generation's offspring at once (1: in
      this process). Small networks leave a CPU core idle, so 2 workers on 2
      cores finish a generation sooner; results are the same either way. Not
      part of a run's identity: a run may resume with another count.
  """

  generations: int = 2
  population: int = 2
  offspring_epochs: int = 2
  offspring_learning_rate: float = 3e-3
  offspring_warmup_epochs: float = 0.25
  offspring_init: str = "inherit"
  final_init: str = "scratch"
  final_epochs: int = 4
  distill: bool = True
  distill_alpha: float = distill_lib.DistillConfig.alpha
  distill_temperature: float = distill_lib.DistillConfig.temperature
  teacher: str = "ancestor"
  target_size_mb: Optional[float] = None
  target_macs: Optional[int] = None
  target_latency_ms: Optional[float] = None
  target_speedup: Optional[float] = None
  latency_format: str = "fp32"
  max_accuracy_drop: float = 0.05
  max_retries: int = 2
  seed: int = 0
  target_fraction: Optional[float] = None
  workers: int = 1

  def __post_init__(self):
    _at_least("generations", self.generations, 1)
    _at_least("population", self.population, 1)
    _at_least("offspring_epochs", self.offspring_epochs, 1)
    _at_least("max_retries", self.max_retries, 0)
    _at_least("workers", self.workers, 1)
    if not self.offspring_learning_rate > 0:
      raise ValueError("--offspring_learning_rate must be > 0, "
                       f"got {self.offspring_learning_rate}.")
    _at_least("final_epochs", self.final_epochs, 0)
    if not self.offspring_warmup_epochs >= 0:
      raise ValueError(f"--offspring_warmup_epochs must be >= 0, got "
                       f"{self.offspring_warmup_epochs}.")
    if self.teacher not in distill_lib.TEACHERS:
      raise ValueError(f"--teacher must be one of {distill_lib.TEACHERS}, got {self.teacher!r}.")
    self.distill_config()  # validates alpha and temperature
    if self.final_init not in FINAL_INITS:
      allowed = " or ".join(repr(init) for init in FINAL_INITS)
      raise ValueError(f"--final_init must be {allowed}, got {self.final_init!r}.")
    if self.offspring_init not in surgery.OFFSPRING_INITS:
      allowed = " or ".join(repr(init) for init in surgery.OFFSPRING_INITS)
      raise ValueError(f"--offspring_init must be {allowed}, got {self.offspring_init!r}.")
    if self.target_size_mb is not None and not self.target_size_mb > 0:
      raise ValueError(f"--target_size_mb must be > 0, got {self.target_size_mb}.")
    if self.target_macs is not None and not self.target_macs > 0:
      raise ValueError(f"--target_macs must be > 0, got {self.target_macs}.")
    if self.target_latency_ms is not None and not self.target_latency_ms > 0:
      raise ValueError(f"--target_latency_ms must be > 0, got {self.target_latency_ms}.")
    if self.target_speedup is not None and not self.target_speedup > 1:
      raise ValueError(f"--target_speedup is how many times faster than the ancestor, > 1; got "
                       f"{self.target_speedup}.")
    if self.latency_format not in latency_lib.FORMATS:
      raise ValueError(f"--latency_format must be one of {latency_lib.FORMATS}, got "
                       f"{self.latency_format!r}.")
    if not 0 <= self.max_accuracy_drop <= 1:
      raise ValueError(f"--max_accuracy_drop is a fraction in [0, 1] (0.03 = 3 points), "
                       f"got {self.max_accuracy_drop}.")
    if self.target_fraction is not None and not 0 < self.target_fraction < 1:
      raise ValueError(f"--target_fraction must be in (0, 1), got {self.target_fraction}.")


  @property
  def latency_target_set(self) -> bool:
    return self.target_latency_ms is not None or self.target_speedup is not None

  def needs_latency(self, synth: synthesis.SynthesisConfig) -> bool:
    """True when the run needs a measured latency table (--cost=latency or a latency target)."""
    return synth.cost == "latency" or self.latency_target_set

  def latency_target_ms(self, ancestor_ms: Optional[float]) -> Optional[float]:
    """The latency target in predicted ms (the tighter of the two, when both are set)."""
    targets = []
    if self.target_latency_ms is not None:
      targets.append(self.target_latency_ms)
    if self.target_speedup is not None and ancestor_ms is not None:
      targets.append(ancestor_ms / self.target_speedup)
    return min(targets) if targets else None

  def distill_config(self) -> distill_lib.DistillConfig:
    return distill_lib.DistillConfig(alpha=self.distill_alpha,
                                     temperature=self.distill_temperature)

  def fine_tune_config(self, train_config: train_lib.TrainConfig,
                       epochs: Optional[int] = None) -> train_lib.TrainConfig:
    """The training flags' recipe at the fine-tuning rate, length and warm-up.

    `--offspring_init=scratch` children start from fresh weights, so they warm
    up like the ancestor did.
    """
    warmup = (train_config.warmup_epochs if self.offspring_init == "scratch"
              else self.offspring_warmup_epochs)
    return train_config.fine_tune(epochs or self.offspring_epochs, self.offspring_learning_rate,
                                  warmup)


@dataclasses.dataclass
class EvolutionResult:
  run_dir: str
  winner_id: str
  winner_dir: str
  stop_reason: str
  lineage: Dict[str, Any]


def candidate_id(generation: int, candidate: int) -> str:
  return f"gen_{generation:03d}/cand_{candidate:02d}"


def candidate_dir(run_dir: str, generation: int, candidate: int) -> str:
  return os.path.join(run_dir, GENERATIONS_DIR, f"gen_{generation:03d}", f"cand_{candidate:02d}")


def draw_seed(seed: int, generation: int, candidate: int, attempt: int) -> List[int]:
  """The entropy of one draw: the same (seed, g, c, attempt) always gives the same masks."""
  return [int(seed), int(generation), int(candidate), int(attempt)]


def keras_seed(entropy: Sequence[int]) -> int:
  """A 31-bit seed for Keras (fine-tuning order, dropout) from a draw's entropy."""
  return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] % (2**31 - 1))


def check_targets(ancestor: spec_lib.NetSpec, config: EvolutionConfig,
                  synth: synthesis.SynthesisConfig,
                  latency: Optional[latency_lib.LatencyTable] = None) -> None:
  """Refuses size, MAC or latency targets below what the floors let synthesis reach."""
  smallest = synthesis.smallest_child_spec(ancestor, synth)
  floors = (f"every layer at its floor: --min_filters={synth.min_filters}, "
            f"--min_fraction={synth.min_fraction}, --channel_multiple={synth.channel_multiple}")
  if config.target_size_mb is not None and smallest.size_mb() > config.target_size_mb:
    raise ValueError(
        f"--target_size_mb={config.target_size_mb} is below the smallest reachable size "
        f"{smallest.size_mb():.4f} MB ({smallest.params():,} params, {floors}). Raise the target "
        "or lower the floors.")
  if config.target_macs is not None and smallest.macs() > config.target_macs:
    raise ValueError(
        f"--target_macs={config.target_macs:,} is below the smallest reachable "
        f"{smallest.macs():,} MACs ({floors}). Raise the target or lower the floors.")
  if latency is not None and config.latency_target_set:
    ancestor_ms = latency.predict(ancestor)
    target = config.latency_target_ms(ancestor_ms)
    fastest = latency.predict(smallest)
    if fastest > target:
      raise ValueError(
          f"The latency target ({target:.4f} ms, {ancestor_ms / target:.2f}x the ancestor's "
          f"predicted {ancestor_ms:.4f} ms) is below the fastest reachable child: "
          f"{fastest:.4f} ms predicted ({ancestor_ms / fastest:.2f}x, {floors}). Raise "
          "--target_latency_ms, lower --target_speedup or lower the floors.")


def evolve(parent_dir: str,
           run_dir: str,
           config: EvolutionConfig,
           synth: synthesis.SynthesisConfig,
           data_fn: DataFn,
           strategy: Optional[tf.distribute.Strategy] = None,
           run_flags: Optional[Dict[str, Any]] = None,
           listeners: Sequence[Callable[[Dict[str, Any]], None]] = (),
           verbose: Any = 0,
           train_config: Optional[train_lib.TrainConfig] = None) -> EvolutionResult:
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
    strategy: tf.distribute strategy for fine-tuning.
    run_flags: everything that identifies the run (flag name -> value); a
      run_dir made with other values is refused, naming the differing flag.
    listeners: called with an event dict after each candidate
      ({"event": "candidate", "record": ...}) and generation
      ({"event": "generation", ...}); console output and tests hook in here.
    verbose: Keras verbosity of fine-tuning ("auto": labelled progress).
    train_config: the training flags (optimizer, schedule, weight decay,
      warm-up) whose recipe every fine-tune follows at the fine-tuning rate.

  Returns:
    The winner (the last parent within the accuracy budget) and the lineage.
  """
  train_config = train_config or train_lib.TrainConfig()
  ancestor_model, ancestor_spec, ancestor_metrics = model_io.load_model_dir(parent_dir)
  train_ds, val_ds, info = data_fn()
  del train_ds
  if info.num_classes != ancestor_spec.num_classes:
    raise ValueError(f"The dataset {info.name!r} has {info.num_classes} classes but the parent in "
                     f"{parent_dir!r} was trained for {ancestor_spec.num_classes}; evolve on the "
                     "data the parent was trained on.")
  if info.image_size != ancestor_spec.input_shape[0]:
    raise ValueError(f"--image_size={info.image_size} differs from the parent's input size "
                     f"{ancestor_spec.input_shape[0]}; pass --image_size="
                     f"{ancestor_spec.input_shape[0]}.")
  check_targets(ancestor_spec, config, synth)
  identity = run_identity(parent_dir, config, synth, run_flags, train_config)
  identity.update(parent_identity(ancestor_model, ancestor_spec))
  _check_or_write_identity(run_dir, identity)
  table = None
  if config.needs_latency(synth):
    # Measured once per run dir (cached; measured again only on another
    # machine, format or architecture), before any candidate is drawn.
    table = latency_lib.load_or_measure(
        os.path.join(run_dir, latency_lib.table_file(config.latency_format)), ancestor_spec,
        config.latency_format, LATENCY_THREADS, progress=print if verbose else None)
    check_targets(ancestor_spec, config, synth, table)

  lineage = _load_lineage(run_dir)
  if lineage is None:
    if "top1" not in ancestor_metrics:
      ancestor_metrics = dict(ancestor_metrics, **train_lib.evaluate(ancestor_model, val_ds))
    lineage = _new_lineage(parent_dir, ancestor_spec, ancestor_metrics)
  if table is not None:
    lineage["ancestor"]["predicted_latency_ms"] = table.predict(ancestor_spec)
    lineage["latency_table"] = latency_lib.table_file(config.latency_format)
  if lineage.get("complete"):
    return _result(run_dir, lineage)
  ancestor_top1 = lineage["ancestor"]["top1"]

  runner = _Runner(config.workers, strategy)
  try:
    _run_generations(run_dir, config, synth, data_fn, listeners, verbose, lineage,
                     ancestor_model, ancestor_spec, ancestor_top1, runner, train_config,
                     parent_dir, table)
  finally:
    runner.close()

  last = lineage["generations"][-1] if lineage["generations"] else None
  lineage["winner"] = _winner(lineage)
  lineage["stop_reason"] = (last or {}).get("stop_reason") or "generations"
  lineage["complete"] = True
  model_io.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
  return _result(run_dir, lineage)


def _run_generations(run_dir, config, synth, data_fn, listeners, verbose, lineage,
                     ancestor_model, ancestor_spec, ancestor_top1, runner, train_config,
                     ancestor_dir, table=None) -> None:
  """The loop over generations; appends to `lineage` and writes it after every candidate."""
  parent_id = ANCESTOR_ID
  loaded = (ANCESTOR_ID, ancestor_model, ancestor_spec)  # the parent in memory, loaded when due
  for generation in range(1, config.generations + 1):
    records = [r for r in lineage["candidates"] if r["generation"] == generation]
    summary = _generation_summary(lineage, generation)
    if summary is not None:  # finished before an interruption: follow its choice
      if summary["chosen"] is None or summary["stop_reason"]:
        break
      parent_id = summary["chosen"]
      continue
    if loaded[0] != parent_id:
      model, spec, _ = model_io.load_model_dir(model_dir_of(run_dir, parent_id, lineage))
      loaded = (parent_id, model, spec)
    _, parent_model, parent_spec = loaded

    gen_synth = _generation_synthesis(synth, config, parent_spec, generation, table,
                                      ancestor_spec)
    strengths = surgery.layer_strengths(parent_model, parent_spec)
    # F_l depends on the parent only (target mode root-searches it): once per generation.
    factors = synthesis.environment_factors(parent_spec, gen_synth, strengths, table)
    task = _GenerationTask(run_dir=run_dir, generation=generation, config=config,
                           synth=gen_synth, parent_id=parent_id,
                           parent_dir=model_dir_of(run_dir, parent_id, lineage),
                           parent_spec=parent_spec, ancestor_spec=ancestor_spec,
                           strengths=strengths, factors=factors, data_fn=data_fn,
                           verbose=verbose, train_config=train_config,
                           ancestor_dir=os.path.abspath(ancestor_dir), latency=table)
    todo = []
    for candidate in range(config.population):
      if any(r["candidate"] == candidate and r["status"] == "ok" for r in records):
        continue
      attempts = [r for r in records if r["candidate"] == candidate]
      if len(attempts) > config.max_retries:
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
        lineage["candidates"].append(record)
        records.append(record)
        model_io.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
        for listener in listeners:
          listener({"event": "candidate", "record": record, "ancestor_top1": ancestor_top1})
        if record["status"] != "diverged" or record["attempt"] >= config.max_retries:
          break
        record = runner.submit(task, candidate, record["attempt"] + 1, parent_model).result()
    if table is not None:
      _measure_latency(run_dir, records, lineage, ancestor_dir, ancestor_model, ancestor_spec,
                       config.latency_format, verbose)

    chosen = select(records, ancestor_top1, config.max_accuracy_drop)
    stop_reason = None
    if chosen is None:
      stop_reason = "accuracy_drop"
    else:
      chosen["chosen"] = True
      if targets_met(chosen, config, lineage["ancestor"].get("predicted_latency_ms")):
        stop_reason = "target_met"
      elif generation == config.generations:
        stop_reason = "generations"
    summary = {"generation": generation, "parent": parent_id,
               "chosen": chosen["id"] if chosen else None, "stop_reason": stop_reason,
               "target_fraction": gen_synth.target_fraction if synth.env_mode == "target" else None}
    lineage["generations"].append(summary)
    model_io.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
    for listener in listeners:
      listener({"event": "generation", "summary": summary, "records": records,
                "ancestor_top1": ancestor_top1})
    if chosen is None or stop_reason:
      break
    parent_id = chosen["id"]


_ANCESTOR_TFLITE: Dict[Tuple[str, str], bytes] = {}


def _measure_latency(run_dir: str, records: List[Dict[str, Any]], lineage: Dict[str, Any],
                     ancestor_dir: str, ancestor_model, ancestor_spec: spec_lib.NetSpec,
                     fmt: str, verbose: Any) -> None:
  """Times each new candidate's LiteRT model interleaved with the ancestor's; records it.

  Runs in this process once a generation's fine-tunes are done (the workers
  idle), so the timing does not share the cores with training. Records keep
  `measured_latency_ms` and `measured_speedup` (median per-round ratio over
  the ancestor, with min-max) beside the table's `predicted_latency_ms`.
  """
  todo = [r for r in records if r["status"] == "ok" and "measured_latency_ms" not in r]
  if not todo:
    return
  key = (os.path.abspath(ancestor_dir), fmt)
  if key not in _ANCESTOR_TFLITE:
    _ANCESTOR_TFLITE[key] = latency_lib.network_tflite(ancestor_model, ancestor_spec, fmt)
  models = {ANCESTOR_ID: _ANCESTOR_TFLITE[key]}
  for record in todo:
    model, spec, _ = model_io.load_model_dir(os.path.join(run_dir, record["dir"]))
    models[record["id"]] = latency_lib.network_tflite(model, spec, fmt)
  measured = latency_lib.measure_against(models, ANCESTOR_ID, threads=LATENCY_THREADS)
  predicted_ancestor = lineage["ancestor"].get("predicted_latency_ms")
  lineage["ancestor"]["measured_latency_ms"] = measured[ANCESTOR_ID]["latency_ms"]
  for record in todo:
    result = measured[record["id"]]
    record["measured_latency_ms"] = result["latency_ms"]
    record["measured_speedup"] = {"median": result["speedup"], "min": result["speedup_min"],
                                  "max": result["speedup_max"]}
    if predicted_ancestor and record.get("predicted_latency_ms"):
      record["predicted_speedup"] = predicted_ancestor / record["predicted_latency_ms"]
      record["latency_error"] = (record["predicted_latency_ms"] / result["latency_ms"] - 1.0)
      # The same error relative to the ancestor's in this session: what the
      # table gets wrong about this child, apart from how busy the machine is
      # now compared with when the table was measured.
      record["speedup_error"] = record["predicted_speedup"] / result["speedup"] - 1.0
    if verbose:
      print(f"{record['id']}: {fmt} LiteRT {result['latency_ms']:.3f} ms measured, "
            f"{record.get('predicted_latency_ms', float('nan')):.3f} ms predicted; "
            f"{result['speedup']:.2f}x the ancestor measured, "
            f"{record.get('predicted_speedup', float('nan')):.2f}x predicted", flush=True)
  model_io.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)


def select(records: Sequence[Dict[str, Any]], ancestor_top1: float,
           max_accuracy_drop: float) -> Optional[Dict[str, Any]]:
  """The fittest record: highest top-1 within the accuracy budget, ties to fewer params."""
  eligible = [r for r in records if r["status"] == "ok"
              and ancestor_top1 - r["top1"] <= max_accuracy_drop + 1e-12]
  if not eligible:
    return None
  return min(eligible, key=lambda r: (-r["top1"], r["params"], r["candidate"]))


def targets_met(record: Dict[str, Any], config: EvolutionConfig,
                ancestor_latency_ms: Optional[float] = None) -> bool:
  """True when every target that was set is met (False when none was set).

  A latency target is judged on the table's prediction for the record (an
  exact function of its widths, where a measurement would vary run to run).
  """
  if (config.target_size_mb is None and config.target_macs is None and
      not config.latency_target_set):
    return False
  size_ok = config.target_size_mb is None or record["size_mb"] <= config.target_size_mb
  macs_ok = config.target_macs is None or record["macs"] <= config.target_macs
  latency_ok = True
  if config.latency_target_set:
    target = config.latency_target_ms(ancestor_latency_ms)
    predicted = record.get("predicted_latency_ms")
    latency_ok = predicted is not None and target is not None and predicted <= target
  return size_ok and macs_ok and latency_ok


def _generation_synthesis(synth: synthesis.SynthesisConfig, config: EvolutionConfig,
                          parent_spec: spec_lib.NetSpec, generation: int,
                          table: Optional[latency_lib.LatencyTable] = None,
                          ancestor_spec: Optional[spec_lib.NetSpec] = None
                          ) -> synthesis.SynthesisConfig:
  """env_mode=target with no fixed fraction: shrink evenly towards the target over the gens left."""
  if synth.env_mode != "target" or config.target_fraction is not None:
    if synth.env_mode == "target" and config.target_fraction is not None:
      return dataclasses.replace(synth, target_fraction=config.target_fraction)
    return synth
  goals = {}
  if config.target_size_mb is not None:
    goals["params"] = config.target_size_mb * 1e6 / 4 / parent_spec.params()
  if config.target_macs is not None:
    goals["macs"] = config.target_macs / parent_spec.macs()
  if table is not None and config.latency_target_set:
    ancestor_ms = table.predict(ancestor_spec or parent_spec)
    goals["latency"] = config.latency_target_ms(ancestor_ms) / table.predict(parent_spec)
  if not goals:
    return synth
  # In the units target mode measures (--cost). A target in the other unit is
  # the best guess there is (parameters and MACs shrink alike when every layer
  # does); with both, the one --cost measures. Aimed a little below: a draw's
  # size spreads around its expectation (+-4% measured on shapes10), and one
  # above the target would not meet it.
  goal = TARGET_MARGIN * goals.get(synth.cost, min(goals.values()))
  left = config.generations - generation + 1
  # Never below what the floors allow (that would be refused), never a no-op.
  smallest = synthesis.smallest_child_spec(parent_spec, synth)
  if synth.cost == "latency":
    floor = table.predict(smallest) / table.predict(parent_spec)
  else:
    floor = (smallest.params() / parent_spec.params() if synth.cost == "params"
             else smallest.macs() / parent_spec.macs())
  fraction = max(min(0.95, max(0.2, goal ** (1.0 / left))), (floor + 1.0) / 2 if floor > 0.9
                 else floor * 1.02)
  return dataclasses.replace(synth, target_fraction=fraction)


@dataclasses.dataclass(frozen=True)
class _GenerationTask:
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
  train_config: train_lib.TrainConfig
  ancestor_dir: str
  latency: Optional[latency_lib.LatencyTable] = None

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


def _candidate_in_worker(task: "_GenerationTask", candidate: int, attempt: int) -> Dict[str, Any]:
  """Entry point of a worker process: load the parent once per process, make one candidate."""
  return _make_candidate(task, candidate, attempt, load_cached(task.parent_dir), None)


class _Runner:
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

  def submit(self, task: "_GenerationTask", candidate: int, attempt: int, parent_model):
    if self._parallel and self._workers > 1 and self._pool.in_process:
      # No more workers than candidates per generation: each gets cores / workers.
      self._pool = workers_lib.WorkerPool(min(self._workers, task.config.population))
      self._workers = self._pool.plan.workers  # capped by the GPUs visible: not asked again
    if self._pool.in_process:
      # Computed when its result is read: each candidate is recorded before the next starts.
      return self._pool.submit(_make_candidate, task, candidate, attempt, parent_model,
                               self._strategy)
    return self._pool.submit(_candidate_in_worker, task, candidate, attempt)

  def close(self) -> None:
    self._pool.close()


def model_dir_of(run_dir: str, identifier: str, lineage: Dict[str, Any]) -> str:
  if identifier == ANCESTOR_ID:
    return lineage["ancestor"]["dir"]
  generation, candidate = _parse_id(identifier)
  return candidate_dir(run_dir, generation, candidate)


def _make_candidate(task: _GenerationTask, candidate: int, attempt: int, parent_model,
                    strategy) -> Dict[str, Any]:
  run_dir, generation, config, synth = task.run_dir, task.generation, task.config, task.synth
  parent_spec, ancestor_spec = task.parent_spec, task.ancestor_spec
  start = time.time()
  entropy = draw_seed(config.seed, generation, candidate, attempt)
  rng = np.random.default_rng(entropy)
  offspring = synthesis.sample_offspring(parent_spec, task.strengths, synth, rng,
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
  record: Dict[str, Any] = {
      "id": candidate_id(generation, candidate),
      "generation": generation,
      "candidate": candidate,
      "attempt": attempt,
      "parent": task.parent_id,
      "seed": entropy,
      "env_mode": synth.env_mode,
      "env_factor": float(np.mean(list(offspring.factors.values()))),
      "layer_env_factors": {k: float(v) for k, v in offspring.factors.items()},
      "survivors": synthesis.survivors_to_json(offspring.survivors),
      "expected_params": float(offspring.expected_params),
      "expected_macs": float(offspring.expected_macs),
      **({} if offspring.expected_latency_ms is None else {
          "expected_latency_ms": float(offspring.expected_latency_ms),
          "predicted_latency_ms": float(offspring.predicted_latency_ms)}),
      "train_epochs": fit_config.epochs,
      "train_images": fit_config.epochs * images_per_epoch(train_ds, info),
      "teacher": task.teacher_dir and (ANCESTOR_ID if task.teacher_dir == task.ancestor_dir
                                       else task.parent_id),
  }
  if result.diverged or not _weights_finite(result.model):
    shutil.rmtree(work_dir, ignore_errors=True)
    record.update(metrics_lib.spec_metrics(offspring.spec, ancestor_spec))
    record.update({"status": "diverged", "chosen": False, "top1": None,
                   "wall_seconds": time.time() - start, "dir": None})
    return record
  evaluation = train_lib.evaluate(result.model, val_ds)
  record.update(metrics_lib.model_metrics(offspring.spec, evaluation, ancestor_spec))
  record["fine_tune_images_per_sec"] = result.train_images_per_sec
  record["status"] = "ok"
  record["chosen"] = False
  record["dir"] = os.path.relpath(directory, run_dir)
  record["wall_seconds"] = time.time() - start
  metrics = {k: v for k, v in record.items() if k != "survivors"}
  with model_io.atomic_path(directory) as temp:
    model_io.write_model_dir(temp, result.model, offspring.spec, metrics)
  shutil.rmtree(work_dir, ignore_errors=True)
  return record


_TEACHERS: Dict[str, Any] = {}  # per process: model dir -> its deployed (BN-folded) model


def load_teacher(model_dir: str):
  """The model of `model_dir` with batch norm folded: the same predictions (to float
  rounding), fewer operations on every distillation step."""
  model_dir = os.path.abspath(model_dir)
  if model_dir not in _TEACHERS:
    _TEACHERS.clear()
    model, spec, _ = model_io.load_model_dir(model_dir)
    _TEACHERS[model_dir] = bn_lib.deployed_model(model, spec)
  return _TEACHERS[model_dir]


def teacher_fn(teacher_dir: Optional[str], strategy) -> Optional[Callable[[], Any]]:
  """Loads the teacher inside the fit's strategy scope (a strategy's variables live there);
  without a strategy the process keeps one loaded copy."""
  if teacher_dir is None:
    return None
  if strategy is None:
    return lambda: load_teacher(teacher_dir)

  def fresh():
    model, spec, _ = model_io.load_model_dir(teacher_dir)
    return bn_lib.deployed_model(model, spec)

  return fresh


def images_per_epoch(train_ds: tf.data.Dataset, info: data_lib.DatasetInfo) -> int:
  """Images one epoch trains on: full batches only when the pipeline drops the remainder."""
  steps = int(train_ds.cardinality().numpy())
  batch = train_ds.element_spec[0].shape[0]
  if steps > 0 and batch:
    return steps * int(batch)
  return int(info.train_count)


def _weights_finite(model) -> bool:
  return all(np.all(np.isfinite(w)) for w in model.get_weights())


def _new_lineage(parent_dir: str, spec: spec_lib.NetSpec,
                 metrics: Dict[str, Any]) -> Dict[str, Any]:
  ancestor = metrics_lib.model_metrics(
      spec, {k: metrics[k] for k in ("top1", "top5", "loss") if k in metrics}, spec)
  ancestor.update({"id": ANCESTOR_ID, "dir": os.path.abspath(parent_dir)})
  return {"version": LINEAGE_VERSION, "ancestor": ancestor, "candidates": [], "generations": [],
          "winner": None, "stop_reason": None, "complete": False}


def _load_lineage(run_dir: str) -> Optional[Dict[str, Any]]:
  lineage = model_io.optional_read_json(os.path.join(run_dir, LINEAGE_FILE))
  if lineage is None:
    return None
  # A candidate recorded as finished whose directory vanished is redone from its
  # recorded seed. When it was a generation's chosen one, that generation is
  # selected again and every later one redone: they descend from it.
  missing = {record["id"] for record in lineage["candidates"] if record["status"] == "ok"
             and not model_io.is_complete(os.path.join(run_dir, record["dir"]))}
  lost = [g["generation"] for g in lineage["generations"] if g["chosen"] in missing]
  if lost:
    first = min(lost)
    logging.getLogger(__name__).warning(
        "%s: the chosen candidate of generation %d is gone; generations %d and later are "
        "redone from their recorded seeds.", run_dir, first, first)
    lineage["generations"] = [g for g in lineage["generations"] if g["generation"] < first]
    lineage["candidates"] = [r for r in lineage["candidates"] if r["generation"] <= first]
    lineage.update(winner=None, stop_reason=None, complete=False)
  lineage["candidates"] = [dict(r, chosen=False) if r["generation"] in lost else r
                           for r in lineage["candidates"] if r["id"] not in missing]
  return lineage


def _generation_summary(lineage: Dict[str, Any], generation: int) -> Optional[Dict[str, Any]]:
  for summary in lineage["generations"]:
    if summary["generation"] == generation:
      return summary
  return None


def _winner(lineage: Dict[str, Any]) -> str:
  chosen = [g["chosen"] for g in lineage["generations"] if g["chosen"]]
  return chosen[-1] if chosen else ANCESTOR_ID


def _result(run_dir: str, lineage: Dict[str, Any]) -> EvolutionResult:
  winner = lineage["winner"]
  return EvolutionResult(run_dir, winner, model_dir_of(run_dir, winner, lineage),
                         lineage["stop_reason"], lineage)


def _parse_id(identifier: str) -> Tuple[int, int]:
  gen, cand = identifier.split("/")
  return int(gen[len("gen_"):]), int(cand[len("cand_"):])


def run_identity(parent_dir: str, config: EvolutionConfig, synth: synthesis.SynthesisConfig,
                 run_flags: Optional[Dict[str, Any]] = None,
                 train_config: Optional[train_lib.TrainConfig] = None) -> Dict[str, Any]:
  """What a run dir's lineage depends on, flag by flag (evolution_config.json).

  Not in it: --workers (results do not depend on it), --final_init and
  --final_epochs (the final stage comes after the lineage). `parent_identity` adds the parent itself.
  """
  train_config = train_config or train_lib.TrainConfig()
  identity = dict(run_flags or {})
  identity.update({f"--{k}": v for k, v in dataclasses.asdict(config).items()
                   if k not in ("workers", "final_init", "final_epochs")})
  identity.update({f"--{k}": v for k, v in dataclasses.asdict(train_config).items()
                   if k not in ("epochs", "learning_rate", "warmup_epochs")})
  identity.update({(f"--{k}" if k != "target_fraction" else "synthesis.target_fraction"): v
                   for k, v in dataclasses.asdict(synth).items()})
  identity["--parent_dir"] = os.path.abspath(parent_dir)
  return identity


def parent_identity(model, spec: spec_lib.NetSpec) -> Dict[str, Any]:
  """The parent's architecture and a checksum of its weights: a parent retrained in place
  (same path, other weights) does not resume an old lineage."""
  digest = hashlib.sha256()
  for weights in model.get_weights():
    digest.update(np.ascontiguousarray(weights).tobytes())
  return {"parent.spec": spec.architecture_key(), "parent.weights_sha256": digest.hexdigest()}


def check_identity(run_dir: str, identity: Dict[str, Any], ignore: Sequence[str] = ()) -> None:
  """Raises ValueError when `run_dir` was made with another identity (keys in `ignore` aside).

  Writes nothing, so a main can check before it rewrites its flags.txt.
  """
  existing = model_io.optional_read_json(os.path.join(run_dir, CONFIG_FILE))
  if existing is None:
    return
  identity = model_io.json_round_trip(identity)
  # A key the recorded identity lacks was added to squish_tf after that run
  # started (the parent's checksum, say): there is nothing to compare it with.
  differing = sorted(k for k in set(existing) | set(identity)
                     if k not in ignore and k in existing and existing.get(k) != identity.get(k))
  if differing:
    details = "; ".join(f"{k} was {_short(existing.get(k))}, now {_short(identity.get(k))}"
                        for k in differing)
    raise ValueError(f"--run_dir {run_dir!r} was made with other flags or another parent "
                     f"({details}). Re-run with the same flags and parent to resume, or pick a "
                     "new --run_dir.")


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 80 else text[:77] + "..."


def _check_or_write_identity(run_dir: str, identity: Dict[str, Any]) -> None:
  check_identity(run_dir, identity)
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.isfile(path):
    os.makedirs(run_dir, exist_ok=True)
    model_io.write_json(path, model_io.json_round_trip(identity))


def _at_least(name: str, value: int, minimum: int) -> None:
  if not isinstance(value, int) or value < minimum:
    raise ValueError(f"--{name} must be an integer >= {minimum}, got {value!r}.")


def console_listener(event: Dict[str, Any]) -> None:
  """Prints one line per candidate and a table per generation."""
  if event["event"] == "candidate":
    print(format_candidate(event["record"], event["ancestor_top1"]), flush=True)
  elif event["event"] == "generation":
    print(format_generation(event["summary"], event["records"], event["ancestor_top1"]),
          flush=True)


def format_candidate(record: Dict[str, Any], ancestor_top1: float) -> str:
  """One console line per candidate."""
  retry = f" (retry {record['attempt']})" if record["attempt"] else ""
  head = f"gen {record['generation']:3d} cand {record['candidate']:2d}{retry}: "
  if record["status"] != "ok":
    return head + (f"DIVERGED (loss NaN) at {record['params']:,} params; discarded, "
                   "a fresh draw replaces it")
  return head + (f"{record['params']:>9,} params {record['size_mb']:7.3f} MB "
                 f"{record['macs'] / 1e6:8.2f} M MACs  top-1 {record['top1']:.4f} "
                 f"({100 * (record['top1'] - ancestor_top1):+.2f} pts)  "
                 f"F {record['env_factor']:.3f}  {record['wall_seconds']:.1f}s")


def format_generation(summary: Dict[str, Any], records: Sequence[Dict[str, Any]],
                      ancestor_top1: float) -> str:
  """A summary table of one generation."""
  lines = [f"generation {summary['generation']} (parent {summary['parent']}):",
           f"  {'candidate':<16} {'params':>10} {'size MB':>8} {'M MACs':>8} {'top-1':>7} "
           f"{'drop':>7}  status"]
  for r in records:
    if r["status"] != "ok":
      lines.append(f"  {r['id']:<16} {r['params']:>10,} {r['size_mb']:>8.3f} "
                   f"{r['macs'] / 1e6:>8.2f} {'-':>7} {'-':>7}  diverged")
      continue
    mark = "chosen" if r["id"] == summary["chosen"] else ""
    lines.append(f"  {r['id']:<16} {r['params']:>10,} {r['size_mb']:>8.3f} "
                 f"{r['macs'] / 1e6:>8.2f} {r['top1']:>7.4f} "
                 f"{100 * (ancestor_top1 - r['top1']):>6.2f}p  {mark}")
  if summary["stop_reason"]:
    lines.append(f"  stop: {summary['stop_reason']}")
  return "\n".join(lines)
