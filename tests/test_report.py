"""Report: report.md tables hold the given numbers, missing values render, pareto.png is real."""

import copy
import os
import re

from matplotlib import image as mpl_image
import pytest
import toy

from squish_tf.report import console as console_lib
from squish_tf.report import details as details_lib
from squish_tf.report import markdown as report_lib
from squish_tf.report import pareto as pareto_lib
from squish_tf.report import results as report_results_lib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _candidate(generation, candidate, parent, params, validation_top1, top1, chosen=False,
               status="ok", attempt=0):
  return {"id": f"gen_{generation:03d}/cand_{candidate:02d}", "generation": generation,
          "candidate": candidate, "attempt": attempt, "parent": parent, "params": params,
          "size_mb": params * 4 / 1e6, "macs": params * 20, "status": status, "chosen": chosen,
          "env_factor": 0.8, "wall_seconds": 95.0, "train_images": 12000,
          "validation_top1": validation_top1, "top1": top1,
          "netscore": None if top1 is None else 70.0 + top1}


def _results():
  """Validation (selection) and test (reported) figures differ on purpose."""
  candidates = [
      _candidate(1, 0, "ancestor", 420000, 0.925, 0.920),
      _candidate(1, 1, "ancestor", 400000, 0.931, 0.922, chosen=True),
      _candidate(1, 2, "ancestor", 390000, None, None, status="diverged"),
      _candidate(2, 0, "gen_001/cand_01", 250000, 0.918, 0.911, chosen=True),
      _candidate(2, 1, "gen_001/cand_01", 240000, 0.902, None),  # not tested
      _candidate(3, 0, "gen_002/cand_00", 140000, 0.910, 0.897, chosen=True),
      _candidate(3, 1, "gen_002/cand_00", 150000, 0.899, 0.901),
  ]
  return {
      "run_name": "demo",
      "command": "squish --flagfile=saved_models/demo/flags.txt",
      "dataset": {"name": "shapes10", "image_size": 64, "train_count": 6000,
                  "validation_count": 1500, "test_count": 2000,
                  "class_names": [f"c{i}" for i in range(10)]},
      "accuracy_split": "test",
      "models": {
          # Given out of order: the report orders them.
          "mobilenet_v3_small": {"label": "MobileNetV3Small (minimalistic)", "kind": "baseline",
                                 "params": None, "size_mb": None, "top1": None},
          "squishednet": {"label": "SquishedNet (gen_003/cand_00, polished)",
                          "kind": "squishednet", "params": 140000, "keras_params": 143456,
                          "size_mb": 0.56, "macs": 2800000, "top1": 0.91, "top5": 0.985,
                          "validation_top1": 0.921, "netscore": 80.456,
                          "train_epochs": 38, "train_images": 1234567,
                          "tflite_fp32_bytes": 571000, "tflite_int8_bytes": 160500,
                          "litert_images_per_sec": {"1": 2031.0, "8": 4200.5},
                          "speedup_vs_ancestor": {"1": 2.5, "8": 2.8}},
          "ancestor": {"label": "Ancestor (SqueezeNet v1.1, 10 classes)", "kind": "ancestor",
                       "params": 727626, "keras_params": 738890, "size_mb": 2.910504,
                       "macs": 17022656, "top1": 0.93, "top5": 0.99, "validation_top1": 0.94,
                       "netscore": 71.234, "train_epochs": 30, "train_images": 180000,
                       "tflite_fp32_bytes": 2934512, "tflite_int8_bytes": 781234,
                       "litert_images_per_sec": {"1": 812.4, "8": 1500.2},
                       "speedup_vs_ancestor": {"1": 1.0, "8": 1.0}},
          "width_scaled_distilled": {
              "label": "Uniform width-scaled SqueezeNet, distilled from the ancestor",
              "kind": "baseline", "params": 141000, "keras_params": 144000, "size_mb": 0.564,
              "macs": 3000000, "top1": 0.915, "validation_top1": 0.92, "netscore": 79.5,
              "train_epochs": 38, "train_images": 228000},
          "width_scaled": {"label": "Uniform width-scaled SqueezeNet", "kind": "baseline",
                           "params": 141000, "keras_params": 144000, "size_mb": 0.564,
                           "macs": 3000000, "top1": 0.88, "validation_top1": 0.89,
                           "netscore": 78.9, "train_epochs": 38, "train_images": 228000,
                           "tflite_fp32_bytes": 575000,
                           "litert_images_per_sec": {"1": 1900.0}},
          "magnitude_pruned": {"label": "tfmot magnitude pruning", "kind": "baseline",
                               "params": 727626, "size_mb": 2.910504, "macs": 17022656,
                               "top1": 0.905, "gzip_bytes": 1234567, "nonzero_params": 145525},
      },
      "candidates": candidates,
      "generations": [
          {"generation": 1, "parent": "ancestor", "chosen": "gen_001/cand_01", "stop_reason": None},
          {"generation": 2, "parent": "gen_001/cand_01", "chosen": "gen_002/cand_00",
           "stop_reason": None},
          {"generation": 3, "parent": "gen_002/cand_00", "chosen": "gen_003/cand_00",
           "stop_reason": "target_met"},
      ],
      "winner": "gen_003/cand_00",
      "polished": True,
      "stop_reason": "target_met",
      "paper": [{"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 2.4, "top1": 0.812,
                 "images_per_sec": 156},
                {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 0.95, "top1": 0.77,
                 "images_per_sec": 256}],
      "reference": {"squeezenet_v1_1_size_mb": 4.94},
      "wall_seconds": {"ancestor": 312.4, "synthesis": 1843.0, "polish": 120.0, "export": 41.0,
                       "baselines": 400.0, "evaluation": 12.0, "benchmark": 65.2,
                       "total": 2793.6},
  }


def _row(markdown, first_cell):
  """The cells of the Markdown table row whose first cell is `first_cell`."""
  for line in markdown.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] == first_cell:
      return cells
  raise AssertionError(f"no table row starting with {first_cell!r} in:\n{markdown}")


def _tables(markdown):
  """Every Markdown table, as (header, rows) with rows a list of cell lists."""
  tables, current = [], None
  for line in markdown.splitlines():
    if line.startswith("|"):
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if current is None:
        current = [cells]
      else:
        current.append(cells)
    elif current is not None:
      tables.append((current[0], current[2:]))
      current = None
  if current is not None:
    tables.append((current[0], current[2:]))
  return tables


def _details(markdown):
  """The detail tables under "## Models in detail", merged: (headers in order, {model label:
  {column: cell}}), rows in the order they first appear."""
  section = markdown[markdown.index("## Models in detail"):markdown.index("## Generations")]
  headers, rows = [], {}
  for header, body in _tables(section):
    if header[0] != "Model":
      continue
    headers += [h for h in header if h not in headers]
    for row in body:
      rows.setdefault(row[0], {"Model": row[0]}).update(zip(header, row))
  return headers, rows


# Every column the single models table had before the report split it by concern.
OLD_MODEL_COLUMNS = [
    "Model", "Params (deployed)", "Keras params (BN unfolded)", "Size (MB, deployed)",
    "TFLite fp32 (MB)", "TFLite int8 (MB)", "MACs (M)", "Test top-1", "Test top-5", "Val top-1",
    "NetScore", "LiteRT img/s, batch 1", "LiteRT img/s, batch 8", "Speed-up, 64 px, batch 1",
    "Speed-up, 64 px, batch 8", "Speed-up, 224 px, batch 1", "int8 speed-up, batch 1",
    "int8 speed-up, batch 8", "Epochs", "Images trained", "Non-zero params", "gzip (MB)"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp("run"))
  report_path, png_path = report_lib.write_report(run_dir, _results())
  with open(report_path, encoding="utf-8") as handle:
    return run_dir, handle.read(), png_path


def test_summary_paragraph_states_the_headline(written):
  _, markdown, _ = written
  assert markdown.startswith("# SquishedNets run `demo`")
  # 2.910504 / 0.56 = 5.20x; 4.94 / 0.56 = 8.82x; 93.00 -> 91.00 = 2.00 points; 2.5x at batch 1.
  for text in ("The SquishedNet (gen_003/cand_00, polished) is **5.20× smaller**",
               "8.82× smaller than SqueezeNet v1.1 (4.94 MB)",
               "loses **2.00 points** of top-1 on the shapes10 test split (93.00% → 91.00%)",
               "**2.50× faster** than the ancestor with LiteRT at batch 1 (2,031 vs 812 images/s)",
               "evolved winner `gen_003/cand_00` after a final, distilled fine-tune",
               "Every accuracy here is test-split top-1",
               "stopped: target met"):
    assert text in markdown
  assert "validation (" not in markdown.split("\n\n")[1]


# The report's opening: what was made and how small, how accurate, how fast; then the verdict
# against the width multiplier and the data line, all read before "What to ship".
OPENING_SENTENCES, OPENING_WORDS, WORDS_ABOVE_THE_TABLE = 3, 45, 120


def test_the_report_opens_with_three_short_sentences(written):
  _, markdown, _ = written
  opening = markdown.split("\n\n")[1]
  assert opening == ("This run made a **0.560 MB SquishedNet**, **5.20× smaller** than its "
                     "ancestor. It scores **91.00%** test top-1, 2.00 points below the "
                     "ancestor's 93.00%. It runs **2.50×** as fast as the ancestor (LiteRT fp32, "
                     "batch 1, this machine).")
  assert len(re.findall(r"[.!?](?: |$)", opening)) <= OPENING_SENTENCES
  assert len(opening.split()) <= OPENING_WORDS
  assert len(markdown[:markdown.index("## What to ship")].split()) <= WORDS_ABOVE_THE_TABLE
  # The long account moved below the table, whole.
  assert (markdown.index("## What to ship") < markdown.index("## The run in full")
          < markdown.index(report_lib.summary_paragraph(_results())))


def test_the_opening_follows_the_figures_it_has():
  results = _results()
  squished = results["models"]["squishednet"]
  squished["top1"] = 0.935
  opening = report_lib.opening_paragraph(results)
  assert "**93.50%** test top-1, 0.50 points above the ancestor's 93.00%." in opening
  squished["top1"] = 0.93
  assert "**93.00%** test top-1, as the ancestor." in report_lib.opening_paragraph(results)
  squished.update(speedup_vs_ancestor={}, size_mb=None)
  opening = report_lib.opening_paragraph(results)
  assert opening.startswith("This run made a SquishedNet. It scores") and "fast" not in opening
  del results["models"]["squishednet"]
  assert report_lib.opening_paragraph(results) == report_lib.summary_paragraph(results)
  assert "## The run in full" not in report_lib.render_markdown(results)


def test_summary_compares_with_both_width_scaled_baselines(written):
  _, markdown, _ = written
  # 91.00 vs 88.00: beats by 3.00; 91.00 vs 91.50: trails by 0.50.
  assert ("On test top-1 it beats the width-scaled SqueezeNet trained from scratch by "
          "**3.00 points** (91.00% vs 88.00%) and trails the same width-scaled SqueezeNet "
          "distilled from the ancestor by **0.50 points** (91.00% vs 91.50%).") in markdown
  assert ("Counting every candidate evolution trained, the SquishedNet's training processed "
          "1.23 M images, against 228.0 k for the width-scaled baseline.") in markdown


@pytest.mark.parametrize("top1, width, distilled", [
    (0.95, "beats the width-scaled SqueezeNet trained from scratch by **7.00 points** "
           "(95.00% vs 88.00%)",
     "beats the same width-scaled SqueezeNet distilled from the ancestor by **3.50 points** "
     "(95.00% vs 91.50%)"),
    (0.85, "trails the width-scaled SqueezeNet trained from scratch by **3.00 points** "
           "(85.00% vs 88.00%)",
     "trails the same width-scaled SqueezeNet distilled from the ancestor by **6.50 points** "
     "(85.00% vs 91.50%)"),
    (0.915, "beats the width-scaled SqueezeNet trained from scratch by **3.50 points**",
     "ties with the same width-scaled SqueezeNet distilled from the ancestor (91.50% vs 91.50%)"),
])
def test_comparison_wording_follows_the_sign(top1, width, distilled):
  results = _results()
  results["models"]["squishednet"]["top1"] = top1
  paragraph = report_lib.summary_paragraph(results)
  assert width in paragraph and distilled in paragraph
  if top1 < 0.88:
    assert "beats" not in paragraph
  console = console_lib.format_results_summary(results)
  plain = distilled.replace("**", "")
  assert f"squishednet vs width_scaled_distilled: it {plain}" in console


def test_data_line_and_accuracy_note(written):
  _, markdown, _ = written
  assert ("Data: **shapes10**, 64×64 px, 6,000 training / 1,500 validation / 2,000 test "
          "images, 10 classes.") in markdown
  assert "**Accuracies are test-split top-1**" in markdown
  assert "held-out test split, 2,000 images, which nothing was selected or tuned on" in markdown
  assert ("Selection among candidates and the accuracy budget (`max_accuracy_drop`) used the "
          "validation split") in markdown
  # The data line opens the report; the split's note explains the accuracy table.
  assert markdown.index("Data: **shapes10**") < markdown.index("## What to ship")
  accuracy = markdown[markdown.index("### Accuracy\n"):markdown.index("### Training budget")]
  assert "**Accuracies are test-split top-1**" in accuracy


def test_detail_tables_hold_the_numbers(written):
  _, markdown, _ = written
  headers, rows = _details(markdown)
  assert headers == ["Model", "LiteRT img/s, batch 1", "LiteRT img/s, batch 8",
                     "Speed-up, batch 1", "Speed-up, batch 8", "Params (deployed)",
                     "Keras params (BN unfolded)", "Size (MB, deployed)", "TFLite fp32 (MB)",
                     "TFLite int8 (MB)", "MACs (M)", "NetScore", "Non-zero params", "gzip (MB)",
                     "Test top-1", "Test top-5", "Val top-1", "Epochs", "Images trained"]
  ancestor = rows["Ancestor (SqueezeNet v1.1, 10 classes)"]
  assert ancestor["Params (deployed)"] == "727,626"
  assert ancestor["Keras params (BN unfolded)"] == "738,890"
  assert ancestor["Size (MB, deployed)"] == "2.911"
  assert ancestor["TFLite fp32 (MB)"] == "2.935"
  assert ancestor["TFLite int8 (MB)"] == "0.781"
  assert ancestor["MACs (M)"] == "17.02"
  assert ancestor["Test top-1"] == "93.00%" and ancestor["Val top-1"] == "94.00%"
  assert ancestor["NetScore"] == "71.23"
  assert ancestor["LiteRT img/s, batch 1"] == "812"
  assert ancestor["Speed-up, batch 8"] == "1.00×"
  assert ancestor["Epochs"] == "30" and ancestor["Images trained"] == "180.0 k"
  squished = rows["**SquishedNet (gen_003/cand_00, polished)**"]
  assert squished["Test top-1"] == "91.00%" and squished["Val top-1"] == "92.10%"
  assert squished["Speed-up, batch 8"] == "2.80×"
  assert squished["LiteRT img/s, batch 8"] == "4,200"
  assert squished["Images trained"] == "1.23 M" and squished["Epochs"] == "38"
  assert squished["Keras params (BN unfolded)"] == "143,456"
  width = rows["Uniform width-scaled SqueezeNet"]
  # Speed-up computed from the speeds when not recorded; int8 not exported.
  assert width["Speed-up, batch 1"] == f"{1900.0 / 812.4:.2f}×"
  assert width["TFLite int8 (MB)"] == "–" and width["LiteRT img/s, batch 8"] == "–"
  distilled = rows["Uniform width-scaled SqueezeNet, distilled from the ancestor"]
  assert distilled["Test top-1"] == "91.50%" and distilled["Images trained"] == "228.0 k"
  pruned = rows["tfmot magnitude pruning"]
  assert pruned["Non-zero params"] == "145,525" and pruned["gzip (MB)"] == "1.235"
  assert pruned["Keras params (BN unfolded)"] == "–" and pruned["Images trained"] == "–"
  mobilenet = rows["MobileNetV3Small (minimalistic)"]
  assert set(mobilenet.values()) == {"MobileNetV3Small (minimalistic)", "–"}
  assert list(rows) == [
      "Ancestor (SqueezeNet v1.1, 10 classes)", "**SquishedNet (gen_003/cand_00, polished)**",
      "Uniform width-scaled SqueezeNet",
      "Uniform width-scaled SqueezeNet, distilled from the ancestor", "tfmot magnitude pruning",
      "MobileNetV3Small (minimalistic)"]
  # Split by concern, each table under its own heading, every model in every table.
  section = markdown[markdown.index("## Models in detail"):markdown.index("## Generations")]
  assert [line for line in section.splitlines() if line.startswith("#")] == [
      "## Models in detail", "### Speed", "### Size and compute", "### Accuracy",
      "### Training budget"]
  assert [len(body) for _, body in _tables(section)] == [6, 6, 6, 6]
  header, _ = toy.table_after(markdown, "### Training budget")
  assert header == ["Model", "Epochs", "Images trained"]


def test_what_to_ship_table(tmp_path):
  results = _results()
  models = results["models"]
  models["squishednet"].update(
      speedup_vs_ancestor_range={"1": {"min": 2.4, "max": 2.6, "rounds": 7}},
      micro={"flash_bytes": 160500, "arena_bytes": 53504, "images": 4, "outputs_equal": True})
  models["ancestor"]["micro"] = {"flash_bytes": 781234, "arena_bytes": 109120, "images": 4,
                                 "outputs_equal": True}
  models["width_scaled"]["micro"] = {"flash_bytes": 150000, "unsupported_op": "HARD_SWISH"}
  models["magnitude_pruned"]["tflite_int8_bytes"] = 1234567  # from a megabyte on: MB
  markdown = report_lib.render_markdown(results)
  header, rows = toy.table_after(markdown, "## What to ship")
  assert header == ["Network", "Size (MB, fp32)", "int8 file", "Test top-1",
                    "Speed-up (64 px, batch 1)", "TFLM arena"]
  # The SquishedNet first, then the ancestor and the baselines in table order.
  assert list(rows) == ["**SquishedNet**", "Ancestor", "Width-scaled", "Width-scaled, distilled",
                        "Magnitude-pruned", "MobileNetV3Small"]
  squished = rows["**SquishedNet**"]
  assert squished["Size (MB, fp32)"] == "0.560"
  assert squished["int8 file"] == "157 KB"  # 160,500 / 1,024
  assert squished["Test top-1"] == "91.00%"
  assert squished["Speed-up (64 px, batch 1)"] == "2.50× [2.40–2.60]"
  assert squished["TFLM arena"] == "52 KB"  # 53,504 / 1,024
  ancestor = rows["Ancestor"]
  assert ancestor["int8 file"] == "763 KB" and ancestor["TFLM arena"] == "107 KB"
  assert ancestor["Speed-up (64 px, batch 1)"] == "1.00×"
  width = rows["Width-scaled"]
  assert width["int8 file"] == "–" and width["TFLM arena"] == "cannot run"
  assert width["Speed-up (64 px, batch 1)"] == f"{1900.0 / 812.4:.2f}×"
  assert rows["Magnitude-pruned"]["int8 file"] == "1.23 MB"
  # No microcontroller check recorded: a dash, as every figure not measured.
  assert rows["Width-scaled, distilled"]["TFLM arena"] == "–"
  assert rows["Magnitude-pruned"]["TFLM arena"] == "–"
  assert set(rows["MobileNetV3Small"].values()) == {"MobileNetV3Small", "–"}
  assert "the median of 7 interleaved rounds' ratios [min–max]" in markdown
  # One screen: summary, verdict, data line, then the table, each row within 100 characters.
  lines = markdown.splitlines()
  first = lines.index("| " + " | ".join(header) + " |")
  table = lines[first:first + 2 + len(rows)]
  assert first + len(table) <= 25
  assert all(len(line) <= 100 for line in table)
  assert [line for line in lines[:first] if line.startswith("#")] == [
      "# SquishedNets run `demo`", "## What to ship"]
  assert markdown.index("## What to ship") < markdown.index("## Models in detail")


def test_what_to_ship_without_micro_or_speed_figures():
  results = _results()
  for entry in results["models"].values():
    entry.pop("micro", None)
  del results["dataset"]["image_size"]
  markdown = report_lib.render_markdown(results)
  header, rows = toy.table_after(markdown, "## What to ship")
  assert header[4] == "Speed-up (batch 1)"
  assert {row["TFLM arena"] for row in rows.values()} == {"–"}
  assert report_lib.render_markdown({"run_name": "empty"}).count("## What to ship") == 0


def test_split_tables_lose_no_column_of_the_old_table():
  results = _results()
  models = results["models"]
  models["squishednet"].update(
      speedup_at_resolution={"224": {"1": 3.4}},
      int8_speedup_vs_ancestor={"1": 4.0, "8": 4.5})
  markdown = report_lib.render_markdown(results)
  headers = {cell for header, _ in _tables(markdown) for cell in header}
  assert [c for c in OLD_MODEL_COLUMNS if c not in headers] == []
  detail_headers, _ = _details(markdown)
  assert sorted(detail_headers) == sorted(OLD_MODEL_COLUMNS)
  # Speed-ups of a resolution and of int8 sit with the other speeds, not elsewhere.
  speed, _ = toy.table_after(markdown, "### Speed")
  assert speed[-3:] == ["Speed-up, 224 px, batch 1", "int8 speed-up, batch 1",
                        "int8 speed-up, batch 8"]


def test_accuracy_by_exported_file():
  results = _results()
  models = results["models"]
  models["squishednet"]["formats"] = {
      "tflite_int8": {"bytes": 160500, "top1": 0.9085, "agreement": 0.9915},
      "keras": {"bytes": 600000, "top1": 0.91, "agreement": 1.0},
      "tflite_custom": {"bytes": 1000, "top1": 0.5, "agreement": None}}
  models["ancestor"]["formats"] = {"tflite_fp32": {"bytes": 2934512, "top1": 0.93,
                                                   "agreement": 1.0}}
  markdown = report_lib.render_markdown(results)
  header, rows = toy.table_after(markdown, "### Accuracy by exported file")
  # Only the models that recorded their files; files in the export's order, unknown ones last.
  assert header == ["File", "Ancestor", "SquishedNet"]
  assert list(rows) == ["Keras", "TFLite fp32", "TFLite int8", "tflite_custom"]
  assert rows["TFLite int8"]["SquishedNet"] == "90.85% (99.15%)"
  assert rows["TFLite int8"]["Ancestor"] == "–"
  assert rows["TFLite fp32"]["Ancestor"] == "93.00% (100.00%)"
  assert rows["tflite_custom"]["SquishedNet"] == "50.00%"
  assert "Each exported file's test top-1" in markdown
  assert "### Accuracy by exported file" not in report_lib.render_markdown(_results())


def test_other_resolutions_sit_beside_the_runs_own(tmp_path):
  results = _results()
  models = results["models"]
  models["squishednet"].update(
      speedup_vs_ancestor_range={"1": {"min": 2.4, "max": 2.6, "rounds": 7}},
      speedup_at_resolution={"224": {"1": 3.4}},
      speedup_at_resolution_range={"224": {"1": {"min": 3.1, "max": 3.6, "rounds": 7}}})
  models["ancestor"]["speedup_at_resolution"] = {"224": {"1": 1.0}}
  models["width_scaled"]["speedup_at_resolution"] = {"224": {"1": None}}  # not rebuilt
  markdown = report_lib.render_markdown(results)
  header, rows = toy.table_after(markdown, "### Speed")
  start = header.index("Speed-up, 64 px, batch 1")
  assert header[start:start + 3] == ["Speed-up, 64 px, batch 1", "Speed-up, 64 px, batch 8",
                                     "Speed-up, 224 px, batch 1"]
  squished = rows["**SquishedNet (gen_003/cand_00, polished)**"]
  assert squished["Speed-up, 64 px, batch 1"] == "2.50× [2.40–2.60]"
  assert squished["Speed-up, 224 px, batch 1"] == "3.40× [3.10–3.60]"
  width = rows["Uniform width-scaled SqueezeNet"]
  assert width["Speed-up, 224 px, batch 1"] == "–"
  ancestor = rows["Ancestor (SqueezeNet v1.1, 10 classes)"]
  assert ancestor["Speed-up, 224 px, batch 1"] == "1.00×"
  # What to ship keeps the run's own resolution.
  assert toy.table_after(markdown, "## What to ship")[1]["**SquishedNet**"][
      "Speed-up (64 px, batch 1)"] == "2.50× [2.40–2.60]"
  assert ("runs **2.50× faster** than the ancestor with LiteRT at batch 1 and 64 px" in markdown)
  assert "**3.40×** at 224 px, the same weights on a 224×224 input (3.10–3.60× over 7" in markdown
  assert "also measured at 224 px beside the run's 64 px" in markdown
  assert "3.40× at 224 px b1" in console_lib.format_results_summary(results)


def test_models_notes_name_deployed_and_unfolded_counts(written):
  _, markdown, _ = written
  assert "Params and size are **deployed** figures: batch norm folded" in markdown
  assert "with batch norm unfolded" in markdown
  assert ("Ancestor (SqueezeNet v1.1, 10 classes): 738,890 in Keras vs 727,626 deployed"
          in markdown)
  assert "every candidate evolution fine-tuned, discarded ones included" in markdown


def test_generations_table(written):
  _, markdown, _ = written
  header, rows = toy.table_after(markdown, "## Generations")
  assert header == ["Gen", "Parent", "Candidates", "Chosen", "Params (deployed)", "Size (MB)",
                    "MACs (M)", "Val top-1 (selection)", "Test top-1", "Drop (test, pts)",
                    "NetScore", "Stop reason"]
  assert list(rows) == ["0", "1", "2", "3", "polish"]
  assert rows["0"]["Chosen"] == "ancestor" and rows["0"]["Val top-1 (selection)"] == "94.00%"
  first = rows["1"]
  assert first["Candidates"] == "3 (1 diverged)"
  assert first["Chosen"] == "gen_001/cand_01"
  assert first["Params (deployed)"] == "400,000"
  assert first["Val top-1 (selection)"] == "93.10%" and first["Test top-1"] == "92.20%"
  assert first["Drop (test, pts)"] == "0.80"  # 93.00 - 92.20, on test, not 94.00 - 93.10
  last = rows["3"]
  assert last["Parent"] == "gen_002/cand_00" and last["Stop reason"] == "target met"
  assert last["Size (MB)"] == "0.560" and last["MACs (M)"] == "2.80"
  assert last["Test top-1"] == "89.70%" and last["Drop (test, pts)"] == "3.30"
  polish = rows["polish"]
  assert polish["Parent"] == "gen_003/cand_00"
  assert polish["Chosen"] == "**SquishedNet (polished)**"
  assert polish["Val top-1 (selection)"] == "92.10%" and polish["Test top-1"] == "91.00%"
  assert polish["Drop (test, pts)"] == "2.00" and polish["Stop reason"] == "–"
  assert "measured as evolution measures it, but on the test figures" in markdown
  assert "Winner: `gen_003/cand_00`, then polished into the SquishedNet." in markdown


def test_every_candidate_table(written):
  _, markdown, _ = written
  header, rows = toy.table_after(markdown, "### Every candidate")
  assert header == ["Candidate", "Parent", "Params (deployed)", "Size (MB)", "MACs (M)", "F",
                    "Val top-1 (selection)", "Test top-1", "Drop (test, pts)", "Images trained",
                    "Time", "Status"]
  assert len(rows) == 7
  assert rows["gen_003/cand_01"]["Test top-1"] == "90.10%"
  assert rows["gen_003/cand_01"]["Status"] == "ok"
  assert rows["gen_003/cand_00"]["Status"] == "**chosen**"
  untested = rows["gen_002/cand_01"]
  assert untested["Val top-1 (selection)"] == "90.20%"
  assert untested["Test top-1"] == "–" and untested["Drop (test, pts)"] == "–"
  diverged = rows["gen_001/cand_02"]
  assert diverged["Status"] == "diverged" and diverged["Val top-1 (selection)"] == "–"
  assert diverged["Images trained"] == "12.0 k" and diverged["Time"] == "1 min 35 s"


def test_paper_reference_reproduce_and_time(written):
  _, markdown, _ = written
  assert "![" in markdown and "](pareto.png)" in markdown
  assert "not directly comparable" in markdown and "Jetson TX1" in markdown
  paper_rows = [line for line in markdown.splitlines()
                if line.startswith("| paper, ImageNet-10, Jetson TX1 |")]
  assert paper_rows == ["| paper, ImageNet-10, Jetson TX1 | 2.4 | 81.2% | 156 |",
                        "| paper, ImageNet-10, Jetson TX1 | 0.95 | 77% | 256 |"]
  assert _row(markdown, "SqueezeNet v1.1 (float32 weights, for scale)")[1] == "4.94"
  assert "```sh\nsquish --flagfile=saved_models/demo/flags.txt\n```" in markdown
  _, times = toy.table_after(markdown, "## Time")
  assert list(times) == ["ancestor", "synthesis", "polish", "baselines", "export", "evaluation",
                         "benchmark", "**total**"]
  assert times["synthesis"]["Wall time"] == "30 min 43 s"
  assert times["**total**"]["Wall time"] == "**46 min 34 s**"
  assert "Accuracy on the test split." in markdown


def test_pareto_png_is_a_real_image_and_writes_are_atomic(written):
  run_dir, _, png_path = written
  # No temporaries left; frontier.png is tests/test_frontier.py's.
  assert sorted(os.listdir(run_dir)) == ["frontier.png", "pareto.png", "report.md"]
  with open(png_path, "rb") as handle:
    assert handle.read(8) == PNG_MAGIC
  assert os.path.getsize(png_path) > 20_000
  pixels = mpl_image.imread(png_path)
  height, width = pixels.shape[:2]
  assert (width, height) == (int(8 * pareto_lib.DPI), int(5 * pareto_lib.DPI))
  assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def test_pareto_plots_test_accuracy_and_the_polish():
  figure = pareto_lib.pareto_figure(_results())
  ax = figure.axes[0]
  assert ax.get_ylabel() == "test top-1" and "vs test top-1" in ax.get_title()
  legend = [text.get_text() for text in ax.get_legend().get_texts()]
  # 7 candidates: one diverged, one not tested.
  assert "candidates (5; 2 diverged or untested, not shown)" in legend
  assert "SquishedNet (gen_003/cand_00, polished)" in legend and "polish" in legend
  assert "Uniform width-scaled SqueezeNet, distilled from the ancestor" in legend
  assert "MobileNetV3Small (minimalistic)" not in legend  # no size, no top-1
  lines = {line.get_label(): line for line in ax.get_lines()}
  # The polish runs from the evolved winner's test point to the SquishedNet's.
  assert list(lines["polish"].get_xydata()) == [pytest.approx((0.56, 0.897)),
                                                 pytest.approx((0.56, 0.91))]
  assert [y for _, y in lines["chosen lineage"].get_xydata()] == pytest.approx(
      [0.93, 0.922, 0.911, 0.897])
  results = _results()
  results["polished"] = False
  legend = [t.get_text() for t in pareto_lib.pareto_figure(results).axes[0].get_legend()
            .get_texts()]
  assert "polish" not in legend


def test_lineage_follows_generations():
  ids = [entry["id"] for entry in report_results_lib.lineage(_results())]
  assert ids == ["ancestor", "gen_001/cand_01", "gen_002/cand_00", "gen_003/cand_00"]


def test_missing_baselines_and_values_render_as_dashes(tmp_path):
  results = _results()
  for name in ("width_scaled", "width_scaled_distilled", "magnitude_pruned",
               "mobilenet_v3_small"):
    del results["models"][name]
  squished = results["models"]["squishednet"]
  del squished["litert_images_per_sec"], squished["speedup_vs_ancestor"]
  squished["tflite_int8_bytes"] = None
  squished["train_images"] = None
  del squished["validation_top1"]
  results["candidates"][5]["top1"] = None  # the winner not tested
  results["polished"] = False
  del results["paper"], results["wall_seconds"], results["reference"]
  _, png_path = report_lib.write_report(str(tmp_path), results)
  markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
  header, rows = _details(markdown)
  assert "Non-zero params" not in header  # no sparse baseline, no sparse columns
  squished_row = rows["**SquishedNet (gen_003/cand_00, polished)**"]
  assert squished_row["TFLite int8 (MB)"] == "–"
  assert squished_row["LiteRT img/s, batch 1"] == "–"
  assert squished_row["Speed-up, batch 1"] == "–" and squished_row["Images trained"] == "–"
  assert squished_row["Val top-1"] == "–"
  shipped = toy.table_after(markdown, "## What to ship")[1]["**SquishedNet**"]
  assert shipped["int8 file"] == "–" and shipped["Speed-up (64 px, batch 1)"] == "–"
  _, generations = toy.table_after(markdown, "## Generations")
  assert "polish" not in generations  # not polished: no polish row
  assert generations["3"]["Test top-1"] == "–" and generations["3"]["Drop (test, pts)"] == "–"
  assert "tfmot" not in markdown and "faster" not in markdown
  assert "width-scaled SqueezeNet trained from scratch" not in markdown
  assert "**5.20× smaller**" in markdown
  assert os.path.getsize(png_path) > 10_000


def test_a_baseline_without_accuracy_is_not_claimed_beaten():
  results = _results()
  results["models"]["width_scaled"]["top1"] = None
  paragraph = report_lib.summary_paragraph(results)
  assert ("cannot be compared with the width-scaled SqueezeNet trained from scratch "
          "(the baseline has no top-1)") in paragraph
  assert "trails the same width-scaled SqueezeNet distilled from the ancestor" in paragraph
  assert "beats" not in paragraph


def test_summary_without_accuracy_change_or_counts():
  results = _results()
  results["models"]["squishednet"]["top1"] = 0.93
  results["dataset"] = {"name": "shapes10", "image_size": 64}
  markdown = report_lib.render_markdown(results)
  assert "keeps the ancestor's top-1 on the shapes10 test split (93.00%)" in markdown
  assert "Data: **shapes10**, 64×64 px." in markdown
  assert "held-out test split, which nothing was selected" in markdown


def test_older_results_say_accuracies_are_validation():
  results = _results()
  del results["accuracy_split"]
  markdown = report_lib.render_markdown(results)
  assert "Accuracies are on the validation split" in markdown
  assert "no held-out test figures" in markdown
  assert "test-split" not in markdown and "Val top-1" not in markdown
  assert _row(markdown, "Gen")[7] == "Validation top-1"


def test_nearly_empty_results_still_render(tmp_path):
  report_path, png_path = report_lib.write_report(str(tmp_path), {"run_name": "empty"})
  markdown = open(report_path, encoding="utf-8").read()
  assert "hold no SquishedNet" in markdown and "No generations" in markdown
  assert open(png_path, "rb").read(8) == PNG_MAGIC
  with pytest.raises(ValueError, match="results must be a dict"):
    report_lib.write_report(str(tmp_path), ["not", "a", "dict"])


def test_console_summary():
  text = console_lib.format_results_summary(_results())
  lines = text.splitlines()
  assert "winner gen_003/cand_00 (polished)" in lines[0] and "stop: target met" in lines[0]
  assert "accuracies are test-split top-1" in lines[0]
  squished = next(line for line in lines if line.strip().startswith("squishednet "))
  assert "test top-1  91.00%" in squished
  assert "5.20× smaller" in squished and "-2.00 points" in squished
  assert "2.50× speed b1" in squished
  stripped = [line.strip() for line in lines]
  assert ("squishednet vs width_scaled: it beats the width-scaled SqueezeNet trained from "
          "scratch by 3.00 points (91.00% vs 88.00%) on test top-1") in stripped
  assert ("squishednet vs width_scaled_distilled: it trails the same width-scaled SqueezeNet "
          "distilled from the ancestor by 0.50 points (91.00% vs 91.50%) on test top-1") in stripped
  order = [line.split()[0] for line in lines[1:7]]
  assert order == ["ancestor", "squishednet", "width_scaled", "width_scaled_distilled",
                   "magnitude_pruned", "mobilenet_v3_small"]
  mobilenet = next(line for line in lines if line.strip().startswith("mobilenet_v3_small"))
  assert "–" in mobilenet
  assert console_lib.format_results_summary(copy.deepcopy({"models": {}})).startswith("run –")


def test_a_squishednet_retrained_from_scratch_is_called_so():
  results = _results()
  results["final_init"] = "scratch"
  results["models"]["squishednet"]["train_epochs"] = 14
  markdown = report_lib.render_markdown(results)
  assert ("It is the evolved winner `gen_003/cand_00`'s widths trained from fresh weights for 14 "
          "epochs, with the recipe, epochs and seed the baselines train with" in markdown)
  assert "distilled fine-tune (the polish)" not in markdown
  _, rows = toy.table_after(markdown, "## Generations")
  assert rows["polish"]["Chosen"] == "**SquishedNet (retrained)**"
  assert "its widths then trained from scratch into the SquishedNet." in markdown
  assert "for which its widths trained from scratch and every baseline trains" in markdown
  assert "winner gen_003/cand_00 (retrained)" in console_lib.format_results_summary(results)


def test_best_says_which_final_training_was_kept_and_on_what():
  results = _results()
  assert "--final_init=best" not in report_lib.render_markdown(results)
  results["final_init"] = "inherit"
  results["final_choice"] = {"kept": "inherit", "other": "scratch", "reason": "...",
                             "validation_top1": {"scratch": 0.9425, "inherit": 0.9675}}
  markdown = report_lib.render_markdown(results)
  assert ("`--final_init=best` trained both and kept the polished inherited weights (96.75% "
          "validation top-1, against 94.25% for the widths retrained from scratch): the choice "
          "reads the validation split only." in markdown)
  assert "distilled fine-tune (the polish)" in markdown
  assert ("winner gen_003/cand_00 (polished, the better on validation)"
          in console_lib.format_results_summary(results))


def test_the_microcontroller_line_gives_flash_arena_and_the_unsupported_op():
  models = {"ancestor": {"micro": {"flash_bytes": 832176, "arena_bytes": 50752, "images": 4,
                                   "outputs_equal": True, "max_abs_diff": 0}},
            "squishednet": {"label": "SquishedNet", "micro": {
                "flash_bytes": 192192, "unsupported_op": "HARD_SWISH", "error": "no kernel"}},
            "width_scaled": {"micro": None}}
  line = details_lib.micro_line(models)
  assert line.startswith("**Microcontrollers**")
  assert "813 KB of flash, a 50 KB tensor arena (outputs equal to LiteRT's reference" in line
  assert "SquishedNet: TFLM cannot run it (no kernel for HARD_SWISH)." in line
  assert details_lib.micro_line({"ancestor": {}}) == ""
