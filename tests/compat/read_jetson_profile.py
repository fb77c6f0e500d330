r"""Reads the device profile TF 2.12 wrote in `make compat`, as `squish --device_profile` does.

  python tests/compat/read_jetson_profile.py build/compat

check_jetson_bundle.py (in .compat-venv) measured the Jetson pack with its
jetson_trt.py into build/compat/profile_tf_compat.json; here, in the main venv,
squish_tf loads it, checks it as --device_profile's option does, and builds the
latency table of the 10-class ancestor the pack was made for. Exits non-zero
on a failure. Not collected by pytest.
"""

import os
import sys

from squish_tf.bench import profile as profile_lib
from squish_tf.evolve import config as evolve_config
from squish_tf.train import config as train_config

PROFILE_FILE = "profile_tf_compat.json"


def main():
  if len(sys.argv) != 2:
    sys.exit(f"usage: {sys.argv[0]} WORK_DIR  (as check_jetson_bundle.py left it)")
  path = os.path.join(sys.argv[1], PROFILE_FILE)
  evolve_config.EvolutionConfig(device_profile=path)  # what --device_profile checks
  profile = profile_lib.load_profile(path)
  spec = train_config.ModelConfig().ancestor_spec(profile.num_classes, profile.image_size)
  table = profile.table(spec)
  predicted = table.predict(spec)
  if not predicted > 0:
    sys.exit(f"FAILED: the table of {path} predicts {predicted} ms for the ancestor")
  fits = ", ".join(f"{c['width']:g}: {c['measured_ms']:.3f}/{c['predicted_ms']:.3f}"
                   for c in table.calibration)
  print(f"{path}: {profile.describe()}; the ancestor predicted at {predicted:.3f} ms; "
        f"calibration width: measured/predicted ms {fits}")
  print("profile OK")


if __name__ == "__main__":
  main()
