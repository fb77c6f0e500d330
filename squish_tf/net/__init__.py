"""The network, as data and as Keras: the ground floor every stage builds on.

Modules:
  spec        `NetSpec`/`FireSpec`: SqueezeNet-family networks as frozen data, with
              analytic params() and macs(), JSON round-trip, `scale_width` and the one
              channel rounding, `round_channels` (numpy only).
  wiring      which channels feed which (`channel_sources`, `consumers`), the index
              map surgery and the latency model consult (numpy only).
  metrics     size, NetScore and efficiency figures (numpy only).
  models      `build_model(spec)`: the Keras functional model with stable layer names.
  batch_norm  folding batch norm into each convolution (`deployed_model`).
  describe    deployed parameters and MACs of any Keras model (`deployed_params`).
  model_io    model directories on disk (model.keras, spec.json, metrics.json).

Importing this package imports no TensorFlow; `models`, `batch_norm`, `describe` and
`model_io` do.
"""
