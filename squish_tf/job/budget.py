"""Training budgets: how long training runs on this data (`scale_budgets`), the lineage's
fine-tune epochs, and the equal budget the baselines and the from-scratch SquishedNet train
for."""

import dataclasses
import math
import os
from typing import Any, Dict, Optional, Sequence

from squish_tf import files as files_lib
from squish_tf.evolve import config as evolve_config_lib
from squish_tf.evolve import lineage as lineage_lib
from squish_tf.evolve import polish as polish_lib
from squish_tf.net import model_io
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import config as train_config_lib


# A batch holds at most this fraction of the training split (budget rule on): small data gets
# at least this many optimizer steps per epoch, so batch-norm statistics see more than one batch.
MIN_STEPS_PER_EPOCH = 8
# The most epochs the floor of steps scales the ancestor's training up to (budget rule on): on
# small data more passes only overfit, and each pass costs the same time on any data size.
MAX_TRAIN_EPOCHS = 225


@dataclasses.dataclass(frozen=True)
class Budgets:
  """The epoch budgets a run trains with, after `scale_budgets` (or `budgets_for`).

  Attributes:
    train_config, evolution_config: the configs with the scaled epochs.
    steps_per_epoch: optimizer steps per epoch at `batch_size`.
    scale: the factor every epoch budget was multiplied by (1: as given).
    batch_size: the batch the run trains with (None: the data config's, unchanged).
    capped: the floor of steps asked for more than `MAX_TRAIN_EPOCHS` epochs.
    given_batch_size: the --batch_size asked for.
  """

  train_config: train_config_lib.TrainConfig
  evolution_config: evolve_config_lib.EvolutionConfig
  steps_per_epoch: int
  scale: float  # 1: the epochs as given
  batch_size: Optional[int] = None
  capped: bool = False
  given_batch_size: Optional[int] = None

  def describe(self, budgets: Sequence[str] = ("train_epochs", "offspring_epochs",
                                               "final_epochs")) -> str:
    """"budget: 27 steps per epoch, every epoch budget scaled x74.07 to reach ...: train_epochs
    445, offspring_epochs 149, final_epochs 297", naming the epoch `budgets` a command trains."""
    batch = ""
    if self.batch_size is not None and self.batch_size != self.given_batch_size:
      batch = (f"batch {self.batch_size} (--batch_size={self.given_batch_size} is more than "
               f"1/{MIN_STEPS_PER_EPOCH} of the training split), ")
    if self.scale == 1:
      return (f"budget: {batch}{self.steps_per_epoch} steps per epoch, "
              f"{self.train_config.epochs * self.steps_per_epoch} for the ancestor")
    why = (f"capped at {MAX_TRAIN_EPOCHS} ancestor epochs" if self.capped
           else "to reach --min_train_steps")
    epochs = {"train_epochs": self.train_config.epochs,
              "offspring_epochs": self.evolution_config.offspring_epochs,
              "final_epochs": self.evolution_config.final_epochs}
    return (f"budget: {batch}{self.steps_per_epoch} steps per epoch, every epoch budget scaled "
            f"x{self.scale:.2f} {why}: "
            + ", ".join(f"{name} {epochs[name]}" for name in budgets))


def fitting_batch_size(batch_size: int, train_count: int) -> int:
  """`batch_size`, or on a training split too small for it the batch that fits.

  A batch of more than 1/MIN_STEPS_PER_EPOCH of the split is replaced by the
  largest batch that gives MIN_STEPS_PER_EPOCH steps or more and splits the
  data into nearly equal full batches: an epoch then leaves out fewer images
  than it has steps (and the shuffle leaves out others on the next epoch),
  where a batch of 64 on 110 images trained one batch and left out 46.
  """
  if train_count < 1 or batch_size * MIN_STEPS_PER_EPOCH <= train_count:
    return batch_size
  smallest = min(batch_size, 2, train_count)  # batch norm needs two images to a batch
  largest = max(smallest, min(batch_size, train_count // MIN_STEPS_PER_EPOCH))
  steps = -(-train_count // largest)
  return max(smallest, train_count // steps)


def batch_for(batch_size: int, train_count: int, min_train_steps: int) -> int:
  """The batch the budget rule trains with: `fitting_batch_size`, or as given when the rule is
  off (`min_train_steps` 0)."""
  return fitting_batch_size(batch_size, train_count) if min_train_steps > 0 else batch_size


def budgets_for(train_config: train_config_lib.TrainConfig,
                evolution_config: evolve_config_lib.EvolutionConfig, steps_per_epoch: int,
                min_train_steps: int, batch_size: Optional[int] = None,
                given_batch_size: Optional[int] = None) -> Budgets:
  """The budget rule, after `batch_for`: a floor of steps capped in epochs.

  With `min_train_steps` 0 the epochs stay as given. Otherwise every epoch
  budget is scaled by one factor (`scale_budgets`) up to `min_train_steps`
  steps for the ancestor, but to no more than MAX_TRAIN_EPOCHS of its epochs.
  `batch_size` (the batch `batch_for` chose) and `given_batch_size` (the
  flag's) are recorded for `Budgets.describe`.
  """
  budgets = scale_budgets(train_config, evolution_config, steps_per_epoch, min_train_steps,
                          max_train_epochs=MAX_TRAIN_EPOCHS if min_train_steps > 0 else None)
  return dataclasses.replace(budgets, batch_size=batch_size, given_batch_size=given_batch_size)


def scale_budgets(train_config: train_config_lib.TrainConfig,
                  evolution_config: evolve_config_lib.EvolutionConfig,
                  steps_per_epoch: int, min_train_steps: int,
                  max_train_epochs: Optional[int] = None) -> Budgets:
  """Epochs with a floor of optimizer steps, the same factor for every budget.

  When `train_config.epochs` passes over this data give the ancestor fewer
  than `min_train_steps` optimizer steps, the ancestor's, each offspring's
  and the final stage's epochs are all multiplied by min_train_steps /
  (epochs x steps_per_epoch) and rounded up, so the lineage keeps its
  proportions and the baselines (whose budget is the lineage's) stay equal.
  Epochs are the wrong unit across datasets: 6 epochs are 375 steps on the
  demo's shapes10 and 112 on 1,197 digits. With `max_train_epochs`, the
  factor stops where the ancestor reaches that many epochs (never below 1).
  Warm-ups stay in epochs as given. With enough steps already, or
  min_train_steps 0, nothing changes.
  """
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}.")
  given = train_config.epochs * steps_per_epoch
  if min_train_steps <= given:
    return Budgets(train_config, evolution_config, steps_per_epoch, 1)
  scale = min_train_steps / given
  capped = max_train_epochs is not None and scale * train_config.epochs > max_train_epochs
  if capped:
    scale = max(1.0, max_train_epochs / train_config.epochs)
    if scale == 1:
      return Budgets(train_config, evolution_config, steps_per_epoch, 1, capped=True)
  return Budgets(scaled_train_config(train_config, scale),
                 scaled_evolution_config(evolution_config, scale), steps_per_epoch, scale,
                 capped=capped)


def _up(epochs: int, scale: float) -> int:
  return max(1, int(math.ceil(epochs * scale - 1e-9)))


def scaled_train_config(config: train_config_lib.TrainConfig, scale: float) -> train_config_lib.TrainConfig:
  """`config` with its epochs multiplied by `scale`, rounded up (at least 1)."""
  return dataclasses.replace(config, epochs=_up(config.epochs, scale))


def scaled_evolution_config(config: evolve_config_lib.EvolutionConfig,
                            scale: float) -> evolve_config_lib.EvolutionConfig:
  """`config` with the offspring's and the final stage's epochs multiplied by `scale`."""
  return dataclasses.replace(config, offspring_epochs=_up(config.offspring_epochs, scale),
                             final_epochs=_up(config.final_epochs, scale))


def cut_budgets(budgets: Budgets, factor: float) -> Budgets:
  """`budgets` with every epoch budget multiplied by `factor` <= 1, rounded down (at least 1)."""
  down = lambda epochs: max(1, int(math.floor(epochs * factor + 1e-9)))  # noqa: E731
  loop = budgets.evolution_config
  return dataclasses.replace(
      budgets, train_config=dataclasses.replace(budgets.train_config,
                                                epochs=down(budgets.train_config.epochs)),
      evolution_config=dataclasses.replace(loop, offspring_epochs=down(loop.offspring_epochs),
                                           final_epochs=down(loop.final_epochs)))


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
