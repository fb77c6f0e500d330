"""Report: report.md tables hold the given numbers, missing values render, pareto.png is real."""

import copy
import os

from matplotlib import image as mpl_image
import pytest

from squish_tf import report as report_lib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _candidate(generation, candidate, parent, params, top1, chosen=False, status="ok"):
  return {"id": f"gen_{generation:03d}/cand_{candidate:02d}", "generation": generation,
          "candidate": candidate, "parent": parent, "params": params, "size_mb": params * 4 / 1e6,
          "macs": params * 20, "top1": top1, "netscore": None if top1 is None else 70.0 + top1,
          "status": status, "chosen": chosen}


def _results():
  candidates = [
      _candidate(1, 0, "ancestor", 420000, 0.925),
      _candidate(1, 1, "ancestor", 400000, 0.931, chosen=True),
      _candidate(1, 2, "ancestor", 390000, None, status="diverged"),
      _candidate(2, 0, "gen_001/cand_01", 250000, 0.918, chosen=True),
      _candidate(2, 1, "gen_001/cand_01", 240000, 0.902),
      _candidate(3, 0, "gen_002/cand_00", 140000, 0.910, chosen=True),
      _candidate(3, 1, "gen_002/cand_00", 150000, 0.899),
  ]
  return {
      "run_name": "demo",
      "command": "squish --flagfile=saved_models/demo/flags.txt",
      "dataset": {"name": "shapes10", "image_size": 64, "train_count": 6000,
                  "validation_count": 1500, "class_names": [f"c{i}" for i in range(10)]},
      "models": {
          "ancestor": {"label": "Ancestor (SqueezeNet v1.1, 10 classes)", "kind": "ancestor",
                       "params": 727626, "size_mb": 2.910504, "macs": 17022656, "top1": 0.93,
                       "top5": 0.99, "netscore": 71.234, "tflite_fp32_bytes": 2934512,
                       "tflite_int8_bytes": 781234,
                       "litert_images_per_sec": {"1": 812.4, "8": 1500.2},
                       "speedup_vs_ancestor": {"1": 1.0, "8": 1.0}},
          "squishednet": {"label": "SquishedNet (gen_003/cand_00)", "kind": "squishednet",
                          "params": 140000, "size_mb": 0.56, "macs": 2800000, "top1": 0.91,
                          "top5": 0.985, "netscore": 80.456, "tflite_fp32_bytes": 571000,
                          "tflite_int8_bytes": 160500,
                          "litert_images_per_sec": {"1": 2031.0, "8": 4200.5},
                          "speedup_vs_ancestor": {"1": 2.5, "8": 2.8}},
          "width_scaled": {"label": "Uniform width-scaled SqueezeNet", "kind": "baseline",
                           "params": 141000, "size_mb": 0.564, "macs": 3000000, "top1": 0.88,
                           "netscore": 78.9, "tflite_fp32_bytes": 575000,
                           "litert_images_per_sec": {"1": 1900.0}},
          "magnitude_pruned": {"label": "tfmot magnitude pruning", "kind": "baseline",
                               "params": 727626, "size_mb": 2.910504, "macs": 17022656,
                               "top1": 0.905, "gzip_bytes": 1234567, "nonzero_params": 145525},
          "mobilenet_v3_small": {"label": "MobileNetV3Small (minimalistic)", "kind": "baseline",
                                 "params": None, "size_mb": None, "top1": None},
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
      "stop_reason": "target_met",
      "paper": [{"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 2.4, "top1": 0.812,
                 "images_per_sec": 156},
                {"label": "paper, ImageNet-10, Jetson TX1", "size_mb": 0.95, "top1": 0.77,
                 "images_per_sec": 256}],
      "reference": {"squeezenet_v1_1_size_mb": 4.94},
      "wall_seconds": {"ancestor": 312.4, "synthesis": 1843.0, "export": 41.0, "benchmark": 65.2,
                       "baselines": 400.0, "total": 2661.6},
  }


def _row(markdown, first_cell):
  """The cells of the Markdown table row whose first cell is `first_cell`."""
  for line in markdown.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] == first_cell:
      return cells
  raise AssertionError(f"no table row starting with {first_cell!r} in:\n{markdown}")


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
  for text in ("**5.20× smaller**", "8.82× smaller than SqueezeNet v1.1 (4.94 MB)",
               "loses **2.00 points** of top-1 on shapes10 validation (93.00% → 91.00%)",
               "**2.50× faster** than the ancestor with LiteRT at batch 1 (2,031 vs 812 images/s)",
               "stopped: target met"):
    assert text in markdown


def test_models_table_holds_the_numbers(written):
  _, markdown, _ = written
  header = _row(markdown, "Model")
  assert header == ["Model", "Params", "Size (MB)", "TFLite fp32 (MB)", "TFLite int8 (MB)",
                    "MACs (M)", "Top-1", "Top-5", "NetScore", "LiteRT img/s, batch 1",
                    "LiteRT img/s, batch 8", "Speed-up, batch 1", "Speed-up, batch 8",
                    "Non-zero params", "gzip (MB)"]
  ancestor = dict(zip(header, _row(markdown, "Ancestor (SqueezeNet v1.1, 10 classes)")))
  assert ancestor["Params"] == "727,626"
  assert ancestor["Size (MB)"] == "2.911"
  assert ancestor["TFLite fp32 (MB)"] == "2.935"
  assert ancestor["TFLite int8 (MB)"] == "0.781"
  assert ancestor["MACs (M)"] == "17.02"
  assert ancestor["Top-1"] == "93.00%"
  assert ancestor["NetScore"] == "71.23"
  assert ancestor["LiteRT img/s, batch 1"] == "812"
  assert ancestor["Speed-up, batch 8"] == "1.00×"
  squished = dict(zip(header, _row(markdown, "**SquishedNet (gen_003/cand_00)**")))
  assert squished["Top-1"] == "91.00%" and squished["Speed-up, batch 8"] == "2.80×"
  assert squished["LiteRT img/s, batch 8"] == "4,200"
  width = dict(zip(header, _row(markdown, "Uniform width-scaled SqueezeNet")))
  # Speed-up computed from the speeds when not recorded; int8 not exported.
  assert width["Speed-up, batch 1"] == f"{1900.0 / 812.4:.2f}×"
  assert width["TFLite int8 (MB)"] == "–" and width["LiteRT img/s, batch 8"] == "–"
  pruned = dict(zip(header, _row(markdown, "tfmot magnitude pruning")))
  assert pruned["Non-zero params"] == "145,525" and pruned["gzip (MB)"] == "1.235"
  mobilenet = _row(markdown, "MobileNetV3Small (minimalistic)")
  assert set(mobilenet[1:]) == {"–"}


def test_generations_table(written):
  _, markdown, _ = written
  header = _row(markdown, "Gen")
  assert header[:4] == ["Gen", "Parent", "Candidates", "Chosen"]
  first = dict(zip(header, _row(markdown, "1")))
  assert first["Candidates"] == "3 (1 diverged)"
  assert first["Chosen"] == "gen_001/cand_01"
  assert first["Params"] == "400,000" and first["Top-1"] == "93.10%"
  last = dict(zip(header, _row(markdown, "3")))
  assert last["Parent"] == "gen_002/cand_00" and last["Stop reason"] == "target met"
  assert last["Size (MB)"] == "0.560" and last["MACs (M)"] == "2.80"
  assert _row(markdown, "0")[3] == "ancestor"


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
  assert _row(markdown, "synthesis")[1] == "30 min 43 s"
  assert _row(markdown, "**total**")[1] == "**44 min 22 s**"


def test_pareto_png_is_a_real_image_and_writes_are_atomic(written):
  run_dir, _, png_path = written
  assert sorted(os.listdir(run_dir)) == ["pareto.png", "report.md"]  # no temporaries left
  with open(png_path, "rb") as handle:
    assert handle.read(8) == PNG_MAGIC
  assert os.path.getsize(png_path) > 20_000
  pixels = mpl_image.imread(png_path)
  height, width = pixels.shape[:2]
  assert (width, height) == (int(8 * report_lib.DPI), int(5 * report_lib.DPI))
  assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def test_lineage_follows_generations():
  ids = [entry["id"] for entry in report_lib.lineage(_results())]
  assert ids == ["ancestor", "gen_001/cand_01", "gen_002/cand_00", "gen_003/cand_00"]


def test_missing_baselines_and_values_render_as_dashes(tmp_path):
  results = _results()
  for name in ("width_scaled", "magnitude_pruned", "mobilenet_v3_small"):
    del results["models"][name]
  del results["models"]["squishednet"]["litert_images_per_sec"]
  del results["models"]["squishednet"]["speedup_vs_ancestor"]
  results["models"]["squishednet"]["tflite_int8_bytes"] = None
  del results["paper"], results["wall_seconds"], results["reference"]
  _, png_path = report_lib.write_report(str(tmp_path), results)
  markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
  header = _row(markdown, "Model")
  assert "Non-zero params" not in header  # no sparse baseline, no sparse columns
  squished = dict(zip(header, _row(markdown, "**SquishedNet (gen_003/cand_00)**")))
  assert squished["TFLite int8 (MB)"] == "–" and squished["LiteRT img/s, batch 1"] == "–"
  assert squished["Speed-up, batch 1"] == "–"
  assert "tfmot" not in markdown and "faster" not in markdown
  assert "**5.20× smaller**" in markdown
  assert os.path.getsize(png_path) > 10_000


def test_summary_without_accuracy_change_or_counts():
  results = _results()
  results["models"]["squishednet"]["top1"] = 0.93
  results["dataset"] = {"name": "shapes10", "image_size": 64}
  markdown = report_lib.render_markdown(results)
  assert "keeps the ancestor's top-1 on shapes10 validation (93.00%)" in markdown
  assert "Data: **shapes10**, 64×64 px." in markdown


def test_nearly_empty_results_still_render(tmp_path):
  report_path, png_path = report_lib.write_report(str(tmp_path), {"run_name": "empty"})
  markdown = open(report_path, encoding="utf-8").read()
  assert "hold no SquishedNet" in markdown and "No generations" in markdown
  assert open(png_path, "rb").read(8) == PNG_MAGIC
  with pytest.raises(ValueError, match="results must be a dict"):
    report_lib.write_report(str(tmp_path), ["not", "a", "dict"])


def test_console_summary():
  text = report_lib.format_results_summary(_results())
  lines = text.splitlines()
  assert "winner gen_003/cand_00" in lines[0] and "stop: target met" in lines[0]
  squished = next(line for line in lines if line.strip().startswith("squishednet"))
  assert "5.20× smaller" in squished and "-2.00 points" in squished
  assert "2.50× speed b1" in squished
  mobilenet = next(line for line in lines if line.strip().startswith("mobilenet_v3_small"))
  assert "–" in mobilenet
  assert report_lib.format_results_summary(copy.deepcopy({"models": {}})).startswith("run –")
