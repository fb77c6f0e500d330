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

import numpy as np
import tensorflow as tf

from squish_tf import baselines as baselines_lib
from squish_tf import benchmark as benchmark_lib
from squish_tf import data as data_lib
from squish_tf import evolution
from squish_tf import export as export_lib
from squish_tf.export import exporter as exporter_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.export import qat as qat_lib
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import polish as polish_lib
from squish_tf import report as report_lib
from squish_tf import spec as spec_lib
from squish_tf import synthesis
from squish_tf import train as train_lib
from squish_tf import workers as workers_lib

STAGES = report_lib.STAGES
RESULTS_FILE = "results.json"
EVALUATION_FILE = "evaluation.json"
STAGE_TIMES_FILE = "stage_times.json"
ANCESTOR_DIR = "ancestor"
EXPORT_DIR = "export"
# The comparison models only need what the report compares: fp32 and int8 TFLite.
COMPARISON_FORMATS = ("fp32", "int8")
COMPARISON_ARTEFACTS = {"ancestor": ("keras", "tflite_fp32", "tflite_int8")}
BASELINE_ARTEFACTS = ("tflite_fp32", "tflite_int8")
PAPER = (
    {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 2.4, "top1": 0.812,
     "images_per_sec": 156},
    {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 0.95, "top1": 0.77,
     "images_per_sec": 256},
)
SQUEEZENET_V1_1_SIZE_MB = spec_lib.squeezenet_v1_1(1000).size_mb()


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Stage settings of the main job that are not another module's config.

  Attributes:
    run_dir: where everything goes (`saved_models/<run_name>`).
    run_name: a label for the report.
    export_formats: formats of the SquishedNet's export (None: all this machine can make).
    qat_epochs: quantization-aware fine-tuning epochs.
    qat_learning_rate: its Adam learning rate.
    calibration_images: training images that calibrate full-int8.
    baselines: which baselines to train (empty: none).
    benchmark: how to time artefacts.
    eval_images: test images for the benchmark's accuracy pass.
    classifier_activation / dropout_rate / batch_norm: ancestor spec choices.
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (tests of the plumbing, whose 1-epoch ancestors are, turn it off).
  """

  run_dir: str
  run_name: str = "demo"
  export_formats: Optional[Sequence[str]] = None
  qat_epochs: int = 1
  qat_learning_rate: float = qat_lib.DEFAULT_LEARNING_RATE
  calibration_images: int = exporter_lib.CALIBRATION_IMAGES
  baselines: Sequence[str] = baselines_lib.DEFAULT_BASELINES
  benchmark: benchmark_lib.BenchmarkConfig = benchmark_lib.BenchmarkConfig()
  eval_images: int = 2000
  classifier_activation: str = "linear"
  dropout_rate: float = 0.5
  batch_norm: bool = True
  check_ancestor: bool = True


StageHook = Callable[[str], None]


def run_job(config: JobConfig,
            data_config: data_lib.DataConfig,
            train_config: train_lib.TrainConfig,
            evolution_config: evolution.EvolutionConfig,
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
  data_config = data_lib.in_run(data_config, run_dir, evolution_config.workers)
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
  evolution.check_identity(run_dir, evolution.run_identity(
      ancestor_dir, evolution_config, synth, run_flags, train_config),
      ignore=("parent.spec", "parent.weights_sha256"))
  os.makedirs(run_dir, exist_ok=True)
  if flags_text is not None:
    model_io.write_text(os.path.join(run_dir, model_io.FLAGS_FILE), flags_text)
  times_path = os.path.join(run_dir, STAGE_TIMES_FILE)
  times: Dict[str, float] = model_io.optional_read_json(times_path) or {}

  def stage(name: str, done: bool, work: Callable[[], None], note: str = "") -> None:
    if done:
      log(f"[{name}] already complete, skipped")
    else:
      log(f"[{name}] ...{note}")
      start = time.time()
      work()
      times[name] = times.get(name, 0.0) + time.time() - start
      model_io.write_json(times_path, times)
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
    train_lib.check_learned(model_io.read_json(os.path.join(ancestor_dir, model_io.METRICS_FILE)),
                            info.num_classes, ancestor_dir)

  # 2. Evolution, selected on the validation split.
  lineage_path = os.path.join(run_dir, evolution.LINEAGE_FILE)
  evolved: Dict[str, evolution.EvolutionResult] = {}

  def evolve(listeners=()):
    return evolution.evolve(ancestor_dir, run_dir, evolution_config, synth, data_fn,
                            strategy=strategy, run_flags=run_flags, listeners=listeners,
                            verbose=verbose, train_config=train_config)

  lineage = model_io.optional_read_json(lineage_path) or {}
  stage("synthesis", bool(lineage.get("complete")),
        lambda: evolved.update(result=evolve([evolution.console_listener])))
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
  baselines_done = lambda: all(model_io.optional_read_json(os.path.join(  # noqa: E731
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
    model_io.write_json(evaluation_path, evaluate_on_test(evaluated, test_ds, log=log))

  existing = model_io.optional_read_json(evaluation_path)
  stage("evaluation", existing is not None and set(evaluated) <= set(existing.get("models", {})),
        evaluate_all)

  # 7. Benchmark every model's artefacts on the same test images.
  benchmark_path = os.path.join(run_dir, benchmark_lib.BENCHMARK_FILE)
  targets = {name: {"model_dir": model_dir, "export_dir": export_dir}
             for name, (model_dir, export_dir, _) in exports.items()}

  def run_benchmark():
    test_ds, _ = data_lib.load_test(data_config)
    images, labels = data_lib.take_images(test_ds, config.eval_images)
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
    measured.update(benchmark_lib.measure_model_pairs(
        measured["models"], benchmark_lib.comparison_pairs(measured["models"], "ancestor"),
        data_lib.as_pixels(images), config.benchmark, log=log))
    benchmark_lib.write_benchmark(benchmark_path, measured)

  existing = model_io.optional_read_json(benchmark_path)
  stage("benchmark", existing is not None and set(targets) <= set(existing.get("models", {}))
        and existing.get("version") == benchmark_lib.BENCHMARK_VERSION, run_benchmark)

  # 8. Results and report (cheap: always rewritten from what is on disk).
  results = build_results(config, info, data_config, result.lineage, squishednet_dir,
                          baseline_dirs, model_io.read_json(benchmark_path),
                          model_io.read_json(evaluation_path), times, command,
                          evolution_config)
  model_io.write_json(os.path.join(run_dir, RESULTS_FILE), results)
  report_lib.write_report(run_dir, results)
  for hook in on_stage_done:
    hook("report")
  return results


def export_models(todo: Dict[str, Tuple[str, str, Any]],
                  pool: workers_lib.WorkerPool,
                  data_config: data_lib.DataConfig,
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
  manifest = model_io.read_json(os.path.join(export_dir, export_lib.MANIFEST_FILE))
  return all(name in manifest.get("formats", {})
             for name in export_lib.parse_formats(formats, with_data=True))


# What a candidate records of the latency model (--cost=latency, latency targets).
LATENCY_KEYS = ("expected_latency_ms", "predicted_latency_ms", "measured_latency_ms",
                "predicted_speedup", "measured_speedup", "latency_error", "speedup_error")


def latency_summary(lineage: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  """The latency model's predictions against measurements (None without a table).

  The error is predicted / measured - 1 of each candidate's LiteRT latency,
  and the speed-up error predicted / measured speed-up over the ancestor - 1
  (the latency error relative to the ancestor's in the same session, which
  the machine's load at the two moments does not enter); the medians are of
  their absolute values, over the chosen offspring and over every measured
  candidate.
  """
  if not lineage.get("latency_table"):
    return None
  measured = [r for r in lineage["candidates"] if r.get("latency_error") is not None]
  chosen = [r for r in measured if r.get("chosen")]

  def median(records, key="latency_error"):
    values = [abs(r[key]) for r in records if r.get(key) is not None]
    return float(np.median(values)) if values else None

  ancestor = lineage["ancestor"]
  return {"table": lineage["latency_table"],
          "ancestor_predicted_ms": ancestor.get("predicted_latency_ms"),
          "ancestor_measured_ms": ancestor.get("measured_latency_ms"),
          "median_abs_error_chosen": median(chosen), "median_abs_error_all": median(measured),
          "median_abs_speedup_error_chosen": median(chosen, "speedup_error"),
          "median_abs_speedup_error_all": median(measured, "speedup_error"),
          "measured_candidates": len(measured), "chosen_candidates": len(chosen)}


def train_ancestor_dir(ancestor_dir: str, spec: spec_lib.NetSpec, data_fn: Callable[..., Any],
                       data_config: data_lib.DataConfig, train_config: train_lib.TrainConfig,
                       verbose: Any = "auto") -> None:
  """Trains the ancestor on fresh pipelines from `data_fn` (picklable: runs in a worker)."""
  train_ds, val_ds, info = data_fn()
  train_lib.train_model_dir(ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info,
                            seed=data_config.seed, verbose=verbose, label="ancestor")


def lineage_fine_tune_epochs(lineage: Dict[str, Any], config: evolution.EvolutionConfig,
                             squishednet_metrics: Optional[Dict[str, Any]] = None) -> int:
  """Fine-tuning epochs along the chosen lineage: each chosen offspring's, then the final
  stage's share (`polish.lineage_epochs`)."""
  epochs = polish_lib.chosen_fine_tune_epochs(lineage, config)
  if squishednet_metrics and squishednet_metrics.get("polished_from"):
    epochs += polish_lib.lineage_epochs(squishednet_metrics)
  return epochs


def baseline_budget(squishednet_dir: str, result: evolution.EvolutionResult,
                    config: evolution.EvolutionConfig, train_config: train_lib.TrainConfig,
                    seed: int) -> baselines_lib.BaselineBudget:
  """The SquishedNet's size and training epochs, and the recipe every baseline trains with."""
  metrics = model_io.read_json(os.path.join(squishednet_dir, model_io.METRICS_FILE))
  return _budget(int(metrics["params"]), lineage_fine_tune_epochs(result.lineage, config, metrics),
                 config, train_config, seed)


def planned_budget(result: evolution.EvolutionResult, config: evolution.EvolutionConfig,
                   train_config: train_lib.TrainConfig, seed: int) -> baselines_lib.BaselineBudget:
  """`baseline_budget` before a --final_init=scratch SquishedNet has trained: it has the
  winner's widths, and the lineage's epochs are known."""
  if config.final_init != "scratch":
    raise ValueError("Only a SquishedNet trained from scratch has its budget before it trains.")
  return _budget(model_io.read_spec(result.winner_dir).params(),
                 polish_lib.scratch_fine_tune_epochs(result, config), config, train_config, seed)


def _budget(target_params: int, fine_tune: int, config: evolution.EvolutionConfig,
            train_config: train_lib.TrainConfig, seed: int) -> baselines_lib.BaselineBudget:
  return baselines_lib.BaselineBudget(
      target_params=target_params, total_epochs=train_config.epochs + fine_tune,
      fine_tune_epochs=max(1, fine_tune), train_config=train_config,
      fine_tune_learning_rate=config.offspring_learning_rate,
      fine_tune_warmup_epochs=config.offspring_warmup_epochs,
      distill=config.distill_config(), seed=seed)


def evaluate_on_test(model_dirs: Dict[str, str], test_ds: tf.data.Dataset,
                     log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Test loss, top-1 and top-5 of every model dir's Keras model: the evaluation.json dict."""
  out: Dict[str, Any] = {"split": "test", "models": {}}
  for name, model_dir in model_dirs.items():
    model, _, _ = model_io.load_model_dir(model_dir, require_spec=False)
    out["models"][name] = train_lib.evaluate(model, test_ds)
    log(f"  {name:<24} test top-1 {out['models'][name]['top1']:.4f}")
  return out


def build_results(config: JobConfig, info: data_lib.DatasetInfo, data_config: data_lib.DataConfig,
                  lineage: Dict[str, Any], squishednet_dir: str, baseline_dirs: Dict[str, str],
                  benchmark: Dict[str, Any], evaluation: Dict[str, Any],
                  times: Dict[str, float], command: Optional[str],
                  evolution_config: Optional[evolution.EvolutionConfig] = None
                  ) -> Dict[str, Any]:
  """The results.json dict: every figure the report shows.

  Accuracies (`top1`, `top5`) are on the test split (evaluation.json and the
  benchmark's per-format passes); what selection read is kept apart as
  `validation_top1`. Sizes are deployed sizes (batch norm folded);
  `keras_params` is Keras' count of the training model.
  """
  evolution_config = evolution_config or evolution.EvolutionConfig()
  speed = benchmark_lib.litert_fields(benchmark, artefact="tflite_fp32", reference="ancestor",
                                      statistic="images_per_sec_p50")
  # Speed-ups are the interleaved pairs' medians (int8 over the fp32 ancestor).
  int8_speed = benchmark_lib.litert_fields(benchmark, artefact="tflite_int8",
                                           reference="ancestor", statistic="images_per_sec_p50",
                                           reference_artefact="tflite_fp32")
  tested = evaluation.get("models", {})
  models: Dict[str, Dict[str, Any]] = {}

  def entry(name: str, label: str, kind: str, metrics: Dict[str, Any],
            model_dir: Optional[str]) -> Dict[str, Any]:
    out = {key: metrics.get(key) for key in ("params", "keras_params", "size_mb", "macs",
                                             "nonzero_params", "sparsity", "alpha",
                                             "train_epochs", "train_images")}
    if out["keras_params"] is None and model_dir and os.path.isfile(
        os.path.join(model_dir, model_io.SPEC_FILE)):
      out["keras_params"] = model_io.read_spec(model_dir).keras_params()
    test = tested.get(name, {})
    out.update({"top1": test.get("top1"), "top5": test.get("top5"),
                "validation_top1": metrics.get("top1")})
    if out["top1"] is not None and out["params"] and out["macs"]:
      out["netscore"] = metrics_lib.netscore(out["top1"], out["params"], out["macs"])
    out.update({"label": label, "kind": kind})
    out.update(speed.get(name, {}))
    int8 = int8_speed.get(name, {})
    out["litert_int8_images_per_sec"] = int8.get("litert_images_per_sec")
    out["int8_speedup_vs_ancestor"] = int8.get("speedup_vs_ancestor")
    out["int8_speedup_vs_ancestor_range"] = int8.get("speedup_vs_ancestor_range")
    artefacts = benchmark.get("models", {}).get(name, {}).get("artefacts", {})
    out["formats"] = {fmt: {"bytes": a.get("bytes"), "top1": a.get("top1"),
                            "agreement": a.get("agreement")} for fmt, a in artefacts.items()}
    fp32 = artefacts.get("tflite_fp32", {}).get("path")
    if name == "magnitude_pruned" and fp32 and os.path.isfile(fp32):
      out["gzip_bytes"] = export_lib.gzip_size(fp32)
    return out

  ancestor_metrics = model_io.read_json(os.path.join(lineage["ancestor"]["dir"],
                                                     model_io.METRICS_FILE))
  ancestor_entry = dict(lineage["ancestor"], train_epochs=ancestor_metrics.get("train_epochs"),
                        train_images=ancestor_metrics.get("train_images"))
  models["ancestor"] = entry("ancestor", "Ancestor (SqueezeNet v1.1, few-class)", "ancestor",
                             ancestor_entry, lineage["ancestor"]["dir"])
  squished_metrics = model_io.read_json(os.path.join(squishednet_dir, model_io.METRICS_FILE))
  polished = squished_metrics.get("polished_from")
  retrained = polished and squished_metrics.get("final_init") == "scratch"
  label = (f"SquishedNet ({polished}'s widths, retrained)" if retrained
           else f"SquishedNet ({polished}, polished)" if polished
           else f"SquishedNet ({lineage['winner']})")
  models["squishednet"] = entry("squishednet", label, "squishednet", squished_metrics,
                                squishednet_dir)
  # What it took: the ancestor, every candidate evolution trained (discarded
  # ones included) and the polish.
  evolution_images = sum(int(r.get("train_images") or 0) for r in lineage["candidates"])
  models["squishednet"]["train_images"] = (
      int(ancestor_metrics.get("train_images") or 0) + evolution_images
      + int(squished_metrics.get("train_images") or 0 if polished else 0))
  # Epochs: the lineage's budget (ancestor + chosen offspring + the final stage's share),
  # which every baseline trains for; from scratch the SquishedNet's own training is that long.
  models["squishednet"]["train_epochs"] = (
      int(ancestor_metrics.get("train_epochs") or 0)
      + lineage_fine_tune_epochs(lineage, evolution_config, squished_metrics))
  for name, directory in baseline_dirs.items():
    metrics = model_io.optional_read_json(os.path.join(directory, model_io.METRICS_FILE))
    if metrics is not None:
      models[name] = entry(name, baselines_lib.LABELS[name], "baseline", metrics, directory)
  candidates = []
  for r in lineage["candidates"]:
    row = {k: r.get(k) for k in ("id", "generation", "candidate", "attempt", "parent", "params",
                                 "size_mb", "macs", "status", "chosen", "env_factor",
                                 "wall_seconds", "train_images")}
    row.update({k: r[k] for k in LATENCY_KEYS if k in r})
    row["validation_top1"] = r.get("top1")
    row["top1"] = tested.get(r["id"], {}).get("top1")
    row["netscore"] = (metrics_lib.netscore(row["top1"], r["params"], r["macs"])
                       if row["top1"] is not None else None)
    candidates.append(row)
  total = sum(times.values())
  return {
      "run_name": config.run_name,
      "command": command,
      "dataset": {"name": info.name, "image_size": data_config.image_size,
                  "train_count": info.train_count, "validation_count": info.validation_count,
                  "test_count": getattr(info, "test_count", None),
                  "class_names": list(info.class_names)},
      "accuracy_split": "test",
      "models": models,
      "candidates": candidates,
      "latency_model": latency_summary(lineage),
      "generations": lineage["generations"],
      "winner": lineage["winner"],
      "polished": bool(polished),
      "final_init": squished_metrics.get("final_init", "inherit") if polished else None,
      "stop_reason": lineage["stop_reason"],
      "paper": [dict(p) for p in PAPER],
      "reference": {"squeezenet_v1_1_size_mb": SQUEEZENET_V1_1_SIZE_MB},
      "machine": _machine(benchmark.get("settings", {})),
      "wall_seconds": dict(times, total=total),
  }


def _machine(settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  """The benchmark's machine, with the LiteRT thread count the report names."""
  machine = settings.get("machine")
  if machine is None:
    return None
  return dict(machine, num_threads=settings.get("num_threads"))
