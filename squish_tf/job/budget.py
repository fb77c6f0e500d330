"""Training budgets: how long training runs on this data (`scale_budgets`), the lineage's
fine-tune epochs, and the equal budget the baselines and the from-scratch SquishedNet train
for."""

import dataclasses
import math
import os
from typing import Any, Dict, Optional

from squish_tf import files as files_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.net import model_io
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import config as train_config_lib


@dataclasses.dataclass(frozen=True)
class Budgets:
  """The epoch budgets a run trains with, after `scale_budgets`."""

  train_config: train_config_lib.TrainConfig
  evolution_config: evolve_config_lib.EvolutionConfig
  steps_per_epoch: int
  scale: float  # 1: the epochs as given

  def describe(self) -> str:
    """"budget: 27 steps per epoch, scaled x74.1 to 12000+ steps: train_epochs 6 -> 445, ..."."""
    if self.scale == 1:
      return (f"budget: {self.steps_per_epoch} steps per epoch, "
              f"{self.train_config.epochs * self.steps_per_epoch} for the ancestor")
    return (f"budget: {self.steps_per_epoch} steps per epoch, every epoch budget scaled "
            f"x{self.scale:.2f} to reach --min_train_steps: train_epochs "
            f"{self.train_config.epochs}, offspring_epochs "
            f"{self.evolution_config.offspring_epochs}, final_epochs "
            f"{self.evolution_config.final_epochs}")


def scale_budgets(train_config: train_config_lib.TrainConfig,
                  evolution_config: evolve_config_lib.EvolutionConfig,
                  steps_per_epoch: int, min_train_steps: int) -> Budgets:
  """Epochs with a floor of optimizer steps, the same factor for every budget.

  When `train_config.epochs` passes over this data give the ancestor fewer
  than `min_train_steps` optimizer steps, the ancestor's, each offspring's
  and the final stage's epochs are all multiplied by min_train_steps /
  (epochs x steps_per_epoch) and rounded up, so the lineage keeps its
  proportions and the baselines (whose budget is the lineage's) stay equal.
  Epochs are the wrong unit across datasets: 6 epochs are 375 steps on the
  demo's shapes10 and 112 on 1,197 digits. Warm-ups stay in epochs as given.
  With enough steps already, or min_train_steps 0, nothing changes.
  """
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}.")
  given = train_config.epochs * steps_per_epoch
  if min_train_steps <= given:
    return Budgets(train_config, evolution_config, steps_per_epoch, 1)
  scale = min_train_steps / given
  up = lambda epochs: int(math.ceil(epochs * scale - 1e-9))  # noqa: E731
  return Budgets(
      dataclasses.replace(train_config, epochs=up(train_config.epochs)),
      dataclasses.replace(evolution_config, offspring_epochs=up(evolution_config.offspring_epochs),
                          final_epochs=up(evolution_config.final_epochs)),
      steps_per_epoch, scale)


def lineage_fine_tune_epochs(lineage: Dict[str, Any], config: evolve_config_lib.EvolutionConfig,
                             squishednet_metrics: Optional[Dict[str, Any]] = None) -> int:
  """Fine-tuning epochs along the chosen lineage: each chosen offspring's, then the final
  stage's share (`polish.lineage_epochs`)."""
  epochs = polish_lib.chosen_fine_tune_epochs(lineage, config)
  if squishednet_metrics and squishednet_metrics.get("polished_from"):
    epochs += polish_lib.lineage_epochs(squishednet_metrics)
  return epochs


def baseline_budget(squishednet_dir: str, result: lineage_lib.EvolutionResult,
                    config: evolve_config_lib.EvolutionConfig,
                    train_config: train_config_lib.TrainConfig,
                   seed: int) -> baselines_lib.BaselineBudget:
  """The SquishedNet's size and training epochs, and the recipe every baseline trains with."""
  metrics = files_lib.read_json(os.path.join(squishednet_dir, model_io.METRICS_FILE))
  return _budget(int(metrics["params"]), lineage_fine_tune_epochs(result.lineage, config, metrics),
                 config, train_config, seed)


def planned_budget(result: lineage_lib.EvolutionResult, config: evolve_config_lib.EvolutionConfig,
                   train_config: train_config_lib.TrainConfig,
                   seed: int) -> baselines_lib.BaselineBudget:
  """`baseline_budget` before a --final_init=scratch (or best) SquishedNet has trained: it
  has the winner's widths, and the lineage's epochs are known (the final stage's share is
  --final_epochs whichever `best` keeps)."""
  if config.final_init not in ("scratch", "best"):
    raise ValueError("Only a SquishedNet trained from scratch (or the better of both) has its "
                     "budget before it trains.")
  return _budget(model_io.read_spec(result.winner_dir).params(),
                 polish_lib.scratch_fine_tune_epochs(result, config), config, train_config, seed)


def _budget(target_params: int, fine_tune: int, config: evolve_config_lib.EvolutionConfig,
            train_config: train_config_lib.TrainConfig, seed: int) -> baselines_lib.BaselineBudget:
  return baselines_lib.BaselineBudget(
      target_params=target_params, total_epochs=train_config.epochs + fine_tune,
      fine_tune_epochs=max(1, fine_tune), train_config=train_config,
      fine_tune_learning_rate=config.offspring_learning_rate,
      fine_tune_warmup_epochs=config.offspring_warmup_epochs,
      distill=config.distill_config(), seed=seed)
