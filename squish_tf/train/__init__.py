"""Training: fit with Keras callbacks under a tf.distribute strategy, distillation,
progress lines, and the baselines trained at the SquishedNet's budget.

Modules:
  trainer    `fit`, `train_model_dir`, `evaluate`, `TrainConfig`.
  distill    `Distiller`: Hinton distillation through Keras' own train step.
  progress   the progress lines that say what is training.
  baselines  width-scaled and other baselines, trained with the same recipe and epochs.
  baseline_registry  the baselines there are (one `Baseline` record each: name, labels,
             trainer); no TensorFlow.
"""
