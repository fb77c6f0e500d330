r"""Classifies images with a trained model: a model dir, a SavedModel or any .tflite file.

  squish-predict --model=saved_models/demo/export/model_int8.tflite cat.jpg photos/
  squish-predict --model=saved_models/demo/squishednet --labels_from_folders photos/
  squish-predict --model=saved_models/demo cat.jpg      # a run dir: its SquishedNet

Prints one line per image: its path, then its --top_k labels with their
probabilities. Given a run dir, it classifies with the run's SquishedNet (the
export's model_fp32.tflite, else squishednet/model.keras) and names that file on
stderr. Folders are searched recursively for JPEG/PNG/BMP/GIF files.
With --labels_from_folders, an image's class is the name of the folder holding
it, and the top-1 accuracy is printed last. Labels come from the export's
labels.txt beside the model, else the model dir's metrics.json.
"""

import sys

from absl import flags

import pipelines
from squish_tf.job import flags as flag_defs

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "A model dir (model.keras), a SavedModel dir, a .tflite file "
                    "or a run dir (its SquishedNet).")
flags.DEFINE_integer("top_k", 3, "Labels printed per image, most probable first.", lower_bound=1)
flags.DEFINE_boolean("labels_from_folders", False,
                     "Each image's class is its folder's name: print the top-1 accuracy.")
flags.DEFINE_integer("num_threads", 2, "LiteRT threads for .tflite models.", lower_bound=1)
flags.mark_flag_as_required("model")


def main(argv):
  pipelines.import_tensorflow()
  from squish_tf.bench import predict  # pylint: disable=g-import-not-at-top  (TensorFlow)

  model = predict.resolve_model(FLAGS.model)
  if model.note:  # stdout keeps one line per image
    print(f"model: {model.path} ({model.note})", file=sys.stderr)
  paths = predict.image_paths(argv[1:])
  results = predict.classify(model, paths, top_k=FLAGS.top_k, num_threads=FLAGS.num_threads)
  for path, top in results:
    print(predict.format_line(path, top))
  if FLAGS.labels_from_folders:
    print(predict.accuracy_line(*predict.folder_accuracy(results, model.labels), model))


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
