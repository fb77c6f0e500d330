"""What every stage runs on: the LiteRT runner, timing on a shared CPU, worker processes
and the machine's description.

Modules:
  litert   `LiteRTRunner`, `run_tflite`, `op_counts`: the one LiteRT runner that export
           parity, the benchmark and the latency model share.
  timing   `time_call` and `time_interleaved` (A B A B ..., medians with their spread).
  workers  `WorkerPool` and `call_in_fresh_process`: spawned processes with quiet
           TensorFlow start-up (`import_tensorflow_quietly`).
  machine  `machine_info()`: CPU model, cores and versions recorded beside a figure.
  native_log  `logging_to(path)` and `captured()`: what native code (the TFLite converter,
           LiteRT) prints goes to the run's log instead of the console.
"""
