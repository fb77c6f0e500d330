"""The main job: train -> evolve -> polish -> baselines -> export -> evaluate -> benchmark -> report.

One call turns a dataset into a SquishedNet on disk with the evidence to trust
it, in `saved_models/<run_name>/` (see docs/architecture.md). Every stage leaves a
completion marker written last and atomically (`ancestor/metrics.json`,
`lineage.json` with `complete`, `squishednet/metrics.json`,
`export/export.json`, `baselines/<name>/metrics.json`, `evaluation.json`,
`benchmark.json`, `results.json`), and a re-run skips every stage whose marker
is there, so a killed job resumes where it stopped.

Honest numbers: the ancestor, evolution's selection and accuracy budget, the
polish and the baselines see the training and validation splits only. The
test split is read once everything is trained (the `evaluation` stage, then
the export's and the benchmark's accuracy passes), and every accuracy the
report, results.json, benchmark.json and the console summary give is on it.

`run_job` calls one function per stage, in order; each takes the run's shared
context (`context.Run`, its data read through `context.RunData`) and the stage
mechanics (`context.Stages`).
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf import layout as layout_lib
from squish_tf import lock as lock_lib
from squish_tf import records
from squish_tf.bench import benchmark as benchmark_lib
from squish_tf.bench import comparisons as comparisons_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import matching as matching_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import evolution
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.job import estimate as estimate_lib
from squish_tf.job import exporting as exporting_lib
from squish_tf.job import family as family_lib
from squish_tf.job import ladder as ladder_lib
from squish_tf.job.budget import baseline_budget, planned_budget
from squish_tf.job.config import (
  BASELINE_ARTEFACTS,
  COMPARISON_ARTEFACTS,
  JobConfig,
  StageHook,
)
from squish_tf.job.context import JobOptions, Run, Stages
from squish_tf.job.results import build_results
from squish_tf.layout import EVALUATION_FILE, NATIVE_LOG_FILE, RESULTS_FILE
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.report import console as console_lib
from squish_tf.report import markdown as report_lib
from squish_tf.report import paired as paired_lib
from squish_tf.runtime import native_log
from squish_tf.runtime import workers as workers_lib
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib

STAGES = layout_lib.STAGES
# The ancestor's part of the run identity (`lineage.parent_identity`).
PARENT_KEYS = ("parent.spec", "parent.weights_sha256")
Exports = exporting_lib.Exports


def run_job(config: JobConfig, data_config: data_config_lib.DataConfig,
            train_config: train_config_lib.TrainConfig,
            evolution_config: evolve_config_lib.EvolutionConfig,
            synth: synthesis.SynthesisConfig, **options: Any) -> Dict[str, Any]:
  """Runs (or resumes) every stage; returns the results dict written to results.json.

  One writer per run dir: the run's lock is taken before anything is written
  (a live holder stops this call with `lock.RunDirInUse`), and the checks
  before the first stage (every image decodes, the targets, the identity of a
  resumed run) leave the run dir as they found it when they refuse the run. `options`: the
  fields of `JobOptions`.
  """
  o = JobOptions(**options)
  with lock_lib.RunLock(config.run_dir, command=o.command, warn=o.log) as held, \
      native_log.logging_to(os.path.join(config.run_dir, NATIVE_LOG_FILE)):
    with held.refusal():
      # The data's indexes and disk caches live in the run. Budgets follow the data
      # (docs/budgets.md); the plan is printed before the first training step.
      run, train_ds, val_ds, budgets, plan = estimate_lib.budgeted_run(
          config, data_config, train_config, evolution_config, stages_done,
          synth=synth, strategy=o.strategy, run_flags=o.run_flags, command=o.command,
          log=o.log, verbose=o.verbose)
      check_before_writing(run)
      if o.flags_text is not None:
        files_lib.write_text(os.path.join(run.run_dir, model_io.FLAGS_FILE), o.flags_text)
      estimate_lib.write_plan(run.run_dir, budgets, plan, config.budget.max_minutes)
      o.log(plan.describe())  # before the first training step
    stage = Stages(run.run_dir, o.on_stage_done, o.log)

    ancestor_stage(run, stage, train_ds, val_ds)
    del train_ds, val_ds  # every later stage that trains makes its own pipelines
    result = synthesis_stage(run, stage)
    family = family_lib.members(run.run_dir, result)
    squishednet_dir = polish_lib.squishednet_dir(run.run_dir, result, run.evolution_config)
    budget = polish_stage(run, stage, result, squishednet_dir, family)
    baselines_stage(run, stage, budget)
    exports = exporting_lib.models_to_export(run, squishednet_dir, family)
    exporting_lib.export_stage(run, stage, exports)
    evaluation_stage(run, stage, result, squishednet_dir, family)
    benchmark_stage(run, stage, exports)
    return report_stage(run, stage, result, squishednet_dir, family)


def stages_done(run: Run) -> Tuple[str, ...]:
  """The training stages a resumed run has finished (the plan counts no time for them)."""
  done = {"ancestor": model_io.is_complete(run.ancestor_dir),
          "synthesis": finished_evolution(run.run_dir) is not None,
          "polish": polish_done(run), "baselines": baselines_done(run)}
  return tuple(name for name, finished in done.items() if finished)


def polish_done(run: Run) -> bool:
  """The final stage is done for the SquishedNet and every other member of a finished
  lineage's family."""
  if not polish_lib.is_complete(run.run_dir):
    return False
  finished = finished_evolution(run.run_dir)
  return finished is not None and all(
      polish_lib.is_complete(m.root)
      for m in family_lib.others(family_lib.members(run.run_dir, finished)))


def check_before_writing(run: Run) -> None:
  """Refuses, before anything is written, what a stage would refuse later.

  An ancestor dir of another spec, targets below what the floors let synthesis
  reach (resolved here once, with the latency table when one is needed, and
  handed to evolve()), and a run dir made with other flags: a refused re-run
  must leave flags.txt (what --flagfile reproduces) as it was. The ancestor's
  own part of the identity waits for the synthesis stage: it may not be
  trained yet. (`run_job` removes what a refused check leaves, such as the
  latency table.)
  """
  model_io.check_same_spec(run.ancestor_dir, run.spec)
  micro_budget_lib.MicroBudget.of(run.evolution_config).check_floors(run.spec, run.synth)
  run.set_targets(evolution.check_targets(run.spec, run.evolution_config, run.synth,
                                          latency_table(run)))
  lineage_lib.check_identity(run.run_dir, run.identity(), ignore=PARENT_KEYS)


def latency_table(run: Run) -> Optional[latency_table_lib.LatencyTable]:
  """The run's latency table when it needs one (--cost=latency, a latency target, a device):
  the device's, or measured once per run dir and cached there; None otherwise."""
  if not run.evolution_config.needs_latency(run.synth):
    return None
  return evolution.clock_table(run.run_dir, run.spec, run.evolution_config, progress=run.log)


def ancestor_stage(run: Run, stage: Stages, train_ds: tf.data.Dataset,
                   val_ds: tf.data.Dataset) -> None:
  """Stage 1: the ancestor, trained on the run's first pipelines, then checked to have learned.

  With worker processes it trains in one of its own, which exits after: a
  process keeps the memory a training once took, and this one lives through
  the whole run beside the workers that fine-tune.
  """
  def train():
    if run.in_workers:
      workers_lib.call_in_fresh_process(train_ancestor_dir, run.ancestor_dir, run.spec,
                                        run.data.load, run.data_config, run.train_config,
                                        run.verbose)
    else:
      train_lib.train_model_dir(run.ancestor_dir, run.spec, run.data_config, run.train_config,
                                train_ds, val_ds, run.info, strategy=run.strategy,
                                seed=run.data_config.seed, verbose=run.verbose, label="ancestor")

  stage("ancestor", model_io.is_complete(run.ancestor_dir), train)
  if run.config.check_ancestor:
    train_lib.check_learned(
        files_lib.read_json(os.path.join(run.ancestor_dir, model_io.METRICS_FILE)),
        run.info.num_classes, run.ancestor_dir)


def synthesis_stage(run: Run, stage: Stages) -> lineage_lib.EvolutionResult:
  """Stage 2: evolution, selected on the validation split; a finished lineage is read back."""
  finished = finished_evolution(run.run_dir)
  evolved = stage("synthesis", finished is not None, lambda: evolution.evolve(
      run.ancestor_dir, run.run_dir, run.evolution_config, run.synth, run.data.load,
      strategy=run.strategy, run_flags=run.run_flags, listeners=[console_lib.console_listener],
      verbose=run.verbose, train_config=run.train_config, targets=run.targets))
  if finished is None:
    return evolved
  check_lineage_parent(run)
  return finished


def finished_evolution(run_dir: str) -> Optional[lineage_lib.EvolutionResult]:
  """What evolve() returns for `run_dir` when its lineage is complete; None while it is not.

  The lineage is read as evolve() reads it (`lineage.load_lineage`: a
  candidate whose directory is gone is left out, and a chosen one that is
  gone leaves generations to redo), without loading the ancestor or building
  pipelines. With a latency table, the ancestor's predicted latency and the
  table's name that evolve() sets from the table are the ones the lineage was
  written with, from that same table.
  """
  lineage = lineage_lib.load_lineage(run_dir)
  if lineage is None or not lineage.get("complete"):
    return None
  return lineage_lib.evolution_result(run_dir, lineage)


def check_lineage_parent(run: Run) -> None:
  """What evolve() checks before it returns a complete lineage, for a lineage read back here.

  The run's identity with its ancestor's architecture and weight checksum:
  an ancestor retrained in place (same path, other weights) does not take
  the old lineage. `check_before_writing` left the ancestor out.
  """
  model, spec, _ = model_io.load_model_dir(run.ancestor_dir)
  identity = run.identity()
  identity.update(lineage_lib.parent_identity(model, spec))
  lineage_lib.check_or_write_identity(run.run_dir, identity)


_BESIDE_NOTES = {
    "scratch": " (the SquishedNet from scratch, beside the baselines in worker processes)",
    "best": (" (scratch and inherited, beside the baselines in worker processes; the better on "
             "validation is kept)")}


def polish_stage(run: Run, stage: Stages, result: lineage_lib.EvolutionResult,
                 squishednet_dir: str,
                 family: Sequence[family_lib.Member] = ()) -> baselines_lib.BaselineBudget:
  """Stage 3, the final stage ("polish"): the SquishedNet and the family's other members;
  returns the baselines' budget.

  The winner's widths trained from scratch, or its inherited weights
  fine-tuned, or the better of both on validation (--final_init), are the
  SquishedNet; every other member of a family gets the same (`family.Member.result`); the
  baselines train at the SquishedNet's size and epochs. Trained from
  scratch (or both), those are known before it trains, so with worker
  processes it trains beside the baselines (small networks leave a core
  idle): this stage then trains them all.
  """
  config, seed = run.evolution_config, run.data_config.seed
  members = [m for m in family_lib.others(list(family))
             if polish_lib.needs_polish(m.result, config)]
  done = ((not polish_lib.needs_polish(result, config) or polish_lib.is_complete(run.run_dir))
          and all(polish_lib.is_complete(m.root) for m in members))
  # Every member trains from scratch for the whole run's epochs, as the baselines (and the
  # ladder it is judged against) do: a shallower member is not held to a shorter budget.
  whole = (polish_lib.scratch_epochs(result, config, run.train_config)
           if members and config.final_init in ("scratch", "best") else None)
  trainings = [(run.run_dir, result)] + [(m.root, m.result) for m in members]

  def train_all(**kwargs):
    for root, made in trainings:  # best: keeps the better of what trained
      polish_lib.polish(root, made, config, run.data.load, run.train_config,
                        verbose=run.verbose, scratch_budget=whole, **kwargs)

  said = family_lib.describe(list(family), result.lineage)
  if said:
    run.log(said)
  if (not done and config.final_init in ("scratch", "best") and run.in_workers
      and not baselines_done(run)):
    budget = with_match(run, result, planned_budget(result, config, run.train_config, seed))
    beside = [(polish_lib.polish, (root, made, config, run.data.load, run.train_config),
               {"verbose": run.verbose, "only": init, "scratch_budget": whole})
              for root, made in trainings if polish_lib.needs_polish(made, config)
              and not polish_lib.is_complete(root) for init in polish_lib.final_inits(config)]

    def train_beside_the_baselines():
      train_baselines(run, budget, beside=beside)
      train_all(strategy=run.strategy)

    stage("polish", False, train_beside_the_baselines, note=_BESIDE_NOTES[config.final_init])
    return budget
  stage("polish", done, lambda: train_all(strategy=run.strategy))
  return with_match(run, result,
                    baseline_budget(squishednet_dir, result, config, run.train_config, seed))


def latency_match(run: Run, result: lineage_lib.EvolutionResult,
                  target_params: int) -> Optional[Dict[str, Any]]:
  """The width multiplier of the SquishedNet's measured latency (`width_scaled_latency`).

  Found once, before the baselines train (the SquishedNet's widths are the
  winner's, and speed depends on widths only), with the run's latency table
  (a run aimed at speed has one; others start from MACs) and confirmed by
  timing interleaved (`bench.matching.match_latency`); kept in
  baselines/latency_match.json, so a resumed run trains the same baseline.
  When the size-matched multiplier is already within the tolerance in
  latency, `width_scaled` answers both questions and this one is not trained
  ("trained": false; `Run.baseline_dirs` leaves it out).
  """
  if not any(baselines_lib.lookup(name).latency_matched for name in run.config.baselines):
    return None
  path = os.path.join(run.run_dir, "baselines", layout_lib.LATENCY_MATCH_FILE)
  match = run.latency_match
  if match is None:
    fmt = run.evolution_config.latency_format
    # The run's table when evolution measured one (a run aimed at speed); else MACs guess and
    # the interleaved measurements correct (a table costs longer than the match).
    table = latency_table(run)
    size_multiplier = spec_lib.multiplier_for(run.spec, target_params, spec_lib.NetSpec.params)
    # A device's table is its clock: timing here (once, for the record) corrects nothing.
    tries = 1 if run.evolution_config.device_set else matching_lib.TRIES
    match = matching_lib.match_latency(model_io.read_spec(result.winner_dir), run.spec, table,
                                       size_multiplier, fmt, evolve_config_lib.LATENCY_THREADS,
                                       tries=tries, log=run.log)
    match["trained"] = not match["size_within_tolerance"]
    if not match["trained"]:
      run.log(f"latency match: the size-matched width_scaled runs {match['size_ratio']:.3f}x "
              "the SquishedNet's speed, within the tolerance: it answers both comparisons, "
              "width_scaled_latency is not trained.")
    files_lib.write_json(path, match)
    run.set_latency_match(match)
  return match


def with_match(run: Run, result: lineage_lib.EvolutionResult,
               budget: baselines_lib.BaselineBudget) -> baselines_lib.BaselineBudget:
  """`budget` with the multiplier of the SquishedNet's latency (`latency_match`) and the width
  ladder's rungs (`job.ladder`), if asked for."""
  budget = ladder_lib.with_ladder(run, result, budget, lambda: latency_table(run))
  match = latency_match(run, result, budget.target_params)
  if match is None:
    return budget
  return dataclasses.replace(budget, latency_multiplier=match["width_multiplier"],
                             latency_match=match)


def baselines_stage(run: Run, stage: Stages, budget: baselines_lib.BaselineBudget) -> None:
  """Stage 4: the baselines, at the SquishedNet's size, epochs and recipe (`budget`)."""
  stage("baselines", baselines_done(run), lambda: train_baselines(run, budget))


def baselines_done(run: Run) -> bool:
  """Every baseline asked for has its metrics.json (the marker written last)."""
  return all(files_lib.optional_read_json(os.path.join(d, model_io.METRICS_FILE)) is not None
             for d in run.baseline_dirs.values())


def train_baselines(run: Run, budget: baselines_lib.BaselineBudget,
                    beside: Sequence[Tuple[Callable[..., Any], tuple, dict]] = ()) -> None:
  """Trains the baselines left to train, and `beside` them other trainings (`run_baselines`)."""
  baselines_lib.run_baselines(run.run_dir, run.ancestor_dir, budget, run.data.load,
                              names=run.config.baselines, strategy=run.strategy,
                              verbose=run.verbose, workers=run.evolution_config.workers,
                              beside=beside)


def evaluation_stage(run: Run, stage: Stages, result: lineage_lib.EvolutionResult,
                     squishednet_dir: str, family: Sequence[family_lib.Member] = ()) -> None:
  """Stage 6: every trained model on the test split, read here first (evaluation.json)."""
  path = os.path.join(run.run_dir, EVALUATION_FILE)
  models = {"ancestor": run.ancestor_dir, "squishednet": squishednet_dir}
  models.update({m.name: m.squishednet_dir(run.evolution_config)
                 for m in family_lib.others(list(family))})
  models.update({r["id"]: os.path.join(run.run_dir, r["dir"])
                 for r in result.lineage["candidates"] if r["status"] == "ok"})
  models.update(run.baseline_dirs)
  existing = files_lib.optional_read_json(path) or {}
  # An evaluation.json without the per-image vectors (written before they were) is redone:
  # the verdicts pair two models' outcomes image by image.
  done = all("correct" in existing.get("models", {}).get(name, {}) for name in models)
  stage("evaluation", done,
        lambda: files_lib.write_json(path, evaluate_on_test(models, run.data.test(),
                                                            log=run.log)))


def benchmark_stage(run: Run, stage: Stages, exports: Exports) -> None:
  """Stage 7: every exported model's artefacts on the same test images (benchmark.json)."""
  path = os.path.join(run.run_dir, benchmark_lib.BENCHMARK_FILE)
  # The SquishedNet in every format; the others in what the report compares.
  models = {name: {"model_dir": model_dir, "export_dir": export_dir,
                   "formats": (None if name == "squishednet"
                               else COMPARISON_ARTEFACTS.get(name, BASELINE_ARTEFACTS))}
            for name, (model_dir, export_dir, _) in exports.items()}

  def measure():
    images, labels = images_lib.take_images(run.data.test(), run.config.benchmark.eval_images)
    settings = dict(benchmark_lib.settings(run.config.benchmark, eval_images=len(images)),
                    eval_split="test")
    # The speed-ups: every model's fp32 and int8 file against the ancestor's fp32 file,
    # timed interleaved in one session per batch size.
    pairs = functools.partial(comparisons_lib.comparison_pairs, reference="ancestor")
    benchmark_lib.write_benchmark(path, benchmark_lib.benchmark_models(
        models, images, labels, run.config.benchmark,
        listener=console_lib.benchmark_listener(run.log), pairs=pairs, run_settings=settings))

  existing = files_lib.optional_read_json(path)
  stage("benchmark", existing is not None and set(models) <= set(existing.get("models", {}))
        and existing.get("version") == benchmark_lib.BENCHMARK_VERSION, measure)


def report_stage(run: Run, stage: Stages, result: lineage_lib.EvolutionResult,
                 squishednet_dir: str,
                 family: Sequence[family_lib.Member] = ()) -> Dict[str, Any]:
  """Stage 8: results.json and the report, always rewritten from what is on disk (cheap)."""
  members = [{"name": m.name, "labels": m.labels, "candidate": m.candidate,
              "dir": m.squishednet_dir(run.evolution_config)}
             for m in family_lib.others(list(family))]
  results = build_results(
      run.config, run.info, run.data_config, result.lineage, squishednet_dir, run.baseline_dirs,
      files_lib.read_json(os.path.join(run.run_dir, benchmark_lib.BENCHMARK_FILE)),
      files_lib.read_json(os.path.join(run.run_dir, EVALUATION_FILE)), stage.times, run.command,
      run.evolution_config, family=members)
  files_lib.write_json(os.path.join(run.run_dir, RESULTS_FILE), results)
  report_lib.write_report(run.run_dir, results)
  stage.finished("report")
  return results


def train_ancestor_dir(ancestor_dir: str, spec: spec_lib.NetSpec, data_fn: Callable[..., Any],
                       data_config: data_config_lib.DataConfig,
                       train_config: train_config_lib.TrainConfig,
                       verbose: Any = "auto") -> None:
  """Trains the ancestor on fresh pipelines from `data_fn` (picklable: runs in a worker)."""
  train_ds, val_ds, info = data_fn()
  train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info,
                            seed=data_config.seed, verbose=verbose, label="ancestor")


def evaluate_on_test(model_dirs: Dict[str, str], test_ds: tf.data.Dataset,
                     log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Test loss, top-1 and top-5 of every model dir's Keras model, and which test images it
  gets right (`paired_lib.pack_correct`, in the split's order, so that two models' verdicts
  pair image by image): the evaluation.json dict, with the split's "images" and "labels"
  (`paired_lib.labels_digest`)."""
  out: Dict[str, Any] = {"split": "test", "models": {}}
  for name, model_dir in model_dirs.items():
    model, _, _ = model_io.load_model_dir(model_dir, require_spec=False)
    figures, correct, labels = train_lib.evaluate_per_image(model, test_ds)
    digest = paired_lib.labels_digest(labels)
    if out.setdefault("labels", digest) != digest:
      raise RuntimeError(f"the test split yielded other labels for {name!r} than for the models "
                         "before it; its pipeline must be deterministic (unshuffled).")
    out["images"] = int(correct.size)
    out["models"][name] = dict(figures, correct=paired_lib.pack_correct(correct))
    log(f"  {name:<24} test top-1 {figures['top1']:.4f}")
  return out
