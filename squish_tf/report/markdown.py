"""A run's story: `report.md`, `pareto.png` and `frontier.png`, rendered from its results dict.

report.md reads in one screen: three short sentences (what was made and how small, how
accurate, how fast), the verdict against the width multiplier, the data line and "What to
ship" (one narrow row per model: size, int8 file, top-1, speed-up, TFLM arena). "The run in
full" follows (the summary paragraph: SqueezeNet v1.1, the baselines, the final choice, images
processed, the split, why evolution stopped), then "Models in detail", split by concern
(speed, size and compute, accuracy per model and per exported file, training budget), then
evolution, the figures, the paper, stage times and the command.

Pure rendering: nothing here trains, loads or times a model. The input is the
dict the main job writes to `results.json` (see `write_report`); any value in
it may be None or absent (a baseline that was not run, a format that was not
exported, a candidate that was not tested), and renders as "–".

What the figures mean (squish_tf.job.build_results is the source):
- accuracies (`top1`, `top5`, `netscore` of models and candidates) are on the
  split `results["accuracy_split"]` names: "test", held-out data that nothing
  was selected or tuned on. What selection and the accuracy budget read is
  `validation_top1`. Results without `accuracy_split` (older runs) measured
  every accuracy on the validation split, and the report says so.
- `params` / `size_mb` are deployed figures (batch norm folded into the
  convolutions); `keras_params` is Keras' count of the training model.
- `train_images` counts every image processed in training; for the
  SquishedNet it includes every candidate evolution trained and the final stage.

The figures are drawn on a standalone Agg canvas (no pyplot, no display, no
global backend switch), so rendering works on a headless server and does not
disturb a notebook that imports this module.
"""

import os
from typing import Any, List, Mapping, Tuple

from squish_tf import files as files_lib
from squish_tf.report.details import details_section
from squish_tf.report.format import (
  DASH,
  finite_number,
  fmt_count,
  fmt_images,
  fmt_reason,
  fmt_text,
  join_words,
)
from squish_tf.report.frontier import frontier_caption, verdict_paragraph
from squish_tf.report.frontier_figure import frontier_figure
from squish_tf.report.pareto import DPI, pareto_figure
from squish_tf.report.results import (
  accuracy_split,
  comparison_phrase,
  comparisons,
  final_choice_sentence,
  is_polished,
  measured_speedup,
  ordered_models,
  resolution_speedup,
  retrained,
  rivals,
  run_pixels_text,
  speed_resolutions,
  speedup_range,
)
from squish_tf.report.sections import (
  candidates_section,
  figure_caption,
  generations_table,
  latency_section,
  paper_section,
  ship_section,
  stop_line,
  time_table,
)

REPORT_FILE = "report.md"
PARETO_FILE = "pareto.png"
FRONTIER_FILE = "frontier.png"


def write_report(run_dir: str, results: Mapping[str, Any]) -> Tuple[str, str]:
  """Writes `<run_dir>/report.md`, `<run_dir>/pareto.png` and `<run_dir>/frontier.png`, each
  atomically.

  Args:
    run_dir: the run directory; created if missing.
    results: the run's results (results.json): run_name, command, dataset
      (name, image_size, train_count, validation_count, test_count,
      class_names), accuracy_split, models {name: {label, kind, params,
      keras_params, size_mb, macs, top1, top5, validation_top1, netscore,
      train_epochs, train_images, tflite_fp32_bytes, tflite_int8_bytes,
      litert_images_per_sec, speedup_vs_ancestor, ...}}, candidates,
      generations, winner, polished, final_init, stop_reason, paper, reference,
      machine, wall_seconds, frontier and the optional ladder
      (squish_tf.report.frontier).

  Returns:
    (report_path, png_path): report.md and pareto.png (frontier.png is
    FRONTIER_FILE beside them).
  """
  if not isinstance(results, Mapping):
    raise ValueError(f"results must be a dict (the contents of results.json), got "
                     f"{type(results).__name__}.")
  os.makedirs(run_dir, exist_ok=True)
  png_path = os.path.join(run_dir, PARETO_FILE)
  report_path = os.path.join(run_dir, REPORT_FILE)
  for path, draw in ((png_path, pareto_figure),
                     (os.path.join(run_dir, FRONTIER_FILE), frontier_figure)):
    figure = draw(results)
    with files_lib.atomic_path(path, suffix=".png") as temp:
      figure.savefig(temp, format="png", dpi=DPI)
  files_lib.write_text(report_path, render_markdown(results, png_name=PARETO_FILE))
  return report_path, png_path


def render_markdown(results: Mapping[str, Any], png_name: str = PARETO_FILE,
                    frontier_name: str = FRONTIER_FILE) -> str:
  """The whole report.md as a string."""
  models = ordered_models(results)
  dataset = results.get("dataset") or {}
  run_name = results.get("run_name") or "run"
  split = accuracy_split(results)
  opening, summary = opening_paragraph(results), summary_paragraph(results)
  in_full = summary != opening  # without a SquishedNet the opening says it all
  sections = [
      f"# SquishedNets run `{run_name}`",
      opening,
      verdict_paragraph(results, split),
      _data_line(dataset),
      ship_section(results),
      "## The run in full" if in_full else "",
      summary if in_full else "",
      details_section(results, models),
      "## Generations",
      generations_table(results),
      stop_line(results),
      candidates_section(results),
      latency_section(results),
      "## Size vs accuracy",
      f"![Model size (MB, log scale) against {split} top-1: every candidate, the chosen "
      f"lineage, the SquishedNet, baselines and the paper's points]({png_name})",
      figure_caption(results),
      "## Latency vs accuracy",
      (f"![LiteRT fp32 latency at batch 1 (ms, log scale) against {split} top-1: the "
       "ancestor, every timed candidate, the chosen lineage, the SquishedNet and the "
       f"baselines, with the spread of their speed-ups]({frontier_name})"),
      frontier_caption(results, split),
      "## Reference: the SquishedNets paper (not directly comparable)",
      paper_section(results, dataset),
      "## Time",
      time_table(results),
      "## Reproduce",
      "```sh\n" + (results.get("command") or DASH) + "\n```",
  ]
  return "\n\n".join(section for section in sections if section) + "\n"


def opening_paragraph(results: Mapping[str, Any]) -> str:
  """The report's first lines, read at a glance: what was made and how small, how accurate,
  how fast (the verdict against the width multiplier follows it; `summary_paragraph` has the
  rest, below "What to ship")."""
  models = results.get("models") or {}
  ancestor = models.get("ancestor") or {}
  squished = models.get("squishednet") or {}
  if not squished:
    return summary_paragraph(results)
  sentences = []
  size, ancestor_size = finite_number(squished.get("size_mb")), finite_number(ancestor.get("size_mb"))
  if size:
    smaller = f", **{ancestor_size / size:.2f}× smaller** than its ancestor" if ancestor_size else ""
    sentences.append(f"This run made a **{size:.3f} MB SquishedNet**{smaller}.")
  else:
    sentences.append("This run made a SquishedNet.")
  top1, ancestor_top1 = finite_number(squished.get("top1")), finite_number(ancestor.get("top1"))
  if top1 is not None:
    versus = ""
    if ancestor_top1 is not None:
      points = 100 * (top1 - ancestor_top1)
      versus = (", as the ancestor" if round(points, 2) == 0 else
                f", {abs(points):.2f} points {'above' if points > 0 else 'below'} the "
                f"ancestor's {100 * ancestor_top1:.2f}%")
    sentences.append(f"It scores **{100 * top1:.2f}%** {accuracy_split(results)} top-1{versus}.")
  speedup = measured_speedup(squished, ancestor, "1")
  if speedup is not None:
    sentences.append(f"It runs **{speedup:.2f}×** as fast as the ancestor (LiteRT fp32, batch 1, "
                     "this machine).")
  return " ".join(sentences)


def summary_paragraph(results: Mapping[str, Any]) -> str:
  """One paragraph: the SquishedNet against its ancestor, SqueezeNet v1.1 and the baselines."""
  models = results.get("models") or {}
  ancestor = models.get("ancestor") or {}
  squished = models.get("squishednet") or {}
  dataset = (results.get("dataset") or {}).get("name")
  split = accuracy_split(results)
  if not squished:
    return "These results hold no SquishedNet (evolution did not finish or was not run)."
  name = squished.get("label") or f"SquishedNet ({results.get('winner') or DASH})"
  parts: List[str] = []
  size, ancestor_size = finite_number(squished.get("size_mb")), finite_number(ancestor.get("size_mb"))
  if size and ancestor_size:
    parts.append(f"is **{ancestor_size / size:.2f}× smaller** than its ancestor "
                 f"({size:.3f} MB vs {ancestor_size:.3f} MB of deployed float32 weights)")
  elif size:
    parts.append(f"has {size:.3f} MB of deployed float32 weights")
  reference = finite_number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
  if size and reference:
    parts.append(f"{reference / size:.2f}× smaller than SqueezeNet v1.1 ({reference:.2f} MB)")
  top1, ancestor_top1 = finite_number(squished.get("top1")), finite_number(ancestor.get("top1"))
  on = f" on the {dataset} {split} split" if dataset else f" on the {split} split"
  if top1 is not None and ancestor_top1 is not None:
    change = 100 * (ancestor_top1 - top1)
    if round(change, 2) == 0:
      parts.append(f"keeps the ancestor's top-1{on} ({100 * top1:.2f}%)")
    else:
      verb = "loses" if change > 0 else "gains"
      parts.append(f"{verb} **{abs(change):.2f} points** of top-1{on} "
                   f"({100 * ancestor_top1:.2f}% → {100 * top1:.2f}%)")
  elif top1 is not None:
    parts.append(f"reaches {100 * top1:.2f}% top-1{on}")
  speedup = measured_speedup(squished, ancestor, "1")
  if speedup is not None:
    own = finite_number((squished.get("litert_images_per_sec") or {}).get("1"))
    base = finite_number((ancestor.get("litert_images_per_sec") or {}).get("1"))
    spread = speedup_range(squished, "1")
    if spread is not None:
      rounds = f" over {spread[2]} interleaved rounds" if spread[2] else ", interleaved"
      detail = f" (median; {spread[0]:.2f}–{spread[1]:.2f}×{rounds})"
    else:
      detail = f" ({own:,.0f} vs {base:,.0f} images/s)" if own and base else ""
    where = ""
    extra = [(image, batch) for image, batch in speed_resolutions({"squishednet": squished})
             if batch == "1"]
    if extra and run_pixels_text(results):
      where = f" and {run_pixels_text(results)}"
    if speedup >= 1:
      parts.append(f"runs **{speedup:.2f}× faster** than the ancestor with LiteRT at batch 1"
                   f"{where}{detail}")
    else:
      parts.append(f"runs at **{speedup:.2f}×** the ancestor's speed with LiteRT at batch 1"
                   f"{where}{detail}")
    for image, batch in extra:
      value = resolution_speedup(squished, image, batch)
      spread = ((squished.get("speedup_at_resolution_range") or {}).get(image) or {}).get(batch)
      detail = ""
      if isinstance(spread, Mapping) and finite_number(spread.get("min")) is not None:
        rounds = f" over {spread.get('rounds')} interleaved rounds" if spread.get("rounds") else ""
        detail = f" ({float(spread['min']):.2f}–{float(spread['max']):.2f}×{rounds})"
      parts.append(f"**{value:.2f}×** at {image} px, the same weights on a {image}×{image} "
                   f"input{detail}")
  if not parts:
    sentences = [f"The {name} has no measured figures in these results."]
  else:
    sentences = [f"The {name} {join_words(parts)}."]
  if retrained(results) and results.get("winner"):
    epochs = finite_number((ordered_models(results).get("squishednet") or {}).get("train_epochs"))
    sentences.append(f"It is the evolved winner `{results['winner']}`'s widths trained from "
                     "fresh weights" + (f" for {epochs:.0f} epochs" if epochs else "")
                     + ", with the recipe, epochs and seed the baselines train with: evolution "
                     "chose the widths, and the weights it inherited and fine-tuned served the "
                     "search.")
  elif is_polished(results) and results.get("winner"):
    sentences.append(f"It is the evolved winner `{results['winner']}` after a final, distilled "
                     "fine-tune (the polish).")
  if final_choice_sentence(results):
    sentences.append(final_choice_sentence(results))
  rivals = comparisons(results)
  if rivals:
    sentences.append(f"On {split} top-1 it "
                     + join_words([comparison_phrase(c) for c in rivals]) + ".")
    sentences.extend(_budget_sentence(results))
  if split == "test":
    sentences.append("Every accuracy here is test-split top-1, on held-out images that nothing "
                     "was selected or tuned on.")
  generations = len(results.get("generations") or [])
  if generations:
    tail = (f"Evolution ran {generations} generation{'s' if generations != 1 else ''} "
            f"({len(results.get('candidates') or [])} candidates)")
    tail += f" and stopped: {fmt_reason(results.get('stop_reason'))}." if results.get(
        "stop_reason") else "."
    sentences.append(tail)
  return " ".join(sentences)


def _budget_sentence(results: Mapping[str, Any]) -> List[str]:
  """What each side trained on: the SquishedNet's images include every discarded candidate."""
  models = results.get("models") or {}
  squished = models.get("squishednet") or {}
  own = finite_number(squished.get("train_images"))
  for name, _ in rivals():
    theirs = finite_number((models.get(name) or {}).get("train_images"))
    if own is not None and theirs is not None:
      return [f"Counting every candidate evolution trained, the SquishedNet's training "
              f"processed {fmt_images(own)} images, against {fmt_images(theirs)} for the "
              "width-scaled baseline."]
  return []


def _data_line(dataset: Mapping[str, Any]) -> str:
  if not dataset:
    return ""
  size = finite_number(dataset.get("image_size"))
  pixels = f", {size:.0f}×{size:.0f} px" if size else ""
  parts = [f"Data: **{fmt_text(dataset.get('name'))}**{pixels}"]
  if any(dataset.get(k) is not None for k in ("train_count", "validation_count", "test_count")):
    counts = (f"{fmt_count(dataset.get('train_count'))} training / "
              f"{fmt_count(dataset.get('validation_count'))} validation")
    if dataset.get("test_count") is not None:
      counts += f" / {fmt_count(dataset.get('test_count'))} test"
    parts.append(counts + " images")
  classes = dataset.get("class_names") or []
  if classes:
    parts.append(f"{len(classes)} classes")
  return ", ".join(parts) + "."
