r"""Exports a trained or evolved model for phones (TFLite) and the Jetson (frozen graph).

  squish-export --model_dir=saved_models/demo/ancestor          # every format, shapes10 data
  squish-export --model_dir=... --formats=saved_model,int8 --export_dir=/tmp/phone
  squish-export --model_dir=... --dataset=none                  # no data: no int8 / qat_int8

Writes <export_dir> (default <model_dir>/export) with saved_model/, model_*.tflite,
jetson/ and export.json (files, bytes, parity with the Keras model, accuracy).
The data flags give the int8 representative images (training split, no
augmentation), the QAT fine-tuning data and the test images (validation where
the source has no test split) for parity and accuracy; batch norm is folded
into the convolutions of every format; --image_size defaults to the model's input size and --dataset to
the one in the model's metrics.json.
"""

import os

from absl import flags

import pipelines
from squish_tf import export
from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.job import flags as flag_defs
from squish_tf.job import preflight
from squish_tf.layout import NATIVE_LOG_FILE
from squish_tf.net import model_io
from squish_tf.runtime import native_log

FLAGS = flags.FLAGS

flag_defs.define_data_flags()
flags.DEFINE_string("model_dir", None, "Model directory to export (model.keras, spec.json).")
flags.DEFINE_string("export_dir", None, "Where the export goes (default: <model_dir>/export).")
flag_defs.define_export_flags()
flags.DEFINE_boolean("overwrite", False, "Replace an existing --export_dir.")
flags.mark_flag_as_required("model_dir")
# --help lists the shared flags too (they are defined in flag_defs, not in this module).
flags.adopt_module_key_flags(flag_defs)

def main(argv):
  del argv
  spec = model_io.read_spec(FLAGS.model_dir)
  # Calibrate on what the model was trained on unless told otherwise.
  if not FLAGS["image_size"].present:
    FLAGS.image_size = spec.input_shape[0]
  metrics = files_lib.optional_read_json(
      os.path.join(FLAGS.model_dir, model_io.METRICS_FILE)) or {}
  if not FLAGS["dataset"].present and metrics.get("dataset"):
    FLAGS.dataset = metrics["dataset"]
  data_config = flag_defs.data_config_from_flags()
  preflight.check_options(data_config, formats=FLAGS.formats or (),
                          min_image_size=spec.min_input_size())
  pipelines.import_tensorflow()  # the flags are checked: `export` loads it on first use
  with native_log.logging_to(os.path.join(FLAGS.model_dir, NATIVE_LOG_FILE)):
    manifest = export.export_all(
        FLAGS.model_dir, export_dir=FLAGS.export_dir, formats=FLAGS.formats,
        data_config=data_config, qat_epochs=FLAGS.qat_epochs,
        overwrite=FLAGS.overwrite, qat_learning_rate=FLAGS.qat_learning_rate,
        calibration_images=FLAGS.calibration_images, verbose=2)
  print(export.summary_table(manifest))
  manifest = records.ExportManifest.from_json(manifest)
  if manifest.data:
    split = manifest.data.get("accuracy_split", manifest.parity_source)
    print(f"parity on {manifest.parity_images} {manifest.parity_source} images; accuracy "
          f"on {manifest.data['eval_images']} {split} images")
  else:
    print(f"parity on {manifest.parity_images} random-pixel images (no data, so no "
          "accuracy and no int8 / qat_int8)")
  print(f"wrote {manifest.export_dir}/{export.MANIFEST_FILE}")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
