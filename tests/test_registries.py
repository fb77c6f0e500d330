"""The open sets are registries: a baseline and an export format registered here, outside the
package, are trained, exported, found by the benchmark and reported like the package's own."""

import os

import keras
import numpy as np
import pytest
import toy

from squish_tf import files as files_lib
from squish_tf import registry as registry_lib
from squish_tf.bench import artefacts as artefacts_lib
from squish_tf.export import exporter
from squish_tf.export import formats as formats_lib
from squish_tf.export import tflite as tflite_lib
from squish_tf.net import model_io
from squish_tf.report import markdown as report_lib
from squish_tf.report import results as report_results_lib
from squish_tf.train import baseline_registry
from squish_tf.train import baselines as baselines_lib
from squish_tf.train import trainer as train_lib

TOY_BASELINE = "toy_pooled"
TOY_FORMAT = "toy_plain"


def train_pooled(inputs: baselines_lib.BaselineInputs):
  """Average colour -> softmax: the smallest model that can tell toy's red, green and blue."""
  spec = model_io.read_spec(inputs.ancestor_dir)

  def build():
    keras.utils.set_random_seed(inputs.budget.seed)
    pixels = keras.Input(spec.input_shape)
    mean = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(pixels))
    return keras.Model(pixels, keras.layers.Dense(spec.num_classes, activation="softmax")(mean))

  config = inputs.budget.scratch_config()
  result = train_lib.fit(build, inputs.train_ds, None, config, work_dir=inputs.work_dir,
                         images_per_epoch=inputs.info.train_count, verbose=0, label=inputs.name)
  return result.model, None, {"train_epochs": config.epochs}


def write_plain(export, name):
  """The fp32 conversion without metadata, as `model_<name>.tflite`."""
  content = tflite_lib.convert_saved_model(export.saved_dir, "fp32")
  return export.tflite_entry(name, content)


@pytest.fixture
def toy_members():
  baseline = baseline_registry.register(baseline_registry.Baseline(
      TOY_BASELINE, "Average colour, then softmax", "Pooled", train_pooled))
  fmt = formats_lib.register(formats_lib.ExportFormat(
      TOY_FORMAT, "TFLite fp32 without metadata", write_plain, artefact=f"tflite_{TOY_FORMAT}",
      tflite=True))
  yield baseline, fmt
  baseline_registry.unregister(TOY_BASELINE)
  formats_lib.unregister(TOY_FORMAT)


def test_a_registered_baseline_and_format_are_trained_exported_and_reported(
    toy_members, toy_parent_dir, tmp_path):
  del toy_members
  assert baseline_registry.parse_names("all")[-1] == TOY_BASELINE
  assert TOY_FORMAT in exporter.available_formats(with_data=False)
  budget = baselines_lib.BaselineBudget(
      target_params=1000, total_epochs=3, fine_tune_epochs=1,
      train_config=train_lib.TrainConfig(learning_rate=0.05, warmup_epochs=0))
  dirs = baselines_lib.run_baselines(str(tmp_path), toy_parent_dir, budget, toy.data,
                                     names=(TOY_BASELINE,))
  model_dir = dirs[TOY_BASELINE]
  assert model_dir == os.path.join(str(tmp_path), "baselines", TOY_BASELINE)
  metrics = files_lib.read_json(os.path.join(model_dir, model_io.METRICS_FILE))
  assert metrics["baseline"] == TOY_BASELINE
  assert metrics["label"] == "Average colour, then softmax"
  assert metrics["params"] == 3 * 3 + 3 and metrics["train_epochs"] == 3
  assert 0.0 <= metrics["top1"] <= 1.0

  images, labels = toy.arrays(24, seed=1)
  data = exporter.ExportData(calibration_images=images.astype(np.uint8), train_ds=None,
                             eval_images=images.astype(np.uint8), eval_labels=labels)
  export_dir = os.path.join(model_dir, "export")
  manifest = exporter.export_all(model_dir, export_dir, formats=f"{TOY_FORMAT},fp32", data=data)
  assert list(manifest["formats"]) == ["fp32", TOY_FORMAT]  # the registry's order
  plain, fp32 = manifest["formats"][TOY_FORMAT], manifest["formats"]["fp32"]
  assert list(plain["files"]) == [f"model_{TOY_FORMAT}.tflite"]
  assert plain["parity"]["max_abs_diff"] <= 1e-4 and plain["parity"]["top1_agreement"] == 1.0
  assert plain["accuracy"] == fp32["accuracy"]
  assert plain["bytes"] < fp32["bytes"]  # no metadata, no labels
  assert plain["bytes_vs_fp32"] == plain["bytes"] / fp32["bytes"]
  assert list(artefacts_lib.find_artefacts(model_dir, export_dir)) == [
      "keras", "tflite_fp32", f"tflite_{TOY_FORMAT}"]

  # Reported: what results.json holds of a baseline, without its label (the registry has it).
  files = {fmt.artefact: {"bytes": manifest["formats"][fmt.name]["bytes"],
                          "top1": manifest["formats"][fmt.name]["accuracy"],
                          "agreement": manifest["formats"][fmt.name]["parity"]["top1_agreement"]}
           for fmt in (formats_lib.lookup("fp32"), formats_lib.lookup(TOY_FORMAT))}
  results = {
      "run_name": "toy", "accuracy_split": "test",
      "models": {
          TOY_BASELINE: {"kind": "baseline", "params": metrics["params"],
                         "size_mb": metrics["size_mb"], "top1": metrics["top1"],
                         "formats": files},
          "width_scaled": {"kind": "baseline", "params": 900, "size_mb": 0.0036, "top1": 0.9},
          "squishednet": {"kind": "squishednet", "params": 800, "size_mb": 0.0032, "top1": 0.95,
                          "formats": {"tflite_fp32": files["tflite_fp32"]}},
          "ancestor": {"kind": "ancestor", "params": 5000, "size_mb": 0.02, "top1": 1.0}}}
  assert list(report_results_lib.ordered_models(results)) == [
      "ancestor", "squishednet", "width_scaled", TOY_BASELINE]
  markdown = report_lib.render_markdown(results)
  assert "| Average colour, then softmax |" in markdown  # the model tables: its label
  header, rows = toy.table_after(markdown, "### Accuracy by exported file")
  assert header == ["File", "SquishedNet", "Pooled"]  # its short label
  assert list(rows) == ["TFLite fp32", "TFLite fp32 without metadata"]  # the format's label
  assert rows["TFLite fp32 without metadata"]["Pooled"] == (
      f"{100 * plain['accuracy']:.2f}% (100.00%)")
  assert rows["TFLite fp32 without metadata"]["SquishedNet"] == "–"


def test_a_name_taken_or_unknown_says_what_is_known(toy_members):
  baseline, fmt = toy_members
  with pytest.raises(ValueError, match="already registered"):
    baseline_registry.register(baseline)
  with pytest.raises(ValueError, match=f"--formats takes one of saved_model, .*{TOY_FORMAT}"):
    formats_lib.lookup("onnx")
  with pytest.raises(ValueError, match=f"Unknown baselines \\['nope'\\].*{TOY_BASELINE}"):
    baseline_registry.parse_names("width_scaled,nope")
  replaced = formats_lib.register(fmt, replace=True)
  assert formats_lib.lookup(TOY_FORMAT) is replaced
  assert formats_lib.artefact_label(f"tflite_{TOY_FORMAT}") == "TFLite fp32 without metadata"
  assert formats_lib.artefact_label("tflite_other") == "tflite_other"


def test_the_package_members_and_their_words():
  assert baseline_registry.BASELINES == (
      "width_scaled", "width_scaled_latency", "width_scaled_distilled", "magnitude_pruned",
      "mobilenet_v3_small")
  assert exporter.FORMATS == ("saved_model", "fp32", "fp16", "dynamic", "int8", "qat_int8",
                              "jetson", "tftrt")
  assert exporter.DATA_FORMATS == ("int8", "qat_int8")
  assert exporter.SPEC_FORMATS == ("qat_int8", "jetson")
  assert artefacts_lib.ARTEFACT_ORDER == (
      "keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
      "tflite_qat_int8")
  # One label per baseline: what the job writes into results.json is what the report prints.
  assert report_results_lib.model_label("width_scaled_latency", {}) == (
      baseline_registry.lookup("width_scaled_latency").label)
  assert [name for name, _ in report_results_lib.rivals()] == [
      "width_scaled", "width_scaled_distilled"]
  assert registry_lib.load("squish_tf.train.baselines:train_pruned") is baselines_lib.train_pruned
  with pytest.raises(ValueError, match="module:attribute"):
    registry_lib.load("no_colon_here")
