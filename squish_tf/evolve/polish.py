"""The final stage: the evolved winner becomes the SquishedNet before export.

Each generation fine-tunes its offspring briefly (selection needs many
candidates, not long ones). The winner then trains once more, into
`<run_dir>/squishednet/`, the model the report calls the SquishedNet:

- `--final_init=scratch`: the winner's evolved widths train from
  fresh weights for the lineage's budget, the ancestor's epochs + each chosen
  offspring's + `--final_epochs`, with the training recipe and seed the
  width-scaled baseline gets, on the labels. The SquishedNet and the
  baselines then train for the same epochs the same way; what evolution adds
  is the widths (Liu et al., ICLR 2019, "Rethinking the Value of Network
  Pruning"; AMC and MetaPruning retrain their searched widths too). On
  shapes10 at short budgets this beats polishing the inherited weights.
- `--final_init=inherit`: the polish, a `--final_epochs` fine-tune of the
  winner's inherited weights, distilled from the ancestor, on a data stream
  of its own; its epochs count in the lineage's budget that the baselines
  get too.
- `--final_init=best` (the default): both, into `<run_dir>/final/scratch/` and
  `<run_dir>/final/inherit/`; the one with the higher validation top-1
  becomes the SquishedNet (a tie keeps scratch, the baselines' recipe), and
  its metrics.json says which was kept and both figures (`final_choice`).
  Which wins depends on the data (the inherited weights did on small real
  datasets, scratch on shapes10), hence the choice per run. Both spend the
  lineage's budget (the final stage's share is `--final_epochs` either way), so the
  baselines' epochs do not depend on the choice. The inherited winner was
  itself selected on the validation split, so its figure there leans
  optimistic; the test split, never read here, is what the report gives.

A killed final stage resumes from its last finished epoch (Keras
BackupAndRestore in `<run_dir>/squishednet.work/`); a finished one is not
redone, and one made with another `--final_init` or `--final_epochs` is
refused, not mixed up. With `best`, a finished candidate is not trained again.
"""

import dataclasses
import os
import shutil
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import keras
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.evolve import candidates as candidates_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.layout import SQUISHEDNET_DIR, WORK_SUFFIX
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import distill as distill_lib
from squish_tf.train import trainer as train_lib
from squish_tf.train.baselines import DataFn

POLISH_DIR = SQUISHEDNET_DIR
POLISH_ID = "squishednet"
# --final_init=best trains both of these under <run_dir>/final/ and keeps the better.
FINAL_DIR = "final"
FINAL_CANDIDATES = ("scratch", "inherit")

# The polish's data stream: candidates draw from generations >= 1.
_STREAM_ENTROPY = (0, 0, 0)


def polish_dir(run_dir: str) -> str:
  return os.path.join(run_dir, POLISH_DIR)


def final_candidate_dir(run_dir: str, init: str) -> str:
  """Where --final_init=best trains `init` ("scratch" or "inherit") before choosing."""
  return os.path.join(run_dir, FINAL_DIR, init)


def is_complete(run_dir: str) -> bool:
  return model_io.is_complete(polish_dir(run_dir))


def squishednet_dir(run_dir: str, result: lineage_lib.EvolutionResult,
                    config: evolve_config_lib.EvolutionConfig) -> str:
  """Where the SquishedNet is: the polished winner, or the winner itself when nothing polishes."""
  if not needs_polish(result, config):
    return result.winner_dir
  return polish_dir(run_dir)


def needs_polish(result: lineage_lib.EvolutionResult, config: evolve_config_lib.EvolutionConfig) -> bool:
  """The final stage runs for an evolved winner; an ancestor that nothing beat stays as it is."""
  return config.final_epochs > 0 and result.winner_id != lineage_lib.ANCESTOR_ID


def chosen_fine_tune_epochs(lineage: Dict[str, Any], config: evolve_config_lib.EvolutionConfig) -> int:
  """Fine-tuning epochs along the chosen lineage: each chosen offspring's (a deeper fine-tune's,
  `squish_tf.evolve.deep_budget`, included)."""
  chosen = {g["chosen"] for g in lineage["generations"] if g["chosen"]}
  return sum(int(r.get("train_epochs", config.offspring_epochs)) + int(r.get("deep_epochs") or 0)
             for r in lineage["candidates"] if r["id"] in chosen)


def scratch_fine_tune_epochs(result: lineage_lib.EvolutionResult,
                             config: evolve_config_lib.EvolutionConfig) -> int:
  """The lineage's fine-tuning epochs a --final_init=scratch SquishedNet stands for: each
  chosen offspring's + final_epochs (what `lineage_epochs` counts for it, known in advance)."""
  return chosen_fine_tune_epochs(result.lineage, config) + config.final_epochs


def scratch_epochs(result: lineage_lib.EvolutionResult, config: evolve_config_lib.EvolutionConfig,
                   train_config: train_config_lib.TrainConfig) -> int:
  """`--final_init=scratch`'s epochs: --train_epochs (the ancestor's) + each chosen
  offspring's + final_epochs, the baselines' `total_epochs`."""
  return train_config.epochs + scratch_fine_tune_epochs(result, config)


def lineage_epochs(squishednet_metrics: Mapping[str, Any]) -> int:
  """What the final stage adds to the lineage's budget: the polish's epochs, or
  (from scratch, or the better of both) the final_epochs its budget was made of."""
  if (squishednet_metrics.get("final_init") == "scratch"
      or squishednet_metrics.get("final_choice") is not None):
    return int(squishednet_metrics["final_epochs"])
  return int(squishednet_metrics.get("train_epochs") or 0)


def choose_final(validation_top1: Mapping[str, float]) -> Dict[str, Any]:
  """--final_init=best's choice from each candidate's validation top-1 (pure).

  The higher wins; a tie keeps scratch, trained with the baselines' recipe,
  so the comparison with them stays like for like. Returns what
  metrics.json records as `final_choice`: kept, the figures, and why.
  """
  scratch, inherit = float(validation_top1["scratch"]), float(validation_top1["inherit"])
  kept = "inherit" if inherit > scratch else "scratch"
  other = "scratch" if kept == "inherit" else "inherit"
  margin = 100 * abs(scratch - inherit)
  if margin == 0:
    reason = (f"a tie on the validation split ({100 * scratch:.2f}% each) keeps scratch, "
              "trained with the baselines' recipe")
  else:
    reason = (f"{kept} scored {100 * max(scratch, inherit):.2f}% on the validation split, "
              f"{margin:.2f} points above {other}")
  return {"kept": kept, "other": other,
          "validation_top1": {"scratch": scratch, "inherit": inherit}, "reason": reason}


def _check_done(out: str, config: evolve_config_lib.EvolutionConfig,
                init: Optional[str] = None) -> None:
  """Refuses a finished SquishedNet (or, with `init`, one of --final_init=best's two
  trainings) that another --final_init or --final_epochs made."""
  metrics = files_lib.read_json(os.path.join(out, model_io.METRICS_FILE))
  asked = "best" if metrics.get("final_choice") is not None else metrics.get("final_init",
                                                                              "inherit")
  made = (asked, int(metrics.get("final_epochs", metrics.get(
      "train_epochs", config.final_epochs))))
  if made != (init or config.final_init, config.final_epochs):
    raise ValueError(f"{out} was made with --final_init={made[0]} --final_epochs={made[1]}, "
                     f"not --final_init={config.final_init} --final_epochs={config.final_epochs}."
                     " Delete it to make the SquishedNet again with these flags, or pass the "
                     "ones it was made with.")


def polish(run_dir: str,
           result: lineage_lib.EvolutionResult,
           config: evolve_config_lib.EvolutionConfig,
           data_fn: DataFn,
           train_config: Optional[train_config_lib.TrainConfig] = None,
           strategy: Optional[tf.distribute.Strategy] = None,
           verbose: Any = "auto",
           only: Optional[str] = None,
           scratch_budget: Optional[int] = None) -> str:
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
    only: train only this one of `final_inits(config)` (e.g. in a worker
      process beside the baselines) and return its dir; with
      --final_init=best the choice waits for a call without it.
    scratch_budget: the from-scratch training's epochs; None: `scratch_epochs` of `result`
      (a family's other members take the whole run's, as the baselines do).

  Returns:
    The SquishedNet's model dir (the winner's own when nothing is polished).
  """
  if not needs_polish(result, config):
    return result.winner_dir
  out = polish_dir(run_dir)
  if model_io.is_complete(out):
    _check_done(out, config)
    return out
  train_config = train_config or train_config_lib.TrainConfig()
  if only is not None and only not in final_inits(config):
    raise ValueError(f"only must be one of {final_inits(config)} with --final_init="
                     f"{config.final_init}, got {only!r}.")
  if config.final_init != "best":
    return _train(config.final_init, out, result, config, data_fn, train_config, strategy,
                  verbose, scratch_budget)
  for init in final_inits(config) if only is None else (only,):
    directory = final_candidate_dir(run_dir, init)
    if model_io.is_complete(directory):
      _check_done(directory, config, init)
    else:
      _train(init, directory, result, config, data_fn, train_config, strategy, verbose,
             scratch_budget)
  if only is not None:
    return final_candidate_dir(run_dir, only)
  return _keep_better(run_dir, out)


def final_inits(config: evolve_config_lib.EvolutionConfig) -> Tuple[str, ...]:
  """The final trainings --final_init asks for: both of FINAL_CANDIDATES with best, else one."""
  return FINAL_CANDIDATES if config.final_init == "best" else (config.final_init,)


def _train(init: str, out: str, result: lineage_lib.EvolutionResult,
           config: evolve_config_lib.EvolutionConfig, data_fn: DataFn,
           train_config: train_config_lib.TrainConfig, strategy: Optional[tf.distribute.Strategy],
           verbose: Any, scratch_budget: Optional[int] = None) -> str:
  """The final stage made one way (`init`: "scratch" or "inherit") into `out`."""
  if init == "scratch":
    return _train_from_scratch(out, result, config, data_fn, train_config, strategy, verbose,
                               scratch_budget)
  return _polish_inherited(out, result, config, data_fn, train_config, strategy, verbose)


def _keep_better(run_dir: str, out: str) -> str:
  """Copies the candidate `choose_final` keeps to `out`, its metrics saying what and why."""
  metrics = {init: files_lib.read_json(os.path.join(final_candidate_dir(run_dir, init),
                                                    model_io.METRICS_FILE))
             for init in FINAL_CANDIDATES}
  choice = choose_final({init: m["top1"] for init, m in metrics.items()})
  kept_metrics = dict(metrics[choice["kept"]], final_choice=choice, discarded_train_images=int(
      metrics[choice["other"]].get("train_images") or 0))
  with files_lib.atomic_path(out) as temp:
    shutil.copytree(final_candidate_dir(run_dir, choice["kept"]), temp)
    files_lib.write_json(os.path.join(temp, model_io.METRICS_FILE), kept_metrics)
  return out


def _polish_inherited(out: str, result: lineage_lib.EvolutionResult,
                      config: evolve_config_lib.EvolutionConfig, data_fn: DataFn,
                      train_config: train_config_lib.TrainConfig,
                      strategy: Optional[tf.distribute.Strategy], verbose: Any) -> str:
  """The winner's inherited weights fine-tuned for --final_epochs, distilled (the polish)."""
  start = time.time()
  winner_model, winner_spec, _ = model_io.load_model_dir(result.winner_dir)
  ancestor_dir = result.lineage["ancestor"]["dir"]
  seed = candidates_lib.keras_seed([config.seed, *_STREAM_ENTROPY])
  keras.utils.set_random_seed(seed)
  train_ds, val_ds, info = data_fn(stream=seed)
  fit_config = train_config.fine_tune(config.final_epochs, config.offspring_learning_rate,
                                      config.offspring_warmup_epochs)
  work = out + WORK_SUFFIX

  def model_fn():  # a strategy's variables are made inside its scope
    return winner_model if strategy is None else model_io.load_model_dir(result.winner_dir)[0]

  fit = train_lib.fit(model_fn, train_ds, None, fit_config, strategy=strategy,
                      work_dir=work, images_per_epoch=info.train_count, verbose=verbose,
                      teacher_fn=distill_lib.teacher_fn(ancestor_dir if config.distill else None,
                                                      strategy),
                      distill=config.distill_config(), label="polish")
  if fit.diverged:
    raise RuntimeError(f"The polish of {result.winner_id} diverged (loss NaN or inf); lower "
                       "--offspring_learning_rate, or pass --final_epochs=0 to ship the winner "
                       "as evolved.")
  return _write(out, result, winner_spec, config, _Made(
      "inherit", fit, fit_config, (train_ds, val_ds, info), start,
      teacher=lineage_lib.ANCESTOR_ID if config.distill else None,
      speed_key="fine_tune_images_per_sec"))


def _train_from_scratch(out: str, result: lineage_lib.EvolutionResult,
                        config: evolve_config_lib.EvolutionConfig, data_fn: DataFn,
                        train_config: train_config_lib.TrainConfig,
                        strategy: Optional[tf.distribute.Strategy], verbose: Any,
                        scratch_budget: Optional[int] = None) -> str:
  """The winner's widths from fresh weights, trained as the width-scaled baseline is."""
  start = time.time()
  winner_spec = model_io.read_spec(result.winner_dir)
  fit_config = dataclasses.replace(train_config, epochs=scratch_budget or scratch_epochs(
      result, config, train_config))
  # As the baselines: seeded before the pipelines are built, the run's own data stream.
  keras.utils.set_random_seed(config.seed)
  train_ds, val_ds, info = data_fn()
  fit = train_lib.fit(lambda: models.build_model(winner_spec, seed=config.seed), train_ds, None,
                      fit_config, strategy=strategy, work_dir=out + WORK_SUFFIX,
                      images_per_epoch=info.train_count, verbose=verbose, label="squishednet")
  if fit.diverged:
    raise RuntimeError(f"Training {result.winner_id}'s widths from scratch diverged (loss NaN or "
                       "inf); lower --learning_rate, or pass --final_init=inherit to polish the "
                       "evolved weights instead.")
  return _write(out, result, winner_spec, config, _Made(
      "scratch", fit, fit_config, (train_ds, val_ds, info), start, teacher=None,
      speed_key="train_images_per_sec"))


@dataclasses.dataclass(frozen=True)
class _Made:
  """How the final stage made its model one way, for `_write`.

  Attributes:
    final_init: "scratch" or "inherit".
    fit: the `train_lib.fit` result; fit_config: what it trained with.
    data: the (train_ds, val_ds, info) it trained on.
    start: when it started (time.time()).
    teacher: whom it distilled from (None: nobody).
    speed_key: the metrics key of its training throughput.
  """

  final_init: str
  fit: Any
  fit_config: train_config_lib.TrainConfig
  data: Tuple[Any, Any, Any]
  start: float
  teacher: Optional[str]
  speed_key: str


def _write(out: str, result: lineage_lib.EvolutionResult, winner_spec: spec_lib.NetSpec,
           config: evolve_config_lib.EvolutionConfig, made: _Made) -> str:
  """Evaluates the final stage's model on validation and writes `out` atomically (either way),
  with `winner_spec`, the spec the caller read of the winner."""
  fit, fit_config, (train_ds, val_ds, info) = made.fit, made.fit_config, made.data
  winner_metrics = files_lib.read_json(os.path.join(result.winner_dir, model_io.METRICS_FILE))
  ancestor_spec = model_io.read_spec(result.lineage["ancestor"]["dir"])
  evaluation = train_lib.evaluate(fit.model, val_ds)
  metrics: Dict[str, Any] = metrics_lib.model_metrics(winner_spec, evaluation, ancestor_spec)
  metrics.update({
      "id": POLISH_ID,
      "polished_from": result.winner_id,
      "final_init": made.final_init,
      "final_epochs": config.final_epochs,
      "winner_validation_top1": winner_metrics.get("top1"),
      "train_epochs": fit_config.epochs,
      "train_images": fit_config.epochs * train_lib.images_per_epoch(train_ds, info),
      "teacher": made.teacher,
      made.speed_key: fit.train_images_per_sec,
      "wall_seconds": time.time() - made.start,
  })
  with files_lib.atomic_path(out) as temp:
    model_io.write_model_dir(temp, fit.model, winner_spec, metrics)
  shutil.rmtree(out + WORK_SUFFIX, ignore_errors=True)
  return out
