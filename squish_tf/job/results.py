"""results.json: the run's figures assembled from the model dirs, lineage, evaluation and the
benchmark, with the paper's figures beside ours."""

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from squish_tf import export as export_lib
from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.bench import pairs as pairs_lib
from squish_tf.bench.comparisons import REFERENCE_ARTEFACT
from squish_tf.bench.config import RESOLUTION_BATCH_SIZES
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.job.budget import lineage_fine_tune_epochs
from squish_tf.job.config import JobConfig
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.report import frontier as frontier_lib
from squish_tf.train import baseline_registry


def litert_fields(result: Mapping[str, Any], artefact: str = "tflite_fp32",
                  reference: str = "ancestor",
                  statistic: str = "images_per_sec",
                  reference_artefact: str = REFERENCE_ARTEFACT) -> Dict[str, Dict[str, Any]]:
  """Per model, the results.json fields a benchmark provides.

  Speed-ups come from the interleaved pairs ("pairs": `artefact` of the model
  vs `reference_artefact` of `reference`), never from dividing two separately
  timed speeds: a model whose pair was not measured has None. The reference's
  own file is 1.0 by definition.

  Args:
    result: a benchmark dict (`benchmark_models`).
    artefact: whose speed counts as "LiteRT images/sec".
    reference: the model speed-ups are relative to.
    statistic: "images_per_sec" (throughput over all timed runs) or
      "images_per_sec_p50" (the median run's; robust on a busy machine).
    reference_artefact: the reference's file speed-ups are over (fp32: the
      int8 speed-up is over the fp32 ancestor).

  Returns:
    {model: {"tflite_fp32_bytes", "tflite_int8_bytes",
             "litert_images_per_sec": {"1": ...},
             "speedup_vs_ancestor": {"1": median of the per-round ratios},
             "speedup_vs_ancestor_range": {"1": {"min", "max", "rounds"}},
             "speedup_at_resolution": {"224": {"1": median}},
             "speedup_at_resolution_range": {"224": {"1": {"min", "max", "rounds"}}},
             "litert_images_per_sec_at_resolution": {"224": {"1": median over rounds}}}}
    (None where a figure is missing). The `_at_resolution` fields are the
    pairs of "resolutions" (fp32 only; empty for other artefacts), each
    resolution's images/s the median of its interleaved rounds.
  """
  if statistic not in ("images_per_sec", "images_per_sec_p50"):
    raise ValueError(f"statistic must be 'images_per_sec' or 'images_per_sec_p50', got "
                     f"{statistic!r}.")
  models = result.get("models", {})
  base = pairs_lib.artefact_key(reference, reference_artefact)

  def speed(name: str) -> Dict[str, Optional[float]]:
    batches = ((models.get(name) or {}).get("artefacts", {}).get(artefact) or {}).get(
        "batches", {})
    return {size: stats.get(statistic) for size, stats in batches.items()}

  out: Dict[str, Dict[str, Any]] = {}
  for name, entry in models.items():
    artefacts = entry.get("artefacts", {})
    own = speed(name)
    subject = pairs_lib.artefact_key(name, artefact)
    speedups: Dict[str, Optional[float]] = {}
    ranges: Dict[str, Optional[Dict[str, Any]]] = {}
    for size in own:
      speedups[size], ranges[size] = _pair_speedup(result, subject, base, size, bool(own[size]))
    out[name] = {
        "tflite_fp32_bytes": (artefacts.get("tflite_fp32") or {}).get("bytes"),
        "tflite_int8_bytes": (artefacts.get("tflite_int8") or {}).get("bytes"),
        "litert_images_per_sec": own,
        "speedup_vs_ancestor": speedups,
        "speedup_vs_ancestor_range": ranges,
        **_resolution_fields(result, subject, base),
    }
  return out


def _resolution_fields(result: Mapping[str, Any], subject: str, base: str) -> Dict[str, Any]:
  """A file's speed-ups and images/s at the extra resolutions, from their interleaved pairs."""
  speedups: Dict[str, Dict[str, Optional[float]]] = {}
  ranges: Dict[str, Dict[str, Optional[Dict[str, Any]]]] = {}
  speeds: Dict[str, Dict[str, Optional[float]]] = {}
  for image_size, measured in (result.get("resolutions") or {}).items():
    sessions = (measured.get("interleaved") or {}).get("batches") or {}
    if subject not in (measured.get("files") or {}) and not any(
        pairs_lib.pair_key(subject, base) == name for name in measured.get("pairs") or {}):
      continue
    speedups[image_size], ranges[image_size], speeds[image_size] = {}, {}, {}
    for size in (str(b) for b in measured.get("batch_sizes") or RESOLUTION_BATCH_SIZES):
      timed = ((sessions.get(size) or {}).get("artefacts") or {}).get(subject)
      speeds[image_size][size] = None if timed is None else timed["images_per_sec"]["median"]
      speedups[image_size][size], ranges[image_size][size] = _pair_speedup(
          result, subject, base, size, timed is not None, image_size=image_size)
  return {"speedup_at_resolution": speedups, "speedup_at_resolution_range": ranges,
          "litert_images_per_sec_at_resolution": speeds}


def _pair_speedup(result: Mapping[str, Any], subject: str, base: str, size: str, timed: bool,
                  image_size: Optional[str] = None
                  ) -> Tuple[Optional[float], Optional[Dict[str, Any]]]:
  """(speed-up, {"min", "max", "rounds"}) of `subject` over `base` at one batch size, from
  their interleaved pair; the reference's own file is 1.0 when it was `timed` (no range)."""
  if subject == base:
    return (1.0 if timed else None), None
  stats = pairs_lib.pair_stats(result, subject, base, size, image_size=image_size)
  if stats is None:
    return None, None
  return stats["ratio_median"], {"min": stats["ratio_min"], "max": stats["ratio_max"],
                                 "rounds": stats["rounds"]}


PAPER = (
    {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 2.4, "top1": 0.812,
     "images_per_sec": 156},
    {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 0.95, "top1": 0.77,
     "images_per_sec": 256},
)
SQUEEZENET_V1_1_SIZE_MB = spec_lib.squeezenet_v1_1(1000).size_mb()


# What a candidate records of the latency model (--cost=latency, latency targets).
LATENCY_KEYS = ("expected_latency_ms", "predicted_latency_ms", "measured_latency_ms",
                "predicted_speedup", "measured_speedup", "measured_format",
                "measured_device", "latency_error",
                "speedup_error")


def latency_summary(lineage: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  """The latency model's predictions against measurements (None without a table).

  The error is predicted / measured - 1 of each candidate's LiteRT latency,
  and the speed-up error predicted / measured speed-up over the ancestor - 1
  (the latency error relative to the ancestor's in the same session, which
  the machine's load at the two moments does not enter); the medians are of
  their absolute values, over the chosen offspring and over every measured
  candidate.
  """
  record = records.Lineage.coerce(lineage)
  if not record.latency_table:
    return None
  measured = [c for c in record.candidates if c.latency_error is not None]
  chosen = [c for c in measured if c.chosen]

  def median(candidates, name="latency_error"):
    values = [abs(getattr(c, name)) for c in candidates if getattr(c, name) is not None]
    return float(np.median(values)) if values else None

  ancestor = record.ancestor or {}
  return {"table": record.latency_table,
          "ancestor_predicted_ms": ancestor.get("predicted_latency_ms"),
          "ancestor_measured_ms": ancestor.get("measured_latency_ms"),
          "median_abs_error_chosen": median(chosen), "median_abs_error_all": median(measured),
          "median_abs_speedup_error_chosen": median(chosen, "speedup_error"),
          "median_abs_speedup_error_all": median(measured, "speedup_error"),
          "measured_candidates": len(measured), "chosen_candidates": len(chosen)}


@dataclasses.dataclass(frozen=True)
class ResultsInputs:
  """What results.json is assembled from.

  Attributes:
    config, info, data_config: the job, its data and the data's config.
    lineage: lineage.json.
    squishednet_dir, baseline_dirs: the SquishedNet's model dir; {baseline: model dir}.
    benchmark, evaluation: benchmark.json and evaluation.json.
    times: {stage: wall seconds}.
    command: the command that reproduces the run.
    evolution_config: evolution's (the lineage's epoch budget), default if None.
    family: the family's members besides the SquishedNet, [{"name", "labels", "candidate",
      "dir" (its model dir)}] in lineage order (`job.family`); empty for a family of one.
  """

  config: JobConfig
  info: data_config_lib.DatasetInfo
  data_config: data_config_lib.DataConfig
  lineage: Dict[str, Any]
  squishednet_dir: str
  baseline_dirs: Dict[str, str]
  benchmark: Dict[str, Any]
  evaluation: Dict[str, Any]
  times: Dict[str, float]
  command: Optional[str]
  evolution_config: Optional[evolve_config_lib.EvolutionConfig] = None
  family: Sequence[Mapping[str, Any]] = ()


def build_results(*args, **kwargs) -> Dict[str, Any]:
  """The results.json dict: `results_record(ResultsInputs(*args, **kwargs)).to_json()`."""
  return results_record(ResultsInputs(*args, **kwargs)).to_json()


@dataclasses.dataclass(frozen=True)
class _Measured:
  """What every model's entry reads besides its metrics.json: the test evaluation and the
  benchmark (its per-model figures and the fp32 and int8 speed-ups)."""

  tested: Mapping[str, Any]
  benchmark: Mapping[str, Any]
  speed: Mapping[str, Dict[str, Any]]
  int8_speed: Mapping[str, Dict[str, Any]]

  @classmethod
  def of(cls, benchmark: Dict[str, Any], evaluation: Dict[str, Any]) -> "_Measured":
    # Speed-ups are the interleaved pairs' medians (int8 over the fp32 ancestor).
    return cls(tested=evaluation.get("models", {}), benchmark=benchmark,
               speed=litert_fields(benchmark, artefact="tflite_fp32", reference="ancestor",
                                   statistic="images_per_sec_p50"),
               int8_speed=litert_fields(benchmark, artefact="tflite_int8",
                                        reference="ancestor", statistic="images_per_sec_p50",
                                        reference_artefact="tflite_fp32"))


SIZE_KEYS = ("params", "keras_params", "size_mb", "macs", "nonzero_params", "sparsity", "alpha",
             "train_epochs", "train_images")
# A width-scaled baseline says what it was matched on (deployed size, latency, or a ladder's
# rung and its tile).
MATCH_KEYS = ("matched_on", "width_multiplier", "latency_match", "channel_multiple")


def model_result(name: str, label: str, kind: str, metrics: Mapping[str, Any],
                 model_dir: Optional[str], measured: _Measured,
                 **figures) -> records.ModelResult:
  """One model's entry from its metrics.json, evaluation and benchmark; `figures` override
  its metrics' (the SquishedNet's whole-lineage budget)."""
  sizes = {key: metrics.get(key) for key in SIZE_KEYS}
  sizes.update(figures)
  if sizes["keras_params"] is None and model_dir and os.path.isfile(
      os.path.join(model_dir, model_io.SPEC_FILE)):
    sizes["keras_params"] = model_io.read_spec(model_dir).keras_params()
  test = measured.tested.get(name, {})
  top1 = test.get("top1")
  scored = top1 is not None and sizes["params"] and sizes["macs"]
  int8 = measured.int8_speed.get(name, {})
  artefacts = measured.benchmark.get("models", {}).get(name, {}).get("artefacts", {})
  fp32 = artefacts.get("tflite_fp32", {}).get("path")
  gzipped = name == "magnitude_pruned" and fp32 and os.path.isfile(fp32)
  return records.ModelResult.make(
      name=name, **sizes, **{key: metrics[key] for key in MATCH_KEYS if key in metrics},
      top1=top1, top5=test.get("top5"), validation_top1=metrics.get("top1"),
      **({"netscore": metrics_lib.netscore(top1, sizes["params"], sizes["macs"])}
         if scored else {}),
      label=label, kind=kind,
      **records.ModelResult.decode(measured.speed.get(name, {})),
      litert_int8_images_per_sec=records.BY_BATCH.decode(int8.get("litert_images_per_sec")),
      int8_speedup_vs_ancestor=records.BY_BATCH.decode(int8.get("speedup_vs_ancestor")),
      int8_speedup_vs_ancestor_range=records.BY_BATCH.decode(
          int8.get("speedup_vs_ancestor_range")),
      formats={fmt: {"bytes": a.get("bytes"), "top1": a.get("top1"),
                     "agreement": a.get("agreement")} for fmt, a in artefacts.items()},
      micro=_micro(artefacts),
      **({"gzip_bytes": export_lib.gzip_size(fp32)} if gzipped else {}))


def _micro(artefacts: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
  """The int8 file's TFLite-Micro check, from its export manifest."""
  int8_path = artefacts.get("tflite_int8", {}).get("path")
  manifest = files_lib.optional_read_json(
      os.path.join(os.path.dirname(int8_path), export_lib.MANIFEST_FILE)) if int8_path else None
  int8 = records.ExportManifest.coerce(manifest).formats.get("int8")
  return int8.micro if int8 else None


def _squishednet(lineage: Dict[str, Any], squishednet_dir: str,
                 ancestor_metrics: Mapping[str, Any],
                 evolution_config: evolve_config_lib.EvolutionConfig,
                 measured: _Measured) -> Tuple[records.ModelResult, Mapping[str, Any]]:
  """The SquishedNet's entry, with what it took from the ancestor on; and its metrics.json."""
  squished_metrics = files_lib.read_json(os.path.join(squishednet_dir, model_io.METRICS_FILE))
  polished = squished_metrics.get("polished_from")
  retrained = polished and squished_metrics.get("final_init") == "scratch"
  label = (f"SquishedNet ({polished}'s widths, retrained)" if retrained
           else f"SquishedNet ({polished}, polished)" if polished
           else f"SquishedNet ({records.Lineage.coerce(lineage).winner})")
  # What it took: the ancestor, every candidate evolution trained (discarded
  # ones included) and the polish.
  evolution_images = sum(int(c.train_images or 0) + int(c.deep_train_images or 0)
                         for c in records.Lineage.coerce(lineage).candidates)
  train_images = (
      int(ancestor_metrics.get("train_images") or 0) + evolution_images
      + int(squished_metrics.get("train_images") or 0 if polished else 0)
      + int(squished_metrics.get("discarded_train_images") or 0 if polished else 0))
  # Epochs: the lineage's budget (ancestor + chosen offspring + the final stage's share),
  # which every baseline trains for; from scratch the SquishedNet's own training is that long.
  train_epochs = (int(ancestor_metrics.get("train_epochs") or 0)
                  + lineage_fine_tune_epochs(lineage, evolution_config, squished_metrics))
  entry = model_result("squishednet", label, "squishednet", squished_metrics, squishednet_dir,
                       measured, train_epochs=train_epochs, train_images=train_images)
  return entry, squished_metrics


def _candidate(c: records.Candidate, tested: Mapping[str, Any]) -> records.CandidateResult:
  """A lineage.json candidate as results.json lists it, with its test top-1."""
  top1 = tested.get(c.id, {}).get("top1")
  return records.CandidateResult.make(
      id=c.id, generation=c.generation, candidate=c.candidate, attempt=c.attempt,
      parent=c.parent, params=c.params, size_mb=c.size_mb, macs=c.macs, status=c.status,
      chosen=c.chosen, env_factor=c.env_factor, wall_seconds=c.wall_seconds,
      train_images=c.train_images, **{k: getattr(c, k) for k in LATENCY_KEYS if c.has(k)},
      # What selection read: after the deeper fine-tune when one was made (its weights are the
      # model dir's, which the test split scores too).
      validation_top1=c.deep_top1 if c.deep_top1 is not None else c.top1, top1=top1,
      netscore=metrics_lib.netscore(top1, c.params, c.macs) if top1 is not None else None)


def results_record(inputs: ResultsInputs) -> records.Results:
  """results.json: every figure the report shows.

  Accuracies (`top1`, `top5`) are on the test split (evaluation.json and the
  benchmark's per-format passes); what selection read is kept apart as
  `validation_top1`. Sizes are deployed sizes (batch norm folded);
  `keras_params` is Keras' count of the training model. `frontier` puts every
  network with a measured batch-1 speed-up over the ancestor (the exported
  models from the benchmark, the candidates from their `measured_speedup`) on
  one latency axis: latency_ms = the ancestor's benchmark latency (1000 /
  its fp32 batch-1 images/s) / the network's interleaved speed-up
  (`squish_tf.report.frontier.frontier_points`).
  """
  lineage, info = records.Lineage.coerce(inputs.lineage), inputs.info
  evolution_config = inputs.evolution_config or evolve_config_lib.EvolutionConfig()
  measured = _Measured.of(inputs.benchmark, inputs.evaluation)
  ancestor_dir = lineage.ancestor["dir"]
  ancestor_metrics = files_lib.read_json(os.path.join(ancestor_dir, model_io.METRICS_FILE))
  ancestor_entry = dict(lineage.ancestor, train_epochs=ancestor_metrics.get("train_epochs"),
                        train_images=ancestor_metrics.get("train_images"))
  squishednet, squished_metrics = _squishednet(inputs.lineage, inputs.squishednet_dir,
                                               ancestor_metrics, evolution_config, measured)
  models = {"ancestor": model_result("ancestor", "Ancestor (SqueezeNet v1.1, few-class)",
                                     "ancestor", ancestor_entry, ancestor_dir, measured),
            "squishednet": squishednet}
  for name, directory in inputs.baseline_dirs.items():
    metrics = files_lib.optional_read_json(os.path.join(directory, model_io.METRICS_FILE))
    if metrics is not None:
      # A ladder's rung is a model of its own, labelled in its metrics.json.
      label = baseline_registry.label(name, metrics.get("label") or name)
      models[name] = model_result(name, label, "baseline", metrics, directory, measured)
  for member in inputs.family:
    metrics = files_lib.read_json(os.path.join(member["dir"], model_io.METRICS_FILE))
    models[member["name"]] = model_result(
        member["name"], f"SquishedNet {'+'.join(member['labels'])} ({member['candidate']})",
        "member", metrics, member["dir"], measured)
  candidates = [_candidate(c, measured.tested) for c in lineage.candidates]
  polished = bool(squished_metrics.get("polished_from"))
  return records.Results(
      run_name=inputs.config.run_name, command=inputs.command,
      dataset=records.DatasetSummary(
          name=info.name, image_size=inputs.data_config.image_size, train_count=info.train_count,
          validation_count=info.validation_count, test_count=getattr(info, "test_count", None),
          class_names=list(info.class_names)),
      accuracy_split="test", models=models, candidates=candidates,
      latency_model=records.LatencyModel.coerce(latency_summary(lineage))
      if lineage.latency_table else None,
      # Test top-1 against latency (ancestor_ms / speed-up; squish_tf.report.frontier).
      frontier=frontier_lib.frontier_points(models, candidates),
      generations=lineage.generations, winner=lineage.winner, polished=polished,
      final_init=squished_metrics.get("final_init", "inherit") if polished else None,
      # --final_init=best: which of scratch and inherit was kept, both validation figures, why.
      final_choice=squished_metrics.get("final_choice") if polished else None,
      stop_reason=lineage.stop_reason, family=family_summary(inputs.lineage, inputs.family),
      test_correct=test_correct(inputs.evaluation, models),
      paper=[dict(p) for p in PAPER],
      reference={"squeezenet_v1_1_size_mb": SQUEEZENET_V1_1_SIZE_MB},
      machine=_machine(inputs.benchmark.get("settings", {})),
      wall_seconds=dict(inputs.times, total=sum(inputs.times.values())))


def test_correct(evaluation: Mapping[str, Any], models: Mapping[str, Any]
                 ) -> Optional[Dict[str, Any]]:
  """results.json's "test_correct": the per-image right/wrong vectors of `models` from
  evaluation.json; None when it has none (written before them)."""
  tested = evaluation.get("models") or {}
  packed = {name: tested[name]["correct"] for name in models
            if isinstance(tested.get(name), Mapping) and "correct" in tested[name]}
  if not packed or not isinstance(evaluation.get("images"), int):
    return None
  return {"images": evaluation["images"], "labels": evaluation.get("labels"), "models": packed}


def family_summary(lineage: Mapping[str, Any], family: Sequence[Mapping[str, Any]]
                   ) -> Optional[Dict[str, Any]]:
  """results.json's "family": each member's name, budgets and chosen offspring, in lineage
  order, the SquishedNet last; and the budgets not reached. None for a run without targets."""
  entries = lineage.get("family") or []
  if not entries:
    return None
  winner = lineage.get("winner")
  members = [{"name": m["name"], "labels": list(m["labels"]), "candidate": m["candidate"]}
             for m in family]
  members.append({"name": "squishednet", "candidate": winner,
                  "labels": [e["label"] for e in entries if e.get("id") == winner]})
  return {"members": members,
          "targets": [e["label"] for e in entries],
          "unmet": [e["label"] for e in entries if not e.get("id")]}


def _machine(settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  """The benchmark's machine, with the LiteRT thread count the report names."""
  machine = settings.get("machine")
  if machine is None:
    return None
  return dict(machine, num_threads=settings.get("num_threads"))
