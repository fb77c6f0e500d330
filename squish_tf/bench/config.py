"""`BenchmarkConfig`: what the benchmark times (formats, batch sizes, threads, runs) and the
resolutions its speed-up pairs are measured at again."""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from squish_tf import fields as fields_lib
from squish_tf.bench.artefacts import ARTEFACT_ORDER
from squish_tf.runtime import timing as timing_lib

# Sizes the fp32 pairs are timed at besides the run's own (BenchmarkConfig.pair_resolutions).
RESOLUTIONS = (224,)
# Batch sizes at those resolutions: a camera's one frame.
RESOLUTION_BATCH_SIZES = (1,)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """How to measure; mirrors the benchmark flags.

  Attributes:
    batch_sizes: batch sizes to time, each >= 1.
    eval_images: images the accuracy pass reads (the main job's: the test split's first).
    num_threads: LiteRT interpreter threads.
    min_seconds: keep timing a batch size until this much time has passed...
    min_runs: ...and at least this many timed runs were made.
    warmup_runs: untimed runs before timing each batch size.
    eval_batch_size: batch size of the accuracy pass (results do not depend on it).
    formats: artefact names or fnmatch patterns to keep (e.g. ("keras",
      "tflite_*")); None keeps every artefact found.
    pair_rounds: interleaved rounds of the compared .tflite files (0: no
      pairs, hence no speed-ups).
    pair_round_seconds: each file's share of a round, roughly: its invokes
      per round are calibrated to take this long...
    pair_min_invokes, pair_max_invokes: ...within these bounds.
    pair_resolutions: square input sizes, besides the models' own, at which
      the fp32 pairs are timed again (batch 1), each model rebuilt there with
      the same weights; () for none. A size equal to the models' own is
      skipped (already measured).
  """

  # A field with `help` metadata is a flag of the mains and an option of squish_tf.run
  # (squish_tf/job/options.py).
  batch_sizes: Tuple[int, ...] = dataclasses.field(default=(1, 8), metadata=dict(
      kind="list", help="Batch sizes to time, comma-separated."))
  eval_images: int = dataclasses.field(default=2000, metadata=dict(
      help="Test images to measure top-1 on (the same for every artefact).", lower_bound=1))
  num_threads: int = dataclasses.field(default=2, metadata=dict(
      help="CPU threads for LiteRT and for TensorFlow (Keras, SavedModel).", lower_bound=1))
  min_seconds: float = dataclasses.field(default=0.5, metadata=dict(
      help="Time each batch size for at least this long.", lower_bound=0.0))
  min_runs: int = dataclasses.field(default=10, metadata=dict(
      help="Time each batch size at least this many times.", lower_bound=1))
  warmup_runs: int = 3
  eval_batch_size: int = 32
  formats: Optional[Tuple[str, ...]] = None
  pair_rounds: int = timing_lib.DEFAULT_ROUNDS
  pair_round_seconds: float = timing_lib.DEFAULT_ROUND_SECONDS
  pair_min_invokes: int = timing_lib.DEFAULT_MIN_INVOKES
  pair_max_invokes: int = timing_lib.DEFAULT_MAX_INVOKES
  # The flag always times the run's own size ("run"), then these.
  pair_resolutions: Tuple[int, ...] = dataclasses.field(default=RESOLUTIONS, metadata=dict(
      kind="list", flag_default=("run", *RESOLUTIONS), help=(
          "Input sizes at which the fp32 speed-ups are measured (interleaved pairs): run = the "
          "run's own --image_size, plus square sizes at which every compared model is rebuilt "
          "with the same weights and timed at batch 1 (e.g. run,224; run alone for none).")))

  def __post_init__(self):
    fields_lib.check(self)  # the declared bounds; the rest below
    object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
    object.__setattr__(self, "pair_resolutions", tuple(self.pair_resolutions))
    for size in self.pair_resolutions:
      if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"pair_resolutions must be positive image sizes (e.g. (224,)), got "
                         f"{size!r} in {self.pair_resolutions!r}.")
    object.__setattr__(self, "pair_resolutions",
                       tuple(dict.fromkeys(int(s) for s in self.pair_resolutions)))
    if self.formats is not None:
      object.__setattr__(self, "formats", tuple(self.formats))
    if not self.batch_sizes:
      raise ValueError("batch_sizes is empty; give at least one batch size, e.g. (1, 8).")
    for size in self.batch_sizes:
      if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"batch sizes must be positive integers, got {size!r} in "
                         f"{self.batch_sizes!r}.")
    if len(set(self.batch_sizes)) != len(self.batch_sizes):
      raise ValueError(f"batch_sizes lists a size twice: {self.batch_sizes!r}.")
    object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
    for field, minimum in (("warmup_runs", 0),
                           ("eval_batch_size", 1), ("pair_rounds", 0), ("pair_min_invokes", 1),
                           ("pair_max_invokes", 1)):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}.")
    if not self.pair_round_seconds > 0:
      raise ValueError(f"pair_round_seconds must be > 0, got {self.pair_round_seconds!r}.")
    if self.pair_min_invokes > self.pair_max_invokes:
      raise ValueError(f"pair_min_invokes ({self.pair_min_invokes}) exceeds pair_max_invokes "
                       f"({self.pair_max_invokes}).")
    if self.formats is not None and not self.formats:
      raise ValueError("formats is empty; pass None to benchmark every artefact, or names such "
                       f"as {list(ARTEFACT_ORDER)}.")
