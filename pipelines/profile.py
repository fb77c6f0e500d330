r"""Packs what a device measures for a device profile (docs/devices.md).

  squish-profile pack --image_size=64 --format=int8 --out=pack_int8
  squish-profile pack --model_dir=saved_models/demo/ancestor --format=fp32 --out=pack_fp32

writes into --out the one-convolution .tflite probes the latency table samples, the whole
networks of its calibration, manifest.json, models.txt and a standalone measure.py. Copy the
directory to the device and run, inside it,

  python measure.py --threads=4 --device_name=pixel7 --out=profile.json

(Python 3.8+, numpy and one of ai-edge-litert, tflite-runtime or tflite-micro; no TensorFlow),
then `squish --device_profile=profile.json` aims the run at that device. For a Jetson,

  squish-profile pack --image_size=64 --format=jetson --out=pack_jetson

writes the same models as frozen graphs with the Jetson bundle's jetson_trt.py, which measures
them on the device with TF-TRT FP16 (its TensorFlow 2.7 and Python 3.6):

  python3 jetson_trt.py --profile_out=profile.json --device_name=tx1

The network is the
ancestor `squish` trains for --num_classes and --image_size (default architecture flags), or the
one in --model_dir.
"""

from absl import flags

import pipelines
from squish_tf.bench import devices as devices_lib
from squish_tf.job import flags as flag_defs
from squish_tf.net import model_io
from squish_tf.train import config as train_config_lib

FLAGS = flags.FLAGS
COMMANDS = ("pack",)

flags.DEFINE_integer("image_size", 64, "The run's input size (pixels, square).", lower_bound=8)
flags.DEFINE_integer("num_classes", 10, "The run's classes (conv10's filters).", lower_bound=2)
flags.DEFINE_enum("format", "fp32", list(devices_lib.PACK_FORMATS),
                  "The .tflite the device runs: fp32, or int8 (full-integer; TFLite-Micro); or "
                  "jetson: frozen graphs that the Jetson bundle's jetson_trt.py --profile_out "
                  "measures with TF-TRT on the device.")
flags.DEFINE_string("model_dir", None, "A model dir whose spec.json is the network to pack "
                    "(instead of --image_size and --num_classes).")
flags.DEFINE_string("out", None, "The pack's directory (created).")
flags.mark_flag_as_required("out")


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise SystemExit(f"usage: squish-profile pack --out=DIR [--image_size=N] "
                     f"[--format={'|'.join(devices_lib.PACK_FORMATS)}] "
                     f"(got {' '.join(argv[1:]) or 'no command'}).")
  pipelines.import_tensorflow()  # the probes are built and converted with it
  if FLAGS.model_dir:
    spec = model_io.read_spec(FLAGS.model_dir)
  else:
    spec = train_config_lib.ModelConfig().ancestor_spec(FLAGS.num_classes, FLAGS.image_size)
  manifest = devices_lib.pack(spec, FLAGS.format, FLAGS.out)
  command = (f"python {devices_lib.MEASURE_SCRIPT} --threads=T --device_name=NAME "
             "--out=profile.json")
  if FLAGS.format == devices_lib.JETSON:
    command = "python3 jetson_trt.py --profile_out=profile.json --device_name=NAME"
  print(f"{FLAGS.out}: {len(manifest['models'])} models ({FLAGS.format}, "
        f"{spec.input_shape[0]} px, {spec.num_classes} classes). On the device, inside it: "
        f"{command}")


def run():
  flag_defs.run(main)


if __name__ == "__main__":
  run()
