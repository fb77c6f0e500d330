"""report.md's "Models in detail": the wide table of every model split by concern (speed,
size and compute, accuracy per model and per exported file, training budget), each with the
notes that explain it, and the microcontroller line. Pure rendering from the results dict."""

from typing import Any, Dict, List, Mapping

from squish_tf.records import ModelResult, Results
from squish_tf.report.format import (
  DASH,
  finite_number,
  fmt_bytes_mb,
  fmt_count,
  fmt_images,
  fmt_macs_m,
  fmt_mb,
  fmt_percent,
  fmt_speed,
  fmt_text,
  fmt_value,
  markdown_table,
)
from squish_tf.report.results import (
  accuracy_split,
  batch_sizes,
  exported_formats,
  file_label,
  is_on_test,
  measured_speedup,
  model_label,
  resolution_cell,
  retrained,
  run_pixels_text,
  short_label,
  size_key,
  speed_resolutions,
  speedup_cell,
  speedup_range,
  top1_header,
)


def _accuracy_note(results: Mapping[str, Any]) -> str:
  """Which split the accuracies are on, and which split the decisions read."""
  dataset = Results.coerce(results).dataset
  test_count = finite_number(dataset.test_count if dataset else None)
  if is_on_test(results):
    images = f", {test_count:,.0f} images" if test_count else ""
    return ("**Accuracies are test-split top-1** (top-5 and NetScore too): measured on the "
            f"held-out test split{images}, which nothing was selected or tuned on. Selection "
            "among candidates and the accuracy budget (`max_accuracy_drop`) used the "
            "validation split; its figures are the \"Val top-1\" columns.")
  split = accuracy_split(results)
  return (f"Accuracies are on the {split} split, the same split selection and the accuracy "
          "budget used: these results hold no held-out test figures.")


DETAILS_HEADING = "## Models in detail"


def details_section(results: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str:
  """Every figure of every model, split by concern: speed, size and compute, accuracy (per
  model and per exported file) and training budget, each table with its own notes."""
  if not models:
    return DETAILS_HEADING + "\n\nNo models in these results."
  models = {name: ModelResult.coerce(entry) for name, entry in models.items()}
  blocks = [DETAILS_HEADING]
  for heading, table, notes in (
      ("### Speed", _speed_table(results, models), _speed_notes(results, models)),
      ("### Size and compute", _size_table(models), _size_notes(results, models)),
      ("### Accuracy", _accuracy_table(results, models), _accuracy_note(results)),
      ("### Accuracy by exported file", _formats_table(models), _formats_note(results)),
      ("### Training budget", _budget_table(models), _budget_note(results))):
    if table:
      blocks += [heading, table, notes]
  return "\n\n".join(block for block in blocks if block)


def _label_cell(name: str, entry: ModelResult) -> str:
  label = fmt_text(model_label(name, entry))
  return f"**{label}**" if name == "squishednet" else label


def _table(models: Dict[str, ModelResult], header: List[str], cells) -> str:
  """One row per model: its label, then `cells(entry)`."""
  return markdown_table(header, [[_label_cell(name, entry)] + cells(entry)
                                 for name, entry in models.items()])


def _speed_table(results: Mapping[str, Any], models: Dict[str, ModelResult]) -> str:
  ancestor = models.get("ancestor") or ModelResult()
  sizes = batch_sizes(models)
  # Other resolutions' speed-ups sit beside the run's own, each column naming its size.
  resolutions = speed_resolutions(models)
  run_pixels = run_pixels_text(results) if resolutions else None
  int8_sizes = [s for s in sizes if any(measured_speedup(m, ancestor, s, "int8_speedup_vs_ancestor")
                                        is not None for m in models.values())]
  header = ["Model"] + [f"LiteRT img/s, batch {s}" for s in sizes]
  header += [f"Speed-up, {run_pixels}, batch {s}" if run_pixels else f"Speed-up, batch {s}"
             for s in sizes]
  header += [f"Speed-up, {image} px, batch {s}" for image, s in resolutions]
  header += [f"int8 speed-up, batch {s}" for s in int8_sizes]
  if len(header) == 1:
    return ""

  def cells(entry: ModelResult) -> List[str]:
    return ([fmt_speed((entry.litert_images_per_sec or {}).get(size_key(s))) for s in sizes]
            + [speedup_cell(entry, ancestor, s) for s in sizes]
            + [resolution_cell(entry, image, s) for image, s in resolutions]
            + [speedup_cell(entry, ancestor, s, "int8_speedup_vs_ancestor") for s in int8_sizes])
  return _table(models, header, cells)


def _size_table(models: Dict[str, ModelResult]) -> str:
  has_keras = any(_unfolded(m) for m in models.values())
  has_sparse = any(m.nonzero_params is not None or m.gzip_bytes is not None
                   for m in models.values())
  header = ["Model", "Params (deployed)"]
  header += ["Keras params (BN unfolded)"] if has_keras else []
  header += ["Size (MB, deployed)", "TFLite fp32 (MB)", "TFLite int8 (MB)", "MACs (M)",
             "NetScore"]
  header += ["Non-zero params", "gzip (MB)"] if has_sparse else []

  def cells(entry: ModelResult) -> List[str]:
    out = [fmt_count(entry.params)]
    out += [fmt_count(entry.keras_params)] if has_keras else []
    out += [fmt_mb(entry.size_mb), fmt_bytes_mb(entry.tflite_fp32_bytes),
            fmt_bytes_mb(entry.tflite_int8_bytes), fmt_macs_m(entry.macs),
            fmt_value(entry.netscore, ".2f")]
    if has_sparse:
      out += [fmt_count(entry.nonzero_params), fmt_bytes_mb(entry.gzip_bytes)]
    return out
  return _table(models, header, cells)


def _unfolded(model: ModelResult) -> bool:
  """Whether Keras counts the model's params otherwise than deployed (batch norm unfolded)."""
  keras = finite_number(model.keras_params)
  return keras is not None and keras != finite_number(model.params)


def _accuracy_table(results: Mapping[str, Any], models: Dict[str, ModelResult]) -> str:
  has_top5 = any(finite_number(m.top5) is not None for m in models.values())
  has_val = is_on_test(results) and any(finite_number(m.validation_top1) is not None
                                      for m in models.values())
  header = ["Model", top1_header(results)]
  header += [top1_header(results, "top-5")] if has_top5 else []
  header += ["Val top-1"] if has_val else []

  def cells(entry: ModelResult) -> List[str]:
    out = [fmt_percent(entry.top1)]
    out += [fmt_percent(entry.top5)] if has_top5 else []
    out += [fmt_percent(entry.validation_top1)] if has_val else []
    return out
  return _table(models, header, cells)


def _formats_table(models: Dict[str, ModelResult]) -> str:
  """One row per exported file, one column per model that recorded its files: top-1 (agreement)."""
  names = [name for name, entry in models.items() if entry.formats]
  formats = exported_formats(models)
  if not names or not formats:
    return ""

  def cell(entry: ModelResult, fmt: str) -> str:
    figures = (entry.formats or {}).get(fmt)
    if not isinstance(figures, Mapping):
      return DASH
    top1 = fmt_percent(figures.get("top1"))
    agreement = finite_number(figures.get("agreement"))
    return top1 if agreement is None else f"{top1} ({fmt_percent(agreement)})"
  header = ["File"] + [fmt_text(short_label(name, models[name])) for name in names]
  rows = [[fmt_text(file_label(fmt))] + [cell(models[name], fmt) for name in names]
          for fmt in formats]
  return markdown_table(header, rows)


def _formats_note(results: Mapping[str, Any]) -> str:
  split = accuracy_split(results)
  return (f"Each exported file's {split} top-1, fed the uint8 pixels a camera gives, and in "
          "brackets its agreement: the share of those images on which it predicts the Keras "
          f"model's class. {DASH} = not exported or not measured.")


def _budget_table(models: Dict[str, ModelResult]) -> str:
  return _table(models, ["Model", "Epochs", "Images trained"], lambda entry: [
      fmt_count(entry.train_epochs), fmt_images(entry.train_images)])


def micro_line(models: Mapping[str, Any]) -> str:
  """The microcontroller check of the int8 files (TFLM), one sentence per model; '' if none."""
  parts = []
  for name, entry in models.items():
    micro = entry.micro if isinstance(entry, ModelResult) else (
        entry.get("micro") if isinstance(entry, Mapping) else None)
    if not isinstance(micro, Mapping):
      continue
    label = model_label(name, entry)
    if micro.get("arena_bytes") is None:
      op = micro.get("unsupported_op")
      why = f"no kernel for {op}" if op else micro.get("error")
      parts.append(f"{label}: TFLM cannot run it ({why}).")
      continue
    equal = ("outputs equal to LiteRT's reference kernels" if micro.get("outputs_equal")
             else f"outputs within {micro.get('max_abs_diff')} steps of LiteRT's reference kernels")
    parts.append(f"{label}: {micro['flash_bytes'] / 1024:,.0f} KB of flash, a "
                 f"{micro['arena_bytes'] / 1024:,.0f} KB tensor arena ({equal} on "
                 f"{micro.get('images')} test images).")
  if not parts:
    return ""
  return ("**Microcontrollers** (the int8 files run by TensorFlow Lite for Microcontrollers): "
          + " ".join(parts))


def _speed_notes(results: Mapping[str, Any], models: Mapping[str, Any]) -> str:
  notes = ["LiteRT images/s on this machine's CPU; speed-up is over the ancestor at the same "
           f"batch size. {DASH} = not measured."]
  rounds = sorted({spread[2] for m in models.values() for key in ("speedup_vs_ancestor",
                                                                   "int8_speedup_vs_ancestor")
                   for size in (getattr(m, f"{key}_range") or {})
                   for spread in [speedup_range(m, size, key)] if spread and spread[2]})
  if rounds:
    notes.append("Speed-ups are measured, not divided: each model's .tflite file and the "
                 "ancestor's fp32 file ran interleaved in one process with the same threads "
                 f"({'/'.join(str(r) for r in rounds)} rounds, each file in turn every round), "
                 "and a speed-up is the median of the per-round ratios, with their min–max in "
                 "brackets; int8 speed-up is the model's int8 file over the ancestor's fp32 "
                 "file. The images/s columns are each file timed on its own, so their ratios "
                 "carry the machine's drift and can differ from the speed-ups.")
  resolutions = speed_resolutions(models)
  if resolutions:
    sizes = sorted({image for image, _ in resolutions}, key=lambda s: (not s.isdigit(), s))
    run = run_pixels_text(results) or "the run's size"
    notes.append(f"The networks are fully convolutional, so the speed-ups are also measured at "
                 f"{' and '.join(s + ' px' for s in sizes)} beside the run's {run}: every model "
                 "is rebuilt at that input size with the same (deployed) weights, converted to "
                 "fp32 TFLite as the export does, and its file timed interleaved against the "
                 "ancestor's rebuilt file, batch 1, as above. Larger inputs shift time towards "
                 "the late, wide layers, so the speed-up changes with the camera's resolution.")
  machine = Results.coerce(results).machine
  if isinstance(machine, Mapping) and machine:
    cpu = machine.get("processor") or machine.get("machine") or "CPU"
    count = machine.get("cpu_count")
    threads = machine.get("num_threads")
    notes.append(f"Timed on {cpu}" + (f" ({count} CPUs)" if count else "")
                 + (f", {threads} LiteRT threads." if threads else "."))
  return "\n\n".join(notes)


def _size_notes(results: Mapping[str, Any], models: Mapping[str, Any]) -> str:
  split = accuracy_split(results)
  notes = ["Params and size are **deployed** figures: batch norm folded into the convolutions "
           "(kernel + one bias per filter), size = params × 4 bytes (float32), as the paper "
           "counts it. TFLite columns are the exported files' bytes. NetScore = 20 log10(a² / "
           f"(√p √m)), a = {split} top-1 in %, p = deployed params in millions, m = MACs in "
           "billions."]
  unfolded = [(name, m) for name, m in models.items() if _unfolded(m)]
  if unfolded:
    examples = "; ".join(f"{model_label(name, m)}: {fmt_count(m.keras_params)} in Keras vs "
                         f"{fmt_count(m.params)} deployed" for name, m in unfolded[:2])
    notes.append("Keras params is Keras' `count_params()` of the training model, with batch "
                 "norm unfolded (four vectors per filter: γ, β and the moving mean and "
                 f"variance), e.g. {examples}.")
  if any(m.gzip_bytes is not None for m in models.values()):
    notes.append("Magnitude pruning zeroes weights without shrinking the dense file: its "
                 "saving shows in the gzip column and in non-zero params, not in size or speed.")
  micro = micro_line(models)
  if micro:
    notes.append(micro)
  return "\n\n".join(notes)


def _budget_note(results: Mapping[str, Any]) -> str:
  if retrained(results):
    return ("Epochs and images trained: what training processed. For the SquishedNet, "
            "epochs are the lineage's budget (the ancestor's epochs, the chosen "
            "offspring's and --final_epochs), for which its widths trained from scratch "
            "and every baseline trains; images trained count the ancestor, every "
            "candidate evolution fine-tuned (discarded ones included) and that final "
            "training.")
  return ("Epochs and images trained: what training processed. For the SquishedNet, "
          "epochs count the ancestor's training, the chosen offspring's fine-tuning and "
          "the polish (the budget every baseline trains for); images trained also count "
          "every candidate evolution fine-tuned, discarded ones included.")
