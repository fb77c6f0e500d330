"""Speed-ups of .tflite files over a reference, timed interleaved, with a self-check.

Every file runs in the shared LiteRT runner (`squish_tf.runtime.litert`) with the same
threads, in one process; per batch size, all of them take turns round after
round (`squish_tf.runtime.timing.time_interleaved`), and a file's speed-up over the
reference (the first file) is the median of the per-round ratios, printed
with their min-max. As a check of the method on this machine, the reference
is also timed against itself (loaded twice, as two interpreters): that ratio
should be 1.00 +- 0.05; a wider one says the machine is too busy for the
other ratios' last digit.

  python benchmarks/speed_pairs.py saved_models/demo/ancestor/export/model_fp32.tflite \
      saved_models/demo/export/model_fp32.tflite saved_models/demo/export/model_int8.tflite
  python benchmarks/speed_pairs.py a.tflite --rounds=9 --batch_sizes=1,8 --output_json=pairs.json

Without files, it times two width-scaled random-weight SqueezeNets (the
few-class ancestor at --image_size and its 0.5x-width copy), converted here.
"""

import contextlib
import io
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags, logging  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.bench import pairs as speed_pairs  # noqa: E402
from squish_tf.report import console as console_lib  # noqa: E402
from squish_tf.runtime import timing  # noqa: E402

_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1"], "Batch sizes, one session each.")
_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT threads of every interpreter.",
                                lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", timing.DEFAULT_ROUNDS, "Interleaved rounds.",
                               lower_bound=1)
_ROUND_SECONDS = flags.DEFINE_float("round_seconds", timing.DEFAULT_ROUND_SECONDS,
                                    "Each file's share of a round, roughly.")
_MAX_INVOKES = flags.DEFINE_integer("max_invokes", timing.DEFAULT_MAX_INVOKES,
                                    "Most invokes of a file per round.", lower_bound=1)
_SELF_CHECK = flags.DEFINE_boolean("self_check", True,
                                   "Also time the reference against itself (expect 1.00).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Input size of the stand-ins (no files).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the measurement here.")
_TOLERANCE = 0.05


def _standins(work_dir: str):
  """Two random-weight SqueezeNets as .tflite: the ancestor and a 0.5x-width copy."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from squish_tf.net import models  # pylint: disable=g-import-not-at-top
  from squish_tf.net import spec as spec_lib  # pylint: disable=g-import-not-at-top

  size = _IMAGE_SIZE.value
  ancestor = spec_lib.squishednet_base(10, (size, size, 3))
  half = spec_lib.width_for_params(ancestor, ancestor.params() // 4)
  paths = []
  for name, spec in (("ancestor", ancestor), ("half_width", half)):
    path = os.path.join(work_dir, f"{name}_fp32.tflite")
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the traced graph
      content = tf.lite.TFLiteConverter.from_keras_model(models.build_model(spec, seed=0)).convert()
    with open(path, "wb") as handle:
      handle.write(content)
    paths.append(path)
  return paths


def _keys(paths):
  """Unique short names: the file name, with its directory when two names clash."""
  names = [os.path.basename(p) for p in paths]
  return [os.path.join(os.path.basename(os.path.dirname(p)), n) if names.count(n) > 1 else n
          for p, n in zip(paths, names)]


def main(argv):
  logging.set_verbosity(logging.WARNING)
  paths = [os.path.abspath(p) for p in argv[1:]]
  if not paths:
    paths = _standins(tempfile.mkdtemp(prefix="speed_pairs_"))
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise app.UsageError(f"No such .tflite file: {missing}")
  keys = _keys(paths)
  files = dict(zip(keys, paths))
  reference = keys[0]
  pairs = [(key, reference) for key in keys[1:]]
  if _SELF_CHECK.value:
    again = f"{reference} (again)"
    files[again] = paths[0]
    pairs.append((again, reference))
  result = speed_pairs.measure_pairs(
      files, pairs, [int(b) for b in _BATCH_SIZES.value], num_threads=_THREADS.value,
      rounds=_ROUNDS.value, round_seconds=_ROUND_SECONDS.value,
      max_invokes=_MAX_INVOKES.value)
  print(f"\nLiteRT, {_THREADS.value} threads, {_ROUNDS.value} interleaved rounds; speed of each "
        f"file over {reference} (> 1: faster)\n")
  print(console_lib.format_pairs(result))
  for size, session in result["interleaved"]["batches"].items():
    print(f"\nbatch {size}: median images/s [min-max] over the rounds, invokes per round")
    for key, stats in session["artefacts"].items():
      ips = stats["images_per_sec"]
      print(f"  {key:<40} {ips['median']:9.1f} [{ips['min']:.1f}-{ips['max']:.1f}]  "
            f"x{stats['invokes']}")
  if _SELF_CHECK.value:
    for size, stats in result["pairs"][speed_pairs.pair_key(again, reference)].items():
      if "error" in stats:
        continue
      ok = abs(stats["ratio_median"] - 1.0) <= _TOLERANCE
      print(f"\nself-check b{size}: {reference} vs itself "
            f"{console_lib.format_ratio(stats)}: "
            + ("within" if ok else "OUTSIDE") + f" 1.00 +- {_TOLERANCE:.2f}"
            + ("" if ok else " (a busy machine: read the other ratios' spread)"))
  if _OUTPUT_JSON.value:
    with open(_OUTPUT_JSON.value, "w", encoding="utf-8") as handle:
      json.dump({"files": files, **result}, handle, indent=2)


if __name__ == "__main__":
  app.run(main)
