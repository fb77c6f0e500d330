"""lineage.json: every candidate's parent, seed, factor, size and accuracy, which was chosen;
candidate ids and directories; the run identity that a resume checks."""

import dataclasses
import hashlib
import logging
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve.config import EvolutionConfig
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io
from squish_tf.net import spec as spec_lib
from squish_tf.train import config as train_config_lib

LINEAGE_FILE = "lineage.json"
CONFIG_FILE = "evolution_config.json"
GENERATIONS_DIR = "generations"


ANCESTOR_ID = "ancestor"
LINEAGE_VERSION = records.LINEAGE_VERSION


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


def model_dir_of(run_dir: str, identifier: str, lineage: Dict[str, Any]) -> str:
  if identifier == ANCESTOR_ID:
    return lineage["ancestor"]["dir"]
  generation, candidate = _parse_id(identifier)
  return candidate_dir(run_dir, generation, candidate)


def new_lineage(parent_dir: str, spec: spec_lib.NetSpec,
                 metrics: Dict[str, Any]) -> Dict[str, Any]:
  ancestor = metrics_lib.model_metrics(
      spec, {k: metrics[k] for k in ("top1", "top5", "loss") if k in metrics}, spec)
  ancestor.update({"id": ANCESTOR_ID, "dir": os.path.abspath(parent_dir)})
  return {"version": LINEAGE_VERSION, "ancestor": ancestor, "candidates": [], "generations": [],
          "winner": None, "stop_reason": None, "complete": False}


def load_lineage(run_dir: str) -> Optional[Dict[str, Any]]:
  lineage = files_lib.optional_read_json(os.path.join(run_dir, LINEAGE_FILE))
  if lineage is None:
    return None
  # A candidate recorded as finished whose directory vanished is redone from its
  # recorded seed. When it was a generation's chosen one, that generation is
  # selected again and every later one redone: they descend from it.
  recorded = records.Lineage.from_json(lineage)
  missing = {c.id for c in recorded.candidates if c.status == "ok"
             and not model_io.is_complete(os.path.join(run_dir, c.dir))}
  lost = [g.generation for g in recorded.generations if g.chosen in missing]
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


def generation_summary(lineage: Dict[str, Any], generation: int) -> Optional[Dict[str, Any]]:
  for summary in lineage["generations"]:
    if summary["generation"] == generation:
      return summary
  return None


def last_chosen(lineage: Dict[str, Any]) -> str:
  chosen = [g.chosen for g in records.Lineage.coerce(lineage).generations if g.chosen]
  return chosen[-1] if chosen else ANCESTOR_ID


def evolution_result(run_dir: str, lineage: Dict[str, Any]) -> EvolutionResult:
  winner = lineage["winner"]
  return EvolutionResult(run_dir, winner, model_dir_of(run_dir, winner, lineage),
                         lineage["stop_reason"], lineage)


def _parse_id(identifier: str) -> Tuple[int, int]:
  gen, cand = identifier.split("/")
  return int(gen[len("gen_"):]), int(cand[len("cand_"):])


def run_identity(parent_dir: str, config: EvolutionConfig, synth: synthesis.SynthesisConfig,
                 run_flags: Optional[Dict[str, Any]] = None,
                 train_config: Optional[train_config_lib.TrainConfig] = None) -> Dict[str, Any]:
  """What a run dir's lineage depends on, flag by flag (evolution_config.json).

  Not in it: --workers and --device_cache_dir (results do not depend on them), --final_init and
  --final_epochs (the final stage comes after the lineage). `parent_identity` adds the parent itself.
  """
  train_config = train_config or train_config_lib.TrainConfig()
  identity = dict(run_flags or {})
  identity.update({f"--{k}": v for k, v in dataclasses.asdict(config).items()
                   if k not in ("workers", "final_init", "final_epochs", "device_cache_dir")})
  identity.update({f"--{k}": v for k, v in dataclasses.asdict(train_config).items()
                   if k not in ("epochs", "learning_rate", "warmup_epochs")})
  identity.update({(f"--{k}" if k != "target_fraction" else "synthesis.target_fraction"): v
                   for k, v in dataclasses.asdict(synth).items()})
  # The fraction target mode falls back on: --target_fraction when given (what the options
  # once copied into the encoding's config), else the encoding's.
  if config.target_fraction is not None:
    identity["synthesis.target_fraction"] = config.target_fraction
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
  existing = files_lib.optional_read_json(os.path.join(run_dir, CONFIG_FILE))
  if existing is None:
    return
  identity = files_lib.json_round_trip(identity)
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


def check_or_write_identity(run_dir: str, identity: Dict[str, Any]) -> None:
  check_identity(run_dir, identity)
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.isfile(path):
    os.makedirs(run_dir, exist_ok=True)
    files_lib.write_json(path, files_lib.json_round_trip(identity))
