"""Training budgets shared by the comparisons: the lineage's fine-tune epochs and the equal
budget the baselines and the from-scratch SquishedNet train for."""

import os
from typing import Any, Dict, Optional

from squish_tf import files as files_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.net import model_io
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import trainer as train_lib


def lineage_fine_tune_epochs(lineage: Dict[str, Any], config: evolve_config_lib.EvolutionConfig,
                             squishednet_metrics: Optional[Dict[str, Any]] = None) -> int:
  """Fine-tuning epochs along the chosen lineage: each chosen offspring's, then the final
  stage's share (`polish.lineage_epochs`)."""
  epochs = polish_lib.chosen_fine_tune_epochs(lineage, config)
  if squishednet_metrics and squishednet_metrics.get("polished_from"):
    epochs += polish_lib.lineage_epochs(squishednet_metrics)
  return epochs


def baseline_budget(squishednet_dir: str, result: lineage_lib.EvolutionResult,
                    config: evolve_config_lib.EvolutionConfig, train_config: train_lib.TrainConfig,
                    seed: int) -> baselines_lib.BaselineBudget:
  """The SquishedNet's size and training epochs, and the recipe every baseline trains with."""
  metrics = files_lib.read_json(os.path.join(squishednet_dir, model_io.METRICS_FILE))
  return _budget(int(metrics["params"]), lineage_fine_tune_epochs(result.lineage, config, metrics),
                 config, train_config, seed)


def planned_budget(result: lineage_lib.EvolutionResult, config: evolve_config_lib.EvolutionConfig,
                   train_config: train_lib.TrainConfig, seed: int) -> baselines_lib.BaselineBudget:
  """`baseline_budget` before a --final_init=scratch SquishedNet has trained: it has the
  winner's widths, and the lineage's epochs are known."""
  if config.final_init != "scratch":
    raise ValueError("Only a SquishedNet trained from scratch has its budget before it trains.")
  return _budget(model_io.read_spec(result.winner_dir).params(),
                 polish_lib.scratch_fine_tune_epochs(result, config), config, train_config, seed)


def _budget(target_params: int, fine_tune: int, config: evolve_config_lib.EvolutionConfig,
            train_config: train_lib.TrainConfig, seed: int) -> baselines_lib.BaselineBudget:
  return baselines_lib.BaselineBudget(
      target_params=target_params, total_epochs=train_config.epochs + fine_tune,
      fine_tune_epochs=max(1, fine_tune), train_config=train_config,
      fine_tune_learning_rate=config.offspring_learning_rate,
      fine_tune_warmup_epochs=config.offspring_warmup_epochs,
      distill=config.distill_config(), seed=seed)
