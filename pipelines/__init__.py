"""Thin absl mains over the squish_tf library (`python -m pipelines.<name>` or `squish-<name>`).

Importing this package imports TensorFlow quietly: TensorFlow 2.21 writes its
start-up lines ("All log messages before absl::InitializeLog() ...", oneDNN,
"Could not find cuda drivers", "failed call to cuInit") straight to the stderr
file descriptor before any logging setting applies, in the main process and
in every worker process (they import this package too), whatever
TF_CPP_MIN_LOG_LEVEL says (tensorflow#100442). Passing --verbosity (absl's
flag) to a main keeps them.
"""

import logging
import os
import sys

# TensorFlow's C++ INFO lines (SavedModel readers, cuda probes on CPU-only
# machines) drown the progress a user wants to see; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
  """Imports TensorFlow (and probes its devices) with file descriptor 2 on /dev/null."""
  asked = any(arg.startswith(("--verbosity", "-v=")) for arg in sys.argv[1:])
  if asked or "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.config.list_physical_devices()  # the CUDA probe logs here, once
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_import_tensorflow_quietly()
# Keras retraces predict functions for each new batch size on purpose (the
# benchmark times several); TensorFlow's retracing advice is noise there.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
