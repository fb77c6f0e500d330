"""`BudgetConfig`: how long a run's trainings may take (a floor of optimizer steps, a limit in
minutes), the same options in `squish`, squish-train and squish-synthesize. Imports no
TensorFlow."""

import dataclasses
from typing import Optional

from squish_tf import fields as fields_lib

# The floor of optimizer steps the commands' budgets scale up to (job.budget.budgets_for).
DEFAULT_MIN_TRAIN_STEPS = 12000


@dataclasses.dataclass(frozen=True)
class BudgetConfig:
  """The budget rule's options (docs/budgets.md).

  Attributes:
    min_train_steps: the floor of optimizer steps that scales every epoch
      budget up on small data (`job.budget.budgets_for`; 0: epochs and batch
      as given).
    max_minutes: the most minutes the plan may take (`job.estimate`; None: no
      limit).
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  min_train_steps: int = dataclasses.field(default=0, metadata=dict(
      flag_default=DEFAULT_MIN_TRAIN_STEPS, lower_bound=0, help=(
          "The least optimizer steps the ancestor trains for: when --train_epochs of this "
          "data give fewer, every epoch budget (--train_epochs, --offspring_epochs, "
          "--final_epochs, hence the baselines') is scaled up by the same factor, so small "
          "datasets train as long as large ones, up to a cap in epochs, with a batch of at most "
          "an eighth of the training split (see docs/budgets.md); 0 keeps the epochs and the "
          "batch as given.")))
  max_minutes: Optional[float] = dataclasses.field(default=None, metadata=dict(
      lower_bound=0.0, help=(
          "Scale every epoch budget down by one factor so that the plan printed at the start "
          "(each stage's estimated time on this machine) fits this many minutes, and say what "
          "was cut; unset: no limit.")))

  def __post_init__(self):
    fields_lib.check(self)
