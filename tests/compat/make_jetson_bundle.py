r"""Makes a Jetson bundle with reference outputs, for `make compat` (run in the main .venv).

  python tests/compat/make_jetson_bundle.py --work_dir=build/compat

Builds the 10-class ancestor at 64 px with seeded random weights (a He-normal
classifier, so the probabilities are far from uniform), writes it as a model
directory, exports the `jetson` format through `squish_tf.export.export_all`
(the path users take) and adds shapes10 validation images with the Keras
model's probabilities, so `check_jetson_bundle.py` can compare an older
TensorFlow's outputs with Keras' without Keras. Not collected by pytest.
"""

import argparse
import os
import shutil

import numpy as np

from squish_tf import export
from squish_tf import model_io
from squish_tf import models
from squish_tf import shapes10
from squish_tf import spec as spec_lib
from squish_tf.export import jetson


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", default="build/compat")
  parser.add_argument("--image_size", type=int, default=64)
  args = parser.parse_args()
  shutil.rmtree(args.work_dir, ignore_errors=True)
  size = args.image_size
  spec = spec_lib.squishednet_base(num_classes=10, input_shape=(size, size, 3),
                                   classifier_initializer="he_normal")
  model_dir = os.path.join(args.work_dir, "model")
  model_io.write_model_dir(model_dir, models.build_model(spec, seed=0), spec,
                           {"class_names": list(shapes10.CLASS_NAMES)})
  export_dir = os.path.join(args.work_dir, "export")
  manifest = export.export_all(model_dir, export_dir, formats="jetson")
  bundle = os.path.join(export_dir, jetson.BUNDLE_DIR)
  model, _, _ = model_io.load_model_dir(model_dir)
  images, _ = shapes10.generate(32, size, seed=0, split="validation")
  np.save(os.path.join(args.work_dir, "shapes10_images.npy"), images)
  np.save(os.path.join(args.work_dir, "shapes10_keras_probabilities.npy"),
          np.asarray(model(images.astype(np.float32), training=False), np.float32))
  parity = manifest["formats"]["jetson"]["parity"]
  print(f"bundle {bundle}: frozen graph vs Keras in this TensorFlow: max |diff| "
        f"{parity['max_abs_diff']:.2e} on {parity['images']} images; ops "
        f"{manifest['formats']['jetson']['ops']}")


if __name__ == "__main__":
  main()
