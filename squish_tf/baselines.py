"""Baselines that evolution must beat at equal size, trained on the same data.

- `width_scaled`: SqueezeNet with every layer uniformly thinned to about the
  SquishedNet's parameter count, trained from scratch for the same total
  epochs (ancestor epochs + fine-tuning epochs along the chosen lineage).
- `magnitude_pruned`: the trained ancestor pruned with tensorflow-model-
  optimization's magnitude pruning to the SquishedNet's count of nonzero
  weights, fine-tuned for the epochs evolution spent. Its dense file does not
  shrink; its gzip does (both are reported).
- `mobilenet_v3_small`: Keras `MobileNetV3Small(minimalistic=True,
  weights=None)` with the width multiplier whose size is nearest, trained from
  scratch for the same total epochs.

Each baseline is a model directory (`model.keras` + `metrics.json`, plus
`spec.json` where it is a SqueezeNet) under `<run_dir>/baselines/<name>/`,
written atomically; a complete one is not retrained.
"""

import concurrent.futures
import dataclasses
import math
import multiprocessing
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from squish_tf import data as data_lib
from squish_tf import metrics as metrics_lib
from squish_tf import model_io
from squish_tf import models
from squish_tf import spec as spec_lib
from squish_tf import train as train_lib

BASELINES = ("width_scaled", "magnitude_pruned", "mobilenet_v3_small")
LABELS = {
    "width_scaled": "Uniform width-scaled SqueezeNet",
    "magnitude_pruned": "tfmot magnitude pruning of the ancestor",
    "mobilenet_v3_small": "MobileNetV3Small (minimalistic)",
}
DataFn = Callable[[], Tuple[tf.data.Dataset, tf.data.Dataset, data_lib.DatasetInfo]]


@dataclasses.dataclass(frozen=True)
class BaselineBudget:
  """What the SquishedNet had: its size and the epochs that made it.

  Attributes:
    target_params: the SquishedNet's parameter count.
    total_epochs: ancestor training epochs + fine-tuning epochs along the lineage.
    fine_tune_epochs: the fine-tuning epochs along the lineage (pruning's budget
      on top of the trained ancestor).
    learning_rate: peak learning rate for training from scratch.
    fine_tune_learning_rate: peak learning rate for pruning's fine-tuning.
    seed: initial weights and data order.
  """

  target_params: int
  total_epochs: int
  fine_tune_epochs: int
  learning_rate: float = 1e-3
  fine_tune_learning_rate: float = 1e-3
  seed: int = 0


BATCH_NORM_MOMENTUM = 0.99


def mobilenet_v3_small(input_shape, num_classes: int, alpha: float, seed: int = 0):
  """Keras MobileNetV3Small, minimalistic, random init, pixels in [0, 255] in.

  Batch normalisation uses Keras' default momentum 0.99 instead of the 0.999
  MobileNetV3 sets for ImageNet-length training: after the ~1,500 steps of a
  shapes10 run, 0.999 leaves the moving statistics a quarter made of their
  initial values, and the model evaluates at chance (measured: 10.0% top-1
  with training accuracy rising normally).
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
  """The width multiplier whose MobileNetV3Small parameter count is nearest the target.

  The 1024-wide head bounds it from below (~130k params at 10 classes), so a
  very small target gets the smallest MobileNet this search allows.
  """
  def params(alpha):
    return mobilenet_v3_small(input_shape, num_classes, alpha).count_params()

  low, high = 0.05, 2.0
  best_alpha, best_gap = low, math.inf
  for _ in range(12):  # params grow monotonically with alpha
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
                  workers: int = 1) -> Dict[str, str]:
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

  Returns:
    {baseline name: model dir}.
  """
  unknown = sorted(set(names) - set(BASELINES))
  if unknown:
    raise ValueError(f"Unknown baselines {unknown}; known: {list(BASELINES)}.")
  out = {name: os.path.join(run_dir, "baselines", name) for name in names}
  todo = [name for name in names
          if not os.path.isfile(os.path.join(out[name], model_io.METRICS_FILE))]
  if workers > 1 and strategy is None and len(todo) > 1:
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      futures = [pool.submit(_train_one, name, out[name], ancestor_dir, budget, data_fn, None,
                             verbose) for name in todo]
      for future in futures:
        future.result()  # re-raises a worker's error here
  else:
    for name in todo:
      _train_one(name, out[name], ancestor_dir, budget, data_fn, strategy, verbose)
  return out


def _train_one(name: str, directory: str, ancestor_dir: str, budget: BaselineBudget,
               data_fn: DataFn, strategy, verbose) -> None:
  """Trains, evaluates and writes one baseline's model dir (atomically)."""
  start = time.time()
  # Seeded before the pipelines are built: a shuffle's order depends on the global seed.
  keras.utils.set_random_seed(budget.seed)
  train_ds, val_ds, info = data_fn()
  model, spec, extra = _TRAINERS[name](ancestor_dir, budget, train_ds, info, strategy, verbose)
  evaluation = train_lib.evaluate(model, val_ds)
  metrics = _metrics(model, spec, evaluation)
  metrics.update(extra)
  metrics.update({"baseline": name, "label": LABELS[name], "wall_seconds": time.time() - start,
                  "total_epochs": budget.total_epochs,
                  "input_shape": [int(v) for v in model.input_shape[1:]],
                  "num_classes": int(model.output_shape[-1]),
                  "class_names": list(info.class_names)})
  with model_io.atomic_path(directory) as temp:
    os.makedirs(temp)
    model_io.save_keras(model, os.path.join(temp, model_io.MODEL_FILE))
    if spec is not None:
      model_io.write_text(os.path.join(temp, model_io.SPEC_FILE), spec.to_json())
    model_io.write_json(os.path.join(temp, model_io.METRICS_FILE), metrics)


def _train_width_scaled(ancestor_dir, budget, train_ds, info, strategy, verbose):
  ancestor_spec = model_io.read_spec(ancestor_dir)
  spec = spec_lib.width_for_params(ancestor_spec, budget.target_params)
  spec = spec.replace(name="width_scaled")
  keras.utils.set_random_seed(budget.seed)
  result = train_lib.fit(lambda: models.build_model(spec, seed=budget.seed), train_ds, None,
                         train_lib.TrainConfig(epochs=budget.total_epochs,
                                               learning_rate=budget.learning_rate),
                         strategy=strategy, images_per_epoch=info.train_count, verbose=verbose)
  return result.model, spec, {"width_multiplier_params_target": budget.target_params}


def _train_mobilenet(ancestor_dir, budget, train_ds, info, strategy, verbose):
  ancestor_spec = model_io.read_spec(ancestor_dir)
  alpha = mobilenet_alpha_for_params(ancestor_spec.input_shape, ancestor_spec.num_classes,
                                     budget.target_params)
  result = train_lib.fit(
      lambda: mobilenet_v3_small(ancestor_spec.input_shape, ancestor_spec.num_classes, alpha,
                                 budget.seed),
      train_ds, None,
      train_lib.TrainConfig(epochs=budget.total_epochs, learning_rate=budget.learning_rate),
      strategy=strategy, images_per_epoch=info.train_count, verbose=verbose)
  macs = _keras_macs(result.model)
  return result.model, None, {"alpha": alpha, "macs": macs}


def _train_pruned(ancestor_dir, budget, train_ds, info, strategy, verbose):
  # tfmot only accepts tf_keras models: prune a tf_keras twin, then copy the
  # stripped (zero-filled) weights back into a Keras 3 model by layer name.
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  del strategy  # the tf_keras twin trains under the default strategy
  ancestor, spec, _ = model_io.load_model_dir(ancestor_dir)
  sparsity = pruning_sparsity(spec, budget.target_params)
  tf_keras.utils.set_random_seed(budget.seed)
  twin = models.build_model(spec, keras_module=tf_keras)
  models.copy_weights_by_name(ancestor, twin)
  steps = max(1, int(train_ds.cardinality().numpy()))
  schedule = tfmot.sparsity.keras.PolynomialDecay(
      initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
      end_step=max(1, int(steps * budget.fine_tune_epochs * 0.7)), frequency=max(1, steps // 4))

  def prune_convolutions(layer):
    # Only convolutions carry weights; tfmot refuses layers it has no pruning
    # rule for (Rescaling), so wrap layer by layer instead of the whole model.
    if isinstance(layer, tf_keras.layers.Conv2D):
      return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
    return layer

  pruned = tf_keras.models.clone_model(twin, clone_function=prune_convolutions)
  pruned.compile(optimizer=tf_keras.optimizers.Adam(budget.fine_tune_learning_rate),
                 loss=tf_keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
  start = time.perf_counter()
  pruned.fit(train_ds, epochs=budget.fine_tune_epochs, verbose=verbose,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  seconds = time.perf_counter() - start
  stripped = tfmot.sparsity.keras.strip_pruning(pruned)
  model = models.build_model(spec)
  models.copy_weights_by_name(stripped, model)
  nonzero = int(sum(np.count_nonzero(w) for w in model.get_weights()))
  return model, spec.replace(name="magnitude_pruned"), {
      "sparsity": sparsity, "nonzero_params": nonzero,
      "fine_tune_images_per_sec": info.train_count * budget.fine_tune_epochs / seconds}


_TRAINERS = {
    "width_scaled": _train_width_scaled,
    "magnitude_pruned": _train_pruned,
    "mobilenet_v3_small": _train_mobilenet,
}


def _metrics(model, spec: Optional[spec_lib.NetSpec],
             evaluation: Dict[str, float]) -> Dict[str, Any]:
  if spec is not None:
    return metrics_lib.model_metrics(spec, evaluation)
  params = int(model.count_params())
  macs = _keras_macs(model)
  out: Dict[str, Any] = {"params": params, "size_mb": metrics_lib.size_mb(params), "macs": macs}
  out.update(evaluation)
  if "top1" in evaluation:
    out["netscore"] = metrics_lib.netscore(evaluation["top1"], params, macs)
  return out


def _keras_macs(model) -> int:
  """Multiply-accumulates of convolutions and dense layers, read off a built Keras model."""
  total = 0
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
      out_h, out_w = layer.output.shape[1], layer.output.shape[2]
      kernel = layer.kernel.shape  # conv: [kh, kw, cin, cout]; depthwise: [kh, kw, cin, mult]
      total += int(out_h * out_w * np.prod(kernel))
    elif isinstance(layer, keras.layers.Dense):
      total += int(np.prod(layer.kernel.shape))
  return total
