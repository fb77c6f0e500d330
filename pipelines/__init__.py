"""Thin absl mains over the squish_tf library (`python -m pipelines.<name>` or `squish-<name>`).

A main imports no TensorFlow until its flags are checked: `--help`, and a flag it
refuses (one `error: ...` line, exit status 2), take no TensorFlow start-up. Each
main then calls `import_tensorflow()` before the libraries that need it, which
imports TensorFlow quietly: TensorFlow 2.21 writes its start-up lines ("All log
messages before absl::InitializeLog() ...", oneDNN, "Could not find cuda
drivers", "failed call to cuInit") straight to the stderr file descriptor before
any logging setting applies, whatever TF_CPP_MIN_LOG_LEVEL says
(tensorflow#100442). Passing --verbosity (absl's flag) to a main keeps them.
Worker processes quiet their own import (`runtime.workers.initialize_worker`).
"""

import logging
import os
import sys

from squish_tf.runtime import workers

# TensorFlow's C++ INFO lines (SavedModel readers, cuda probes on CPU-only
# machines) drown the progress a user wants to see; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras retraces predict functions for each new batch size on purpose (the
# benchmark times several); TensorFlow's retracing advice is noise there.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def import_tensorflow() -> None:
  """Imports TensorFlow, its start-up lines hidden unless --verbosity was passed.

  A main calls it once its flags are checked, before it imports the libraries that
  load TensorFlow (which would otherwise load it with its start-up lines).
  """
  if not any(arg.startswith(("--verbosity", "-v=")) for arg in sys.argv[1:]):
    workers.import_tensorflow_quietly()
