"""The main job: train -> evolve -> polish -> baselines -> export -> evaluate -> benchmark -> report.

One call turns a dataset into a SquishedNet on disk with the evidence to trust
it, in `saved_models/<run_name>/` (see ARCHITECTURE.md). Every stage leaves a
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
"""

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from squish_tf import export as export_lib
from squish_tf import files as files_lib
from squish_tf import layout as layout_lib
from squish_tf.bench import benchmark as benchmark_lib
from squish_tf.bench import comparisons as comparisons_lib
from squish_tf.data import config as data_config_lib
from squish_tf.data import images as images_lib
from squish_tf.data import pipeline as data_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import evolution
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.job.budget import baseline_budget, planned_budget
from squish_tf.job.config import (
  BASELINE_ARTEFACTS,
  COMPARISON_ARTEFACTS,
  COMPARISON_FORMATS,
  JobConfig,
  StageHook,
)
from squish_tf.job.results import build_results
from squish_tf.layout import (
  ANCESTOR_DIR,
  EVALUATION_FILE,
  EXPORT_DIR,
  RESULTS_FILE,
  STAGE_TIMES_FILE,
)
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.report import console as console_lib
from squish_tf.report import markdown as report_lib
from squish_tf.runtime import workers as workers_lib
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import trainer as train_lib

STAGES = layout_lib.STAGES


def run_job(config: JobConfig,
            data_config: data_config_lib.DataConfig,
            train_config: train_lib.TrainConfig,
            evolution_config: evolve_config_lib.EvolutionConfig,
            synth: synthesis.SynthesisConfig,
            strategy: Optional[tf.distribute.Strategy] = None,
            flags_text: Optional[str] = None,
            command: Optional[str] = None,
            run_flags: Optional[Dict[str, Any]] = None,
            on_stage_done: Sequence[StageHook] = (),
            log: Callable[[str], None] = print,
            verbose: Any = "auto") -> Dict[str, Any]:
  """Runs (or resumes) every stage; returns the results dict written to results.json."""
  run_dir = config.run_dir
  # The data's indexes and disk caches live in the run; its processes share the memory budget.
  data_config = data_config_lib.in_run(data_config, run_dir, evolution_config.workers)
  # Fresh pipelines on every call (same order on every resume); picklable for workers.
  data_fn = functools.partial(data_lib.load, data_config)
  train_ds, val_ds, info = data_fn()  # validates the data before anything is written
  spec = spec_lib.squishednet_base(
      num_classes=info.num_classes, input_shape=(data_config.image_size,) * 2 + (3,),
      dropout_rate=config.dropout_rate, classifier_activation=config.classifier_activation,
      batch_norm=config.batch_norm)
  ancestor_dir = os.path.join(run_dir, ANCESTOR_DIR)
  model_io.check_same_spec(ancestor_dir, spec)
  evolution.check_targets(spec, evolution_config, synth)
  # A refused re-run must leave flags.txt (what --flagfile reproduces) as it was.
  lineage_lib.check_identity(run_dir, lineage_lib.run_identity(
      ancestor_dir, evolution_config, synth, run_flags, train_config),
      ignore=("parent.spec", "parent.weights_sha256"))
  os.makedirs(run_dir, exist_ok=True)
  if flags_text is not None:
    files_lib.write_text(os.path.join(run_dir, model_io.FLAGS_FILE), flags_text)
  times_path = os.path.join(run_dir, STAGE_TIMES_FILE)
  times: Dict[str, float] = files_lib.optional_read_json(times_path) or {}

  def stage(name: str, done: bool, work: Callable[[], None], note: str = "") -> None:
    if done:
      log(f"[{name}] already complete, skipped")
    else:
      log(f"[{name}] ...{note}")
      start = time.time()
      work()
      times[name] = times.get(name, 0.0) + time.time() - start
      files_lib.write_json(times_path, times)
    for hook in on_stage_done:
      hook(name)

  # 1. The ancestor. With worker processes it trains in one of its own, which exits after:
  # a process keeps the memory a training once took, and this one lives through the whole
  # run beside the workers that fine-tune.
  def train_ancestor():
    if strategy is None and evolution_config.workers > 1:
      workers_lib.call_in_fresh_process(train_ancestor_dir, ancestor_dir, spec, data_fn,
                                        data_config, train_config, verbose)
    else:
      train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds,
                                info, strategy=strategy, seed=data_config.seed, verbose=verbose,
                                label="ancestor")

  stage("ancestor", model_io.is_complete(ancestor_dir), train_ancestor)
  del train_ds
  if config.check_ancestor:
    train_lib.check_learned(files_lib.read_json(os.path.join(ancestor_dir, model_io.METRICS_FILE)),
                            info.num_classes, ancestor_dir)

  # 2. Evolution, selected on the validation split.
  lineage_path = os.path.join(run_dir, lineage_lib.LINEAGE_FILE)
  evolved: Dict[str, lineage_lib.EvolutionResult] = {}

  def evolve(listeners=()):
    return evolution.evolve(ancestor_dir, run_dir, evolution_config, synth, data_fn,
                            strategy=strategy, run_flags=run_flags, listeners=listeners,
                            verbose=verbose, train_config=train_config)

  lineage = files_lib.optional_read_json(lineage_path) or {}
  stage("synthesis", bool(lineage.get("complete")),
        lambda: evolved.update(result=evolve([console_lib.console_listener])))
  result = evolved.get("result") or evolve()

  # 3. The final stage ("polish"): the winner's widths trained from scratch, or its
  # inherited weights fine-tuned (--final_init), are the SquishedNet.
  # 4. The baselines, at the SquishedNet's size, epochs and recipe. Trained from scratch, the
  # SquishedNet's size and epochs are known before it trains, so with worker processes it
  # trains beside the baselines (small networks leave a core idle): stage 3 then trains both.
  squishednet_dir = polish_lib.squishednet_dir(run_dir, result, evolution_config)
  baseline_dirs = {name: os.path.join(run_dir, "baselines", name) for name in config.baselines}
  polish_done = (not polish_lib.needs_polish(result, evolution_config)
                 or polish_lib.is_complete(run_dir))
  baselines_done = lambda: all(files_lib.optional_read_json(os.path.join(  # noqa: E731
      d, model_io.METRICS_FILE)) is not None for d in baseline_dirs.values())
  train_polish = functools.partial(polish_lib.polish, run_dir, result, evolution_config, data_fn,
                                   train_config, verbose=verbose)

  def train_baselines(budget, beside=()):
    baselines_lib.run_baselines(run_dir, ancestor_dir, budget, data_fn, names=config.baselines,
                                strategy=strategy, verbose=verbose,
                                workers=evolution_config.workers, beside=beside)

  if (not polish_done and evolution_config.final_init == "scratch" and strategy is None
      and evolution_config.workers > 1 and not baselines_done()):
    budget = planned_budget(result, evolution_config, train_config, data_config.seed)
    stage("polish", False, lambda: train_baselines(budget, [(train_polish, (), {})]),
          note=" (the SquishedNet from scratch, beside the baselines in worker processes)")
  else:
    stage("polish", polish_done, lambda: train_polish(strategy=strategy))
    budget = baseline_budget(squishednet_dir, result, evolution_config, train_config,
                             data_config.seed)
  stage("baselines", baselines_done(), lambda: train_baselines(budget))

  # 5. Exports: the SquishedNet in full, the ancestor and the baselines for comparison.
  # Everything is trained by now: the export's accuracy pass is the first to read
  # the test split.
  # With a Jetson bundle, the ancestor's ships beside it (export/jetson_ancestor/), so
  # jetson_trt.py on the device can time the two interleaved.
  ship_jetson = "jetson" in export_lib.parse_formats(config.export_formats, with_data=True)
  ancestor_formats = COMPARISON_FORMATS + (("jetson",) if ship_jetson else ())
  reference_bundle = os.path.join(run_dir, EXPORT_DIR, jetson_lib.REFERENCE_BUNDLE_DIR)
  exports = {
      "squishednet": (squishednet_dir, os.path.join(run_dir, EXPORT_DIR), config.export_formats),
      "ancestor": (ancestor_dir, os.path.join(ancestor_dir, EXPORT_DIR), ancestor_formats),
  }
  exports.update({name: (directory, os.path.join(directory, EXPORT_DIR), COMPARISON_FORMATS)
                  for name, directory in baseline_dirs.items()})

  @functools.lru_cache(maxsize=None)
  def export_data() -> export_lib.ExportData:
    """The export's images, drawn once for every model this job exports."""
    return export_lib.load_export_data(data_config, calibration_images=config.calibration_images)

  def export_all():
    todo = {name: e for name, e in exports.items() if not exported(e[1], e[2])}
    pool_size = 1 if strategy is not None else min(evolution_config.workers, len(todo))
    with workers_lib.WorkerPool(max(1, pool_size)) as pool:
      manifest = export_models(todo, pool, data_config, export_data, config)
    if manifest is not None:
      log(export_lib.summary_table(manifest))
    if ship_jetson:
      jetson_lib.place_reference_bundle(
          os.path.join(exports["ancestor"][1], jetson_lib.BUNDLE_DIR), exports["squishednet"][1])

  stage("export", all(exported(e, f) for _, e, f in exports.values())
        and (not ship_jetson or jetson_lib.is_bundle(reference_bundle)), export_all)

  # 6. The final evaluation: every trained model on the test split, read here first.
  evaluation_path = os.path.join(run_dir, EVALUATION_FILE)
  evaluated = {"ancestor": ancestor_dir, "squishednet": squishednet_dir}
  evaluated.update({r["id"]: os.path.join(run_dir, r["dir"])
                    for r in result.lineage["candidates"] if r["status"] == "ok"})
  evaluated.update(baseline_dirs)

  def evaluate_all():
    test_ds, _ = data_lib.load_test(data_config)
    files_lib.write_json(evaluation_path, evaluate_on_test(evaluated, test_ds, log=log))

  existing = files_lib.optional_read_json(evaluation_path)
  stage("evaluation", existing is not None and set(evaluated) <= set(existing.get("models", {})),
        evaluate_all)

  # 7. Benchmark every model's artefacts on the same test images.
  benchmark_path = os.path.join(run_dir, benchmark_lib.BENCHMARK_FILE)
  targets = {name: {"model_dir": model_dir, "export_dir": export_dir}
             for name, (model_dir, export_dir, _) in exports.items()}

  def run_benchmark():
    test_ds, _ = data_lib.load_test(data_config)
    images, labels = images_lib.take_images(test_ds, config.eval_images)
    measured = {"version": benchmark_lib.BENCHMARK_VERSION,
                "settings": dict(benchmark_lib.settings(config.benchmark,
                                                        eval_images=len(images)),
                                 eval_split="test"),
                "models": {}}
    for name, where in targets.items():
      # The SquishedNet in every format; the others in what the report compares.
      formats = (None if name == "squishednet"
                 else COMPARISON_ARTEFACTS.get(name, BASELINE_ARTEFACTS))
      log(f"{name}:")
      measured["models"][name] = benchmark_lib.benchmark_model(
          where["model_dir"], where["export_dir"], images, labels,
          dataclasses.replace(config.benchmark, formats=formats), log=log)
    # The speed-ups: every model's fp32 and int8 file against the ancestor's
    # fp32 file, timed interleaved in one session per batch size.
    measured.update(comparisons_lib.measure_model_pairs(
        measured["models"], comparisons_lib.comparison_pairs(measured["models"], "ancestor"),
        images_lib.as_pixels(images), config.benchmark, log=log))
    benchmark_lib.write_benchmark(benchmark_path, measured)

  existing = files_lib.optional_read_json(benchmark_path)
  stage("benchmark", existing is not None and set(targets) <= set(existing.get("models", {}))
        and existing.get("version") == benchmark_lib.BENCHMARK_VERSION, run_benchmark)

  # 8. Results and report (cheap: always rewritten from what is on disk).
  results = build_results(config, info, data_config, result.lineage, squishednet_dir,
                          baseline_dirs, files_lib.read_json(benchmark_path),
                          files_lib.read_json(evaluation_path), times, command,
                          evolution_config)
  files_lib.write_json(os.path.join(run_dir, RESULTS_FILE), results)
  report_lib.write_report(run_dir, results)
  for hook in on_stage_done:
    hook("report")
  return results


def export_models(todo: Dict[str, Tuple[str, str, Any]],
                  pool: workers_lib.WorkerPool,
                  data_config: data_config_lib.DataConfig,
                  export_data: Callable[[], export_lib.ExportData],
                  config: JobConfig) -> Optional[Dict[str, Any]]:
  """Exports every model of `todo` ({name: (model_dir, export_dir, formats)}).

  With a pool of processes the exports run side by side (each conversion
  uses about a core): the SquishedNet's QAT fine-tune and the comparison
  models' exports go to the workers, which draw their own export data from
  `data_config` (an ExportData holds a tf.data pipeline), while this process
  converts the SquishedNet's other formats and takes the QAT file when its
  turn comes. In process they run one after the other on `export_data()`.

  Returns:
    The SquishedNet's manifest, or None when it was not in `todo`.
  """
  common = dict(qat_epochs=config.qat_epochs, qat_learning_rate=config.qat_learning_rate,
                overwrite=True)
  if pool.in_process:
    common["data"] = export_data()
  else:
    common.update(data_config=data_config, calibration_images=config.calibration_images)
  qat = None
  if ("squishednet" in todo and not pool.in_process
      and "qat_int8" in export_lib.parse_formats(todo["squishednet"][2], with_data=True)):
    qat = pool.submit(export_lib.qat_int8_artefact, todo["squishednet"][0], data_config,
                      config.qat_epochs, config.qat_learning_rate, config.calibration_images)
  others = [pool.submit(export_lib.export_all, model_dir, export_dir, formats=formats, **common)
            for name, (model_dir, export_dir, formats) in todo.items() if name != "squishednet"]
  manifest = None
  if "squishednet" in todo:
    model_dir, export_dir, formats = todo["squishednet"]
    manifest = export_lib.export_all(
        model_dir, export_dir, formats=formats, data=export_data(),
        qat_epochs=config.qat_epochs, qat_learning_rate=config.qat_learning_rate,
        overwrite=True, qat_result=qat.result if qat is not None else None)
  for future in others:
    future.result()  # re-raises a worker's error
  return manifest


def exported(export_dir: str, formats: Optional[Sequence[str]]) -> bool:
  """A complete export holding every format asked for (None: whatever it holds)."""
  if not export_lib.is_complete(export_dir):
    return False
  if formats is None:
    return True
  manifest = files_lib.read_json(os.path.join(export_dir, export_lib.MANIFEST_FILE))
  return all(name in manifest.get("formats", {})
             for name in export_lib.parse_formats(formats, with_data=True))


def train_ancestor_dir(ancestor_dir: str, spec: spec_lib.NetSpec, data_fn: Callable[..., Any],
                       data_config: data_config_lib.DataConfig, train_config: train_lib.TrainConfig,
                       verbose: Any = "auto") -> None:
  """Trains the ancestor on fresh pipelines from `data_fn` (picklable: runs in a worker)."""
  train_ds, val_ds, info = data_fn()
  train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info,
                            seed=data_config.seed, verbose=verbose, label="ancestor")


def evaluate_on_test(model_dirs: Dict[str, str], test_ds: tf.data.Dataset,
                     log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Test loss, top-1 and top-5 of every model dir's Keras model: the evaluation.json dict."""
  out: Dict[str, Any] = {"split": "test", "models": {}}
  for name, model_dir in model_dirs.items():
    model, _, _ = model_io.load_model_dir(model_dir, require_spec=False)
    out["models"][name] = train_lib.evaluate(model, test_ds)
    log(f"  {name:<24} test top-1 {out['models'][name]['top1']:.4f}")
  return out
