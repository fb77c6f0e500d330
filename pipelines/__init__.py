"""Thin absl mains over the squish_tf library (`python -m pipelines.<name>` or `squish-<name>`)."""

import logging
import os

# TensorFlow's C++ INFO lines (SavedModel readers, cuda probes on CPU-only
# machines) drown the progress a user wants to see; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras retraces predict functions for each new batch size on purpose (the
# benchmark times several); TensorFlow's retracing advice is noise there.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
