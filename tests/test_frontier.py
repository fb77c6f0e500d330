"""The latency frontier: its points on the benchmark's clock, its staircases, frontier.png
drawn from results.json alone, and the verdicts against the width multiplier and against the
best ladder network at least as fast."""

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
from squish_tf.report import pareto as pareto_lib

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


@pytest.mark.parametrize("latency, rival", [
    (4.0 / 2.5, "width_0.45"),  # on a rung's latency: that rung is at least as fast
    (2.0, "width_0.45"),  # width_0.6 is more accurate (96%) but slower (2.5 ms): not counted
    (1.2, "width_0.3"),
    (4.5, "width_0.6"),  # slower than every rung: the most accurate of them
    (0.5, None),  # faster than every rung: no rival
])
def test_the_verdict_takes_the_best_ladder_network_at_least_as_fast(latency, rival):
  ladder = frontier_lib.ladder_of(_results())
  verdict = frontier_lib.ladder_verdict({"name": "x", "latency_ms": latency, "top1": 0.955},
                                        list(reversed(ladder)))  # any order
  assert (verdict["rival"] or {}).get("name") == rival
  assert verdict["rungs"] == 4 and verdict["fastest"]["name"] == "width_0.3"
  if rival:
    assert verdict["points"] == pytest.approx(100 * (0.955 - verdict["rival"]["top1"]))
  else:
    assert verdict["points"] is None


def test_the_verdict_ignores_a_more_accurate_but_slower_network():
  ladder = [{"name": "slow", "latency_ms": 2.001, "top1": 0.99},
            {"name": "fast", "latency_ms": 1.5, "top1": 0.90},
            {"name": "faster", "latency_ms": 1.0, "top1": 0.90},  # tie: the faster one
            {"name": "untested", "latency_ms": 1.9, "top1": None},
            {"name": "untimed", "latency_ms": None, "top1": 0.999}]
  verdict = frontier_lib.ladder_verdict({"name": "m", "latency_ms": 2.0, "top1": 0.93}, ladder)
  assert verdict["rival"]["name"] == "faster" and verdict["points"] == pytest.approx(3.0)
  assert verdict["rungs"] == 4  # the untimed one is no rung
  # Only networks at least as fast: whatever the slower ones score, the verdict is the same.
  for top1 in (0.5, 0.95, 1.0):
    ladder[0]["top1"] = top1
    assert frontier_lib.ladder_verdict({"latency_ms": 2.0, "top1": 0.93}, ladder)["rival"][
        "name"] == "faster"
  assert frontier_lib.ladder_verdict({"latency_ms": None, "top1": 0.93}, ladder) is None
  assert frontier_lib.ladder_verdict({"latency_ms": 2.0, "top1": 0.93}, []) is None


@pytest.mark.parametrize("points, right, expected", [
    ([], 5.0, ([], [])),
    ([(2.0, 0.90)], None, ([2.0], [0.90])),
    ([(2.0, 0.90)], 5.0, ([2.0, 5.0], [0.90, 0.90])),
    # A slower, less accurate point is no corner; a tie in latency keeps the better.
    ([(3.0, 0.95), (1.0, 0.80), (2.0, 0.85), (2.5, 0.84), (2.0, 0.88), (4.0, 0.95)], 4.0,
     ([1.0, 2.0, 3.0, 4.0], [0.80, 0.88, 0.95, 0.95])),
    ([(1.0, 0.80), (None, 0.99), (1.5, None)], 1.0, ([1.0], [0.80])),
])
def test_the_staircase_is_the_best_top1_at_or_below_each_latency(points, right, expected):
  records = [{"latency_ms": x, "top1": y} for x, y in points]
  xs, ys = frontier_lib.staircase(records, right)
  assert (xs, ys) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
  # Read as a step function: at any latency, the best top-1 of the points at or below it.
  for probe in (0.5, 1.0, 1.7, 2.0, 2.7, 3.5, 4.0):
    known = [y for x, y in points if x is not None and y is not None and x <= probe]
    stepped = [y for x, y in zip(xs, ys) if x <= probe]
    assert (stepped[-1] if stepped else None) == (max(known) if known else None)


def test_ladder_rungs_of_the_job_are_baseline_points_with_their_width():
  results = _results()
  models = results["models"]
  models["ladder_0.50"] = dict(_model("baseline", 0.2, 0.93, 2.2, 2.1, 2.3),
                               matched_on="ladder", width_multiplier=0.5, channel_multiple=8)
  results["frontier"] = frontier_lib.frontier_points(models, results["candidates"])
  point = next(p for p in results["frontier"] if p["name"] == "ladder_0.50")
  assert (point["kind"], point["width_multiplier"], point["channel_multiple"], point["ladder"]) == (
      "baseline", 0.5, 8, True)
  assert "ladder" not in next(p for p in results["frontier"] if p["name"] == "width_scaled")
  # With the older results' "ladder", by latency; the job's rung is the best at least as fast.
  assert [p["name"] for p in frontier_lib.ladder_of(results)] == [
      "width_0.3", "width_0.45", "ladder_0.50", "width_0.6", "width_1.0"]
  del results["ladder"]
  assert [p["name"] for p in frontier_lib.ladder_of(results)] == ["ladder_0.50"]
  sentence = frontier_lib.squishednet_ladder_sentence(results)
  assert sentence == (
      "Against the width ladder (1 uniform width), the SquishedNet at 2.000 ms is +2.65 points "
      "more accurate than the best ladder network at least as fast, ladder_0.50 (1.818 ms, "
      "2.20x over the ancestor, 93.00% test top-1).")
  drawn = figure_lib.figure_points(results)
  assert [p["name"] for p in drawn["ladder"]] == ["ladder_0.50"]
  assert "ladder_0.50" not in [p["name"] for p in drawn["baselines"]]
  assert "multiple of 8" in frontier_lib.frontier_caption(results)
  summary = console_lib.format_results_summary(results)
  assert f"  {sentence}" in summary.splitlines()
  # pareto.png draws the rungs as one series too, not as a baseline each.
  _, labels = pareto_lib.pareto_figure(results).axes[0].get_legend_handles_labels()
  assert "width ladder (1 aligned uniform width)" in labels
  assert not any("×0.50" in label for label in labels)


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
  assert drawn["ladder_rival"]["name"] == "width_0.45"  # the best at least as fast
  # The staircases end at the slowest point drawn (the ladder's 1.0 and the ancestor: 4 ms).
  assert drawn["steps"]["ladder"] == (pytest.approx([1.0, 1.6, 2.5, 4.0]),
                                      pytest.approx([0.90, 0.95, 0.96, 0.96]))
  # The SquishedNet (2.0 ms, 95.65%) is faster and more accurate than every candidate.
  assert drawn["steps"]["evolved"] == (pytest.approx([2.0, 4.0]), pytest.approx([0.9565] * 2))


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
  assert "A network is judged against the best ladder network at least as fast" in markdown
  # The verdicts sit near the top: right after the summary paragraph.
  blocks = markdown.split("\n\n")
  assert blocks[2].startswith("Against the width multiplier")
  assert blocks[2].endswith(
      "Against the width ladder (4 uniform widths), the SquishedNet at 2.000 ms is +0.65 points "
      "more accurate than the best ladder network at least as fast, width_0.45 (1.600 ms, "
      "2.50x over the ancestor, 95.00% test top-1).")


@pytest.mark.parametrize("drop", ["frontier", "ladder", "candidates", "models"])
def test_the_frontier_figure_survives_missing_parts(tmp_path, drop):
  results = _results()
  del results[drop]
  figure_lib.frontier_figure(results).savefig(str(tmp_path / "f.png"))
  assert os.path.getsize(tmp_path / "f.png") > 0


def test_a_ladder_slower_than_the_squishednet_says_it_has_no_rival():
  results = _results()
  results["ladder"] = results["ladder"][2:]  # 2.5 and 4.0 ms; the SquishedNet takes 2.0
  sentence = frontier_lib.squishednet_ladder_sentence(results)
  assert sentence == (
      "Against the width ladder (2 uniform widths), the SquishedNet at 2.000 ms has no rival: "
      "no ladder network with a test top-1 is at least as fast (the fastest, width_0.6, takes "
      "2.500 ms).")
  assert sentence in report_lib.render_markdown(results)
  del results["ladder"]
  assert frontier_lib.squishednet_ladder_sentence(results) is None
  assert "ladder" not in frontier_lib.frontier_caption(results)


def test_a_family_without_a_ladder_says_none_was_trained_and_how_to_get_one():
  results = _results()
  del results["ladder"]
  results["models"]["squishednet_1.5x"] = _model("member", 1.2, 0.95, 1.5, 1.4, 1.6)
  results["frontier"] = frontier_lib.frontier_points(results["models"], results["candidates"])
  results["family"] = {"members": [{"name": "squishednet_1.5x", "labels": ["1.5x"]},
                                   {"name": "squishednet", "labels": ["3x"]}],
                       "targets": ["1.5x", "3x"], "unmet": []}
  sentence = frontier_lib.no_ladder_sentence(results)
  assert sentence == (
      "No width ladder was trained in this run, so no member of the family is judged against "
      "the best uniform width at least as fast: the same command with --baselines=ladder "
      "keeps what this run trained and adds one (one training per rung, each as long as a "
      "baseline's).")
  assert frontier_lib.family_ladder_sentences(results) == [sentence]
  assert sentence in report_lib.render_markdown(results)
  assert f"  {sentence}" in console_lib.format_results_summary(results).splitlines()
  # Said for two budgets asked for even when one was not reached (a member of one).
  results["family"]["members"] = results["family"]["members"][1:]
  assert frontier_lib.family_ladder_sentences(results) == [sentence]
  # A one-budget run has nothing to say; with a ladder, each member's verdict instead.
  assert frontier_lib.no_ladder_sentence(dict(results, family={"targets": ["2x"]})) is None
  laddered = _results()
  laddered["family"] = dict(results["family"])
  assert frontier_lib.no_ladder_sentence(laddered) is None
  assert "No width ladder" not in report_lib.render_markdown(laddered)


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
