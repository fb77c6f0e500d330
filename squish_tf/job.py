"""The main job: train -> evolve -> export -> baselines -> benchmark -> report.

One call turns a dataset into a SquishedNet on disk with the evidence to trust
it, in `saved_models/<run_name>/` (see ARCHITECTURE.md). Every stage leaves a
completion marker written last and atomically (`ancestor/metrics.json`,
`lineage.json` with `complete`, `export/export.json`, `baselines/<name>/
metrics.json`, `benchmark.json`, `results.json`), and a re-run skips every
stage whose marker is there, so a killed job resumes where it stopped.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence

import tensorflow as tf

from squish_tf import baselines as baselines_lib
from squish_tf import benchmark as benchmark_lib
from squish_tf import data as data_lib
from squish_tf import evolution
from squish_tf import export as export_lib
from squish_tf import model_io
from squish_tf import report as report_lib
from squish_tf import spec as spec_lib
from squish_tf import synthesis
from squish_tf import train as train_lib

STAGES = report_lib.STAGES
RESULTS_FILE = "results.json"
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
    baselines: which baselines to train (empty: none).
    benchmark: how to time artefacts.
    eval_images: validation images for the benchmark's accuracy pass.
    classifier_activation / dropout_rate: ancestor spec choices.
    check_ancestor: stop when the trained ancestor's validation top-1 is at
      chance (tests of the plumbing, whose 1-epoch ancestors are, turn it off).
  """

  run_dir: str
  run_name: str = "demo"
  export_formats: Optional[Sequence[str]] = None
  qat_epochs: int = 1
  baselines: Sequence[str] = baselines_lib.BASELINES
  benchmark: benchmark_lib.BenchmarkConfig = benchmark_lib.BenchmarkConfig()
  eval_images: int = 500
  classifier_activation: str = "linear"
  dropout_rate: float = 0.5
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
  # Fresh pipelines on every call (same order on every resume); picklable for workers.
  data_fn = functools.partial(data_lib.load, data_config)
  train_ds, val_ds, info = data_fn()  # validates the data before anything is written
  spec = spec_lib.squishednet_base(
      num_classes=info.num_classes, input_shape=(data_config.image_size,) * 2 + (3,),
      dropout_rate=config.dropout_rate, classifier_activation=config.classifier_activation)
  ancestor_dir = os.path.join(run_dir, ANCESTOR_DIR)
  model_io.check_same_spec(ancestor_dir, spec)
  evolution.check_targets(spec, evolution_config, synth)
  os.makedirs(run_dir, exist_ok=True)
  if flags_text is not None:
    model_io.write_text(os.path.join(run_dir, model_io.FLAGS_FILE), flags_text)
  times_path = os.path.join(run_dir, STAGE_TIMES_FILE)
  times: Dict[str, float] = model_io.optional_read_json(times_path) or {}

  def stage(name: str, done: bool, work: Callable[[], None]) -> None:
    if done:
      log(f"[{name}] already complete, skipped")
    else:
      log(f"[{name}] ...")
      start = time.time()
      work()
      times[name] = times.get(name, 0.0) + time.time() - start
      model_io.write_json(times_path, times)
    for hook in on_stage_done:
      hook(name)

  # 1. The ancestor.
  stage("ancestor", model_io.is_complete(ancestor_dir), lambda: train_lib.train_model_dir(
      ancestor_dir, spec, data_config, train_config, train_ds, val_ds, info, strategy=strategy,
      seed=data_config.seed, verbose=verbose))
  del train_ds
  if config.check_ancestor:
    train_lib.check_learned(model_io.read_json(os.path.join(ancestor_dir, model_io.METRICS_FILE)),
                            info.num_classes, ancestor_dir)

  # 2. Evolution.
  lineage_path = os.path.join(run_dir, evolution.LINEAGE_FILE)
  evolved: Dict[str, evolution.EvolutionResult] = {}

  def evolve():
    evolved["result"] = evolution.evolve(ancestor_dir, run_dir, evolution_config, synth, data_fn,
                                         strategy=strategy, run_flags=run_flags,
                                         listeners=[evolution.console_listener])

  lineage = model_io.optional_read_json(lineage_path) or {}
  stage("synthesis", bool(lineage.get("complete")), evolve)
  result = evolved.get("result") or evolution.evolve(ancestor_dir, run_dir, evolution_config,
                                                     synth, data_fn, strategy=strategy,
                                                     run_flags=run_flags)
  winner_dir = result.winner_dir

  # 3. Exports: the SquishedNet in full, the ancestor for comparison.
  exports = {
      "squishednet": (winner_dir, os.path.join(run_dir, EXPORT_DIR), config.export_formats),
      "ancestor": (ancestor_dir, os.path.join(ancestor_dir, EXPORT_DIR), COMPARISON_FORMATS),
  }

  @functools.lru_cache(maxsize=None)
  def export_data() -> export_lib.ExportData:
    """The export's images, drawn once for every model this job exports."""
    return export_lib.load_export_data(data_config)

  def export_all():
    for model_dir, export_dir, formats in exports.values():
      if not export_lib.is_complete(export_dir):
        manifest = export_lib.export_all(model_dir, export_dir, formats=formats,
                                         data=export_data(), qat_epochs=config.qat_epochs,
                                         overwrite=True)
        log(export_lib.summary_table(manifest))

  stage("export", all(export_lib.is_complete(e) for _, e, _ in exports.values()), export_all)

  # 4. Baselines at the SquishedNet's size and epochs.
  winner_metrics = model_io.read_json(os.path.join(winner_dir, model_io.METRICS_FILE))
  budget = baselines_lib.BaselineBudget(
      target_params=int(winner_metrics["params"]),
      total_epochs=train_config.epochs + _lineage_epochs(result, evolution_config),
      fine_tune_epochs=max(1, _lineage_epochs(result, evolution_config)),
      learning_rate=train_config.learning_rate,
      fine_tune_learning_rate=evolution_config.offspring_learning_rate, seed=data_config.seed)
  baseline_dirs = {name: os.path.join(run_dir, "baselines", name) for name in config.baselines}

  def baselines_done() -> bool:
    return all(model_io.optional_read_json(os.path.join(d, model_io.METRICS_FILE)) is not None
               and export_lib.is_complete(os.path.join(d, EXPORT_DIR))
               for d in baseline_dirs.values())

  def train_baselines():
    baselines_lib.run_baselines(run_dir, ancestor_dir, budget, data_fn, names=config.baselines,
                                strategy=strategy, verbose=0, workers=evolution_config.workers)
    for directory in baseline_dirs.values():
      export_dir = os.path.join(directory, EXPORT_DIR)
      if not export_lib.is_complete(export_dir):
        export_lib.export_all(directory, export_dir, formats=COMPARISON_FORMATS,
                              data=export_data(), overwrite=True)

  stage("baselines", baselines_done(), train_baselines)

  # 5. Benchmark every model's artefacts on the same validation images.
  benchmark_path = os.path.join(run_dir, benchmark_lib.BENCHMARK_FILE)
  targets = {"ancestor": {"model_dir": ancestor_dir, "export_dir": exports["ancestor"][1]},
             "squishednet": {"model_dir": winner_dir, "export_dir": exports["squishednet"][1]}}
  for name, directory in baseline_dirs.items():
    targets[name] = {"model_dir": directory, "export_dir": os.path.join(directory, EXPORT_DIR)}

  def run_benchmark():
    images, labels = data_lib.take_images(val_ds, config.eval_images)
    measured = {"version": benchmark_lib.BENCHMARK_VERSION,
                "settings": benchmark_lib.settings(config.benchmark, eval_images=len(images)),
                "models": {}}
    for name, where in targets.items():
      # The SquishedNet in every format; the others in what the report compares.
      formats = (None if name == "squishednet"
                 else COMPARISON_ARTEFACTS.get(name, BASELINE_ARTEFACTS))
      log(f"{name}:")
      measured["models"][name] = benchmark_lib.benchmark_model(
          where["model_dir"], where["export_dir"], images, labels,
          dataclasses.replace(config.benchmark, formats=formats), log=log)
    benchmark_lib.write_benchmark(benchmark_path, measured)

  existing = model_io.optional_read_json(benchmark_path)
  stage("benchmark", existing is not None and set(targets) <= set(existing.get("models", {})),
        run_benchmark)

  # 6. Results and report (cheap: always rewritten from what is on disk).
  results = build_results(config, info, data_config, result.lineage, winner_dir, baseline_dirs,
                          model_io.read_json(benchmark_path), times, command)
  model_io.write_json(os.path.join(run_dir, RESULTS_FILE), results)
  report_lib.write_report(run_dir, results)
  for hook in on_stage_done:
    hook("report")
  return results


def _lineage_epochs(result: evolution.EvolutionResult,
                    config: evolution.EvolutionConfig) -> int:
  """Fine-tuning epochs along the chosen lineage (one fine-tuning per generation won)."""
  chosen = [g for g in result.lineage["generations"] if g["chosen"]]
  return len(chosen) * config.offspring_epochs


def build_results(config: JobConfig, info: data_lib.DatasetInfo, data_config: data_lib.DataConfig,
                  lineage: Dict[str, Any], winner_dir: str, baseline_dirs: Dict[str, str],
                  benchmark: Dict[str, Any], times: Dict[str, float],
                  command: Optional[str]) -> Dict[str, Any]:
  """The results.json dict: every figure the report shows, from lineage and benchmark."""
  speed = benchmark_lib.litert_fields(benchmark, artefact="tflite_fp32", reference="ancestor",
                                      statistic="images_per_sec_p50")
  int8_speed = benchmark_lib.litert_fields(benchmark, artefact="tflite_int8",
                                           reference="ancestor", statistic="images_per_sec_p50")
  models: Dict[str, Dict[str, Any]] = {}

  def entry(name: str, label: str, kind: str, metrics: Dict[str, Any]) -> Dict[str, Any]:
    out = {key: metrics.get(key) for key in ("params", "size_mb", "macs", "top1", "top5",
                                             "netscore", "nonzero_params", "sparsity", "alpha")}
    out.update({"label": label, "kind": kind})
    out.update(speed.get(name, {}))
    out["litert_int8_images_per_sec"] = int8_speed.get(name, {}).get("litert_images_per_sec")
    artefacts = benchmark.get("models", {}).get(name, {}).get("artefacts", {})
    out["formats"] = {fmt: {"bytes": a.get("bytes"), "top1": a.get("top1"),
                            "agreement": a.get("agreement")} for fmt, a in artefacts.items()}
    fp32 = artefacts.get("tflite_fp32", {}).get("path")
    if name == "magnitude_pruned" and fp32 and os.path.isfile(fp32):
      out["gzip_bytes"] = export_lib.gzip_size(fp32)
    return out

  models["ancestor"] = entry("ancestor", "Ancestor (SqueezeNet v1.1, few-class)", "ancestor",
                             lineage["ancestor"])
  winner_metrics = model_io.read_json(os.path.join(winner_dir, model_io.METRICS_FILE))
  models["squishednet"] = entry("squishednet", f"SquishedNet ({lineage['winner']})",
                                "squishednet", winner_metrics)
  for name, directory in baseline_dirs.items():
    metrics = model_io.optional_read_json(os.path.join(directory, model_io.METRICS_FILE))
    if metrics is not None:
      models[name] = entry(name, baselines_lib.LABELS[name], "baseline", metrics)
  candidates = [{k: r.get(k) for k in ("id", "generation", "candidate", "attempt", "parent",
                                       "params", "size_mb", "macs", "top1", "netscore", "status",
                                       "chosen", "env_factor", "wall_seconds")}
                for r in lineage["candidates"]]
  total = sum(times.values())
  return {
      "run_name": config.run_name,
      "command": command,
      "dataset": {"name": info.name, "image_size": data_config.image_size,
                  "train_count": info.train_count, "validation_count": info.validation_count,
                  "class_names": list(info.class_names)},
      "models": models,
      "candidates": candidates,
      "generations": lineage["generations"],
      "winner": lineage["winner"],
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
