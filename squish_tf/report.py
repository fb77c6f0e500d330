"""A run's story: `report.md` and `pareto.png`, rendered from its results dict.

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

The figure is drawn on a standalone Agg canvas (no pyplot, no display, no
global backend switch), so rendering works on a headless server and does not
disturb a notebook that imports this module.
"""

import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from squish_tf import model_io

REPORT_FILE = "report.md"
PARETO_FILE = "pareto.png"
DASH = "–"
FIGURE_SIZE = (8.0, 5.0)  # inches
DPI = 130
PAPER_NOTE = "paper, ImageNet-10, Jetson TX1"
# Where the model table puts the compared models: the pair the run is about,
# then the baselines in the order the job trains them, then anything else.
_LEAD_MODELS = ("ancestor", "squishednet")
MODEL_ORDER = ("ancestor", "squishednet", "width_scaled", "width_scaled_distilled",
               "magnitude_pruned", "mobilenet_v3_small")
# Labels for entries that carry none (the job writes its own).
_DEFAULT_LABELS = {
    "ancestor": "Ancestor",
    "squishednet": "SquishedNet",
    "width_scaled": "Uniform width-scaled SqueezeNet",
    "width_scaled_distilled": "Uniform width-scaled SqueezeNet, distilled from the ancestor",
    "magnitude_pruned": "tfmot magnitude pruning of the ancestor",
    "mobilenet_v3_small": "MobileNetV3Small (minimalistic)",
}
# The baselines the SquishedNet is measured against in the summary, and how a
# sentence names them.
_RIVALS = (("width_scaled", "the width-scaled SqueezeNet trained from scratch"),
           ("width_scaled_distilled", "the same width-scaled SqueezeNet distilled from the "
            "ancestor"))
# Short names for the figure's point annotations (the legend has the labels).
_SHORT_NAMES = {
    "width_scaled": "width-scaled",
    "width_scaled_distilled": "width-scaled, distilled",
    "magnitude_pruned": "magnitude-pruned",
    "mobilenet_v3_small": "MobileNetV3Small",
}
# Baseline colours on the figure: C0 is the lineage and C3 the SquishedNet.
_BASELINE_COLOURS = ("C1", "C2", "C4", "C5", "C6", "C8", "C9")

# The main job's stages, in the order it runs them (squish_tf.job uses this too).
STAGES = ("ancestor", "synthesis", "polish", "baselines", "export", "evaluation", "benchmark",
          "report")


def write_report(run_dir: str, results: Mapping[str, Any]) -> Tuple[str, str]:
  """Writes `<run_dir>/report.md` and `<run_dir>/pareto.png`, each atomically.

  Args:
    run_dir: the run directory; created if missing.
    results: the run's results (results.json): run_name, command, dataset
      (name, image_size, train_count, validation_count, test_count,
      class_names), accuracy_split, models {name: {label, kind, params,
      keras_params, size_mb, macs, top1, top5, validation_top1, netscore,
      train_epochs, train_images, tflite_fp32_bytes, tflite_int8_bytes,
      litert_images_per_sec, speedup_vs_ancestor, ...}}, candidates,
      generations, winner, polished, final_init, stop_reason, paper, reference,
      machine, wall_seconds.

  Returns:
    (report_path, png_path).
  """
  if not isinstance(results, Mapping):
    raise ValueError(f"results must be a dict (the contents of results.json), got "
                     f"{type(results).__name__}.")
  os.makedirs(run_dir, exist_ok=True)
  png_path = os.path.join(run_dir, PARETO_FILE)
  report_path = os.path.join(run_dir, REPORT_FILE)
  figure = pareto_figure(results)
  with model_io.atomic_path(png_path, suffix=".png") as temp:
    figure.savefig(temp, format="png", dpi=DPI)
  model_io.write_text(report_path, render_markdown(results, png_name=PARETO_FILE))
  return report_path, png_path


# -- formatting helpers ------------------------------------------------------------


def _number(value: Any) -> Optional[float]:
  """A finite float, or None for None, non-numbers, NaN and infinities."""
  if value is None or isinstance(value, bool):
    return None
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def _fmt(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
  value = _number(value)
  return DASH if value is None else f"{format(value * scale, spec)}{suffix}"


def _count(value: Any) -> str:
  return _fmt(value, ",.0f")


def _mb(value: Any) -> str:
  return _fmt(value, ".3f")


def _bytes_mb(value: Any) -> str:
  return _fmt(value, ".3f", 1e-6)


def _macs_m(value: Any) -> str:
  return _fmt(value, ",.2f", 1e-6)


def _percent(value: Any) -> str:
  return _fmt(value, ".2f", 100.0, "%")


def _images(value: Any) -> str:
  """An image count: 1.23 M, 60.0 k, or the number itself below a thousand."""
  value = _number(value)
  if value is None:
    return DASH
  if abs(value) >= 1e6:
    return f"{value / 1e6:,.2f} M"
  if abs(value) >= 1e3:
    return f"{value / 1e3:.1f} k"
  return f"{value:.0f}"


def _speed(value: Any) -> str:
  value = _number(value)
  if value is None:
    return DASH
  return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: Any) -> str:
  return _fmt(value, ".2f", suffix="×")


def _text(value: Any) -> str:
  """A table cell: text with Markdown's table separator escaped."""
  if value is None or value == "":
    return DASH
  return str(value).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: Any) -> str:
  seconds = _number(seconds)
  if seconds is None:
    return DASH
  if seconds < 60:
    return f"{seconds:.0f} s"
  minutes, seconds = divmod(int(round(seconds)), 60)
  if minutes < 60:
    return f"{minutes} min {seconds:02d} s"
  hours, minutes = divmod(minutes, 60)
  return f"{hours} h {minutes:02d} min"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]],
           align: Optional[Sequence[str]] = None) -> str:
  """A GitHub Markdown table; `align` holds "l" or "r" per column (text left, numbers right)."""
  align = align or ["l"] + ["r"] * (len(header) - 1)
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _reason(value: Any) -> str:
  return DASH if not value else str(value).replace("_", " ")


# -- reading the results -----------------------------------------------------------


def accuracy_split(results: Mapping[str, Any]) -> str:
  """The split every reported accuracy is on: "test", or "validation" for older results."""
  return str(results.get("accuracy_split") or "validation")


def _on_test(results: Mapping[str, Any]) -> bool:
  return accuracy_split(results) == "test"


def _top1_header(results: Mapping[str, Any], what: str = "top-1") -> str:
  """ "Test top-1" (or "Validation top-1" for older results)."""
  return f"{accuracy_split(results).capitalize()} {what}"


def _models(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  """The compared models in table order (MODEL_ORDER, then the rest as given)."""
  models = {name: dict(entry or {}) for name, entry in (results.get("models") or {}).items()}
  ordered = {name: models[name] for name in MODEL_ORDER if name in models}
  ordered.update({name: entry for name, entry in models.items() if name not in ordered})
  return ordered


def _label(name: str, entry: Mapping[str, Any]) -> str:
  return entry.get("label") or _DEFAULT_LABELS.get(name) or name


def _batch_sizes(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
  sizes = set()
  for entry in models.values():
    for key in ("litert_images_per_sec", "speedup_vs_ancestor"):
      sizes.update(str(size) for size in (entry.get(key) or {}))
  return sorted(sizes, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def _speedup(entry: Mapping[str, Any], ancestor: Mapping[str, Any], size: str,
             key: str = "speedup_vs_ancestor") -> Optional[float]:
  """The measured speed-up over the ancestor (the interleaved pair's median).

  Results that record speed-ups (`key` present) are never second-guessed: a
  pair that was not measured stays unknown. Only older results without the
  field fall back to the ratio of the two separately timed speeds.
  """
  if isinstance(entry.get(key), Mapping) or key != "speedup_vs_ancestor":
    return _number((entry.get(key) or {}).get(size))
  own = _number((entry.get("litert_images_per_sec") or {}).get(size))
  base = _number((ancestor.get("litert_images_per_sec") or {}).get(size))
  return own / base if own is not None and base else None


def _speedup_range(entry: Mapping[str, Any], size: str,
                   key: str = "speedup_vs_ancestor") -> Optional[Tuple[float, float, Any]]:
  """(min, max, rounds) of the per-round ratios behind a speed-up, when measured interleaved."""
  spread = (entry.get(f"{key}_range") or {}).get(size)
  if not isinstance(spread, Mapping):
    return None
  low, high = _number(spread.get("min")), _number(spread.get("max"))
  if low is None or high is None:
    return None
  return low, high, spread.get("rounds")


def _speedup_cell(entry: Mapping[str, Any], ancestor: Mapping[str, Any], size: str,
                  key: str = "speedup_vs_ancestor") -> str:
  """ "1.65× [1.52–1.71]": the median of the interleaved rounds' ratios and their min–max."""
  value = _speedup(entry, ancestor, size, key)
  spread = _speedup_range(entry, size, key)
  if value is None or spread is None:
    return _ratio(value)
  return f"{value:.2f}× [{spread[0]:.2f}–{spread[1]:.2f}]"


def _resolutions(models: Mapping[str, Mapping[str, Any]]) -> List[Tuple[str, str]]:
  """(image size, batch size) of every speed-up measured at another resolution, in order."""
  found = set()
  for entry in models.values():
    for image_size, by_batch in (entry.get("speedup_at_resolution") or {}).items():
      for batch, value in (by_batch or {}).items():
        if _number(value) is not None:
          found.add((str(image_size), str(batch)))
  return sorted(found, key=lambda pair: (int(pair[0]) if pair[0].isdigit() else 0, pair[0],
                                         int(pair[1]) if pair[1].isdigit() else 0))


def _resolution_speedup(entry: Mapping[str, Any], image_size: str, batch: str
                        ) -> Optional[float]:
  """The interleaved pair's median speed-up over the ancestor at another resolution."""
  return _number(((entry.get("speedup_at_resolution") or {}).get(image_size) or {}).get(batch))


def _resolution_cell(entry: Mapping[str, Any], image_size: str, batch: str) -> str:
  """ "3.10× [2.95–3.30]" at another resolution, or "–"."""
  value = _resolution_speedup(entry, image_size, batch)
  spread = ((entry.get("speedup_at_resolution_range") or {}).get(image_size) or {}).get(batch)
  if value is None or not isinstance(spread, Mapping):
    return _ratio(value)
  low, high = _number(spread.get("min")), _number(spread.get("max"))
  if low is None or high is None:
    return _ratio(value)
  return f"{value:.2f}× [{low:.2f}–{high:.2f}]"


def _run_pixels(results: Mapping[str, Any]) -> Optional[str]:
  """ "64 px": the run's image size, when known."""
  size = _number((results.get("dataset") or {}).get("image_size"))
  return None if size is None else f"{size:.0f} px"


def _drop(entry: Mapping[str, Any], ancestor: Mapping[str, Any]) -> str:
  """The ancestor's top-1 minus the entry's, in points (negative: a gain), as evolution measures."""
  top1, base = _number(entry.get("top1")), _number((ancestor or {}).get("top1"))
  if top1 is None or base is None:
    return DASH
  drop = 100 * (base - top1)
  return f"{0.0 if round(drop, 2) == 0 else drop:.2f}"


def _candidates_by_id(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  """Candidates by id; of a retried candidate, the last attempt (the one selection saw)."""
  return {c.get("id"): c for c in results.get("candidates") or [] if isinstance(c, Mapping)}


def _polished(results: Mapping[str, Any]) -> bool:
  """Whether a final stage made the SquishedNet from the evolved winner."""
  return bool(results.get("polished")) and bool((results.get("models") or {}).get("squishednet"))


def _retrained(results: Mapping[str, Any]) -> bool:
  """Whether that final stage trained the winner's widths from scratch (--final_init=scratch)."""
  return _polished(results) and results.get("final_init") == "scratch"


def _final_word(results: Mapping[str, Any]) -> str:
  return "retrained" if _retrained(results) else "polished"


def lineage(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The chosen path: the ancestor, then each generation's chosen candidate, in order.

  Generations whose chosen candidate is unknown are left out. The polish is
  not a step here: the polished SquishedNet is `results["models"]["squishednet"]`.
  """
  models = results.get("models") or {}
  path: List[Dict[str, Any]] = []
  ancestor = models.get("ancestor")
  if ancestor:
    path.append(dict(ancestor, id="ancestor"))
  by_id = _candidates_by_id(results)
  generations = results.get("generations") or []
  if generations:
    for generation in sorted(generations, key=lambda g: _number(g.get("generation")) or 0):
      chosen = by_id.get(generation.get("chosen"))
      if chosen:
        path.append(chosen)
  else:
    chosen = [c for c in by_id.values() if c.get("chosen")]
    path.extend(sorted(chosen, key=lambda c: _number(c.get("generation")) or 0))
  return path


def comparisons(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The SquishedNet against each width-scaled baseline present, on the reported split.

  Returns:
    One dict per baseline in `results["models"]`: name, description, the two
    top-1 fractions (either may be None) and `points`, the SquishedNet's
    top-1 minus the baseline's in points (None when either is missing).
  """
  models = results.get("models") or {}
  squished = models.get("squishednet") or {}
  out = []
  for name, description in _RIVALS:
    if name not in models:
      continue
    entry = models.get(name) or {}
    own, theirs = _number(squished.get("top1")), _number(entry.get("top1"))
    points = None if own is None or theirs is None else 100 * (own - theirs)
    out.append({"name": name, "description": description, "top1": own, "baseline_top1": theirs,
                "size_mb": _number(entry.get("size_mb")), "points": points})
  return out


def _comparison_phrase(comparison: Mapping[str, Any], bold: bool = True) -> str:
  """ "beats the ... by **3.00 points** (91.00% vs 88.00%)", or "trails", or "ties"."""
  description = comparison["description"]
  points = comparison["points"]
  if points is None:
    missing = "the SquishedNet" if comparison["top1"] is None else "the baseline"
    return f"cannot be compared with {description} ({missing} has no top-1)"
  detail = f"({100 * comparison['top1']:.2f}% vs {100 * comparison['baseline_top1']:.2f}%)"
  if round(points, 2) == 0:
    return f"ties with {description} {detail}"
  amount = f"{abs(points):.2f} points"
  amount = f"**{amount}**" if bold else amount
  verb = "beats" if points > 0 else "trails"
  return f"{verb} {description} by {amount} {detail}"


def _join(parts: Sequence[str]) -> str:
  return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# -- report.md ---------------------------------------------------------------------


def render_markdown(results: Mapping[str, Any], png_name: str = PARETO_FILE) -> str:
  """The whole report.md as a string."""
  models = _models(results)
  dataset = results.get("dataset") or {}
  run_name = results.get("run_name") or "run"
  split = accuracy_split(results)
  sections = [
      f"# SquishedNets run `{run_name}`",
      summary_paragraph(results),
      _data_line(dataset),
      _accuracy_note(results),
      "## Models compared",
      _models_table(results, models),
      _models_notes(results, models),
      "## Generations",
      _generations_table(results),
      _stop_line(results),
      _candidates_section(results),
      _latency_section(results),
      "## Size vs accuracy",
      f"![Model size (MB, log scale) against {split} top-1: every candidate, the chosen "
      f"lineage, the SquishedNet, baselines and the paper's points]({png_name})",
      _figure_caption(results),
      "## Reference: the SquishedNets paper (not directly comparable)",
      _paper_section(results, dataset),
      "## Time",
      _time_table(results),
      "## Reproduce",
      "```sh\n" + (results.get("command") or DASH) + "\n```",
  ]
  return "\n\n".join(section for section in sections if section) + "\n"


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
  size, ancestor_size = _number(squished.get("size_mb")), _number(ancestor.get("size_mb"))
  if size and ancestor_size:
    parts.append(f"is **{ancestor_size / size:.2f}× smaller** than its ancestor "
                 f"({size:.3f} MB vs {ancestor_size:.3f} MB of deployed float32 weights)")
  elif size:
    parts.append(f"has {size:.3f} MB of deployed float32 weights")
  reference = _number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
  if size and reference:
    parts.append(f"{reference / size:.2f}× smaller than SqueezeNet v1.1 ({reference:.2f} MB)")
  top1, ancestor_top1 = _number(squished.get("top1")), _number(ancestor.get("top1"))
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
  speedup = _speedup(squished, ancestor, "1")
  if speedup is not None:
    own = _number((squished.get("litert_images_per_sec") or {}).get("1"))
    base = _number((ancestor.get("litert_images_per_sec") or {}).get("1"))
    spread = _speedup_range(squished, "1")
    if spread is not None:
      rounds = f" over {spread[2]} interleaved rounds" if spread[2] else ", interleaved"
      detail = f" (median; {spread[0]:.2f}–{spread[1]:.2f}×{rounds})"
    else:
      detail = f" ({own:,.0f} vs {base:,.0f} images/s)" if own and base else ""
    where = ""
    extra = [(image, batch) for image, batch in _resolutions({"squishednet": squished})
             if batch == "1"]
    if extra and _run_pixels(results):
      where = f" and {_run_pixels(results)}"
    if speedup >= 1:
      parts.append(f"runs **{speedup:.2f}× faster** than the ancestor with LiteRT at batch 1"
                   f"{where}{detail}")
    else:
      parts.append(f"runs at **{speedup:.2f}×** the ancestor's speed with LiteRT at batch 1"
                   f"{where}{detail}")
    for image, batch in extra:
      value = _resolution_speedup(squished, image, batch)
      spread = ((squished.get("speedup_at_resolution_range") or {}).get(image) or {}).get(batch)
      detail = ""
      if isinstance(spread, Mapping) and _number(spread.get("min")) is not None:
        rounds = f" over {spread.get('rounds')} interleaved rounds" if spread.get("rounds") else ""
        detail = f" ({float(spread['min']):.2f}–{float(spread['max']):.2f}×{rounds})"
      parts.append(f"**{value:.2f}×** at {image} px, the same weights on a {image}×{image} "
                   f"input{detail}")
  if not parts:
    sentences = [f"The {name} has no measured figures in these results."]
  else:
    sentences = [f"The {name} {_join(parts)}."]
  if _retrained(results) and results.get("winner"):
    epochs = _number((_models(results).get("squishednet") or {}).get("train_epochs"))
    sentences.append(f"It is the evolved winner `{results['winner']}`'s widths trained from "
                     "fresh weights" + (f" for {epochs:.0f} epochs" if epochs else "")
                     + ", with the recipe, epochs and seed the baselines train with: evolution "
                     "chose the widths, and the weights it inherited and fine-tuned served the "
                     "search.")
  elif _polished(results) and results.get("winner"):
    sentences.append(f"It is the evolved winner `{results['winner']}` after a final, distilled "
                     "fine-tune (the polish).")
  rivals = comparisons(results)
  if rivals:
    sentences.append(f"On {split} top-1 it "
                     + _join([_comparison_phrase(c) for c in rivals]) + ".")
    sentences.extend(_budget_sentence(results))
  if split == "test":
    sentences.append("Every accuracy here is test-split top-1, on held-out images that nothing "
                     "was selected or tuned on.")
  generations = len(results.get("generations") or [])
  if generations:
    tail = (f"Evolution ran {generations} generation{'s' if generations != 1 else ''} "
            f"({len(results.get('candidates') or [])} candidates)")
    tail += f" and stopped: {_reason(results.get('stop_reason'))}." if results.get(
        "stop_reason") else "."
    sentences.append(tail)
  return " ".join(sentences)


def _budget_sentence(results: Mapping[str, Any]) -> List[str]:
  """What each side trained on: the SquishedNet's images include every discarded candidate."""
  models = results.get("models") or {}
  squished = models.get("squishednet") or {}
  own = _number(squished.get("train_images"))
  for name, _ in _RIVALS:
    theirs = _number((models.get(name) or {}).get("train_images"))
    if own is not None and theirs is not None:
      return [f"Counting every candidate evolution trained, the SquishedNet's training "
              f"processed {_images(own)} images, against {_images(theirs)} for the "
              "width-scaled baseline."]
  return []


def _data_line(dataset: Mapping[str, Any]) -> str:
  if not dataset:
    return ""
  size = _number(dataset.get("image_size"))
  pixels = f", {size:.0f}×{size:.0f} px" if size else ""
  parts = [f"Data: **{_text(dataset.get('name'))}**{pixels}"]
  if any(dataset.get(k) is not None for k in ("train_count", "validation_count", "test_count")):
    counts = (f"{_count(dataset.get('train_count'))} training / "
              f"{_count(dataset.get('validation_count'))} validation")
    if dataset.get("test_count") is not None:
      counts += f" / {_count(dataset.get('test_count'))} test"
    parts.append(counts + " images")
  classes = dataset.get("class_names") or []
  if classes:
    parts.append(f"{len(classes)} classes")
  return ", ".join(parts) + "."


def _accuracy_note(results: Mapping[str, Any]) -> str:
  """Which split the accuracies are on, and which split the decisions read."""
  test_count = _number((results.get("dataset") or {}).get("test_count"))
  if _on_test(results):
    images = f", {test_count:,.0f} images" if test_count else ""
    return ("**Accuracies are test-split top-1** (top-5 and NetScore too): measured on the "
            f"held-out test split{images}, which nothing was selected or tuned on. Selection "
            "among candidates and the accuracy budget (`max_accuracy_drop`) used the "
            "validation split; its figures are the \"Val top-1\" columns.")
  split = accuracy_split(results)
  return (f"Accuracies are on the {split} split, the same split selection and the accuracy "
          "budget used: these results hold no held-out test figures.")


def _models_table(results: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str:
  if not models:
    return "No models in these results."
  ancestor = models.get("ancestor") or {}
  sizes = _batch_sizes(models)
  has_keras = any(_number(m.get("keras_params")) is not None
                  and _number(m.get("keras_params")) != _number(m.get("params"))
                  for m in models.values())
  has_top5 = any(_number(m.get("top5")) is not None for m in models.values())
  has_val = _on_test(results) and any(_number(m.get("validation_top1")) is not None
                                      for m in models.values())
  has_sparse = any(m.get("nonzero_params") is not None or m.get("gzip_bytes") is not None
                   for m in models.values())
  header = ["Model", "Params (deployed)"]
  header += ["Keras params (BN unfolded)"] if has_keras else []
  header += ["Size (MB, deployed)", "TFLite fp32 (MB)", "TFLite int8 (MB)", "MACs (M)",
             _top1_header(results)]
  header += [_top1_header(results, "top-5")] if has_top5 else []
  header += ["Val top-1"] if has_val else []
  header += ["NetScore"]
  header += [f"LiteRT img/s, batch {s}" for s in sizes]
  # Other resolutions' speed-ups sit beside the run's own, each column naming its size.
  resolutions = _resolutions(models)
  run_pixels = _run_pixels(results) if resolutions else None
  header += [f"Speed-up, {run_pixels}, batch {s}" if run_pixels else f"Speed-up, batch {s}"
             for s in sizes]
  header += [f"Speed-up, {image} px, batch {s}" for image, s in resolutions]
  int8_sizes = [s for s in sizes if any(_speedup(m, ancestor, s, "int8_speedup_vs_ancestor")
                                        is not None for m in models.values())]
  header += [f"int8 speed-up, batch {s}" for s in int8_sizes]
  header += ["Epochs", "Images trained"]
  header += ["Non-zero params", "gzip (MB)"] if has_sparse else []
  rows = []
  for name, entry in models.items():
    label = _text(_label(name, entry))
    if name == "squishednet":
      label = f"**{label}**"
    row = [label, _count(entry.get("params"))]
    row += [_count(entry.get("keras_params"))] if has_keras else []
    row += [_mb(entry.get("size_mb")), _bytes_mb(entry.get("tflite_fp32_bytes")),
            _bytes_mb(entry.get("tflite_int8_bytes")), _macs_m(entry.get("macs")),
            _percent(entry.get("top1"))]
    row += [_percent(entry.get("top5"))] if has_top5 else []
    row += [_percent(entry.get("validation_top1"))] if has_val else []
    row += [_fmt(entry.get("netscore"), ".2f")]
    row += [_speed((entry.get("litert_images_per_sec") or {}).get(s)) for s in sizes]
    row += [_speedup_cell(entry, ancestor, s) for s in sizes]
    row += [_resolution_cell(entry, image, s) for image, s in resolutions]
    row += [_speedup_cell(entry, ancestor, s, "int8_speedup_vs_ancestor") for s in int8_sizes]
    row += [_count(entry.get("train_epochs")), _images(entry.get("train_images"))]
    if has_sparse:
      row += [_count(entry.get("nonzero_params")), _bytes_mb(entry.get("gzip_bytes"))]
    rows.append(row)
  return _table(header, rows)


def _models_notes(results: Mapping[str, Any], models: Mapping[str, Any]) -> str:
  split = accuracy_split(results)
  accuracy = (f"{split.capitalize()} top-1/top-5 and NetScore on the {split} split"
              + ("; Val top-1 is the same model on the validation split, the split that "
                 "selection and the accuracy budget read." if _on_test(results) else "."))
  notes = ["Params and size are **deployed** figures: batch norm folded into the convolutions "
           "(kernel + one bias per filter), size = params × 4 bytes (float32), as the paper "
           "counts it. TFLite columns are the exported files' bytes. " + accuracy +
           " NetScore = 20 log10(a² / (√p √m)), a = top-1 in %, p = deployed params in "
           "millions, m = MACs in billions. LiteRT images/s on this machine's CPU; speed-up is "
           f"over the ancestor at the same batch size. {DASH} = not measured."]
  rounds = sorted({spread[2] for m in models.values() for key in ("speedup_vs_ancestor",
                                                                   "int8_speedup_vs_ancestor")
                   for size in (m.get(f"{key}_range") or {})
                   for spread in [_speedup_range(m, size, key)] if spread and spread[2]})
  if rounds:
    notes.append("Speed-ups are measured, not divided: each model's .tflite file and the "
                 "ancestor's fp32 file ran interleaved in one process with the same threads "
                 f"({'/'.join(str(r) for r in rounds)} rounds, each file in turn every round), "
                 "and a speed-up is the median of the per-round ratios, with their min–max in "
                 "brackets; int8 speed-up is the model's int8 file over the ancestor's fp32 "
                 "file. The images/s columns are each file timed on its own, so their ratios "
                 "carry the machine's drift and can differ from the speed-ups.")
  resolutions = _resolutions(models)
  if resolutions:
    sizes = sorted({image for image, _ in resolutions}, key=lambda s: (not s.isdigit(), s))
    run = _run_pixels(results) or "the run's size"
    notes.append(f"The networks are fully convolutional, so the speed-ups are also measured at "
                 f"{' and '.join(s + ' px' for s in sizes)} beside the run's {run}: every model "
                 "is rebuilt at that input size with the same (deployed) weights, converted to "
                 "fp32 TFLite as the export does, and its file timed interleaved against the "
                 "ancestor's rebuilt file, batch 1, as above. Larger inputs shift time towards "
                 "the late, wide layers, so the speed-up changes with the camera's resolution.")
  unfolded = [(name, m) for name, m in models.items()
              if _number(m.get("keras_params")) is not None
              and _number(m.get("keras_params")) != _number(m.get("params"))]
  if unfolded:
    examples = "; ".join(f"{_label(name, m)}: {_count(m.get('keras_params'))} in Keras vs "
                         f"{_count(m.get('params'))} deployed" for name, m in unfolded[:2])
    notes.append("Keras params is Keras' `count_params()` of the training model, with batch "
                 "norm unfolded (four vectors per filter: γ, β and the moving mean and "
                 f"variance), e.g. {examples}.")
  if _retrained(results):
    notes.append("Epochs and images trained: what training processed. For the SquishedNet, "
                 "epochs are the lineage's budget (the ancestor's epochs, the chosen "
                 "offspring's and --final_epochs), for which its widths trained from scratch "
                 "and every baseline trains; images trained count the ancestor, every "
                 "candidate evolution fine-tuned (discarded ones included) and that final "
                 "training.")
  else:
    notes.append("Epochs and images trained: what training processed. For the SquishedNet, "
                 "epochs count the ancestor's training, the chosen offspring's fine-tuning and "
                 "the polish (the budget every baseline trains for); images trained also count "
                 "every candidate evolution fine-tuned, discarded ones included.")
  if any(m.get("gzip_bytes") is not None for m in models.values()):
    notes.append("Magnitude pruning zeroes weights without shrinking the dense file: its "
                 "saving shows in the gzip column and in non-zero params, not in size or speed.")
  machine = results.get("machine")
  if isinstance(machine, Mapping) and machine:
    cpu = machine.get("processor") or machine.get("machine") or "CPU"
    count = machine.get("cpu_count")
    threads = machine.get("num_threads")
    notes.append(f"Timed on {cpu}" + (f" ({count} CPUs)" if count else "")
                 + (f", {threads} LiteRT threads." if threads else "."))
  return "\n\n".join(notes)


def _generations(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The generation summaries in order; reconstructed from the candidates for older results."""
  generations = [g for g in results.get("generations") or [] if isinstance(g, Mapping)]
  if not generations:
    candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
    numbers = sorted({c.get("generation") for c in candidates if c.get("generation") is not None})
    generations = [{"generation": g, "chosen": next(
        (c.get("id") for c in candidates if c.get("generation") == g and c.get("chosen")), None)}
                   for g in numbers]
  return sorted(generations, key=lambda g: _number(g.get("generation")) or 0)


def _generations_table(results: Mapping[str, Any]) -> str:
  candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
  generations = _generations(results)
  if not generations and not candidates:
    return "No generations in these results."
  by_id = _candidates_by_id(results)
  on_test = _on_test(results)
  split = accuracy_split(results)
  header = ["Gen", "Parent", "Candidates", "Chosen", "Params (deployed)", "Size (MB)",
            "MACs (M)"]
  header += ["Val top-1 (selection)"] if on_test else []
  header += [_top1_header(results), f"Drop ({split}, pts)", "NetScore", "Stop reason"]
  align = ["r", "l", "r", "l", "r", "r", "r"] + ["r"] * (4 if on_test else 3) + ["l"]

  def figures(entry: Mapping[str, Any]) -> List[str]:
    out = [_count(entry.get("params")), _mb(entry.get("size_mb")), _macs_m(entry.get("macs"))]
    out += [_percent(entry.get("validation_top1"))] if on_test else []
    out += [_percent(entry.get("top1"))]
    return out

  rows = []
  models = results.get("models") or {}
  ancestor = models.get("ancestor") or {}
  if ancestor:
    rows.append(["0", DASH, DASH, "ancestor"] + figures(ancestor)
                + [DASH, _fmt(ancestor.get("netscore"), ".2f"), DASH])
  for generation in generations:
    number = generation.get("generation")
    tried = [c for c in candidates if c.get("generation") == number]
    diverged = sum(1 for c in tried if c.get("status") == "diverged")
    tried_text = str(len(tried)) + (f" ({diverged} diverged)" if diverged else "")
    chosen_id = generation.get("chosen")
    chosen = by_id.get(chosen_id) or {}
    rows.append([_text(number), _text(generation.get("parent") or chosen.get("parent")),
                 tried_text if tried else DASH, _text(chosen_id)] + figures(chosen)
                + [_drop(chosen, ancestor) if chosen else DASH,
                   _fmt(chosen.get("netscore"), ".2f"), _reason(generation.get("stop_reason"))])
  if _polished(results):
    squished = models.get("squishednet") or {}
    rows.append(["polish", _text(results.get("winner")), DASH,
                 f"**SquishedNet ({_final_word(results)})**"]
                + figures(squished)
                + [_drop(squished, ancestor), _fmt(squished.get("netscore"), ".2f"), DASH])
  table = _table(header, rows, align=align)
  notes = [f"Drop = the ancestor's {split} top-1 minus the model's, in points (negative: a "
           "gain)"]
  if on_test:
    notes[0] += ("; it is measured as evolution measures it, but on the test figures. "
                 "Selection and the accuracy budget read the validation column.")
  else:
    notes[0] += "."
  if _retrained(results):
    notes.append("The **polish** row is the SquishedNet: the last generation's winner's widths "
                 "trained from fresh weights for the lineage's budget, as the baselines train.")
  elif _polished(results):
    notes.append("The **polish** row is the SquishedNet: the last generation's winner after a "
                 "final, longer fine-tune distilled from the ancestor.")
  return table + "\n\n" + " ".join(notes)


def _stop_line(results: Mapping[str, Any]) -> str:
  winner, reason = results.get("winner"), results.get("stop_reason")
  if not winner and not reason:
    return ""
  polish = ""
  if _retrained(results):
    polish = ", its widths then trained from scratch into the SquishedNet"
  elif _polished(results):
    polish = ", then polished into the SquishedNet"
  return (f"Winner: `{winner or DASH}`{polish}. Stop reason: {_reason(reason)}. Every candidate, "
          "chosen or not, is listed below and in `lineage.json`.")


def _candidates_section(results: Mapping[str, Any]) -> str:
  """Every candidate evolution trained, with both the selection and the reported accuracy."""
  candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
  if not candidates:
    return ""
  ancestor = (results.get("models") or {}).get("ancestor") or {}
  on_test = _on_test(results)
  split = accuracy_split(results)
  header = ["Candidate", "Parent", "Params (deployed)", "Size (MB)", "MACs (M)", "F"]
  header += ["Val top-1 (selection)"] if on_test else []
  header += [_top1_header(results), f"Drop ({split}, pts)", "Images trained", "Time", "Status"]
  rows = []
  for c in sorted(candidates, key=lambda c: (_number(c.get("generation")) or 0,
                                             _number(c.get("candidate")) or 0,
                                             _number(c.get("attempt")) or 0)):
    attempt = _number(c.get("attempt"))
    name = _text(c.get("id")) + (f" (retry {attempt:.0f})" if attempt else "")
    status = "**chosen**" if c.get("chosen") else _text(c.get("status"))
    row = [name, _text(c.get("parent")), _count(c.get("params")), _mb(c.get("size_mb")),
           _macs_m(c.get("macs")), _fmt(c.get("env_factor"), ".3f")]
    row += [_percent(c.get("validation_top1"))] if on_test else []
    row += [_percent(c.get("top1")), _drop(c, ancestor), _images(c.get("train_images")),
            _duration(c.get("wall_seconds")), status]
    rows.append(row)
  align = ["l", "l"] + ["r"] * (len(header) - 3) + ["l"]
  return "### Every candidate\n\n" + _table(header, rows, align=align) + (
      "\n\nF = the mean environmental factor of the draw." + (
          " Selection read only the validation column; the test column was measured afterwards "
          "and played no part in any choice." if on_test else ""))


def _latency_section(results: Mapping[str, Any]) -> str:
  """The latency model's predictions against each candidate's interleaved measurement."""
  summary = results.get("latency_model")
  if not isinstance(summary, Mapping):
    return ""
  rows = []
  for c in results.get("candidates") or []:
    if not isinstance(c, Mapping) or c.get("predicted_latency_ms") is None:
      continue
    measured = c.get("measured_speedup") or {}
    rows.append([_text(c.get("id")) + (" (chosen)" if c.get("chosen") else ""),
                 _fmt(c.get("expected_latency_ms"), ".3f"),
                 _fmt(c.get("predicted_latency_ms"), ".3f"),
                 _fmt(c.get("measured_latency_ms"), ".3f"),
                 _fmt(c.get("latency_error"), "+.1f", 100.0, "%"),
                 _fmt(c.get("predicted_speedup"), ".2f", suffix="x"),
                 _ratio_range(measured),
                 _fmt(c.get("speedup_error"), "+.1f", 100.0, "%")])
  header = ["Candidate", "Expected (ms)", "Predicted (ms)", "Measured (ms)", "Error",
            "Predicted speed-up", "Measured speed-up (min-max)", "Speed-up error"]
  text = ("### Latency model\n\n"
          f"LiteRT latency at batch 1 predicted from the table measured on this machine "
          f"(`{_text(summary.get('table'))}`) and measured with each candidate timed "
          "interleaved with the ancestor once its generation was trained. The ancestor: "
          f"{_fmt(summary.get('ancestor_predicted_ms'), '.3f')} ms predicted, "
          f"{_fmt(summary.get('ancestor_measured_ms'), '.3f')} ms measured. Median |error| of "
          "the latency: "
          f"{_fmt(summary.get('median_abs_error_chosen'), '.1f', 100.0, '%')} on the chosen "
          f"offspring, {_fmt(summary.get('median_abs_error_all'), '.1f', 100.0, '%')} on all "
          f"{_count(summary.get('measured_candidates'))} measured; of the speed-up over the "
          "ancestor (the same error relative to the ancestor's, which does not depend on how "
          "busy the machine was at the two moments): "
          f"{_fmt(summary.get('median_abs_speedup_error_chosen'), '.1f', 100.0, '%')} and "
          f"{_fmt(summary.get('median_abs_speedup_error_all'), '.1f', 100.0, '%')}.")
  if rows:
    text += "\n\n" + _table(header, rows, align=["l"] + ["r"] * (len(header) - 1))
  return text


def _ratio_range(stats: Mapping[str, Any]) -> str:
  if not isinstance(stats, Mapping) or _number(stats.get("median")) is None:
    return DASH
  return (f"{_number(stats['median']):.2f}x ({_fmt(stats.get('min'), '.2f')}-"
          f"{_fmt(stats.get('max'), '.2f')})")


def _figure_caption(results: Mapping[str, Any]) -> str:
  split = accuracy_split(results)
  polish = " star: the SquishedNet;"
  if _retrained(results):
    polish = (" star: the SquishedNet, the winner's widths trained from scratch (dotted: its "
              "step from the evolved winner);")
  elif _polished(results):
    polish = (" star: the SquishedNet, after the polish (dotted: the polish's step from the "
              "evolved winner);")
  return (f"Accuracy on the {split} split. Grey: every candidate evolution tried; line: the "
          f"chosen lineage from the ancestor to the evolved winner;{polish} coloured markers: "
          "baselines; hollow markers: the paper's SquishedNets, whose accuracy is on another "
          "dataset (ImageNet-10) and so only shows their trade-off.")


def _paper_section(results: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
  paper = [p for p in results.get("paper") or [] if isinstance(p, Mapping)]
  reference = _number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
  ours = dataset.get("name") or "this run's dataset"
  size = _number(dataset.get("image_size"))
  ours_px = f" at {size:.0f}×{size:.0f} px" if size else ""
  intro = (f"Shafiee, Li, Chwyl and Wong (2017, arXiv 1711.07459) report these SquishedNets on "
           f"**ImageNet-10**, timed on an **NVIDIA Jetson TX1**. This run used "
           f"{ours}{ours_px}, timed with LiteRT on a CPU: a different dataset and device, so the "
           "numbers are **not directly comparable**. They are here as the paper's trade-off (how "
           "much size it gave up for how much accuracy and speed), not as a target.")
  # Quoted figures keep the paper's own precision (2.4 MB, not 2.400).
  rows = [[_text(p.get("label") or PAPER_NOTE), _fmt(p.get("size_mb"), "g"),
           _fmt(p.get("top1"), "g", 100.0, "%"), _speed(p.get("images_per_sec"))] for p in paper]
  if reference:
    rows.append(["SqueezeNet v1.1 (float32 weights, for scale)", f"{reference:g}", DASH, DASH])
  if not rows:
    return intro
  return intro + "\n\n" + _table(["Source", "Size (MB)", "Top-1", "Images/s"], rows)


def _time_table(results: Mapping[str, Any]) -> str:
  wall = results.get("wall_seconds") or {}
  if not wall:
    return "Stage times were not recorded."
  stages = [s for s in STAGES if s in wall] + sorted(
      s for s in wall if s not in STAGES and s != "total")
  rows = [[_text(s), _duration(wall.get(s))] for s in stages]
  if "total" in wall:
    rows.append(["**total**", f"**{_duration(wall.get('total'))}**"])
  return _table(["Stage", "Wall time"], rows)


# -- pareto.png --------------------------------------------------------------------


def pareto_figure(results: Mapping[str, Any]):
  """Deployed size (MB, log x) against the reported top-1 (test): candidates, lineage,
  the (polished) SquishedNet, baselines, paper.

  Returns:
    A matplotlib Figure on an Agg canvas.
  """
  # Imported here so that reading results never pays for matplotlib.
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure as figure_lib  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

  split = accuracy_split(results)
  fig = figure_lib.Figure(figsize=FIGURE_SIZE, dpi=DPI)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  xs: List[float] = []

  def point(entry: Mapping[str, Any]) -> Optional[Tuple[float, float]]:
    size, top1 = _number(entry.get("size_mb")), _number(entry.get("top1"))
    if size is None or top1 is None or size <= 0:
      return None
    xs.append(size)
    return size, top1

  candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
  plotted = [p for p in (point(c) for c in candidates) if p]
  if candidates:
    hidden = len(candidates) - len(plotted)
    label = f"candidates ({len(plotted)}" + (
        f"; {hidden} diverged or untested, not shown)" if hidden else ")")
    if plotted:
      ax.scatter(*zip(*plotted), s=18, color="0.65", alpha=0.8, zorder=2, label=label)

  path = [p for p in (point(e) for e in lineage(results)) if p]
  if path:
    ax.plot(*zip(*path), "-o", color="C0", markersize=5, linewidth=1.6, zorder=3,
            label="chosen lineage")
    ax.annotate("ancestor", path[0], textcoords="offset points", xytext=(6, 6), fontsize=8,
                color="C0")

  models = _models(results)
  squished = models.get("squishednet") or {}
  winner = point(squished)
  if winner:
    polished = _polished(results)
    evolved = _candidates_by_id(results).get(results.get("winner")) or {}
    start = point(evolved) if polished else None
    if start:
      ax.plot(*zip(start, winner), ":", color="C3", linewidth=1.4, zorder=4,
              label="retrained from scratch" if _retrained(results) else "polish")
    label = _label("squishednet", squished)
    ax.scatter(*winner, s=180, marker="*", color="C3", edgecolor="black", linewidth=0.6,
               zorder=5, label=label)

  markers = ["s", "^", "D", "v", "P", "h", "X"]
  baselines = [(name, entry) for name, entry in models.items() if name not in _LEAD_MODELS]
  for index, (name, entry) in enumerate(baselines):
    where = point(entry)
    if not where:
      continue
    label = _label(name, entry)
    colour = _BASELINE_COLOURS[index % len(_BASELINE_COLOURS)]
    ax.scatter(*where, s=60, marker=markers[index % len(markers)], color=colour,
               edgecolor="black", linewidth=0.5, zorder=4, label=label)
    # Alternate below / above: the two width-scaled baselines share a size.
    ax.annotate(_SHORT_NAMES.get(name, label), where, textcoords="offset points",
                xytext=(6, -10 if index % 2 == 0 else 5), fontsize=7, color=colour)

  paper = [p for p in (point(p) for p in results.get("paper") or [] if isinstance(p, Mapping))
           if p]
  if paper:
    ax.scatter(*zip(*paper), s=70, marker="o", facecolor="none", edgecolor="black",
               linewidth=1.2, zorder=4, label=f"{PAPER_NOTE} (other dataset)")
    for where in paper:
      ax.annotate(f"paper {where[0]:g} MB", where, textcoords="offset points", xytext=(6, 4),
                  fontsize=7)

  reference = _number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
  if reference and reference > 0:
    xs.append(reference)
    ax.axvline(reference, color="0.4", linestyle="--", linewidth=1, zorder=1,
               label=f"SqueezeNet v1.1 ({reference:.2f} MB)")

  dataset = (results.get("dataset") or {}).get("name")
  ax.set_title(f"{results.get('run_name') or 'run'}: model size vs {split} top-1"
               + (f" ({dataset})" if dataset else ""))
  ax.set_xlabel("deployed size (MB of float32 weights, log scale)" if xs else "size (MB)")
  ax.set_ylabel(f"{split} top-1")
  ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))  # decimals as the range needs
  if xs:
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    # Ticks at 1, 2, 5 x 10^k: a log axis spanning less than a decade would
    # otherwise show one labelled tick or none.
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    # Below the axes, so it never hides a point wherever the points fall.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7,
              frameon=False)
  else:
    ax.text(0.5, 0.5, "no model has both a size and a top-1 yet", transform=ax.transAxes,
            ha="center", va="center", color="0.4")
  ax.margins(y=0.08)  # room for the labels above the top point
  ax.grid(True, which="major", alpha=0.3)
  if paper:
    fig.text(0.01, 0.01, "Paper points: accuracy on ImageNet-10 and speed on a Jetson TX1, "
             "shown for reference only; not comparable with this run's numbers.",
             fontsize=7, color="0.3")
  fig.tight_layout(rect=(0, 0.03 if paper else 0, 1, 1))
  return fig


# -- console -------------------------------------------------------------------------


def format_results_summary(results: Mapping[str, Any]) -> str:
  """A few lines for the console at the end of a run."""
  models = _models(results)
  ancestor = models.get("ancestor") or {}
  dataset = results.get("dataset") or {}
  split = accuracy_split(results)
  polished = f" ({_final_word(results)})" if _polished(results) else ""
  lines = [f"run {results.get('run_name') or DASH} ({dataset.get('name') or DASH}): winner "
           f"{results.get('winner') or DASH}{polished}, "
           f"{len(results.get('generations') or [])} generations, "
           f"stop: {_reason(results.get('stop_reason'))}; accuracies are {split}-split top-1"]
  width = max([len(name) for name in models] + [8])
  for name, entry in models.items():
    line = (f"  {name:<{width}} {_count(entry.get('params')):>10} params "
            f"{_mb(entry.get('size_mb')):>7} MB  {split} top-1 {_percent(entry.get('top1')):>7}"
            f"  LiteRT b1 {_speed((entry.get('litert_images_per_sec') or {}).get('1')):>7} "
            "img/s")
    if name != "ancestor" and ancestor:
      size, base = _number(entry.get("size_mb")), _number(ancestor.get("size_mb"))
      top1, base_top1 = _number(entry.get("top1")), _number(ancestor.get("top1"))
      extras = []
      if size and base:
        extras.append(f"{base / size:.2f}× smaller")
      if top1 is not None and base_top1 is not None:
        extras.append(f"{100 * (top1 - base_top1):+.2f} points")
      speedup = _speedup(entry, ancestor, "1")
      if speedup is not None:
        extras.append(f"{speedup:.2f}× speed b1")
      for image, batch in _resolutions({name: entry}):
        extras.append(f"{_resolution_speedup(entry, image, batch):.2f}× at {image} px b{batch}")
      if extras:
        line += "  (" + ", ".join(extras) + ")"
    lines.append(line)
  if models.get("squishednet"):
    for comparison in comparisons(results):
      lines.append(f"  squishednet vs {comparison['name']}: it "
                   f"{_comparison_phrase(comparison, bold=False)} on {split} top-1")
  return "\n".join(lines)
