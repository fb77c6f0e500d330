"""The latency frontier: its points on the benchmark's clock, the ladder's interpolation,
frontier.png drawn from results.json alone, and the verdict against the width multiplier."""

import builtins
import copy
import io
import json
import os

import pytest

from squish_tf.report import console as console_lib
from squish_tf.report import frontier as frontier_lib
from squish_tf.report import frontier_figure as figure_lib
from squish_tf.report import markdown as report_lib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _model(kind, size_mb, top1, speedup=None, low=None, high=None, images_per_sec=None):
  return {"kind": kind, "size_mb": size_mb, "top1": top1,
          "litert_images_per_sec": {"1": images_per_sec},
          "speedup_vs_ancestor": {"1": speedup},
          "speedup_vs_ancestor_range": {"1": None if low is None else
                                        {"min": low, "max": high, "rounds": 7}}}


def _candidate(generation, index, top1, speedup=None, chosen=False, status="ok"):
  record = {"id": f"gen_{generation:03d}/cand_{index:02d}", "generation": generation,
            "size_mb": 2.0 / generation, "top1": top1, "validation_top1": 0.5,
            "chosen": chosen, "status": status}
  if speedup is not None:
    record["measured_speedup"] = {"median": speedup, "min": speedup * 0.9,
                                  "max": speedup * 1.1}
    record["measured_latency_ms"] = 0.123  # another session's clock: not used
  return record


def _results():
  """The ancestor at 4.0 ms (250 images/s at batch 1); latencies are 4.0 / speed-up."""
  models = {
      "ancestor": _model("ancestor", 2.9, 0.94, 1.0, images_per_sec=250.0),
      "squishednet": _model("squishednet", 0.595, 0.9565, 2.0, 1.8, 2.2),
      "width_scaled": _model("baseline", 0.592, 0.951, 2.5, 2.3, 2.9),
      "width_scaled_latency": _model("baseline", 0.88, 0.9575, 1.96, 1.9, 2.0),
      "mobilenet_v3_small": _model("baseline", 3.8, None),  # not timed: left out
  }
  candidates = [_candidate(1, 0, 0.93, 1.4), _candidate(1, 1, 0.94, 1.5, chosen=True),
                _candidate(2, 0, 0.95, 1.9, chosen=True), _candidate(2, 1, 0.92),  # untimed
                _candidate(2, 2, None, 2.1, status="diverged")]
  results = {"run_name": "demo", "accuracy_split": "test", "winner": "gen_002/cand_00",
             "polished": True, "dataset": {"name": "shapes10", "image_size": 64},
             "models": models, "candidates": candidates,
             "ladder": [{"name": f"width_{m}", "kind": "ladder", "width_multiplier": m,
                         "top1": top1, "speedup": speedup, "latency_ms": 4.0 / speedup,
                         "speedup_min": speedup * 0.95, "speedup_max": speedup * 1.05}
                        for m, top1, speedup in ((0.3, 0.90, 4.0), (0.45, 0.95, 2.5),
                                                 (0.6, 0.96, 1.6), (1.0, 0.94, 1.0))]}
  results["frontier"] = frontier_lib.frontier_points(models, candidates)
  return results


def test_frontier_points_are_on_the_benchmarks_clock():
  results = _results()
  points = {p["name"]: p for p in results["frontier"]}
  assert set(points) == {"ancestor", "squishednet", "width_scaled", "width_scaled_latency",
                         "gen_001/cand_00", "gen_001/cand_01", "gen_002/cand_00"}
  assert results["frontier"][0]["name"] == "ancestor"
  assert points["ancestor"]["latency_ms"] == pytest.approx(4.0)
  squished = points["squishednet"]
  assert squished == {"name": "squishednet", "kind": "squishednet", "top1": 0.9565,
                      "latency_ms": pytest.approx(2.0), "speedup": 2.0, "speedup_min": 1.8,
                      "speedup_max": 2.2, "size_mb": 0.595, "chosen": None}
  assert points["width_scaled"]["kind"] == "baseline"
  candidate = points["gen_002/cand_00"]
  assert candidate["latency_ms"] == pytest.approx(4.0 / 1.9)  # not measured_latency_ms
  assert (candidate["kind"], candidate["chosen"], candidate["generation"]) == (
      "candidate", True, 2)
  assert candidate["speedup_min"] == pytest.approx(1.9 * 0.9)
  json.dumps(results["frontier"])  # results.json holds it as is


def test_candidates_timed_as_int8_stay_off_the_fp32_frontier():
  results = _results()
  for record in results["candidates"]:
    record["measured_format"] = "int8" if record["id"] == "gen_001/cand_01" else "fp32"
  names = {p["name"] for p in frontier_lib.frontier_points(results["models"],
                                                           results["candidates"])}
  assert "gen_001/cand_01" not in names and {"gen_001/cand_00", "gen_002/cand_00"} <= names


def test_no_ancestor_latency_means_no_frontier():
  results = _results()
  results["models"]["ancestor"]["litert_images_per_sec"] = {"1": None}
  assert frontier_lib.frontier_points(results["models"], results["candidates"]) == []


def test_older_results_get_their_frontier_from_models_and_candidates():
  results = _results()
  built = results.pop("frontier")
  assert frontier_lib.frontier_of(results) == built


@pytest.mark.parametrize("latency, expected", [
    (4.0 / 2.5, 0.95),  # on a ladder point
    (2.0, 0.95 + (0.96 - 0.95) * (2.0 - 1.6) / (2.5 - 1.6)),  # between 1.6 and 2.5 ms
    (1.2, 0.90 + (0.95 - 0.90) * (1.2 - 1.0) / (1.6 - 1.0)),
    (4.0, 0.94),  # the ladder's slowest end
    (0.5, None), (4.5, None),  # outside: no extrapolation
    (None, None),
])
def test_interpolate_top1(latency, expected):
  ladder = _results()["ladder"]
  value = frontier_lib.interpolate_top1(list(reversed(ladder)), latency)  # any order
  assert value == (None if expected is None else pytest.approx(expected))


def test_interpolate_top1_needs_two_points_and_skips_holes():
  assert frontier_lib.interpolate_top1([{"latency_ms": 1.0, "top1": 0.9}], 1.5) is None
  ladder = [{"latency_ms": 1.0, "top1": 0.9}, {"latency_ms": 1.5, "top1": None},
            {"latency_ms": 2.0, "top1": 0.8}]
  assert frontier_lib.interpolate_top1(ladder, 1.5) == pytest.approx(0.85)


def test_figure_points_read_results_alone(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)

  def no_files(*args, **kwargs):
    raise AssertionError(f"the frontier's points read a file: {args}")

  monkeypatch.setattr(builtins, "open", no_files)
  monkeypatch.setattr(io, "open", no_files)
  monkeypatch.setattr(os, "listdir", no_files)
  drawn = figure_lib.figure_points(_results())
  assert drawn["ancestor"]["x"] == pytest.approx(4.0)
  assert [p["name"] for p in drawn["lineage"]] == ["ancestor", "gen_001/cand_01",
                                                   "gen_002/cand_00"]
  assert [p["name"] for p in drawn["candidates"]] == ["gen_001/cand_00", "gen_001/cand_01",
                                                      "gen_002/cand_00"]
  assert [p["name"] for p in drawn["baselines"]] == ["width_scaled", "width_scaled_latency"]
  squished = drawn["squishednet"]
  # Error bars: the speed-up's max is the latency's min.
  assert (squished["low"], squished["x"], squished["high"]) == pytest.approx(
      (4.0 / 2.2, 2.0, 4.0 / 1.8))
  assert drawn["winner"]["name"] == "gen_002/cand_00"
  assert [p["width_multiplier"] for p in drawn["ladder"]] == [0.3, 0.45, 0.6, 1.0]
  assert drawn["ladder_top1"] == pytest.approx(0.95 + 0.01 * 0.4 / 0.9)


def test_frontier_png_is_written_beside_pareto_png(tmp_path):
  results = _results()
  path = tmp_path / "results.json"
  path.write_text(json.dumps(results))
  run_dir = str(tmp_path / "run")
  report_path, _ = report_lib.write_report(run_dir, json.loads(path.read_text()))
  png = os.path.join(run_dir, report_lib.FRONTIER_FILE)
  assert sorted(os.listdir(run_dir)) == ["frontier.png", "pareto.png", "report.md"]
  with open(png, "rb") as handle:
    assert handle.read(8) == PNG_MAGIC
  assert os.path.getsize(png) > 20_000
  with open(report_path, encoding="utf-8") as handle:
    markdown = handle.read()
  assert "## Latency vs accuracy" in markdown and "](frontier.png)" in markdown
  assert "(4.000 ms)" in markdown  # the ancestor's benchmark latency
  assert "reaches 95.44% test top-1 at the SquishedNet's 2.000 ms" in markdown
  # The verdict sits near the top: right after the summary paragraph.
  blocks = markdown.split("\n\n")
  assert blocks[2].startswith("Against the width multiplier")


@pytest.mark.parametrize("drop", ["frontier", "ladder", "candidates", "models"])
def test_the_frontier_figure_survives_missing_parts(tmp_path, drop):
  results = _results()
  del results[drop]
  figure_lib.frontier_figure(results).savefig(str(tmp_path / "f.png"))
  assert os.path.getsize(tmp_path / "f.png") > 0


def test_a_ladder_outside_the_squishednets_latency_says_so():
  results = _results()
  results["ladder"] = results["ladder"][:2]  # 1.0 and 1.6 ms; the SquishedNet takes 2.0
  caption = frontier_lib.frontier_caption(results)
  assert "does not bracket the SquishedNet's latency (2.000 ms)" in caption
  del results["ladder"]
  assert "ladder" not in frontier_lib.frontier_caption(results)


def test_verdict_with_both_width_multipliers():
  sentence = frontier_lib.verdict_sentence(_results())
  assert sentence == (
      "Against the width multiplier, the SquishedNet wins at equal size and loses at equal "
      "latency: at equal size (width_scaled, 0.592 MB) the SquishedNet is +0.55 points more "
      "accurate and 0.80x as fast; at equal latency (width_scaled_latency, 0.880 MB) it is "
      "0.10 points less accurate.")


def test_verdict_says_when_the_latency_match_missed():
  results = _results()
  results["models"]["width_scaled_latency"]["latency_match"] = {"ratio": 0.92}
  assert frontier_lib.verdict_sentence(results).endswith(
      "0.10 points less accurate (the closest match ran 0.92x the SquishedNet's speed, outside "
      "5%).")
  results["models"]["width_scaled_latency"]["latency_match"] = {"ratio": 1.03}
  assert frontier_lib.verdict_sentence(results).endswith("0.10 points less accurate.")


def test_verdict_when_width_scaled_answers_both():
  results = _results()
  del results["models"]["width_scaled_latency"]
  results["models"]["width_scaled"]["speedup_vs_ancestor"]["1"] = 2.06  # within 5%
  sentence = frontier_lib.verdict_sentence(results)
  assert sentence == (
      "Against the width multiplier, the SquishedNet wins at equal size and at equal latency: "
      "at equal size (width_scaled, 0.592 MB) the SquishedNet is +0.55 points more accurate "
      "and 0.97x as fast; at equal latency width_scaled is within 5% of the SquishedNet's "
      "latency too, so it answers both.")
  # Results older than the latency-matched baseline: the measured ratio is not claimed.
  results["models"]["width_scaled"]["speedup_vs_ancestor"]["1"] = 2.5
  sentence = frontier_lib.verdict_sentence(results)
  assert "at equal size (width_scaled" in sentence and "answers both" not in sentence
  assert "no latency-matched baseline (width_scaled_latency absent" in sentence
  assert "1.25x the SquishedNet's speed" in sentence


def test_no_width_multiplier_no_verdict():
  results = _results()
  for name in ("width_scaled", "width_scaled_latency"):
    del results["models"][name]
  assert frontier_lib.verdict_sentence(results) is None
  assert frontier_lib.verdict_sentence({}) is None
  assert "Against the width multiplier" not in console_lib.format_results_summary(results)
  assert "Against the width multiplier" not in report_lib.render_markdown(results)


def test_verdict_without_top1_or_speed_is_still_a_sentence():
  results = copy.deepcopy(_results())
  results["models"]["width_scaled"].update(top1=None, speedup_vs_ancestor={})
  sentence = frontier_lib.verdict_sentence(results)
  assert "at equal size (width_scaled, 0.592 MB) the SquishedNet is not comparable" in sentence
  assert "as fast" not in sentence and "loses at equal latency" in sentence
  results["models"]["squishednet"]["top1"] = None  # nothing to score: no "wins" clause
  sentence = frontier_lib.verdict_sentence(results)
  assert sentence.startswith("Against the width multiplier: at equal size")


def test_console_summary_carries_the_verdict():
  summary = console_lib.format_results_summary(_results())
  assert "  Against the width multiplier, the SquishedNet wins at equal size" in summary
