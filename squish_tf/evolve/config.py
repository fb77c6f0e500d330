"""`EvolutionConfig`: generations, population, budgets, targets and the environment, checked
when built."""

import dataclasses
from typing import Optional, Sequence

from squish_tf import fields as fields_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import profile as profile_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import registries
from squish_tf.evolve import target_list
from squish_tf.train import config as train_config_lib

# How offspring start: from the parent's surviving weights, or fresh (`squish_tf.evolve.surgery`).
OFFSPRING_INITS = ("inherit", "scratch")
# How the winner becomes the SquishedNet (`squish_tf.evolve.polish`).
FINAL_INITS = ("scratch", "inherit", "best")
# How a generation's candidate is chosen (`squish_tf.evolve.evolution.select`): the
# registered selection rules.
SELECTIONS = registries.selections.names()


# A size target is aimed at this fraction of itself (see _generation_synthesis).
TARGET_MARGIN = 0.95
# LiteRT threads of the latency table and of the candidates' measured latency
# (the benchmark's default).
LATENCY_THREADS = 2


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
  """The generation loop's settings; field names are the flag names.

  Attributes:
    generations: G, the most generations to run.
    population: offspring drawn per generation.
    offspring_epochs: fine-tuning epochs per offspring.
    offspring_learning_rate: peak learning rate of fine-tuning (offspring and
      the final polish); the rest of the recipe (optimizer, schedule, weight
      decay) is the training flags'.
    offspring_warmup_epochs: linear warm-up of every fine-tune, in epochs.
    offspring_init: "inherit" (weights sliced from the parent) or "scratch"
      (fresh weights, trained with the ancestor's warm-up).
    final_init: how the winner becomes the SquishedNet (`squish_tf.evolve.polish`):
      "scratch" trains its widths from fresh weights for the lineage's budget
      (ancestor + chosen offspring + final_epochs) as the baselines train;
      "inherit" fine-tunes its inherited weights for final_epochs (the polish);
      "best" does both and keeps the better on the validation split.
    final_epochs: the final stage's share of the lineage's budget: the
      polish's epochs, or what scratch training adds to the lineage's epochs
      (0 skips the stage and ships the winner as evolved).
    distill: offspring fine-tunes and the polish learn from the teacher's
      softened predictions as well as the labels.
    distill_alpha: weight of the distillation term (0 = labels only).
    distill_temperature: softening temperature.
    teacher: "ancestor" or "parent" (the offspring's own parent; the polish
      then learns from the ancestor all the same).
    target_size_mb: stop once the chosen offspring is at most this size (None: no target).
    target_macs: stop once the chosen offspring has at most this many MACs (None: no target).
    target_latency_ms: stop once the chosen offspring's predicted LiteRT
      latency (the measured table, `squish_tf.bench.latency`) is at most this.
    target_speedup: stop once the chosen offspring is predicted this many
      times faster than the ancestor (a latency target of ancestor / speedup).
    targets: a family's budgets ("1.5x", "0.8MB", "5ms", "200MMACs"), walked in order, one
      member each (`squish_tf.evolve.targets`); empty: the --target_* options, one member.
    latency_format: the LiteRT model the latency table times: "fp32", or
      "int8" when the deployment target is int8.
    max_accuracy_drop: largest allowed drop of validation top-1 from the
      ancestor, as a fraction (0.05 = 5 points). It gates offspring after
      their short fine-tunes, before the final stage trains the winner longer
      (an offspring a few points down after its short fine-tune is not lost).
    max_arena_kb, max_flash_kb: the microcontroller budgets (0: none), hard limits on
      every chosen child's predicted TFLite-Micro arena and int8 flash
      (`squish_tf.evolve.micro_budget`).
    select: how a generation's candidate is chosen among those within
      max_accuracy_drop. "top1": the highest validation top-1 (ties: fewer
      parameters). "top1_per_ms": the least validation top-1 lost per
      millisecond of measured LiteRT latency saved over its parent, on the
      ancestor's clock (each latency relative to the ancestor's in the same
      timing session: 1 / measured speed-up),
      (parent_top1 - top1) / (1/parent_speedup - 1/speedup); a candidate
      that saves no time ranks last, one that gains accuracy while saving
      time first.
    max_retries: fresh draws allowed per candidate whose loss diverges.
    seed: the run's seed; every draw's seed derives from (seed, g, candidate, attempt).
    target_fraction: env_mode=target's expected child/parent size per
      generation; None derives it from the size target and the generations left.
    workers: processes that fine-tune a generation's offspring at once (1: in
      this process). Small networks leave a CPU core idle, so 2 workers on 2
      cores finish a generation sooner; results are the same either way. Not
      part of a run's identity: a run may resume with another count.
    deep_candidates: when a generation would stop for accuracy, how many of its best
      candidates fine-tune --final_epochs more and are judged again
      (`squish_tf.evolve.deep_budget`); 0 judges the short fine-tunes only.
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py). The data's --seed sets `seed` too.
  generations: int = dataclasses.field(default=2, metadata=dict(
      help="Most generations to run.", lower_bound=1))
  population: int = dataclasses.field(default=2, metadata=dict(
      help="Offspring drawn per generation.", lower_bound=1))
  offspring_epochs: int = dataclasses.field(default=2, metadata=dict(
      help="Fine-tuning epochs per offspring.", lower_bound=1))
  offspring_learning_rate: float = dataclasses.field(default=3e-3, metadata=dict(help=(
      "Peak learning rate of every fine-tune (offspring, the final polish, pruning's baseline); "
      "optimizer, schedule and weight decay are the training flags'."), greater_than=0.0))
  offspring_warmup_epochs: float = dataclasses.field(default=0.25, metadata=dict(
      help="Linear learning-rate warm-up at the start of every fine-tune, in epochs.",
      lower_bound=0.0))
  offspring_init: str = dataclasses.field(default="inherit", metadata=dict(
      enum_values=OFFSPRING_INITS, help=(
          "inherit: offspring start from the parent's surviving weights; scratch: fresh "
          "initialisation (the Darwin paper's newborns), warmed up like the ancestor.")))
  final_init: str = dataclasses.field(default="best", metadata=dict(
      enum_values=FINAL_INITS, help=(
          "How the evolved winner becomes the SquishedNet. scratch: its widths train from fresh "
          "weights for the lineage's budget (the ancestor's epochs + each chosen offspring's + "
          "--final_epochs), with the recipe and seed the baselines get; inherit: its inherited "
          "weights fine-tune for --final_epochs, distilled (the polish); best: both, and the "
          "higher validation top-1 is kept (the report says which and why).")))
  final_epochs: int = dataclasses.field(default=4, metadata=dict(help=(
      "The final stage's share of the lineage's budget: the polish's epochs "
      "(--final_init=inherit), or the epochs scratch training adds to the lineage's; 0 ships the "
      "winner as evolved."), lower_bound=0))
  distill: bool = dataclasses.field(default=True, metadata=dict(help=(
      "Offspring fine-tunes and the polish learn from the teacher's softened predictions as well "
      "as the labels (knowledge distillation).")))
  distill_alpha: float = dataclasses.field(
      default=train_config_lib.DistillConfig.alpha, metadata=dict(
      help="Weight of the distillation term: loss = (1 - alpha) CE + alpha T^2 KL; 0 = labels "
      "only.", lower_bound=0.0, upper_bound=1.0))
  distill_temperature: float = dataclasses.field(
      default=train_config_lib.DistillConfig.temperature, metadata=dict(
          help="Distillation temperature T (softens both models' predictions).",
          lower_bound=1.0))
  teacher: str = dataclasses.field(default="ancestor", metadata=dict(
      enum_values=train_config_lib.TEACHERS,
      help="Whom offspring distil from: the ancestor, or their own parent."))
  target_size_mb: Optional[float] = dataclasses.field(default=None, metadata=dict(
      help="Stop once the chosen offspring is at most this many MB (float32 weights).",
      greater_than=0.0))
  target_macs: Optional[int] = dataclasses.field(default=None, metadata=dict(
      help="Stop once the chosen offspring has at most this many MACs.", greater_than=0))
  target_latency_ms: Optional[float] = dataclasses.field(default=None, metadata=dict(help=(
      "Stop once the chosen offspring's LiteRT latency at batch 1 is at most this many ms on "
      "the latency table's clock: its speed-up, timed interleaved with the ancestor, at least "
      "the table's ms for the ancestor over this (the table's prediction where the clock is "
      "another device's)."), greater_than=0.0))
  target_speedup: Optional[float] = dataclasses.field(default=None, metadata=dict(help=(
      "Stop once the chosen offspring runs this many times faster than the ancestor (LiteRT, "
      "batch 1, timed interleaved with it on the latency table's clock; the table's "
      "prediction where the clock is another device's)."), greater_than=1.0))
  targets: Optional[Sequence[str]] = dataclasses.field(default=None, metadata=dict(
      kind="list", help=(
      "A family from one run: budgets, comma-separated, each a speed-up over the ancestor "
      "(1.5x), a size (0.8MB), a latency on the run's clock (5ms) or MACs (200MMACs). "
      "One evolution walks them in order; the best chosen offspring meeting each (validation "
      "top-1) becomes a member, and every member gets the final stage and the export. "
      "--target_size_mb, --target_macs, --target_latency_ms and --target_speedup are the "
      "one-member case and exclude this one.")))
  latency_format: str = dataclasses.field(default="fp32", metadata=dict(
      enum_values=latency_table_lib.FORMATS, help=(
          "The LiteRT model the latency table times (--cost=latency, latency targets): fp32, or "
          "int8 when you deploy int8.")))
  max_accuracy_drop: float = dataclasses.field(default=0.05, metadata=dict(help=(
      "Largest allowed drop of validation top-1 from the ancestor, as a fraction (0.03 = 3 "
      "points); offspring beyond it are never chosen.")))
  max_arena_kb: float = dataclasses.field(default=0.0, metadata=dict(help=(
      "Microcontroller budget: the most KB of TFLite-Micro tensor arena (RAM) the int8 "
      "SquishedNet may need; a child over it is never chosen, and floors that cannot fit stop "
      "the run before training. 0: no limit."), lower_bound=0.0))
  max_flash_kb: float = dataclasses.field(default=0.0, metadata=dict(help=(
      "Microcontroller budget: the most KB of flash (the int8 .tflite file) the SquishedNet "
      "may take; a child over it is never chosen. 0: no limit."), lower_bound=0.0))
  select: str = dataclasses.field(default="top1", metadata=dict(enum_values=SELECTIONS, help=(
      "How a generation's candidate is chosen among those within --max_accuracy_drop. top1: the "
      "highest validation top-1 (ties: fewer params). top1_per_ms: the least validation top-1 "
      "lost per ms of measured LiteRT latency (fp32, batch 1) saved over its parent, latencies "
      "relative to the ancestor's timed in the same session; a candidate that saves no time "
      "ranks last.")))
  max_retries: int = dataclasses.field(default=2, metadata=dict(
      help="Fresh draws allowed per candidate whose loss diverges (NaN).", lower_bound=0))
  seed: int = 0
  target_fraction: Optional[float] = dataclasses.field(default=None, metadata=dict(help=(
      "env_mode=target: expected child size as a fraction of its parent's. Unset: shrink evenly "
      "towards --target_size_mb over the generations left (else "
      f"{synthesis.SynthesisConfig.target_fraction})."), greater_than=0.0, less_than=1.0))
  # The command runs 2 workers (2 cores); a library caller asks for them.
  workers: int = dataclasses.field(default=1, metadata=dict(flag_default=2, help=(
      "Processes that fine-tune a generation's offspring (and train the baselines) at once; 1 "
      "runs them one by one in this process. Small networks leave a core idle, so 2 suits 2 "
      "cores. Results do not depend on it. With a --distribution_strategy other than off it is "
      "1."), lower_bound=1))
  device: Optional[str] = dataclasses.field(default=None, metadata=dict(
      enum_values=profile_lib.DEVICES, help=(
          "Aim at a built-in device's latency instead of this machine's fp32 clock: " + "; ".join(
              f"{d.name}: {d.description}" for d in profile_lib.BUILT_IN.values())
          + ". Packed and measured here on first use (a minute or two), cached in "
          "--device_cache_dir. Excludes --device_profile.")))
  device_profile: Optional[str] = dataclasses.field(default=None, metadata=dict(help=(
      "A device profile (JSON) written by measure.py of a `squish-profile pack` on the target "
      "device (docs/devices.md): the latency table comes from it. Excludes --device.")))
  device_cache_dir: Optional[str] = dataclasses.field(default=None, metadata=dict(help=(
      "Where --device keeps its measured profiles (device_<name>_<px>px_<classes>c.json); "
      "unset: the run dir.")))
  deep_candidates: int = dataclasses.field(default=2, metadata=dict(help=(
      "When no offspring of a generation is within --max_accuracy_drop after its short "
      "fine-tune, this many of the best by validation top-1 (at most 4x --max_accuracy_drop "
      "down) fine-tune --final_epochs more from their weights, distilled as offspring are, and "
      "are judged again on validation before evolution stops (squish_tf.evolve.deep_budget). "
      "0: stop on the short fine-tunes."), lower_bound=0))

  def __post_init__(self):
    fields_lib.check(self)  # every bound and choice declared above
    self._check_device()
    self._check_targets()
    if not 0 <= self.max_accuracy_drop <= 1:
      raise ValueError(f"--max_accuracy_drop is a fraction in [0, 1] (0.03 = 3 points), "
                       f"got {self.max_accuracy_drop}.")

  def _check_device(self) -> None:
    """--device and --device_profile exclude each other; a profile must read as one."""
    if self.device is not None and self.device_profile is not None:
      raise ValueError(f"--device={self.device} and --device_profile={self.device_profile} "
                       "both name the clock to aim at; pass one of them.")
    fmt = (profile_lib.BUILT_IN[self.device].format if self.device is not None else
           profile_lib.load_profile(self.device_profile).format if self.device_profile
           else None)
    if fmt is not None and self.latency_format not in ("fp32", fmt):
      raise ValueError(f"--latency_format={self.latency_format}, but the device's profile "
                       f"times {fmt} files: leave --latency_format unset with a device.")

  def _check_targets(self) -> None:
    """--targets parses (`targets.parse_targets`) and excludes the --target_* options."""
    if not self.targets:
      return
    target_list.parse_targets(self.targets)
    single = [f"--{name}={getattr(self, name)}" for name in target_list.TARGET_OPTIONS
              if getattr(self, name) is not None]
    if single:
      raise ValueError(f"--targets={','.join(self.targets)} and {' '.join(single)} both set "
                       "what evolution stops at; pass one: --targets for a family, the single "
                       "target options for one SquishedNet.")

  @property
  def target_set(self) -> bool:
    """Some target is set (--targets or a --target_* option)."""
    return bool(self.targets) or any(
        value is not None for value in (self.target_size_mb, self.target_macs,
                                        self.target_latency_ms, self.target_speedup))

  @property
  def device_set(self) -> bool:
    return self.device is not None or self.device_profile is not None

  @property
  def measure_clock(self) -> profile_lib.Clock:
    """What each generation's candidates are timed on here (`profile.measuring_clock`)."""
    return profile_lib.measuring_clock(self.device, self.device_profile, self.latency_format,
                                       LATENCY_THREADS)

  @property
  def latency_target_set(self) -> bool:
    """Some target is a latency or a speed-up (a --targets item in x or ms included)."""
    return (target_list.aims_at_latency(self.targets or ()) or self.target_latency_ms is not None
            or self.target_speedup is not None)

  def needs_latency(self, synth: synthesis.SynthesisConfig) -> bool:
    """True when the run needs a latency table (--cost=latency, a latency target, a device)."""
    return synth.cost == "latency" or self.latency_target_set or self.device_set

  def latency_target_ms(self, ancestor_ms: Optional[float]) -> Optional[float]:
    """The latency target in predicted ms (the tighter of the two, when both are set)."""
    targets = []
    if self.target_latency_ms is not None:
      targets.append(self.target_latency_ms)
    if self.target_speedup is not None and ancestor_ms is not None:
      targets.append(ancestor_ms / self.target_speedup)
    return min(targets) if targets else None

  def distill_config(self) -> train_config_lib.DistillConfig:
    return train_config_lib.DistillConfig(alpha=self.distill_alpha,
                                     temperature=self.distill_temperature)

  def fine_tune_config(self, train_config: train_config_lib.TrainConfig,
                       epochs: Optional[int] = None) -> train_config_lib.TrainConfig:
    """The training flags' recipe at the fine-tuning rate, length and warm-up.

    `--offspring_init=scratch` children start from fresh weights, so they warm
    up like the ancestor did.
    """
    warmup = (train_config.warmup_epochs if self.offspring_init == "scratch"
              else self.offspring_warmup_epochs)
    return train_config.fine_tune(epochs or self.offspring_epochs, self.offspring_learning_rate,
                                  warmup)
