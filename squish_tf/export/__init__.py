"""Export for the edge: SavedModel, TFLite (fp32, fp16, dynamic, int8, QAT int8), Jetson.

  from squish_tf import export
  manifest = export.export_all("saved_models/run/ancestor", formats="saved_model,int8",
                               data_config=data.DataConfig(image_size=64))
  probabilities = export.run_tflite("…/export/model_int8.tflite", images, num_threads=2)

Modules: `saved_model` (uint8 `serving_default` + float32 `serving_float`),
`tflite` (conversion; its `run_tflite` and `op_counts` are
`squish_tf.runtime.litert`'s, beside `LiteRTRunner`, the one LiteRT runner that export, benchmark and the
latency model share), `qat` (tfmot fine-tuning; imports tfmot lazily because
that flips `tf.keras` to tf_keras process-wide), `metadata` (the image-classifier
metadata and labels.txt every .tflite file carries, for the app SDKs; its schema and
the schema's generated Python are vendored in `third_party/tflite_support/`),
`jetson` (the frozen-graph bundle for TF 2.7 on JetPack 4.6), `jetson_trt`
(the on-device script, Python 3.6), `tftrt` (TF-TRT where TensorFlow has
TensorRT), `formats` (the registry of export formats: one record each, its name, label and
writer), `writers` (what one export works from, and each built-in format's writer),
`exporter` (all of it, atomically, with the export.json manifest).

Every export of a SqueezeNet-family model is BN-folded: the SavedModel, the
TFLite files and the Jetson graph are written from
`squish_tf.net.batch_norm.deployed_model` (batch norm folded into each
convolution's kernel and bias, spec `batch_norm` false), and QAT keeps the
batch norms in training so that the converter folds them into the int8
convolutions. No exported file has batch-norm ops (`op_counts` lists a
.tflite file's); parity is measured against the trained Keras model.

Importing the package (or its `config`) loads no TensorFlow: the rest is imported when
first used.
"""

import importlib

from squish_tf.export.config import FORMATS

# Names of the package -> the module that defines them (imported on first use).
_LAZY = {
    **dict.fromkeys(("DATA_FORMATS", "MANIFEST_FILE", "SPEC_FORMATS", "ExportData",
                     "ExportOptions", "export_all", "gzip_size", "is_complete",
                     "load_export_data", "parity", "qat_int8_artefact",
                     "summary_table"), "squish_tf.export.exporter"),
    **dict.fromkeys(("available_formats", "parse_formats"), "squish_tf.export.formats"),
    **dict.fromkeys(("op_counts", "run_tflite"), "squish_tf.export.tflite"),
}


def __getattr__(name):
  if name == "TFLITE_FILES":
    return importlib.import_module("squish_tf.export.tflite").FILES
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'squish_tf.export' has no attribute {name!r}")
