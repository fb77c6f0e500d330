"""Baselines that evolution must beat at equal size, trained on the same data.

- `width_scaled`: SqueezeNet with every layer uniformly thinned to about the
  SquishedNet's deployed parameter count, trained from scratch for the same
  total epochs (ancestor epochs + the chosen offspring's fine-tuning epochs +
  the polish), with the same recipe (optimizer, schedule, weight decay,
  warm-up: the training flags).
- `width_scaled_latency`: the same recipe and budget at the uniform width
  multiplier of the SquishedNet's measured LiteRT latency (found by the job
  with `squish_tf.bench.matching.match_latency` and passed in the budget as
  `latency_multiplier`): the comparison at equal milliseconds.
- `width_scaled_distilled`: the same network, trained the same way but
  distilled from the same ancestor as the SquishedNet, so the table separates
  what the evolved widths bring from what distillation brings.
- `magnitude_pruned`: the trained ancestor pruned with tensorflow-model-
  optimization's magnitude pruning to the SquishedNet's count of nonzero
  deployed weights, fine-tuned for the epochs evolution spent with the
  fine-tuning rate and warm-up. Its dense file does not shrink; its gzip does
  (both are reported).
- `mobilenet_v3_small`: Keras `MobileNetV3Small(minimalistic=True,
  weights=None)` with the width multiplier whose deployed size is nearest,
  trained from scratch for the same total epochs and recipe.
- `ladder`: one network per rung of the width ladder the job chose
  (`budget.ladder`: uniform widths, every channel count a multiple of
  `budget.tile`; `squish_tf.net.ladder`), each trained like `width_scaled`
  and written as its own model, `<run_dir>/baselines/ladder_<multiplier>/`.

Every figure here is on the validation split (what the baseline was trained
with); the main job's final evaluation adds the test split.

Which baselines there are, what the report calls them and which function trains each:
`squish_tf.train.baseline_registry` (one `Baseline` record each; `register` adds one).
This module trains them: `run_baselines`, and each record's trainer, given a
`BaselineInputs`.

Each baseline is a model directory (`model.keras` + `metrics.json`, plus
`spec.json` where it is a SqueezeNet) under `<run_dir>/baselines/<name>/`,
written atomically; a complete one is not retrained.
"""

import dataclasses
import math
import os
import shutil
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from squish_tf import files as files_lib
from squish_tf.data import config as data_config_lib
from squish_tf.layout import WORK_SUFFIX
from squish_tf.net import batch_norm as bn_lib
from squish_tf.net import ladder as ladder_lib
from squish_tf.net import metrics as metrics_lib
from squish_tf.net import model_io, models
from squish_tf.net import spec as spec_lib
from squish_tf.net.describe import deployed_params, keras_macs
from squish_tf.runtime import workers as workers_lib
from squish_tf.train import config as train_config_lib
from squish_tf.train import distill as distill_lib
from squish_tf.train import trainer as train_lib
from squish_tf.train.baseline_registry import names as registered
from squish_tf.train.baseline_registry import (  # the registry's names, here as before
  BASELINES,
  DEFAULT_BASELINES,
  Baseline,
  lookup,
  parse_names,
  register,
  unregister,
)
from squish_tf.train.config import DistillConfig

# data_fn(stream=k): fresh (train_ds, val_ds, info); `stream` picks the training split's
# shuffle and augmentation order (0, the default: the ancestor's), never the data.
# Evolution's stages take the same.
DataFn = Callable[..., Tuple[tf.data.Dataset, tf.data.Dataset, data_config_lib.DatasetInfo]]


@dataclasses.dataclass(frozen=True)
class BaselineBudget:
  """What the SquishedNet had: its size, the epochs that made it, and the recipe.

  Attributes:
    target_params: the SquishedNet's deployed parameter count.
    total_epochs: ancestor training epochs + fine-tuning epochs along the
      lineage + the polish: what a baseline trained from scratch gets.
    fine_tune_epochs: the fine-tuning epochs along the lineage and the polish
      (pruning's budget on top of the trained ancestor).
    train_config: the training flags (optimizer, schedule, weight decay,
      warm-up, peak rate from scratch); its epochs are replaced by
      total_epochs.
    fine_tune_learning_rate: peak learning rate of pruning's fine-tuning.
    fine_tune_warmup_epochs: its warm-up.
    distill: alpha and temperature of `width_scaled_distilled`.
    seed: initial weights and data order.
    latency_multiplier: the width multiplier of the SquishedNet's measured
      latency (`width_scaled_latency`; None when it is not trained).
    latency_match: how that multiplier was found and timed (recorded in its
      metrics.json).
    ladder: the width multipliers of the ladder's rungs (() when none is trained).
    tile: the channel multiple every rung's channel counts are aligned to.
  """

  target_params: int
  total_epochs: int
  fine_tune_epochs: int
  train_config: train_config_lib.TrainConfig = train_config_lib.TrainConfig()
  fine_tune_learning_rate: float = 1e-3
  fine_tune_warmup_epochs: float = 0.25
  distill: DistillConfig = DistillConfig()
  seed: int = 0
  latency_multiplier: Optional[float] = None
  latency_match: Optional[Dict[str, Any]] = None
  ladder: Tuple[float, ...] = ()
  tile: int = ladder_lib.TILE

  def scratch_config(self) -> train_config_lib.TrainConfig:
    return dataclasses.replace(self.train_config, epochs=self.total_epochs)

  def fine_tune_config(self) -> train_config_lib.TrainConfig:
    return self.train_config.fine_tune(self.fine_tune_epochs, self.fine_tune_learning_rate,
                                       self.fine_tune_warmup_epochs)


BATCH_NORM_MOMENTUM = 0.99


def mobilenet_v3_small(input_shape, num_classes: int, alpha: float, seed: int = 0):
  """Keras MobileNetV3Small, minimalistic, random init, pixels in [0, 255] in.

  Batch normalisation uses Keras' default momentum 0.99 instead of the 0.999
  MobileNetV3 sets for ImageNet-length training: after the short training of a
  shapes10 run, 0.999 leaves the moving statistics largely made of their
  initial values, and the model evaluates at chance while its training
  accuracy rises normally.
  """
  keras.utils.set_random_seed(seed)
  model = keras.applications.MobileNetV3Small(
      input_shape=tuple(input_shape), alpha=alpha, minimalistic=True, weights=None,
      classes=num_classes, include_preprocessing=True, classifier_activation="softmax")
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = BATCH_NORM_MOMENTUM
  return model


def mobilenet_alpha_for_params(input_shape, num_classes: int, target_params: int) -> float:
  """The width multiplier whose MobileNetV3Small deployed parameter count is nearest the target.

  The 1024-wide head bounds it from below (~130k params at 10 classes), so a
  very small target gets the smallest MobileNet this search allows.
  """
  def params(alpha):
    return deployed_params(mobilenet_v3_small(input_shape, num_classes, alpha))

  low, high = 0.05, 2.0
  best_alpha, best_gap = low, math.inf
  # Params grow monotonically with alpha, in steps (channel counts round to multiples of 8):
  # a bracket within 0.1% holds no step of its own. Each probe builds a model.
  while high / low > 1.001:
    middle = math.sqrt(low * high)
    count = params(middle)
    if abs(count - target_params) < best_gap:
      best_alpha, best_gap = middle, abs(count - target_params)
    if count < target_params:
      low = middle
    else:
      high = middle
  keras.backend.clear_session()
  return round(best_alpha, 4)


def pruning_sparsity(spec: spec_lib.NetSpec, target_nonzero: int) -> float:
  """Kernel sparsity that leaves `target_nonzero` nonzero parameters (biases stay dense)."""
  kernels = sum(layer.params - layer.filters for layer in spec.layer_shapes())
  biases = spec.params() - kernels
  keep = (target_nonzero - biases) / kernels
  if not 0 < keep <= 1:
    raise ValueError(f"Cannot prune {spec.params():,} params to {target_nonzero:,} nonzero: "
                     f"the {biases:,} biases alone exceed it, or the target is larger.")
  return 1.0 - keep


def run_baselines(run_dir: str,
                  ancestor_dir: str,
                  budget: BaselineBudget,
                  data_fn: DataFn,
                  names=BASELINES,
                  strategy: Optional[tf.distribute.Strategy] = None,
                  verbose: Any = 0,
                  workers: int = 1,
                  beside: Sequence[Tuple[Callable[..., Any], tuple, dict]] = ()
                  ) -> Dict[str, str]:
  """Trains each baseline into `<run_dir>/baselines/<name>` (skipping complete ones).

  Args:
    run_dir: the run directory.
    ancestor_dir: the trained ancestor (pruning starts from it; the others
      take its input shape and class count).
    budget: the SquishedNet's size and epochs.
    data_fn: returns fresh (train_ds, val_ds, info); must be picklable (a
      module-level function or functools.partial) when workers > 1.
    names: which baselines.
    strategy: tf.distribute strategy (forces workers=1: it cannot leave this process).
    verbose: Keras verbosity.
    workers: baselines trained at once in spawned processes (1: one after the
      other in this process). The baselines are independent and small models
      leave a core idle, so 2 workers on 2 cores finish sooner.
    beside: other independent trainings, (function, args, kwargs), picklable,
      run in the same pool before the baselines (the SquishedNet's training
      from scratch, whose size and epochs are known before it trains).

  Returns:
    {model name: model dir}: a baseline's name, or for the ladder one name per rung.
  """
  unknown = sorted(set(names) - set(registered()))
  if unknown:
    raise ValueError(f"Unknown baselines {unknown}; known: {list(registered())}.")
  baselines = [lookup(name) for name in names]
  unplanned = [b.name for b in baselines if b.rungs and not budget.ladder]
  if unplanned:
    raise ValueError(f"{', '.join(unplanned)} needs the ladder's rungs (BaselineBudget.ladder, "
                     "chosen by squish_tf.net.ladder.ladder_rungs); the main job chooses them.")
  # (model name, baseline, the rung's multiplier or None): a ladder trains one model per rung.
  models = [(ladder_lib.rung_name(b.name, m), b, m) for b in baselines if b.rungs
            for m in budget.ladder]
  models = [(b.name, b, None) for b in baselines if not b.rungs] + models
  out = {name: os.path.join(run_dir, "baselines", name) for name, _, _ in models}
  todo = [(name, b, m) for name, b, m in models
          if not os.path.isfile(os.path.join(out[name], model_io.METRICS_FILE))]
  unmatched = [b.name for _, b, _ in todo
               if b.latency_matched and budget.latency_multiplier is None]
  if unmatched:
    raise ValueError(f"{', '.join(unmatched)} needs the multiplier of the SquishedNet's latency "
                     "(BaselineBudget.latency_multiplier, found by "
                     "squish_tf.bench.matching.match_latency); the main job finds it.")
  # A strategy cannot leave this process; no more workers than baselines left
  # (each worker's share of the cores is cores / workers).
  jobs = len(todo) + len(beside)
  with workers_lib.WorkerPool(1 if strategy is not None else max(1, min(workers, jobs))
                              ) as pool:
    futures = [pool.submit(function, *args, **kwargs) for function, args, kwargs in beside]
    # The record itself goes to the worker: a baseline registered in this process only
    # (a test's, a user's) trains there too.
    futures += [pool.submit(_train_one, baseline, out[name], ancestor_dir, budget, data_fn,
                            strategy if pool.in_process else None, verbose, multiplier)
                for name, baseline, multiplier in todo]
    for future in futures:
      future.result()  # in process the baseline trains here; a worker's error re-raises here
  return out


@dataclasses.dataclass(frozen=True)
class BaselineInputs:
  """What a baseline's trainer (`Baseline.train`) is given.

  Attributes:
    name: the baseline's name (its spec takes it).
    ancestor_dir: the trained ancestor's model dir (its spec, input shape and classes;
      pruning starts from its weights).
    budget: the SquishedNet's size, epochs and recipe.
    train_ds: the training pipeline, seeded with `budget.seed`.
    info: the dataset's description (class names, image counts).
    strategy: the tf.distribute strategy to build and train under, or None.
    verbose: Keras verbosity.
    work_dir: where every finished epoch is backed up (a killed baseline resumes there).
    width_multiplier: the ladder rung this call trains (None: not a ladder).
  """

  name: str
  ancestor_dir: str
  budget: BaselineBudget
  train_ds: tf.data.Dataset
  info: data_config_lib.DatasetInfo
  strategy: Optional[tf.distribute.Strategy]
  verbose: Any
  work_dir: str
  width_multiplier: Optional[float] = None


def _train_one(baseline: Baseline, directory: str, ancestor_dir: str, budget: BaselineBudget,
               data_fn: DataFn, strategy, verbose, multiplier: Optional[float] = None) -> None:
  """Trains, evaluates and writes one baseline's model dir, or one rung's (atomically)."""
  start = time.time()
  # Seeded before the pipelines are built: a shuffle's order depends on the global seed.
  keras.utils.set_random_seed(budget.seed)
  train_ds, val_ds, info = data_fn()
  # Every finished epoch is backed up here: a killed baseline resumes at the next epoch.
  work_dir = directory + WORK_SUFFIX
  name = os.path.basename(directory)
  model, spec, extra = baseline.trainer()(BaselineInputs(
      name, ancestor_dir, budget, train_ds, info, strategy, verbose, work_dir, multiplier))
  evaluation = train_lib.evaluate(model, val_ds)
  metrics = _metrics(model, spec, evaluation)
  metrics.update(extra)
  label = baseline.label if multiplier is None else f"{baseline.short_label} ×{multiplier:.2f}"
  metrics.update({"baseline": baseline.name, "label": label,
                  "wall_seconds": time.time() - start,
                  "total_epochs": budget.total_epochs,
                  "input_shape": [int(v) for v in model.input_shape[1:]],
                  "num_classes": int(model.output_shape[-1]),
                  "class_names": list(info.class_names)})
  with files_lib.atomic_path(directory) as temp:
    os.makedirs(temp)
    model_io.save_keras(model, os.path.join(temp, model_io.MODEL_FILE))
    if spec is not None:
      files_lib.write_text(os.path.join(temp, model_io.SPEC_FILE), spec.to_json())
    files_lib.write_json(os.path.join(temp, model_io.METRICS_FILE), metrics)
  shutil.rmtree(work_dir, ignore_errors=True)


def width_scaled_spec(ancestor_spec: spec_lib.NetSpec, target_params: int,
                      name: str = "width_scaled") -> spec_lib.NetSpec:
  """The uniformly width-scaled ancestor nearest `target_params` deployed parameters."""
  return spec_lib.width_for_params(ancestor_spec, target_params).replace(name=name)


def train_width_scaled(inputs: BaselineInputs, distilled: bool = False,
                       latency: bool = False):
  """`width_scaled`: the ancestor uniformly thinned to the SquishedNet's size, from scratch.

  With `latency`, thinned to the width of the SquishedNet's measured latency instead
  (`budget.latency_multiplier`); with `distilled`, distilled from the ancestor; as a ladder's
  rung (`inputs.width_multiplier`), to that multiplier, aligned to `budget.tile`.
  """
  budget, name = inputs.budget, inputs.name
  ancestor_spec = model_io.read_spec(inputs.ancestor_dir)
  rung = inputs.width_multiplier
  if rung is not None:
    spec = ladder_lib.aligned_width(ancestor_spec, rung, budget.tile).replace(name=name)
  elif latency:
    spec = spec_lib.scale_width(ancestor_spec, budget.latency_multiplier).replace(name=name)
  else:
    spec = width_scaled_spec(ancestor_spec, budget.target_params, name)
  keras.utils.set_random_seed(budget.seed)
  teacher_fn = None
  if distilled:
    # A fresh copy each time: the baselines keep no teacher loaded between trainings.
    teacher_fn = lambda: distill_lib.load_teacher(inputs.ancestor_dir, cached=False)
  config = budget.scratch_config()
  result = train_lib.fit(lambda: models.build_model(spec, seed=budget.seed), inputs.train_ds,
                         None, config, strategy=inputs.strategy, work_dir=inputs.work_dir,
                         images_per_epoch=inputs.info.train_count, verbose=inputs.verbose,
                         teacher_fn=teacher_fn, distill=budget.distill, label=name)
  extra = {"train_epochs": config.epochs,
           "train_images": config.epochs * train_lib.images_per_epoch(inputs.train_ds,
                                                                      inputs.info)}
  if rung is not None:
    extra.update({"matched_on": "ladder", "width_multiplier": rung,
                  "channel_multiple": budget.tile})
  elif latency:
    extra.update({"matched_on": "latency", "width_multiplier": budget.latency_multiplier,
                  "latency_match": budget.latency_match})
  else:
    extra.update({"matched_on": "size", "width_multiplier_params_target": budget.target_params})
  if distilled:
    extra.update({"teacher": "ancestor", "distill_alpha": budget.distill.alpha,
                  "distill_temperature": budget.distill.temperature})
  return result.model, spec, extra


def train_width_scaled_latency(inputs: BaselineInputs):
  """`width_scaled_latency`: width-scaled to the SquishedNet's measured latency."""
  return train_width_scaled(inputs, latency=True)


def train_ladder_rung(inputs: BaselineInputs):
  """`ladder`: one rung, the ancestor at `inputs.width_multiplier`, aligned to the tile."""
  if inputs.width_multiplier is None:
    raise ValueError(f"{inputs.name}: a ladder rung needs its width multiplier "
                     "(BaselineInputs.width_multiplier); run_baselines gives it.")
  return train_width_scaled(inputs)


def train_width_scaled_distilled(inputs: BaselineInputs):
  """`width_scaled_distilled`: width-scaled to its size, distilled from the ancestor."""
  return train_width_scaled(inputs, distilled=True)


def train_mobilenet(inputs: BaselineInputs):
  """`mobilenet_v3_small`: MobileNetV3Small at the width nearest the SquishedNet's size."""
  budget, train_ds, info = inputs.budget, inputs.train_ds, inputs.info
  ancestor_spec = model_io.read_spec(inputs.ancestor_dir)
  alpha = mobilenet_alpha_for_params(ancestor_spec.input_shape, ancestor_spec.num_classes,
                                     budget.target_params)
  config = budget.scratch_config()
  result = train_lib.fit(
      lambda: mobilenet_v3_small(ancestor_spec.input_shape, ancestor_spec.num_classes, alpha,
                                 budget.seed),
      train_ds, None, config, strategy=inputs.strategy, work_dir=inputs.work_dir,
      images_per_epoch=info.train_count, verbose=inputs.verbose, label=inputs.name)
  # Its MACs (and params) are counted once, by `_metrics`, as a model without a spec.
  return result.model, None, {"alpha": alpha, "train_epochs": config.epochs,
                              "train_images": config.epochs * train_lib.images_per_epoch(
                                  train_ds, info)}


def train_pruned(inputs: BaselineInputs):
  """`magnitude_pruned`: the ancestor pruned by tfmot to the SquishedNet's nonzero count."""
  # tfmot only accepts tf_keras models: prune a tf_keras twin, then copy the
  # stripped (zero-filled) weights back into a Keras 3 model by layer name.
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  # The tf_keras twin trains under the default strategy (inputs.strategy is not used).
  budget, train_ds, info, work_dir = inputs.budget, inputs.train_ds, inputs.info, inputs.work_dir
  ancestor, spec, ancestor_metrics = model_io.load_model_dir(inputs.ancestor_dir)
  sparsity = pruning_sparsity(spec, budget.target_params)
  tf_keras.utils.set_random_seed(budget.seed)
  twin = models.build_model(spec, keras_module=tf_keras)
  models.copy_weights_by_name(ancestor, twin)
  steps = max(1, int(train_ds.cardinality().numpy()))
  config = budget.fine_tune_config()
  schedule = tfmot.sparsity.keras.PolynomialDecay(
      initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
      end_step=max(1, int(steps * config.epochs * 0.7)), frequency=max(1, steps // 4))

  def prune_convolutions(layer):
    # Only convolutions carry weights; tfmot refuses layers it has no pruning
    # rule for (Rescaling), so wrap layer by layer instead of the whole model.
    if isinstance(layer, tf_keras.layers.Conv2D):
      return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
    return layer

  pruned = tf_keras.models.clone_model(twin, clone_function=prune_convolutions)
  pruned.compile(optimizer=_tf_keras_optimizer(tf_keras, config, steps),
                 loss=tf_keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
  start = time.perf_counter()
  # tf_keras' own BackupAndRestore (the pruning step is a model variable, so it resumes too).
  pruned.fit(train_ds, epochs=config.epochs, verbose=0,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep(),
                        tf_keras.callbacks.BackupAndRestore(os.path.join(work_dir, "backup"))]
             + _tf_keras_progress(tf_keras, inputs.name, inputs.verbose))
  seconds = time.perf_counter() - start
  stripped = tfmot.sparsity.keras.strip_pruning(pruned)
  model = models.build_model(spec)
  models.copy_weights_by_name(stripped, model)
  # Deployed nonzeros: folding scales a kernel's filters, so zeros stay zeros.
  nonzero = int(sum(np.count_nonzero(k) + np.count_nonzero(b)
                    for k, b in bn_lib.folded_weights(model, spec).values()))
  ancestor_images = int(ancestor_metrics.get("train_images") or 0)
  return model, spec.replace(name=inputs.name), {
      "sparsity": sparsity, "nonzero_params": nonzero, "train_epochs": config.epochs,
      "train_images": ancestor_images + config.epochs * train_lib.images_per_epoch(train_ds, info),
      "fine_tune_images_per_sec": info.train_count * config.epochs / seconds}


def _tf_keras_optimizer(tf_keras, config: train_config_lib.TrainConfig, steps_per_epoch: int):
  """The training recipe (train.compile_model's) in tf_keras, for tfmot's twin."""
  total = steps_per_epoch * config.epochs
  warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total // 4)
  rate = config.learning_rate
  if config.lr_schedule == "cosine" or warmup:
    rate = tf_keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=max(1, total - warmup),
        alpha=0.0 if config.lr_schedule == "cosine" else 1.0,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)
  if config.optimizer == "adam":
    if config.weight_decay:
      return tf_keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    return tf_keras.optimizers.Adam(rate)
  return tf_keras.optimizers.SGD(rate, momentum=0.9, weight_decay=config.weight_decay or None)


def _tf_keras_progress(tf_keras, label: str, verbose) -> list:
  """One labelled line per epoch from the tf_keras fit (its own progress bar is unlabelled)."""
  if not verbose:
    return []

  def line(epoch, logs):
    parts = [f"{label} epoch {epoch + 1}"] + [f"{k} {float(v):.4f}" for k, v in
                                               sorted((logs or {}).items())]
    print(" - ".join(parts), flush=True)

  return [tf_keras.callbacks.LambdaCallback(on_epoch_end=line)]


def _metrics(model, spec: Optional[spec_lib.NetSpec],
             evaluation: Dict[str, float]) -> Dict[str, Any]:
  if spec is not None:
    out = metrics_lib.model_metrics(spec, evaluation)
    out["keras_params"] = spec.keras_params()
    return out
  params = deployed_params(model)
  macs = keras_macs(model)
  out: Dict[str, Any] = {"params": params, "keras_params": int(model.count_params()),
                         "size_mb": metrics_lib.size_mb(params), "macs": macs}
  out.update(evaluation)
  if "top1" in evaluation:
    out["netscore"] = metrics_lib.netscore(evaluation["top1"], params, macs)
  return out
