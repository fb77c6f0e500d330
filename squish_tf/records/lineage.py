"""lineage.json: every candidate evolution trained, each generation's summary, the outcome."""

import dataclasses
from typing import Any, ClassVar, Dict, List, Optional

from squish_tf.records.base import Record, extra, optional, records_codec, value
from squish_tf.records.results import Generation

LINEAGE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Candidate(Record):
  """One candidate offspring evolution trained (lineage.json's `candidates` entry).

  Attributes:
    id, generation, candidate, attempt, parent: which draw it was ("gen_001/cand_02").
    seed: the draw's entropy [seed, generation, candidate, attempt].
    env_mode, env_factor, layer_env_factors: the environmental factor, mean and per layer.
    survivors: {layer: the filters kept}.
    expected_params, expected_macs: what the draw expected to keep.
    expected_latency_ms, predicted_latency_ms: the latency table's (with one only).
    train_epochs, train_images: its fine-tune; teacher: whom it was distilled from.
    params, size_mb, macs, filters: its deployed size.
    synaptic_efficiency, cluster_efficiency: the ancestor's params and filters over its own.
    top1: validation top-1 (None when diverged); top5, loss, netscore: a trained one's.
    fine_tune_images_per_sec: a trained one's fine-tune speed.
    status, chosen: "ok" or "diverged"; whether its generation chose it.
    dir: its model dir relative to the run dir (None when diverged).
    wall_seconds: what it took.
    micro: its predicted int8 flash and TFLite-Micro arena and the microcontroller budgets it
      is over (with --max_arena_kb or --max_flash_kb only).
    measured_latency_ms ... speedup_error: its interleaved timing against the ancestor
      (LiteRT, or the built-in device `measured_device` on its own runtime) and the latency
      table's error (with a table of the same clock only).
    deep_top1, deep_epochs, deep_train_images, deep_wall_seconds: its deeper fine-tune when
      it decided a stop for accuracy (`squish_tf.evolve.deep_budget`); top1 stays the short
      fine-tune's.
    extra: keys of another version of the file, kept as read.
  """

  id: Optional[str] = value()
  generation: Optional[int] = value()
  candidate: Optional[int] = value()
  attempt: Optional[int] = value()
  parent: Optional[str] = value()
  seed: Optional[List[int]] = value()
  env_mode: Optional[str] = value()
  env_factor: Optional[float] = value()
  layer_env_factors: Optional[Dict[str, float]] = value()
  survivors: Optional[Dict[str, Any]] = value()
  expected_params: Optional[float] = value()
  expected_macs: Optional[float] = value()
  expected_latency_ms: Optional[float] = optional()
  predicted_latency_ms: Optional[float] = optional()
  train_epochs: Optional[int] = value()
  train_images: Optional[int] = value()
  teacher: Optional[str] = value()
  params: Optional[int] = value()
  size_mb: Optional[float] = value()
  macs: Optional[int] = value()
  filters: Optional[int] = value()
  synaptic_efficiency: Optional[float] = optional()
  cluster_efficiency: Optional[float] = optional()
  top1: Optional[float] = value()
  top5: Optional[float] = optional()
  loss: Optional[float] = optional()
  netscore: Optional[float] = optional()
  fine_tune_images_per_sec: Optional[float] = optional()
  status: Optional[str] = value()
  chosen: Optional[bool] = value()
  dir: Optional[str] = value()
  wall_seconds: Optional[float] = value()
  measured_latency_ms: Optional[float] = optional()
  measured_speedup: Optional[Dict[str, Any]] = optional()
  measured_format: Optional[str] = optional()
  measured_device: Optional[str] = optional()
  predicted_speedup: Optional[float] = optional()
  latency_error: Optional[float] = optional()
  speedup_error: Optional[float] = optional()
  micro: Optional[Dict[str, Any]] = optional()
  deep_top1: Optional[float] = optional()
  deep_epochs: Optional[int] = optional()
  deep_train_images: Optional[int] = optional()
  deep_wall_seconds: Optional[float] = optional()
  extra: Dict[str, Any] = extra()


@dataclasses.dataclass(frozen=True)
class Lineage(Record):
  """lineage.json: the ancestor, every candidate, each generation's summary, the outcome.

  Attributes:
    ancestor: the ancestor's figures, id and dir.
    candidates: every candidate trained (retries included), in the order made.
    generations: {"generation", "parent", "chosen", "stop_reason", "target_fraction"} each.
    winner, stop_reason, complete: evolution's outcome, once complete.
    latency_table: the latency table file (with --cost=latency or latency targets only).
    extra: keys of another version of the file, kept as read.
  """

  VERSION: ClassVar[Optional[int]] = LINEAGE_VERSION

  ancestor: Optional[Dict[str, Any]] = value()
  candidates: List[Candidate] = value(records_codec(Candidate), list)
  generations: List[Generation] = value(records_codec(Generation), list)
  winner: Optional[str] = value()
  stop_reason: Optional[str] = value()
  complete: Optional[bool] = value()
  latency_table: Optional[str] = optional()
  extra: Dict[str, Any] = extra()
