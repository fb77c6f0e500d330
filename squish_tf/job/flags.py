"""absl flag definitions shared by every main, with the same names everywhere.

Each `define_*` function registers a group of flags once (safe to call from
several mains in one process) and records their names, so `flags_text()` can
write exactly the flags that matter into `flags.txt`, re-runnable with
`--flagfile`. `*_config_from_flags()` turn parsed flags into the library's
config dataclasses; the mains stay thin.
"""

import sys
import traceback
from typing import Callable, List, Sequence, Tuple

from absl import app, flags, logging

from squish_tf.data import config as data_config_lib
from squish_tf.net import spec as spec_lib

FLAGS = flags.FLAGS
_DEFINED: List[str] = []
# The data flags that decide what evolution trains and selects on: a run dir
# made with other values is refused. (Test-split sizes are not among them:
# nothing before the final evaluation reads the test split.)
DATA_IDENTITY_FLAGS = ("dataset", "data_dir", "image_size", "batch_size", "validation_split",
                       "test_split", "augment", "shapes10_train_size",
                       "shapes10_validation_size")


def _define(kind: Callable, name: str, *args, **kwargs) -> None:
  if name in FLAGS:
    return
  kind(name, *args, **kwargs)
  _DEFINED.append(name)


def define_data_flags() -> None:
  """--dataset, --data_dir, --image_size, --batch_size, ... (shared by every main)."""
  defaults = data_config_lib.DataConfig()
  _define(flags.DEFINE_string, "dataset", defaults.dataset,
          "Data source: shapes10 (built-in, offline), folder (class sub-folders under "
          "--data_dir), tfds:NAME (any TFDS image-classification dataset) or imagenet10.")
  _define(flags.DEFINE_string, "data_dir", defaults.data_dir,
          "Image folder for --dataset=folder; TFDS data dir for tfds:NAME and imagenet10.")
  _define(flags.DEFINE_integer, "image_size", defaults.image_size,
          "Images are resized to image_size x image_size.", lower_bound=1)
  _define(flags.DEFINE_integer, "batch_size", defaults.batch_size,
          "Global batch size (split across replicas).", lower_bound=1)
  _define(flags.DEFINE_float, "validation_split", defaults.validation_split,
          "Fraction held out for validation (selection, the accuracy budget) when the source "
          "has no validation split.", lower_bound=0.0, upper_bound=0.9)
  _define(flags.DEFINE_float, "test_split", defaults.test_split,
          "Fraction held out for the test split (every reported accuracy) when the source has "
          "no test split (folder without test/, TFDS without test).", lower_bound=0.0,
          upper_bound=0.9)
  _define(flags.DEFINE_list, "augment", list(defaults.augment),
          "Training augmentations, comma-separated: translate (random shift up to 10%, "
          "reflected edges), flip (random horizontal mirror; opt-in: it damages classes that "
          "depend on orientation, such as digits, text and arrows), or none.")
  _define(flags.DEFINE_boolean, "skip_bad_images", defaults.skip_bad_images,
          "Skip and count unreadable images instead of stopping with an error.")
  _define(flags.DEFINE_enum, "cache", defaults.cache, list(data_config_lib.CACHE_MODES),
          "Where decoded images are kept between epochs: auto (in memory what fits a share of "
          "the available memory divided among the job's processes, the rest on disk in the run "
          "dir), memory, disk (in the run dir) or none (decoded every epoch). The batches are "
          "the same whichever it is.")
  _define(flags.DEFINE_integer, "shapes10_train_size", defaults.shapes10_train_size,
          "Training images generated for --dataset=shapes10.", lower_bound=10)
  _define(flags.DEFINE_integer, "shapes10_validation_size", defaults.shapes10_validation_size,
          "Validation images generated for --dataset=shapes10.", lower_bound=10)
  _define(flags.DEFINE_integer, "shapes10_test_size", defaults.shapes10_test_size,
          "Test images generated for --dataset=shapes10.", lower_bound=10)
  _define(flags.DEFINE_integer, "seed", 0,
          "Seed for data generation, shuffling, initial weights and synthesis.")


def define_train_flags() -> None:
  """--train_epochs, --learning_rate, --optimizer, ... and the distribution flags."""
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  defaults = train_lib.TrainConfig()
  _define(flags.DEFINE_integer, "train_epochs", defaults.epochs,
          "Epochs of training from scratch.", lower_bound=1)
  _define(flags.DEFINE_float, "learning_rate", defaults.learning_rate,
          "Peak learning rate.", lower_bound=0.0)
  _define(flags.DEFINE_enum, "optimizer", defaults.optimizer, list(train_lib.OPTIMIZERS),
          "Optimizer.")
  _define(flags.DEFINE_enum, "lr_schedule", defaults.lr_schedule, ["cosine", "constant"],
          "Learning-rate schedule over each fit.")
  _define(flags.DEFINE_float, "weight_decay", defaults.weight_decay,
          "Decoupled weight decay; 0 disables.", lower_bound=0.0)
  _define(flags.DEFINE_float, "warmup_epochs", defaults.warmup_epochs,
          "Linear learning-rate warm-up at the start of training from scratch (at most a "
          "quarter of the run); 0 disables.", lower_bound=0.0)
  _define(flags.DEFINE_enum, "classifier_activation", "linear",
          list(spec_lib.CLASSIFIER_ACTIVATIONS),
          "Activation on conv10: linear (squish_tf's default) or relu (as published).")
  _define(flags.DEFINE_float, "dropout_rate", 0.5, "Dropout before conv10.", lower_bound=0.0,
          upper_bound=0.99)
  _define(flags.DEFINE_boolean, "batch_norm", True,
          "Batch normalisation after conv1 and every fire convolution of the ancestor (folded "
          "into the convolutions in every export).")
  define_distribution_flags()


def define_distribution_flags() -> None:
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  _define(flags.DEFINE_enum, "distribution_strategy", "off",
          list(train_lib.DISTRIBUTION_STRATEGIES),
          "tf.distribute strategy: off, one_device, mirrored, multi_worker_mirrored "
          "(cluster from TF_CONFIG) or tpu.")
  _define(flags.DEFINE_string, "tpu", "", "TPU name or address for --distribution_strategy=tpu.")


def define_synthesis_flags() -> None:
  """The generation loop's and the genetic encoding's flags (see SYNTHESIS.md)."""
  from squish_tf.evolve import config as evolve_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.evolve import encoding as synthesis  # pylint: disable=g-import-not-at-top

  loop = evolve_config_lib.EvolutionConfig()
  encoding = synthesis.SynthesisConfig()
  _define(flags.DEFINE_integer, "generations", loop.generations,
          "Most generations to run.", lower_bound=1)
  _define(flags.DEFINE_integer, "population", loop.population,
          "Offspring drawn per generation.", lower_bound=1)
  _define(flags.DEFINE_integer, "offspring_epochs", loop.offspring_epochs,
          "Fine-tuning epochs per offspring.", lower_bound=1)
  _define(flags.DEFINE_float, "offspring_learning_rate", loop.offspring_learning_rate,
          "Peak learning rate of every fine-tune (offspring, the final polish, pruning's "
          "baseline); optimizer, schedule and weight decay are the training flags'.",
          lower_bound=0.0)
  _define(flags.DEFINE_float, "offspring_warmup_epochs", loop.offspring_warmup_epochs,
          "Linear learning-rate warm-up at the start of every fine-tune, in epochs.",
          lower_bound=0.0)
  _define(flags.DEFINE_enum, "offspring_init", loop.offspring_init, ["inherit", "scratch"],
          "inherit: offspring start from the parent's surviving weights; scratch: fresh "
          "initialisation (the Darwin paper's newborns), warmed up like the ancestor.")
  _define(flags.DEFINE_enum, "final_init", loop.final_init, list(evolve_config_lib.FINAL_INITS),
          "How the evolved winner becomes the SquishedNet. scratch: its widths train from "
          "fresh weights for the lineage's budget (the ancestor's epochs + each chosen "
          "offspring's + --final_epochs), with the recipe and seed the baselines get; "
          "inherit: its inherited weights fine-tune for --final_epochs, distilled (the polish).")
  _define(flags.DEFINE_integer, "final_epochs", loop.final_epochs,
          "The final stage's share of the lineage's budget: the polish's epochs "
          "(--final_init=inherit), or the epochs scratch training adds to the lineage's; 0 "
          "ships the winner as evolved.", lower_bound=0)
  _define(flags.DEFINE_boolean, "distill", loop.distill,
          "Offspring fine-tunes and the polish learn from the teacher's softened predictions "
          "as well as the labels (knowledge distillation).")
  _define(flags.DEFINE_float, "distill_alpha", loop.distill_alpha,
          "Weight of the distillation term: loss = (1 - alpha) CE + alpha T^2 KL; 0 = labels "
          "only.", lower_bound=0.0, upper_bound=1.0)
  _define(flags.DEFINE_float, "distill_temperature", loop.distill_temperature,
          "Distillation temperature T (softens both models' predictions).", lower_bound=1.0)
  _define(flags.DEFINE_enum, "teacher", loop.teacher, ["ancestor", "parent"],
          "Whom offspring distil from: the ancestor, or their own parent.")
  _define(flags.DEFINE_float, "target_size_mb", loop.target_size_mb,
          "Stop once the chosen offspring is at most this many MB (float32 weights).")
  _define(flags.DEFINE_integer, "target_macs", loop.target_macs,
          "Stop once the chosen offspring has at most this many MACs.")
  _define(flags.DEFINE_float, "target_latency_ms", loop.target_latency_ms,
          "Stop once the chosen offspring's LiteRT latency at batch 1, as predicted by the "
          "latency table measured on this machine, is at most this many ms.")
  _define(flags.DEFINE_float, "target_speedup", loop.target_speedup,
          "Stop once the chosen offspring is predicted this many times faster than the "
          "ancestor (LiteRT, batch 1, the measured latency table).")
  _define(flags.DEFINE_enum, "latency_format", loop.latency_format, ["fp32", "int8"],
          "The LiteRT model the latency table times (--cost=latency, latency targets): fp32, "
          "or int8 when you deploy int8.")
  _define(flags.DEFINE_float, "max_accuracy_drop", loop.max_accuracy_drop,
          "Largest allowed drop of validation top-1 from the ancestor, as a fraction "
          "(0.03 = 3 points); offspring beyond it are never chosen.")
  _define(flags.DEFINE_integer, "max_retries", loop.max_retries,
          "Fresh draws allowed per candidate whose loss diverges (NaN).", lower_bound=0)
  _define(flags.DEFINE_float, "target_fraction", loop.target_fraction,
          "env_mode=target: expected child size as a fraction of its parent's. Unset: shrink "
          "evenly towards --target_size_mb over the generations left (else "
          f"{encoding.target_fraction}).")
  _define(flags.DEFINE_float, "target_gamma", encoding.target_gamma,
          "env_mode=target: how pressure is shared between modules, F_l = min(1, F * "
          "(mean cost / module cost)^target_gamma); 0 = one F for every layer, larger values "
          "press harder on the parameter-heavy late fires and spare conv1 and the early fires.",
          lower_bound=0.0)
  _define(flags.DEFINE_enum, "env_mode", encoding.env_mode, list(synthesis.ENV_MODES),
          "Environmental factor: constant (one F, the paper), target (F bisected per "
          "generation to hit --target_fraction) or cost_weighted (costlier layers, more "
          "pressure).")
  _define(flags.DEFINE_float, "env_factor", encoding.env_factor,
          "F in (0, 1]: a filter survives with probability F * P(c).")
  _define(flags.DEFINE_enum, "cost", encoding.cost, list(synthesis.COSTS),
          "What env_mode=target and cost_weighted measure: params, macs or latency (LiteRT "
          "ms from a table measured once on this machine and cached in the run dir).")
  _define(flags.DEFINE_float, "gamma", encoding.gamma,
          "cost_weighted exponent: F_l = clip(F * (mean_cost / cost_l)^gamma, f_min, 1).")
  _define(flags.DEFINE_float, "f_min", encoding.f_min, "cost_weighted lower clip of F_l.")
  _define(flags.DEFINE_integer, "min_filters", encoding.min_filters,
          "Every layer keeps at least this many filters.")
  _define(flags.DEFINE_float, "min_fraction", encoding.min_fraction,
          "Every layer keeps at least this fraction of its parent's filters.")
  _define(flags.DEFINE_integer, "channel_multiple", encoding.channel_multiple,
          "Round survivor counts up to a multiple of this (1 = off, the default: rounding up "
          "to 4 or 8 measured no faster in LiteRT here, and up to 19% slower where it adds "
          "filters; benchmarks/channel_multiple.py).")
  _define(flags.DEFINE_integer, "workers", 2,
          "Processes that fine-tune a generation's offspring (and train the baselines) at "
          "once; 1 runs them one by one in this process. Small networks leave a core idle, so "
          "2 suits 2 cores. Results do not depend on it. With a --distribution_strategy "
          "other than off it is 1.", lower_bound=1)


def define_export_flags() -> None:
  """--formats, --qat_epochs, --qat_learning_rate, --calibration_images."""
  from squish_tf import export  # pylint: disable=g-import-not-at-top
  from squish_tf.export import (
    exporter,  # pylint: disable=g-import-not-at-top
    qat,  # pylint: disable=g-import-not-at-top
  )

  _define(flags.DEFINE_list, "formats", None,
          f"Export formats, comma-separated, from {', '.join(export.FORMATS)}. Default: all this "
          f"machine can produce ({', '.join(export.available_formats())}).")
  _define(flags.DEFINE_integer, "qat_epochs", 1,
          "Quantization-aware fine-tuning epochs for qat_int8.", lower_bound=1)
  _define(flags.DEFINE_float, "qat_learning_rate", qat.DEFAULT_LEARNING_RATE,
          "Adam learning rate of QAT fine-tuning.", lower_bound=0.0)
  _define(flags.DEFINE_integer, "calibration_images", exporter.CALIBRATION_IMAGES,
          "Training images (no augmentation) that calibrate full-int8.", lower_bound=1)


def define_benchmark_flags() -> None:
  """--batch_sizes, --num_threads, --eval_images, --min_seconds, --min_runs, --pair_resolutions."""
  _define(flags.DEFINE_list, "batch_sizes", ["1", "8"], "Batch sizes to time, comma-separated.")
  _define(flags.DEFINE_integer, "num_threads", 2,
          "CPU threads for LiteRT and for TensorFlow (Keras, SavedModel).", lower_bound=1)
  _define(flags.DEFINE_integer, "eval_images", 2000,
          "Test images to measure top-1 on (the same for every artefact).", lower_bound=1)
  _define(flags.DEFINE_float, "min_seconds", 0.5, "Time each batch size for at least this long.",
          lower_bound=0.0)
  _define(flags.DEFINE_integer, "min_runs", 10, "Time each batch size at least this many times.",
          lower_bound=1)
  _define(flags.DEFINE_list, "pair_resolutions", ["run", "224"],
          "Input sizes at which the fp32 speed-ups are measured (interleaved pairs): run = the "
          "run's own --image_size, plus square sizes at which every compared model is rebuilt "
          "with the same weights and timed at batch 1 (e.g. run,224; run alone for none).")


def benchmark_config_from_flags(formats=None, values=None):
  from squish_tf.bench import config as bench_config_lib  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  try:
    batch_sizes = tuple(int(size) for size in v.batch_sizes)
  except ValueError:
    raise ValueError(f"--batch_sizes must be comma-separated integers, got "
                     f"{','.join(v.batch_sizes)!r}.") from None
  return bench_config_lib.BenchmarkConfig(
      batch_sizes=batch_sizes, num_threads=v.num_threads, min_seconds=v.min_seconds,
      min_runs=v.min_runs, formats=formats,
      pair_resolutions=pair_resolutions_from_flag(v.pair_resolutions))


def pair_resolutions_from_flag(values) -> Tuple[int, ...]:
  """--pair_resolutions ("run", "224", ...) -> the extra sizes, (224,); "run" is always timed."""
  sizes = []
  for value in values:
    value = str(value).strip().lower()
    if value == "run":
      continue
    if not value.isdigit() or int(value) < 1:
      raise ValueError(f"--pair_resolutions takes 'run' and positive image sizes, comma-separated "
                       f"(e.g. run,224), got {','.join(map(str, values))!r}.")
    sizes.append(int(value))
  return tuple(sizes)


def job_config_from_flags(values=None, check_ancestor: bool = True):
  """The main job's JobConfig (`squish`'s flags): run dir, exports, baselines, benchmark."""
  from squish_tf.job import config as job_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import baselines as baselines_lib  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  return job_config_lib.JobConfig(
      run_dir=run_dir_from_flags(v), run_name=v.run_name, export_formats=v.formats,
      qat_epochs=v.qat_epochs, qat_learning_rate=v.qat_learning_rate,
      calibration_images=v.calibration_images, baselines=baselines_lib.parse_names(v.baselines),
      benchmark=benchmark_config_from_flags(values=v), eval_images=v.eval_images,
      classifier_activation=v.classifier_activation, dropout_rate=v.dropout_rate,
      batch_norm=v.batch_norm, check_ancestor=check_ancestor)


def run_dir_from_flags(values=None) -> str:
  """--run_dir, or saved_models/<--run_name>."""
  import os  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  return v.run_dir or os.path.join("saved_models", v.run_name)


def evolution_config_from_flags(values=None):
  from squish_tf.evolve import config as evolve_config_lib  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  return evolve_config_lib.EvolutionConfig(
      generations=v.generations, population=v.population,
      offspring_epochs=v.offspring_epochs,
      offspring_learning_rate=v.offspring_learning_rate,
      offspring_warmup_epochs=v.offspring_warmup_epochs,
      offspring_init=v.offspring_init, final_init=v.final_init,
      final_epochs=v.final_epochs,
      distill=v.distill, distill_alpha=v.distill_alpha,
      distill_temperature=v.distill_temperature, teacher=v.teacher,
      target_size_mb=v.target_size_mb,
      target_macs=v.target_macs, target_latency_ms=v.target_latency_ms,
      target_speedup=v.target_speedup, latency_format=v.latency_format,
      max_accuracy_drop=v.max_accuracy_drop,
      max_retries=v.max_retries, seed=v.seed, target_fraction=v.target_fraction,
      workers=v.workers)


def synthesis_config_from_flags(values=None):
  from squish_tf.evolve import encoding as synthesis  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  fields = dict(env_mode=v.env_mode, env_factor=v.env_factor, cost=v.cost,
                target_gamma=v.target_gamma,
                gamma=v.gamma, f_min=v.f_min, min_filters=v.min_filters,
                min_fraction=v.min_fraction, channel_multiple=v.channel_multiple)
  if v.target_fraction is not None:
    fields["target_fraction"] = v.target_fraction
  return synthesis.SynthesisConfig(**fields)


def flag_values(names: Sequence[str]) -> dict:
  """{"--name": value} of the given flags, for run identity checks."""
  return {f"--{name}": FLAGS[name].value for name in names}


def data_config_from_flags(values=None) -> data_config_lib.DataConfig:
  v = FLAGS if values is None else values
  return data_config_lib.DataConfig(
      dataset=v.dataset, data_dir=v.data_dir, image_size=v.image_size,
      batch_size=v.batch_size, validation_split=v.validation_split,
      test_split=v.test_split, seed=v.seed, augment=",".join(v.augment),
      skip_bad_images=v.skip_bad_images, cache=v.cache,
      shapes10_train_size=v.shapes10_train_size,
      shapes10_validation_size=v.shapes10_validation_size,
      shapes10_test_size=v.shapes10_test_size)


def train_config_from_flags(epochs_flag: str = "train_epochs", values=None):
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  v = FLAGS if values is None else values
  return train_lib.TrainConfig(epochs=getattr(v, epochs_flag),
                               learning_rate=v.learning_rate, optimizer=v.optimizer,
                               lr_schedule=v.lr_schedule, weight_decay=v.weight_decay,
                               warmup_epochs=v.warmup_epochs)


def strategy_from_flags():
  """The --distribution_strategy, or None for "off" (the default strategy, workers allowed)."""
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  if FLAGS.distribution_strategy == "off":
    return None
  return train_lib.get_distribution_strategy(FLAGS.distribution_strategy, FLAGS.tpu)


def defined_flag_names() -> List[str]:
  """The squish_tf flags registered so far, in definition order."""
  return [name for name in _DEFINED if name in FLAGS]


def flags_text(extra: Sequence[str] = ()) -> str:
  """squish_tf's flags and the main's own `extra` ones, one per line, as --flagfile reads them."""
  lines = []
  for name in defined_flag_names() + [n for n in extra if n in FLAGS]:
    flag = FLAGS[name]
    if flag.value is None:
      continue
    lines.append(flag.serialize())
  return "\n".join(lines) + "\n"


def write_flags_file(directory: str, extra: Sequence[str] = ()) -> None:
  """Writes flags.txt (atomically) into `directory`."""
  import os  # pylint: disable=g-import-not-at-top

  from squish_tf import files as files_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import model_io  # pylint: disable=g-import-not-at-top

  files_lib.write_text(os.path.join(directory, model_io.FLAGS_FILE), flags_text(extra))


def run(main: Callable[[List[str]], None]) -> None:
  """app.run(main), printing input errors as one clear line instead of a traceback.

  A ValueError (bad flag combination, missing data, wrong model dir) becomes
  `error: <message>` on stderr and exit status 2; `--verbosity=1` adds the
  traceback.
  """

  # absl's --help lists the key flags of the module named by sys.argv[0]: for a console
  # script (`squish`) that is the script, not the module that defines and adopts them.
  for flag in FLAGS.get_key_flags_for_module(main.__module__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def guarded(argv):
    try:
      return main(argv)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
      if logging.get_verbosity() >= logging.DEBUG:
        traceback.print_exc()
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)

  app.run(guarded)
