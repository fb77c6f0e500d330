"""Deep budgets: judge the candidates that decide a stop by what the final stage makes of them.

Offspring are judged after a short fine-tune (--offspring_epochs), while the
final stage (`squish_tf.evolve.polish`) then trains the winner far longer:
an offspring a few points outside --max_accuracy_drop after its short
fine-tune often ends within it once polished. So when no candidate of a
generation is within the budget, before evolution stops for "accuracy_drop":

1. the candidates that decide the stop (`deciding`): the best
   --deep_candidates ok ones by validation top-1 (ties: fewer parameters),
   within `SLACK` budgets of the ancestor and inside the microcontroller
   budgets;
2. each fine-tunes `deep_epochs(config)` more epochs (the polish's
   --final_epochs) from its own weights, with the fine-tuning recipe,
   distilled from the teacher as offspring are, on a data stream of its own
   (`deep_seed`), and is evaluated on the validation split again;
3. selection then runs among them on that figure (`extended`); a candidate
   within the budget now is chosen and evolution goes on from its deeper
   weights, else it stops as before.

The records keep the short fine-tune's `top1` (what every other candidate is
judged on) and gain `deep_top1`, `deep_epochs`, `deep_train_images` and
`deep_wall_seconds`; the model dir holds the deeper weights from then on
(its metrics.json says so, `deep_epochs`). A chosen candidate's deep epochs
count in the lineage's budget the baselines get (`polish.chosen_fine_tune_epochs`).

Nothing here reads the test split. A run killed during the deeper fine-tunes
resumes them (each backs up its epochs; a finished one is read back from its
metrics.json), and the same seed gives the same lineage.
"""

import dataclasses
import os
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras

from squish_tf import files as files_lib
from squish_tf.evolve import candidates as candidates_lib
from squish_tf.evolve.config import EvolutionConfig
from squish_tf.layout import WORK_SUFFIX
from squish_tf.net import model_io
from squish_tf.train import config as train_config_lib
from squish_tf.train import trainer as train_lib
from squish_tf.train.baselines import DataFn
from squish_tf.train.distill import teacher_fn

# A deciding candidate is at most this many --max_accuracy_drop budgets below the ancestor:
# one further down would need more than a longer fine-tune.
SLACK = 4.0
# Appended to a candidate's draw entropy: the deeper fine-tune's data stream and Keras seed.
DEEP_STREAM = 1
# The record fields a deeper fine-tune adds.
DEEP_KEYS = ("deep_top1", "deep_epochs", "deep_train_images", "deep_wall_seconds")


def deep_epochs(config: EvolutionConfig) -> int:
  """The deeper fine-tune's epochs: what the polish gives the winner (--final_epochs); 0 (off)
  without --deep_candidates or a final stage."""
  return config.final_epochs if config.deep_candidates > 0 else 0


def deciding(records: Sequence[Dict[str, Any]], ancestor_top1: float,
             config: EvolutionConfig) -> List[Dict[str, Any]]:
  """The records that decide a stop for accuracy: the best --deep_candidates ok ones by their
  short fine-tune's validation top-1 (ties: fewer parameters), within `SLACK` budgets of the
  ancestor and not over a microcontroller budget; [] when the deeper fine-tune is off."""
  if deep_epochs(config) <= 0:
    return []
  floor = ancestor_top1 - SLACK * config.max_accuracy_drop - 1e-12
  near = [r for r in records if r["status"] == "ok" and r["top1"] >= floor
          and not (r.get("micro") or {}).get("over")]
  near.sort(key=lambda r: (-r["top1"], r["params"], r["candidate"], r["attempt"]))
  return near[:config.deep_candidates]


def extended(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """Copies of the records with a deeper fine-tune, their `top1` the deeper one's (what
  selection reads); a diverged deeper fine-tune (deep_top1 None) is left out."""
  return [dict(r, top1=r["deep_top1"]) for r in records if r.get("deep_top1") is not None]


def deep_seed(entropy: Sequence[int]) -> List[int]:
  """The deeper fine-tune's entropy: its candidate's draw entropy and `DEEP_STREAM`."""
  return [*entropy, DEEP_STREAM]


@dataclasses.dataclass(frozen=True)
class DeepTask:
  """What a deeper fine-tune needs; picklable for worker processes.

  Attributes:
    run_dir: the evolution run dir (records' `dir` are relative to it).
    epochs: the fine-tune's epochs (`deep_epochs`).
    config: the loop's settings (the fine-tuning rate and warm-up, distillation).
    train_config: the training flags' recipe.
    data_fn: as for `evolution.evolve`.
    teacher_dir: whom to distil from (None: labels only).
    verbose: Keras verbosity.
  """

  run_dir: str
  epochs: int
  config: EvolutionConfig
  train_config: train_config_lib.TrainConfig
  data_fn: DataFn
  teacher_dir: Optional[str]
  ancestor_top1: float
  verbose: Any = 0

  @classmethod
  def of(cls, config: EvolutionConfig, run_dir: str, train_config: train_config_lib.TrainConfig,
         data_fn: DataFn, verbose: Any, ancestor: Dict[str, Any], parent_dir: str) -> "DeepTask":
    """A generation's task: `ancestor` is the lineage's record of it (its dir is the teacher,
    unless --teacher=parent: `parent_dir`)."""
    teacher = (None if not config.distill else
               parent_dir if config.teacher == "parent" else ancestor["dir"])
    return cls(run_dir=run_dir, epochs=deep_epochs(config), config=config,
               train_config=train_config, data_fn=data_fn, teacher_dir=teacher,
               ancestor_top1=ancestor["top1"], verbose=verbose)


def fine_tune_deeper(task: DeepTask, record: Dict[str, Any], strategy=None) -> Dict[str, Any]:
  """Fine-tunes one candidate's model dir `task.epochs` more and evaluates it on validation.

  The deeper weights replace the candidate's (atomically), their metrics.json
  gaining the `DEEP_KEYS`; a dir that already has them (a run killed before
  its lineage recorded them) is read back, not trained again. Returns the
  `DEEP_KEYS` fields for the record (`deep_top1` None when the loss diverged;
  the short fine-tune's weights then stay).
  """
  start = time.time()
  directory = os.path.join(task.run_dir, record["dir"])
  metrics = files_lib.read_json(os.path.join(directory, model_io.METRICS_FILE))
  if metrics.get("deep_epochs"):
    return {key: metrics.get(key) for key in DEEP_KEYS}
  config = task.config
  seed = candidates_lib.keras_seed(deep_seed(record["seed"]))
  keras.utils.set_random_seed(seed)
  train_ds, val_ds, info = task.data_fn(stream=seed)
  fit_config = task.train_config.fine_tune(task.epochs, config.offspring_learning_rate,
                                           config.offspring_warmup_epochs)
  work_dir = f"{directory}.deep{WORK_SUFFIX}"
  spec = model_io.read_spec(directory)
  result = train_lib.fit(lambda: model_io.load_model_dir(directory)[0], train_ds, None,
                         fit_config, strategy=strategy, work_dir=work_dir,
                         images_per_epoch=info.train_count, verbose=task.verbose,
                         teacher_fn=teacher_fn(task.teacher_dir, strategy),
                         distill=config.distill_config(), label=f"{record['id']} (deeper)")
  fields: Dict[str, Any] = {
      "deep_top1": None, "deep_epochs": task.epochs,
      "deep_train_images": task.epochs * train_lib.images_per_epoch(train_ds, info)}
  if not result.diverged:
    fields["deep_top1"] = float(train_lib.evaluate(result.model, val_ds)["top1"])
  fields["deep_wall_seconds"] = time.time() - start
  if fields["deep_top1"] is not None:
    with files_lib.atomic_path(directory) as temp:
      model_io.write_model_dir(temp, result.model, spec, dict(metrics, **fields))
  shutil.rmtree(work_dir, ignore_errors=True)
  return fields


def choose_deeper(records: List[Dict[str, Any]], task: DeepTask, runner: candidates_lib.Runner,
                  select: Callable[[List[Dict[str, Any]]], Optional[Dict[str, Any]]],
                  record_done: Callable[[Dict[str, Any]], None]) -> Optional[Dict[str, Any]]:
  """A generation that would stop for accuracy: its deciding candidates fine-tuned deeper
  (those without a deeper figure yet, on `runner`), then `select` among their deeper figures.

  Args:
    records: the generation's candidate records (the lineage's own dicts: updated in place).
    task: the deeper fine-tunes' settings.
    runner: runs each fine-tune in a worker or in this process.
    select: the run's selection with its budgets, applied to `extended` records.
    record_done: called after each record gains its deeper figures (writes the lineage).

  Returns:
    The chosen record (one of `records`), or None when none is within the budget now.
  """
  deciders = deciding(records, task.ancestor_top1, task.config)
  todo = [r for r in deciders if "deep_top1" not in r]
  if todo:
    runner.start(len(todo))
  futures = [runner.call(task.config.population, fine_tune_deeper, task, r) for r in todo]
  for record, future in zip(todo, futures):
    record.update(future.result())
    record_done(record)
  chosen = select(extended(deciders)) if deciders else None
  if chosen is None:
    return None
  return next(r for r in records if r["id"] == chosen["id"] and r["attempt"] == chosen["attempt"])
