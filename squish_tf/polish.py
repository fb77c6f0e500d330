"""The final polish: the evolved winner fine-tunes for `final_epochs` before export.

Each generation fine-tunes its offspring briefly (selection needs many
candidates, not long ones); the winner then gets a longer fine-tune, distilled
from the ancestor, on a data stream of its own. The result, in
`<run_dir>/squishednet/`, is the model the report calls the SquishedNet, and
its epochs count in the lineage's training budget that the baselines get too.

A killed polish resumes from its last finished epoch (Keras BackupAndRestore
in `<run_dir>/squishednet.work/`); a finished one is not redone.
"""

import os
import shutil
import time
from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from squish_tf import evolution
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import train as train_lib

WORK_SUFFIX = ".work"
# The polish's data stream: candidates draw from generations >= 1.
_STREAM_ENTROPY = (0, 0, 0)


def polish_dir(run_dir: str) -> str:
  return os.path.join(run_dir, evolution.POLISH_DIR)


def is_complete(run_dir: str) -> bool:
  return model_io.is_complete(polish_dir(run_dir))


def squishednet_dir(run_dir: str, result: evolution.EvolutionResult,
                    config: evolution.EvolutionConfig) -> str:
  """Where the SquishedNet is: the polished winner, or the winner itself when nothing polishes."""
  if not needs_polish(result, config):
    return result.winner_dir
  return polish_dir(run_dir)


def needs_polish(result: evolution.EvolutionResult, config: evolution.EvolutionConfig) -> bool:
  """A polish runs for an evolved winner; an ancestor that nothing beat stays as it is."""
  return config.final_epochs > 0 and result.winner_id != evolution.ANCESTOR_ID


def polish(run_dir: str,
           result: evolution.EvolutionResult,
           config: evolution.EvolutionConfig,
           data_fn: evolution.DataFn,
           train_config: Optional[train_lib.TrainConfig] = None,
           strategy: Optional[tf.distribute.Strategy] = None,
           verbose: Any = "auto") -> str:
  """Fine-tunes the winner into `<run_dir>/squishednet/` (or resumes, or skips).

  Args:
    run_dir: the evolution run directory.
    result: the finished evolution.
    config: its settings (final_epochs, the fine-tuning rate and warm-up,
      distillation).
    data_fn: as for `evolution.evolve`.
    train_config: the training flags' recipe (optimizer, schedule, decay).
    strategy: tf.distribute strategy.
    verbose: Keras verbosity ("auto": labelled progress).

  Returns:
    The SquishedNet's model dir (the winner's own when nothing is polished).
  """
  if not needs_polish(result, config):
    return result.winner_dir
  out = polish_dir(run_dir)
  if model_io.is_complete(out):
    return out
  train_config = train_config or train_lib.TrainConfig()
  start = time.time()
  winner_model, winner_spec, winner_metrics = model_io.load_model_dir(result.winner_dir)
  ancestor_dir = result.lineage["ancestor"]["dir"]
  seed = evolution.keras_seed([config.seed, *_STREAM_ENTROPY])
  keras.utils.set_random_seed(seed)
  train_ds, val_ds, info = data_fn(stream=seed)
  fit_config = train_config.fine_tune(config.final_epochs, config.offspring_learning_rate,
                                      config.offspring_warmup_epochs)
  work = out + WORK_SUFFIX

  def model_fn():  # a strategy's variables are made inside its scope
    return winner_model if strategy is None else model_io.load_model_dir(result.winner_dir)[0]

  fit = train_lib.fit(model_fn, train_ds, None, fit_config, strategy=strategy,
                      work_dir=work, images_per_epoch=info.train_count, verbose=verbose,
                      teacher_fn=evolution.teacher_fn(ancestor_dir if config.distill else None,
                                                      strategy),
                      distill=config.distill_config(), label="polish")
  if fit.diverged:
    raise RuntimeError(f"The polish of {result.winner_id} diverged (loss NaN or inf); lower "
                       "--offspring_learning_rate, or pass --final_epochs=0 to ship the winner "
                       "as evolved.")
  ancestor_spec = model_io.read_spec(ancestor_dir)
  evaluation = train_lib.evaluate(fit.model, val_ds)
  metrics: Dict[str, Any] = metrics_lib.model_metrics(winner_spec, evaluation, ancestor_spec)
  metrics.update({
      "id": evolution.POLISH_ID,
      "polished_from": result.winner_id,
      "winner_validation_top1": winner_metrics.get("top1"),
      "train_epochs": fit_config.epochs,
      "train_images": fit_config.epochs * evolution.images_per_epoch(train_ds, info),
      "teacher": evolution.ANCESTOR_ID if config.distill else None,
      "fine_tune_images_per_sec": fit.train_images_per_sec,
      "wall_seconds": time.time() - start,
  })
  with model_io.atomic_path(out) as temp:
    model_io.write_model_dir(temp, fit.model, winner_spec, metrics)
  shutil.rmtree(work, ignore_errors=True)
  return out
