r"""Makes a Jetson bundle with reference outputs, for `make compat` (run in the main .venv).

  python tests/compat/make_jetson_bundle.py --work_dir=build/compat

Builds the 10-class ancestor at 64 px with seeded random weights (a He-normal
classifier, so the probabilities are far from uniform) and batch norm, as
evolution trains it: the moving statistics are estimated on shapes10 training
images after gamma (some negative) and beta are drawn, then perturbed, so
the export's folding of batch norm into the convolutions is really exercised.
It writes the model directory, exports the `jetson` format through
`squish_tf.export.export_all` (the path users take: the graph is the folded,
BN-free network) and adds shapes10 validation images with the Keras model's
probabilities (batch norm unfolded), so `check_jetson_bundle.py` can compare
an older TensorFlow's outputs with Keras' without Keras. It also packs the
latency table's models of the 10-class ancestor at --image_size for a Jetson
(`squish-profile pack --format=jetson`, into pack_jetson/), which
check_jetson_bundle.py measures into a device profile with the pack's
jetson_trt.py and read_jetson_profile.py reads back. Not collected by pytest.
"""

import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
import toy  # noqa: E402  (its batch-norm randomiser, shared with the export tests)

from squish_tf import export  # noqa: E402
from squish_tf.bench import devices  # noqa: E402
from squish_tf.data import shapes10  # noqa: E402
from squish_tf.export import jetson  # noqa: E402
from squish_tf.net import model_io, models  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402
from squish_tf.train import config as train_config  # noqa: E402

PACK_DIR = "pack_jetson"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", default="build/compat")
  parser.add_argument("--image_size", type=int, default=64)
  args = parser.parse_args()
  shutil.rmtree(args.work_dir, ignore_errors=True)
  size = args.image_size
  spec = spec_lib.squishednet_base(num_classes=10, input_shape=(size, size, 3),
                                   classifier_initializer="he_normal", batch_norm=True)
  model_dir = os.path.join(args.work_dir, "model")
  train_images, _ = shapes10.generate(64, size, seed=0, split="train")
  model = toy.randomize_batch_norm(models.build_model(spec, seed=0), train_images)
  model_io.write_model_dir(model_dir, model, spec, {"class_names": list(shapes10.CLASS_NAMES)})
  export_dir = os.path.join(args.work_dir, "export")
  manifest = export.export_all(model_dir, export_dir, formats="jetson")
  bundle = os.path.join(export_dir, jetson.BUNDLE_DIR)
  model, _, _ = model_io.load_model_dir(model_dir)
  images, _ = shapes10.generate(32, size, seed=0, split="validation")
  np.save(os.path.join(args.work_dir, "shapes10_images.npy"), images)
  probabilities = np.asarray(model(images.astype(np.float32), training=False), np.float32)
  np.save(os.path.join(args.work_dir, "shapes10_keras_probabilities.npy"), probabilities)
  parity = manifest["formats"]["jetson"]["parity"]
  print(f"bundle {bundle} (batch norm folded): frozen graph vs Keras in this TensorFlow: max |diff| "
        f"{parity['max_abs_diff']:.2e} on {parity['images']} images; mean top probability "
        f"{probabilities.max(1).mean():.3f}; ops {manifest['formats']['jetson']['ops']}")
  ancestor = train_config.ModelConfig().ancestor_spec(10, size)
  devices.pack(ancestor, devices.JETSON, os.path.join(args.work_dir, PACK_DIR))


if __name__ == "__main__":
  main()
