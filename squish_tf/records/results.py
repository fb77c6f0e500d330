"""results.json: the run's models, candidates and generations, as the report reads them.

Batch sizes and image sizes key their dicts as ints here and as strings in the file.
"""

import dataclasses
from typing import Any, ClassVar, Dict, List, Mapping, Optional

from squish_tf.records.base import (BY_BATCH, BY_RESOLUTION, Codec, Record, attribute, extra,
                                    optional, record_codec, records_codec, value)

RESULTS_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModelResult(Record):
  """One model of a run (results.json's `models` entry); accuracies are on the test split.

  Attributes:
    name: its key ("ancestor", "squishednet", a baseline's name); not in the entry.
    params, keras_params, size_mb, macs: deployed size (batch norm folded) and
      Keras' count of the training model.
    nonzero_params, sparsity, alpha: a pruned or width-scaled model's own figures.
    train_epochs, train_images: what it took (the SquishedNet's include the
      ancestor's and evolution's).
    matched_on, width_multiplier, latency_match: what a width-scaled baseline
      was matched on (a baseline's entry only; "ladder" for a width ladder's rung).
    channel_multiple: the tile a ladder rung's channel counts are multiples of.
    top1, top5: test-split accuracy; validation_top1: what selection read.
    netscore: from the test top-1, params and MACs (when all are known).
    label, kind: the report's label; "ancestor", "squishednet" or "baseline".
    tflite_fp32_bytes, tflite_int8_bytes: the .tflite files' sizes.
    litert_images_per_sec: {batch size: LiteRT fp32 images/s (median run)}.
    speedup_vs_ancestor: {batch size: LiteRT fp32 speed-up over the fp32
      ancestor (interleaved pairs' median), None where not measured}.
    speedup_vs_ancestor_range: {batch size: {"min", "max", "rounds"} or None}.
    speedup_at_resolution, speedup_at_resolution_range,
      litert_images_per_sec_at_resolution: the same at other image sizes,
      {image size: {batch size: ...}}.
      (The eight fields above are None for a model the benchmark did not measure.)
    litert_int8_images_per_sec, int8_speedup_vs_ancestor,
      int8_speedup_vs_ancestor_range: the int8 file's, over the fp32 ancestor.
    formats: {benchmark artefact: {"bytes", "top1", "agreement"}}.
    micro: the TFLite-Micro check of the int8 file (arena bytes), or None.
    gzip_bytes: the gzipped fp32 file (the magnitude-pruned model's only).
    extra: keys of another version of the file, kept as read.
  """

  name: str = attribute("")
  params: Optional[int] = value()
  keras_params: Optional[int] = value()
  size_mb: Optional[float] = value()
  macs: Optional[int] = value()
  nonzero_params: Optional[int] = value()
  sparsity: Optional[float] = value()
  alpha: Optional[float] = value()
  train_epochs: Optional[int] = value()
  train_images: Optional[int] = value()
  matched_on: Optional[str] = optional()
  width_multiplier: Optional[float] = optional()
  latency_match: Optional[Dict[str, Any]] = optional()
  channel_multiple: Optional[int] = optional()
  top1: Optional[float] = value()
  top5: Optional[float] = value()
  validation_top1: Optional[float] = value()
  netscore: Optional[float] = optional()
  label: Optional[str] = value()
  kind: Optional[str] = value()
  tflite_fp32_bytes: Optional[int] = optional()
  tflite_int8_bytes: Optional[int] = optional()
  litert_images_per_sec: Optional[Dict[int, Optional[float]]] = optional(BY_BATCH)
  speedup_vs_ancestor: Optional[Dict[int, Optional[float]]] = optional(BY_BATCH)
  speedup_vs_ancestor_range: Optional[Dict[int, Optional[Dict[str, Any]]]] = optional(BY_BATCH)
  speedup_at_resolution: Optional[Dict[int, Dict[int, Optional[float]]]] = optional(
      BY_RESOLUTION)
  speedup_at_resolution_range: Optional[Dict[int, Dict[int, Any]]] = optional(BY_RESOLUTION)
  litert_images_per_sec_at_resolution: Optional[Dict[int, Dict[int, Optional[float]]]] = (
      optional(BY_RESOLUTION))
  litert_int8_images_per_sec: Optional[Dict[int, Optional[float]]] = value(BY_BATCH)
  int8_speedup_vs_ancestor: Optional[Dict[int, Optional[float]]] = value(BY_BATCH)
  int8_speedup_vs_ancestor_range: Optional[Dict[int, Any]] = value(BY_BATCH)
  formats: Optional[Dict[str, Dict[str, Any]]] = value()
  micro: Optional[Dict[str, Any]] = value()
  gzip_bytes: Optional[int] = optional()
  extra: Dict[str, Any] = extra()


@dataclasses.dataclass(frozen=True)
class CandidateResult(Record):
  """One candidate in results.json: lineage.json's figures with its test accuracy.

  Attributes:
    id, generation, candidate, attempt, parent: which draw it was ("gen_001/cand_02").
    params, size_mb, macs: its deployed size.
    status, chosen: "ok" or "diverged"; whether its generation chose it.
    env_factor: the mean environmental factor of its draw.
    wall_seconds, train_images: what it took.
    expected_latency_ms ... speedup_error: the latency model's figures (with a table only).
    validation_top1: what selection read; top1: its test top-1; netscore from that.
    extra: keys of another version of the file, kept as read.
  """

  id: Optional[str] = value()
  generation: Optional[int] = value()
  candidate: Optional[int] = value()
  attempt: Optional[int] = value()
  parent: Optional[str] = value()
  params: Optional[int] = value()
  size_mb: Optional[float] = value()
  macs: Optional[int] = value()
  status: Optional[str] = value()
  chosen: Optional[bool] = value()
  env_factor: Optional[float] = value()
  wall_seconds: Optional[float] = value()
  train_images: Optional[int] = value()
  expected_latency_ms: Optional[float] = optional()
  predicted_latency_ms: Optional[float] = optional()
  measured_latency_ms: Optional[float] = optional()
  predicted_speedup: Optional[float] = optional()
  measured_speedup: Optional[Dict[str, Any]] = optional()
  measured_format: Optional[str] = optional()
  measured_device: Optional[str] = optional()
  latency_error: Optional[float] = optional()
  speedup_error: Optional[float] = optional()
  validation_top1: Optional[float] = value()
  top1: Optional[float] = value()
  netscore: Optional[float] = value()
  extra: Dict[str, Any] = extra()


@dataclasses.dataclass(frozen=True)
class DatasetSummary(Record):
  """The data a run used: name, image size and split sizes, class names."""

  name: Optional[str] = value()
  image_size: Optional[int] = value()
  train_count: Optional[int] = value()
  validation_count: Optional[int] = value()
  test_count: Optional[int] = value()
  class_names: Optional[List[str]] = value()
  extra: Dict[str, Any] = extra()


@dataclasses.dataclass(frozen=True)
class Generation(Record):
  """One generation's summary (lineage.json's and results.json's `generations` entry).

  Attributes:
    generation: its number, from 1.
    parent: the candidate (or "ancestor") its offspring were drawn from.
    chosen: the candidate selection kept, or None when none was eligible.
    stop_reason: why evolution stopped after it (None: it went on).
    target_fraction: the size fraction its draws aimed at (--env_mode=target only).
    extra: keys of another version of the file, kept as read.
  """

  generation: Optional[int] = optional()
  parent: Optional[str] = optional()
  chosen: Optional[str] = optional()
  stop_reason: Optional[str] = optional()
  target_fraction: Optional[float] = optional()
  extra: Dict[str, Any] = extra()


@dataclasses.dataclass(frozen=True)
class LatencyModel(Record):
  """The latency table's predictions against the interleaved measurements (results.json's
  `latency_model`): errors are predicted / measured - 1, medians of their absolute values.

  Attributes:
    table: the latency table file.
    ancestor_predicted_ms, ancestor_measured_ms: the ancestor's LiteRT latency.
    median_abs_error_chosen, median_abs_error_all: of the latency, over the chosen
      offspring and over every measured candidate.
    median_abs_speedup_error_chosen, median_abs_speedup_error_all: of the speed-up over
      the ancestor.
    measured_candidates, chosen_candidates: how many of each.
    extra: keys of another version of the file, kept as read.
  """

  table: Optional[str] = value()
  ancestor_predicted_ms: Optional[float] = value()
  ancestor_measured_ms: Optional[float] = value()
  median_abs_error_chosen: Optional[float] = value()
  median_abs_error_all: Optional[float] = value()
  median_abs_speedup_error_chosen: Optional[float] = value()
  median_abs_speedup_error_all: Optional[float] = value()
  measured_candidates: Optional[int] = value()
  chosen_candidates: Optional[int] = value()
  extra: Dict[str, Any] = extra()


def _models_codec() -> Codec:
  """{name: ModelResult}, each knowing its name."""

  def decode(data):
    if not isinstance(data, Mapping):
      return {}
    return {name: ModelResult.from_json(entry, name=name) for name, entry in data.items()}

  return Codec(lambda models: {name: model.to_json() for name, model in models.items()}, decode)


@dataclasses.dataclass(frozen=True)
class Results(Record):
  """results.json: every figure the report shows.

  Attributes:
    run_name, command: the run and the command that reproduces it.
    dataset: the data it used.
    accuracy_split: "test" (None in files older than the test split: validation).
    models: {name: ModelResult}: the ancestor, the SquishedNet, the baselines.
    candidates: every candidate evolution trained.
    latency_model: the latency table's predictions against measurements, or None.
    frontier: test top-1 against latency, one point per measured network.
    test_correct: which test images each model gets right, {"images", "labels" (a digest of
      the split's labels), "models": {name: packed bits}} (`squish_tf.report.paired`), so
      that verdicts can say whether a difference is beyond the test split's noise; absent in
      files written before it.
    generations: each generation's summary (lineage.json's).
    winner, polished, final_init, final_choice, stop_reason: evolution's outcome
      and the final stage's.
    paper, reference: the paper's figures and SqueezeNet v1.1's size, for scale.
    machine: the benchmark's machine; wall_seconds: {stage: seconds, "total"}.
    extra: keys of another version of the file, kept as read.
  """

  VERSION: ClassVar[Optional[int]] = RESULTS_VERSION

  run_name: Optional[str] = value()
  command: Optional[str] = value()
  dataset: Optional[DatasetSummary] = value(record_codec(DatasetSummary))
  accuracy_split: Optional[str] = value()
  models: Dict[str, ModelResult] = value(_models_codec(), dict)
  candidates: List[CandidateResult] = value(records_codec(CandidateResult), list)
  latency_model: Optional[LatencyModel] = value(record_codec(LatencyModel))
  frontier: Optional[List[Dict[str, Any]]] = value()
  generations: List[Generation] = value(records_codec(Generation), list)
  winner: Optional[str] = value()
  polished: Optional[bool] = value()
  final_init: Optional[str] = value()
  final_choice: Optional[Dict[str, Any]] = value()
  stop_reason: Optional[str] = value()
  family: Optional[Dict[str, Any]] = optional()
  test_correct: Optional[Dict[str, Any]] = optional()
  paper: Optional[List[Dict[str, Any]]] = value()
  reference: Optional[Dict[str, Any]] = value()
  machine: Optional[Dict[str, Any]] = value()
  wall_seconds: Optional[Dict[str, float]] = value()
  extra: Dict[str, Any] = extra()
