"""Measuring artefacts: runners, speed, accuracy and the latency tables.

Modules:
  config         `BenchmarkConfig`.
  runners        one runner per artefact kind (Keras, SavedModel, .tflite).
  artefacts      which artefacts a model directory holds and what they weigh.
  benchmark      `benchmark_model_dir`: images/s, latency percentiles and accuracy of each.
  pairs          speed-ups of .tflite files over each other, measured interleaved.
  comparisons    which of a run's models are compared, at which resolutions.
  latency_table  `LatencyTable`: per-convolution, -pool and -concatenation latency on a grid,
                 interpolated (numpy).
  latency        measuring a latency table for a spec on this machine; `time_models` and
                 `measure_against`: .tflite files timed interleaved in one session.
  matching       `match_latency`: the width multiplier of a network's measured latency.
"""
