"""Export sizes and LiteRT speed: fp32 vs int8 for the ancestor and an evolved model.

For each model: every export format's bytes (and its ratio to the fp32
.tflite), then LiteRT images/sec of `model_fp32.tflite` and
`model_int8.tflite` at batch 1 and 8 with 2 threads, and int8/fp32 as a ratio
measured in the same run. fp32 and int8 are timed interleaved
(`squish_tf.bench.pairs`: alternating rounds in one process, so that other
load on the machine hits both alike; warm-up runs are excluded): speeds are
medians over the rounds, int8/fp32 is the median of the per-round ratios with
its min-max.
Every file is the deployed network (batch norm folded into the convolutions),
so sizes follow `spec.params()`; the op lists of the .tflite files are printed
to show it.

Models:
  --ancestor_dir  a trained 10-class ancestor; without one, a short training
                  run at --image_size on shapes10 makes one (or, with
                  --random_weights, a seeded random-weight stand-in).
  --evolved_dir   an evolved model; without one, --standin_fraction > 0 adds a
                  uniformly width-scaled stand-in with that fraction of the
                  ancestor's parameters (`spec.width_for_params`, random
                  weights) -- sizes and speed do not depend on the weights.

  python benchmarks/export_sizes.py --ancestor_dir=saved_models/demo/ancestor \
      --evolved_dir=saved_models/demo/generations/gen_005/cand_03
  python benchmarks/export_sizes.py --random_weights --standin_fraction=0.25
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags, logging  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.bench import pairs as speed_pairs  # noqa: E402
from squish_tf.data import config as data_config_lib  # noqa: E402
from squish_tf.data import pipeline as data_lib  # noqa: E402
from squish_tf.export import exporter  # noqa: E402
from squish_tf.export import tflite as tflite_lib  # noqa: E402
from squish_tf.net import model_io, models  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402

_ANCESTOR_DIR = flags.DEFINE_string("ancestor_dir", "", "Trained 10-class ancestor model dir.")
_EVOLVED_DIR = flags.DEFINE_string("evolved_dir", "", "Evolved model dir (optional).")
_RANDOM_WEIGHTS = flags.DEFINE_boolean(
    "random_weights", False, "Without --ancestor_dir: a random-weight ancestor instead of a "
    "short training run.")
_STANDIN_FRACTION = flags.DEFINE_float(
    "standin_fraction", 0.0, "Without --evolved_dir: add a width-scaled random-weight stand-in "
    "with this fraction of the ancestor's parameters (0 = none).", lower_bound=0.0)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Input size of a trained or stand-in "
                                   "ancestor.")
_TRAIN_EPOCHS = flags.DEFINE_integer("train_epochs", 2, "Epochs of the short ancestor training.")
_TRAIN_SIZE = flags.DEFINE_integer("shapes10_train_size", 2000,
                                   "shapes10 training images (short training, QAT, calibration).")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 1, "QAT fine-tuning epochs.", lower_bound=1)
_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT threads.", lower_bound=1)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to time.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating fp32/int8 timing rounds.", lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds_per_round", 1.0, "Timed seconds per format per round.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where model dirs and exports go "
                                "(default: a temporary directory).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the figures here.")


def _data_config(size: int) -> data_config_lib.DataConfig:
  return data_config_lib.DataConfig(dataset="shapes10", image_size=size,
                             shapes10_train_size=_TRAIN_SIZE.value,
                             shapes10_validation_size=500, shapes10_test_size=500)


def _ancestor(work_dir: str) -> str:
  if _ANCESTOR_DIR.value:
    return _ANCESTOR_DIR.value
  size = _IMAGE_SIZE.value
  spec = spec_lib.squishednet_base(10, (size, size, 3))
  directory = os.path.join(work_dir, "ancestor")
  if _RANDOM_WEIGHTS.value:
    model_io.write_model_dir(directory, models.build_model(spec, seed=0), spec, {})
    return directory
  from squish_tf.train import config as train_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  config = _data_config(size)
  train_ds, val_ds, info = data_lib.load(config)
  train_lib.train_model_dir(directory, spec, config,
                            train_config_lib.TrainConfig(epochs=_TRAIN_EPOCHS.value), train_ds,
                            val_ds, info, verbose=2)
  return directory


def _standin(ancestor_dir: str, work_dir: str) -> str:
  ancestor = model_io.read_spec(ancestor_dir)
  spec = spec_lib.width_for_params(ancestor, int(ancestor.params() * _STANDIN_FRACTION.value))
  directory = os.path.join(work_dir, "evolved_standin")
  model_io.write_model_dir(directory, models.build_model(spec, seed=1), spec, {})
  return directory


def _throughput(export_dir: str, size: int):
  del size  # the files know their input size; the pixels are seeded noise
  files = {name: os.path.join(export_dir, tflite_lib.FILES[name]) for name in ("fp32", "int8")}
  # Each format's share of a round is ~seconds_per_round: no invoke cap.
  result = speed_pairs.measure_pairs(
      files, [("int8", "fp32")], [int(b) for b in _BATCH_SIZES.value],
      num_threads=_THREADS.value, rounds=_ROUNDS.value, round_seconds=_SECONDS.value,
      max_invokes=10**6, warmup_invokes=5)
  rows = []
  for batch_size in (int(b) for b in _BATCH_SIZES.value):
    session = result["interleaved"]["batches"][str(batch_size)]["artefacts"]
    pair = result["pairs"][speed_pairs.pair_key("int8", "fp32")][str(batch_size)]
    rows.append({"batch_size": batch_size,
                 "fp32_images_per_sec": session["fp32"]["images_per_sec"]["median"],
                 "int8_images_per_sec": session["int8"]["images_per_sec"]["median"],
                 "int8_over_fp32": pair["ratio_median"],
                 "int8_over_fp32_range": [pair["ratio_min"], pair["ratio_max"]]})
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  work_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix="export_sizes_")
  ancestor_dir = _ancestor(work_dir)
  targets = [("ancestor", ancestor_dir)]
  if _EVOLVED_DIR.value:
    targets.append(("evolved", _EVOLVED_DIR.value))
  elif _STANDIN_FRACTION.value > 0:
    targets.append(("evolved_standin", _standin(ancestor_dir, work_dir)))
  report = {"num_threads": _THREADS.value, "models": {}}
  for label, model_dir in targets:
    spec = model_io.read_spec(model_dir)
    size = spec.input_shape[0]
    manifest = exporter.export_all(model_dir, os.path.join(work_dir, f"export_{label}"),
                                   data_config=_data_config(size), qat_epochs=_QAT_EPOCHS.value,
                                   overwrite=True)
    report["models"][label] = {
        "model_dir": os.path.abspath(model_dir), "params": spec.params(), "macs": spec.macs(),
        "input_shape": list(spec.input_shape),
        "keras_bytes": manifest["model"]["keras_bytes"],
        "bytes": {name: entry["bytes"] for name, entry in manifest["formats"].items()},
        "int8_agreement": manifest["formats"]["int8"]["parity"]["top1_agreement"],
        "qat_int8_agreement": manifest["formats"]["qat_int8"]["parity"]["top1_agreement"],
        "parity_images": f"{manifest['parity_images']} shapes10 {manifest['parity_source']}",
        "batch_norm_folded": manifest["model"].get("batch_norm_folded", False),
        "ops": {name: entry["ops"] for name, entry in manifest["formats"].items()
                if "ops" in entry},
        "litert": _throughput(manifest["export_dir"], size),
    }

  print(f"\nExport bytes (ratio to model_fp32.tflite); LiteRT {_THREADS.value} threads\n")
  for label, entry in report["models"].items():
    fp32 = entry["bytes"]["fp32"]
    print(f"{label}: {entry['params']:,} params, {entry['macs']:,} MACs at "
          f"{entry['input_shape'][0]} px, {entry['model_dir']}")
    print(f"  {'keras (.keras)':<16} {entry['keras_bytes']:>12,}")
    for name, size in entry["bytes"].items():
      print(f"  {name:<16} {size:>12,}  {size / fp32:6.3f}")
    print(f"  top-1 agreement with Keras: int8 {entry['int8_agreement']:.3f}, qat_int8 "
          f"{entry['qat_int8_agreement']:.3f} ({entry['parity_images']} images)")
    folded = "batch norm folded" if entry["batch_norm_folded"] else "no batch norm"
    print(f"  ops ({folded}): fp32 {entry['ops'].get('fp32')}")
    print(f"  {'batch':>5} {'fp32 img/s':>11} {'int8 img/s':>11} {'int8/fp32 [min-max]':>20}")
    for row in entry["litert"]:
      low, high = row["int8_over_fp32_range"]
      print(f"  {row['batch_size']:>5} {row['fp32_images_per_sec']:>11.1f} "
            f"{row['int8_images_per_sec']:>11.1f} "
            f"{row['int8_over_fp32']:>7.2f} [{low:.2f}-{high:.2f}]")
    print()
  if _OUTPUT_JSON.value:
    with open(_OUTPUT_JSON.value, "w", encoding="utf-8") as handle:
      json.dump(report, handle, indent=2)
  print(f"model dirs and exports in {work_dir}")


if __name__ == "__main__":
  app.run(main)
