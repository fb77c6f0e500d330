r"""Times and scores every artefact of a model: Keras, SavedModel, each .tflite.

  squish-benchmark --model_dir=saved_models/demo/ancestor \
      --export_dir=saved_models/demo/export
  squish-benchmark --model_dir=m --formats='keras,tflite_*' --batch_sizes=1,8,32
  squish-benchmark --model_dir=saved_models/demo/baselines/mobilenet_v3_small

Any model dir the job writes works: a SqueezeNet's sizes come from its
spec.json, a Keras-applications baseline's (no spec.json) from its model.keras.
Validation images come from the data flags (the same source the model was
trained on); --image_size defaults to the model's input size. Prints a table
and writes benchmark.json (default: into the export directory) atomically.
Every other .tflite file is also timed interleaved with tflite_fp32
(--pair_rounds rounds, one process): its speed-up is the median of the
per-round ratios, printed with their min-max.
"""

import dataclasses
import os

from absl import flags, logging

import pipelines
from squish_tf.bench import artefacts as artefacts_lib
from squish_tf.bench import config as bench_config_lib
from squish_tf.job import flags as flag_defs
from squish_tf.job import preflight
from squish_tf.layout import NATIVE_LOG_FILE
from squish_tf.report import console as console_lib
from squish_tf.runtime import native_log

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flags.DEFINE_string("model_dir", None,
                    "Model directory to benchmark: any the job writes (model.keras, plus spec.json "
                    "for a SqueezeNet; baselines/mobilenet_v3_small has none).")
flags.DEFINE_string("export_dir", None,
                    "Its export directory (saved_model/, *.tflite); default <model_dir>/export.")
flag_defs.define_benchmark_flags()
if "formats" not in FLAGS:  # `squish` defines an export --formats; one process may hold both
  flags.DEFINE_list("formats", None,
                    "Artefacts to benchmark (names or patterns: keras, saved_model, tflite_fp32, "
                    "tflite_*, ...); default all found.")
flags.DEFINE_string("output", None,
                    "Where benchmark.json goes; default <export_dir>/benchmark.json.")
flags.DEFINE_integer("pair_rounds", bench_config_lib.BenchmarkConfig.pair_rounds,
                     "Interleaved rounds timing each .tflite file against tflite_fp32 for its "
                     "speed-up (0: none).", lower_bound=0)
flags.mark_flag_as_required("model_dir")
# --help lists the shared flags too (they are defined in flag_defs, not in this module).
flags.adopt_module_key_flags(flag_defs)

def main(argv):
  del argv
  pipelines.import_tensorflow()
  # pylint: disable=g-import-not-at-top  (TensorFlow, imported quietly above)
  from squish_tf.bench import benchmark as benchmark_lib
  from squish_tf.data import images as images_lib
  from squish_tf.data import pipeline as data_lib
  # pylint: enable=g-import-not-at-top

  _set_tf_threads(FLAGS.num_threads)

  config = dataclasses.replace(flag_defs.benchmark_config_from_flags(formats=FLAGS.formats),
                               pair_rounds=FLAGS.pair_rounds)
  # Any model dir the job writes: a SqueezeNet's spec.json, else its Keras model
  # (the MobileNetV3 baseline), else its export's .tflite files.
  model = artefacts_lib.describe_model(FLAGS.model_dir, _given_export_dir())
  export_dir = _export_dir(config)

  data_config = flag_defs.data_config_from_flags()
  height, width, _ = model["image_size"]
  if not FLAGS["image_size"].present:
    if height != width:
      raise ValueError(f"{FLAGS.model_dir!r} takes {height}x{width} images; the data flags load "
                       "square images only.")
    data_config = dataclasses.replace(data_config, image_size=height)
  elif FLAGS.image_size != height or FLAGS.image_size != width:
    raise ValueError(f"--image_size={FLAGS.image_size} but {FLAGS.model_dir!r} takes "
                     f"{height}x{width} images; omit --image_size or pass {height}.")
  preflight.check_options(data_config)
  artefacts_lib.find_artefacts(FLAGS.model_dir, export_dir, config.formats)  # --formats match
  _, val_ds, info = data_lib.load(data_config)
  if info.num_classes != model["num_classes"]:
    raise ValueError(f"--dataset={data_config.dataset} has {info.num_classes} classes but "
                     f"{FLAGS.model_dir!r} classifies {model['num_classes']}; pass the data flags "
                     "the model was trained with.")
  images, labels = images_lib.take_images(val_ds, FLAGS.eval_images)

  name = os.path.basename(os.path.normpath(FLAGS.model_dir))
  with native_log.logging_to(os.path.join(FLAGS.model_dir, NATIVE_LOG_FILE)):
    result = benchmark_lib.benchmark_models(
        {name: {"model_dir": FLAGS.model_dir, "export_dir": export_dir}}, images, labels,
        config, listener=console_lib.benchmark_listener(print))
  result["settings"]["dataset"] = info.name
  output = FLAGS.output or os.path.join(export_dir or FLAGS.model_dir,
                                        benchmark_lib.BENCHMARK_FILE)
  benchmark_lib.write_benchmark(output, result)
  print()
  print(console_lib.format_table(result))
  pairs = console_lib.format_pairs(result)
  if pairs:
    print()
    print(pairs)
  print(f"\nwrote {output}")


def _set_tf_threads(num_threads):
  """Gives Keras and the SavedModel the same CPU threads as LiteRT, for a fair comparison."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # TensorFlow's thread pools can only be sized before its runtime starts; when
  # something started it already (a test, an embedding program), keep its pools
  # and let settings.machine record what they are.
  try:
    tf.config.threading.set_intra_op_parallelism_threads(num_threads)
    tf.config.threading.set_inter_op_parallelism_threads(num_threads)
  except RuntimeError:
    logging.warning("TensorFlow is already initialised; Keras and SavedModel timings use its "
                    "existing thread pools, not --num_threads=%d.", num_threads)


def _given_export_dir():
  """--export_dir, or <model_dir>/export where it exists, else None."""
  if FLAGS.export_dir:
    return FLAGS.export_dir
  default = os.path.join(FLAGS.model_dir, "export")
  return default if os.path.isdir(default) else None


def _export_dir(config):
  """--export_dir, or <model_dir>/export; None when only the Keras model is asked for."""
  if _given_export_dir():
    return _given_export_dir()
  default = os.path.join(FLAGS.model_dir, "export")
  if config.formats is not None and all(pattern == "keras" for pattern in config.formats):
    return None
  raise ValueError(f"No export directory at {default!r}. Export the model first (squish-export), "
                   "pass --export_dir, or pass --formats=keras to time the Keras model alone.")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
