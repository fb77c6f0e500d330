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
from squish_tf.bench import latency as latency_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import registries
from squish_tf.evolve import surgery
from squish_tf.evolve.candidates import GenerationTask, Runner
from squish_tf.evolve.config import (
  LATENCY_THREADS,
  TARGET_MARGIN,
  EvolutionConfig,
)
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

# Times model dirs interleaved: (model_dirs {name: dir}, reference name, format, threads) ->
# {name: {"latency_ms", "speedup" (over the reference), "speedup_min", "speedup_max"}}.
Measure = Callable[[Mapping[str, str], str, str, int], Dict[str, Dict[str, float]]]


def check_targets(ancestor: spec_lib.NetSpec, config: EvolutionConfig,
                  synth: synthesis.SynthesisConfig,
                  latency: Optional[latency_table_lib.LatencyTable] = None) -> None:
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
           train_config: Optional[train_config_lib.TrainConfig] = None,
           targets_checked: bool = False,
           measure: Optional[Measure] = None) -> EvolutionResult:
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
    targets_checked: the caller has refused size and MAC targets below what
      the floors reach (`check_targets` without a latency table) before it
      wrote anything, as the main job does before it trains the parent: they
      are not checked again here. A latency target is checked here either
      way, once the latency table can predict it.
    measure: times a generation's candidates interleaved with the ancestor
      (`Measure`); None: `measure_model_dirs` (LiteRT, as the module names it
      when evolve is called, so tests may replace that default).

  Returns:
    The winner (the last parent within the accuracy budget) and the lineage.
  """
  train_config = train_config or train_config_lib.TrainConfig()
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
  if not targets_checked:
    check_targets(ancestor_spec, config, synth)  # before anything is written
  identity = run_identity(parent_dir, config, synth, run_flags, train_config)
  identity.update(parent_identity(ancestor_model, ancestor_spec))
  check_or_write_identity(run_dir, identity)
  table = None
  if config.needs_latency(synth):
    # Measured once per run dir (cached; measured again only on another
    # machine, format or architecture), before any candidate is drawn.
    table = latency_lib.load_or_measure(
        os.path.join(run_dir, latency_table_lib.table_file(config.latency_format)), ancestor_spec,
        config.latency_format, LATENCY_THREADS, progress=print if verbose else None)
    if config.latency_target_set:
      # Only the table predicts the fastest child (the call repeats the cheap size and MAC
      # checks: check_targets checks every target it is given).
      check_targets(ancestor_spec, config, synth, table)

  lineage = load_lineage(run_dir)
  if lineage is None:
    if "top1" not in ancestor_metrics:
      ancestor_metrics = dict(ancestor_metrics, **train_lib.evaluate(ancestor_model, val_ds))
    lineage = new_lineage(parent_dir, ancestor_spec, ancestor_metrics)
  if table is not None:
    lineage["ancestor"]["predicted_latency_ms"] = table.predict(ancestor_spec)
    lineage["latency_table"] = latency_table_lib.table_file(config.latency_format)
  if lineage.get("complete"):
    return evolution_result(run_dir, lineage)
  ancestor_top1 = lineage["ancestor"]["top1"]

  runner = Runner(config.workers, strategy)
  try:
    _run_generations(run_dir, config, synth, data_fn, listeners, verbose, lineage,
                     ancestor_model, ancestor_spec, ancestor_top1, runner, train_config,
                     parent_dir, table, measure or measure_model_dirs)
  finally:
    runner.close()

  last = lineage["generations"][-1] if lineage["generations"] else None
  lineage["winner"] = last_chosen(lineage)
  lineage["stop_reason"] = (last or {}).get("stop_reason") or "generations"
  lineage["complete"] = True
  files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
  return evolution_result(run_dir, lineage)


def _run_generations(run_dir, config, synth, data_fn, listeners, verbose, lineage,
                     ancestor_model, ancestor_spec, ancestor_top1, runner, train_config,
                     ancestor_dir, table=None, measure: Optional[Measure] = None) -> None:
  """The loop over generations; appends to `lineage` and writes it after every candidate."""
  parent_id = ANCESTOR_ID
  loaded = (ANCESTOR_ID, ancestor_model, ancestor_spec)  # the parent in memory, loaded when due
  for generation in range(1, config.generations + 1):
    records = [r for r in lineage["candidates"] if r["generation"] == generation]
    summary = generation_summary(lineage, generation)
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
    factors = environment_lib.environment_factors(parent_spec, gen_synth, strengths, table)
    task = GenerationTask(run_dir=run_dir, generation=generation, config=config,
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
        files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
        for listener in listeners:
          listener({"event": "candidate", "record": record, "ancestor_top1": ancestor_top1})
        if record["status"] != "diverged" or record["attempt"] >= config.max_retries:
          break
        record = runner.submit(task, candidate, record["attempt"] + 1, parent_model).result()
    # Every run times its candidates (a few seconds a generation), before selection:
    # --select=top1_per_ms reads the measurements.
    parent = (lineage["ancestor"] if parent_id == ANCESTOR_ID
              else next(r for r in lineage["candidates"]
                        if r["id"] == parent_id and r["status"] == "ok"))
    # A parent recorded before every run measured (a resumed older lineage) is timed too.
    unmeasured_parent = ([parent] if parent_id != ANCESTOR_ID
                         and "measured_latency_ms" not in parent else [])
    _measure_latency(run_dir, records + unmeasured_parent, lineage, ancestor_dir,
                     config.latency_format, verbose, measure or measure_model_dirs)

    chosen = select(records, ancestor_top1, config.max_accuracy_drop, config.select,
                    parent_top1=parent["top1"], parent_speedup=_speedup_of(parent, parent_id))
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
    files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)
    for listener in listeners:
      listener({"event": "generation", "summary": summary, "records": records,
                "ancestor_top1": ancestor_top1})
    if chosen is None or stop_reason:
      break
    parent_id = chosen["id"]


def _speedup_of(parent: Dict[str, Any], parent_id: str) -> Optional[float]:
  """The parent's measured speed-up over the ancestor (the ancestor's own: 1), or None."""
  if parent_id == ANCESTOR_ID:
    return 1.0
  return (parent.get("measured_speedup") or {}).get("median")


# A reference's .tflite per (model dir, format, its model file's mtime and size): the ancestor
# is timed with every generation, converted once per process.
_REFERENCE_TFLITE: Dict[Tuple[str, str, int, int], bytes] = {}


def measure_model_dirs(model_dirs: Mapping[str, str], reference: str, fmt: str,
                       threads: int = LATENCY_THREADS) -> Dict[str, Dict[str, float]]:
  """`evolve`'s default `measure`: each model dir converted as the export converts
  (`latency.network_tflite`) and timed interleaved with the others
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
  return latency_lib.measure_against(models, reference, threads=threads)


def _measure_latency(run_dir: str, records: List[Dict[str, Any]], lineage: Dict[str, Any],
                     ancestor_dir: str, fmt: str, verbose: Any, measure: Measure) -> None:
  """Times each new candidate's LiteRT model interleaved with the ancestor's (`measure`);
  records it.

  Runs in every run, in this process once a generation's fine-tunes are done
  (the workers idle), so the timing does not share the cores with training.
  Every ok record gets `measured_latency_ms` and `measured_speedup` (median
  per-round ratio over the ancestor, with min-max) in `measured_format`
  (--latency_format), and the ancestor its
  `measured_latency_ms` of this session; with a latency table, records also
  get `predicted_speedup`, `latency_error` and `speedup_error` beside the
  table's `predicted_latency_ms`.
  """
  todo = [r for r in records if r["status"] == "ok" and "measured_latency_ms" not in r]
  if not todo:
    return
  model_dirs = {ANCESTOR_ID: ancestor_dir}
  model_dirs.update((record["id"], os.path.join(run_dir, record["dir"])) for record in todo)
  measured = measure(model_dirs, ANCESTOR_ID, fmt, LATENCY_THREADS)
  predicted_ancestor = lineage["ancestor"].get("predicted_latency_ms")
  lineage["ancestor"]["measured_latency_ms"] = measured[ANCESTOR_ID]["latency_ms"]
  for record in todo:
    result = measured[record["id"]]
    record["measured_latency_ms"] = result["latency_ms"]
    record["measured_speedup"] = {"median": result["speedup"], "min": result["speedup_min"],
                                  "max": result["speedup_max"]}
    record["measured_format"] = fmt  # the LiteRT model timed (--latency_format)
    if predicted_ancestor and record.get("predicted_latency_ms"):
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
      print(f"{record['id']}: {fmt} LiteRT {result['latency_ms']:.3f} ms measured, "
            f"{result['speedup']:.2f}x the ancestor{predicted}", flush=True)
  files_lib.write_json(os.path.join(run_dir, LINEAGE_FILE), lineage)


def select(records: Sequence[Dict[str, Any]], ancestor_top1: float,
           max_accuracy_drop: float, how: str = "top1", parent_top1: Optional[float] = None,
           parent_speedup: Optional[float] = None) -> Optional[Dict[str, Any]]:
  """The fittest record among the ok ones within the accuracy budget (None if none is).

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
  eligible = [r for r in records if r["status"] == "ok"
              and ancestor_top1 - r["top1"] <= max_accuracy_drop + 1e-12]
  if not eligible:
    return None
  return registries.selections.lookup(how).chosen(eligible, parent_top1, parent_speedup)


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
                          table: Optional[latency_table_lib.LatencyTable] = None,
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
  # size spreads a few percent around its expectation, and one
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
