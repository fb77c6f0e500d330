"""A run's story: `report.md` and `pareto.png`, rendered from its results dict.

Pure rendering: nothing here trains, loads or times a model. The input is the
dict the main job writes to `results.json` (see `write_report`); any value in
it may be None or absent (a baseline that was not run, a format that was not
exported), and renders as "–".

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
# Where the model table puts the compared models: the pair the run is about first.
_LEAD_MODELS = ("ancestor", "squishednet")

# The main job's stages, in the order it runs them (squish_tf.job uses this too).
STAGES = ("ancestor", "synthesis", "export", "baselines", "benchmark", "report")


def write_report(run_dir: str, results: Mapping[str, Any]) -> Tuple[str, str]:
  """Writes `<run_dir>/report.md` and `<run_dir>/pareto.png`, each atomically.

  Args:
    run_dir: the run directory; created if missing.
    results: the run's results (results.json): run_name, command, dataset,
      models {name: {label, kind, params, size_mb, macs, top1, top5, netscore,
      tflite_fp32_bytes, tflite_int8_bytes, litert_images_per_sec,
      speedup_vs_ancestor, ...}}, candidates, generations, winner, stop_reason,
      paper, reference, wall_seconds.

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


def _models(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  """The compared models in table order: ancestor, squishednet, then the rest as given."""
  models = {name: dict(entry or {}) for name, entry in (results.get("models") or {}).items()}
  ordered = {name: models[name] for name in _LEAD_MODELS if name in models}
  ordered.update({name: entry for name, entry in models.items() if name not in ordered})
  return ordered


def _batch_sizes(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
  sizes = set()
  for entry in models.values():
    for key in ("litert_images_per_sec", "speedup_vs_ancestor"):
      sizes.update(str(size) for size in (entry.get(key) or {}))
  return sorted(sizes, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def _speedup(entry: Mapping[str, Any], ancestor: Mapping[str, Any], size: str) -> Optional[float]:
  """The recorded speed-up over the ancestor, else the ratio of the two speeds."""
  given = _number((entry.get("speedup_vs_ancestor") or {}).get(size))
  if given is not None:
    return given
  own = _number((entry.get("litert_images_per_sec") or {}).get(size))
  base = _number((ancestor.get("litert_images_per_sec") or {}).get(size))
  return own / base if own is not None and base else None


def _candidates_by_id(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  return {c.get("id"): c for c in results.get("candidates") or [] if isinstance(c, Mapping)}


def lineage(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The chosen path: the ancestor, then each generation's chosen candidate, in order.

  Generations whose chosen candidate is unknown are left out.
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


# -- report.md ---------------------------------------------------------------------


def render_markdown(results: Mapping[str, Any], png_name: str = PARETO_FILE) -> str:
  """The whole report.md as a string."""
  models = _models(results)
  dataset = results.get("dataset") or {}
  run_name = results.get("run_name") or "run"
  sections = [
      f"# SquishedNets run `{run_name}`",
      summary_paragraph(results),
      _data_line(dataset),
      "## Models compared",
      _models_table(models),
      _models_notes(results, models),
      "## Generations",
      _generations_table(results),
      _stop_line(results),
      "## Size vs accuracy",
      f"![Model size (MB, log scale) against validation top-1: every candidate, the chosen "
      f"lineage, baselines and the paper's points]({png_name})",
      "Grey: every candidate evolution tried; line: the chosen lineage from the ancestor to the "
      "SquishedNet; coloured markers: baselines; hollow markers: the paper's SquishedNets, whose "
      "accuracy is on another dataset (ImageNet-10) and so only shows their trade-off.",
      "## Reference: the SquishedNets paper (not directly comparable)",
      _paper_section(results, dataset),
      "## Time",
      _time_table(results),
      "## Reproduce",
      "```sh\n" + (results.get("command") or DASH) + "\n```",
  ]
  return "\n\n".join(section for section in sections if section) + "\n"


def summary_paragraph(results: Mapping[str, Any]) -> str:
  """One paragraph: the SquishedNet against its ancestor and SqueezeNet v1.1."""
  models = results.get("models") or {}
  ancestor = models.get("ancestor") or {}
  squished = models.get("squishednet") or {}
  dataset = (results.get("dataset") or {}).get("name")
  if not squished:
    return "These results hold no SquishedNet (evolution did not finish or was not run)."
  name = squished.get("label") or f"SquishedNet ({results.get('winner') or DASH})"
  parts: List[str] = []
  size, ancestor_size = _number(squished.get("size_mb")), _number(ancestor.get("size_mb"))
  if size and ancestor_size:
    parts.append(f"is **{ancestor_size / size:.2f}× smaller** than its ancestor "
                 f"({size:.3f} MB vs {ancestor_size:.3f} MB of float32 weights)")
  elif size:
    parts.append(f"has {size:.3f} MB of float32 weights")
  reference = _number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
  if size and reference:
    parts.append(f"{reference / size:.2f}× smaller than SqueezeNet v1.1 ({reference:.2f} MB)")
  top1, ancestor_top1 = _number(squished.get("top1")), _number(ancestor.get("top1"))
  on = f" on {dataset} validation" if dataset else ""
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
    detail = f" ({own:,.0f} vs {base:,.0f} images/s)" if own and base else ""
    if speedup >= 1:
      parts.append(f"runs **{speedup:.2f}× faster** than the ancestor with LiteRT at batch 1"
                   f"{detail}")
    else:
      parts.append(f"runs at **{speedup:.2f}×** the ancestor's speed with LiteRT at batch 1"
                   f"{detail}")
  if not parts:
    return f"The {name} has no measured figures in these results."
  if len(parts) > 1:
    sentence = ", ".join(parts[:-1]) + " and " + parts[-1]
  else:
    sentence = parts[0]
  generations = len(results.get("generations") or [])
  tail = ""
  if generations:
    tail = (f" Evolution ran {generations} generation{'s' if generations != 1 else ''} "
            f"({len(results.get('candidates') or [])} candidates)")
    tail += f" and stopped: {_reason(results.get('stop_reason'))}." if results.get(
        "stop_reason") else "."
  return f"The {name} {sentence}.{tail}"


def _data_line(dataset: Mapping[str, Any]) -> str:
  if not dataset:
    return ""
  size = _number(dataset.get("image_size"))
  pixels = f", {size:.0f}×{size:.0f} px" if size else ""
  parts = [f"Data: **{_text(dataset.get('name'))}**{pixels}"]
  if dataset.get("train_count") is not None or dataset.get("validation_count") is not None:
    parts.append(f"{_count(dataset.get('train_count'))} training / "
                 f"{_count(dataset.get('validation_count'))} validation images")
  classes = dataset.get("class_names") or []
  if classes:
    parts.append(f"{len(classes)} classes")
  return ", ".join(parts) + "."


def _models_table(models: Mapping[str, Mapping[str, Any]]) -> str:
  if not models:
    return "No models in these results."
  ancestor = models.get("ancestor") or {}
  sizes = _batch_sizes(models)
  has_top5 = any(_number(m.get("top5")) is not None for m in models.values())
  has_sparse = any(m.get("nonzero_params") is not None or m.get("gzip_bytes") is not None
                   for m in models.values())
  header = ["Model", "Params", "Size (MB)", "TFLite fp32 (MB)", "TFLite int8 (MB)", "MACs (M)",
            "Top-1"]
  header += ["Top-5"] if has_top5 else []
  header += ["NetScore"]
  header += [f"LiteRT img/s, batch {s}" for s in sizes]
  header += [f"Speed-up, batch {s}" for s in sizes]
  header += ["Non-zero params", "gzip (MB)"] if has_sparse else []
  rows = []
  for name, entry in models.items():
    label = _text(entry.get("label") or name)
    if name == "squishednet":
      label = f"**{label}**"
    row = [label, _count(entry.get("params")), _mb(entry.get("size_mb")),
           _bytes_mb(entry.get("tflite_fp32_bytes")), _bytes_mb(entry.get("tflite_int8_bytes")),
           _macs_m(entry.get("macs")), _percent(entry.get("top1"))]
    row += [_percent(entry.get("top5"))] if has_top5 else []
    row += [_fmt(entry.get("netscore"), ".2f")]
    row += [_speed((entry.get("litert_images_per_sec") or {}).get(s)) for s in sizes]
    row += [_ratio(_speedup(entry, ancestor, s)) for s in sizes]
    if has_sparse:
      row += [_count(entry.get("nonzero_params")), _bytes_mb(entry.get("gzip_bytes"))]
    rows.append(row)
  return _table(header, rows)


def _models_notes(results: Mapping[str, Any], models: Mapping[str, Any]) -> str:
  notes = ["Size = parameters × 4 bytes (float32), as the paper counts it; TFLite columns are the "
           "exported files' bytes. Top-1 on the validation split. NetScore = 20 log10(a² / "
           "(√p √m)), a = top-1 in %, p = params in millions, m = MACs in billions. "
           "LiteRT images/s on this machine's CPU; speed-up is over the ancestor at the same "
           f"batch size. {DASH} = not measured."]
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


def _generations_table(results: Mapping[str, Any]) -> str:
  generations = results.get("generations") or []
  candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
  if not generations and not candidates:
    return "No generations in these results."
  by_id = _candidates_by_id(results)
  if not generations:  # older results: reconstruct the list from the candidates
    numbers = sorted({c.get("generation") for c in candidates if c.get("generation") is not None})
    generations = [{"generation": g, "chosen": next(
        (c.get("id") for c in candidates if c.get("generation") == g and c.get("chosen")), None)}
                   for g in numbers]
  header = ["Gen", "Parent", "Candidates", "Chosen", "Params", "Size (MB)", "MACs (M)", "Top-1",
            "NetScore", "Stop reason"]
  rows = []
  ancestor = (results.get("models") or {}).get("ancestor")
  if ancestor:
    rows.append(["0", DASH, DASH, "ancestor", _count(ancestor.get("params")),
                 _mb(ancestor.get("size_mb")), _macs_m(ancestor.get("macs")),
                 _percent(ancestor.get("top1")), _fmt(ancestor.get("netscore"), ".2f"), DASH])
  for generation in sorted(generations, key=lambda g: _number(g.get("generation")) or 0):
    number = generation.get("generation")
    tried = [c for c in candidates if c.get("generation") == number]
    diverged = sum(1 for c in tried if c.get("status") == "diverged")
    tried_text = str(len(tried)) + (f" ({diverged} diverged)" if diverged else "")
    chosen_id = generation.get("chosen")
    chosen = by_id.get(chosen_id) or {}
    rows.append([_text(number), _text(generation.get("parent") or chosen.get("parent")),
                 tried_text if tried else DASH, _text(chosen_id), _count(chosen.get("params")),
                 _mb(chosen.get("size_mb")), _macs_m(chosen.get("macs")),
                 _percent(chosen.get("top1")), _fmt(chosen.get("netscore"), ".2f"),
                 _reason(generation.get("stop_reason"))])
  return _table(header, rows, align=["r", "l", "r", "l", "r", "r", "r", "r", "r", "l"])


def _stop_line(results: Mapping[str, Any]) -> str:
  winner, reason = results.get("winner"), results.get("stop_reason")
  if not winner and not reason:
    return ""
  return (f"Winner: `{winner or DASH}`. Stop reason: {_reason(reason)}. Every candidate, chosen "
          "or not, is listed in `lineage.json`.")


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
  """Size (MB, log x) against validation top-1: candidates, lineage, baselines, paper.

  Returns:
    A matplotlib Figure on an Agg canvas.
  """
  # Imported here so that reading results never pays for matplotlib.
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure as figure_lib  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

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
    label = f"candidates ({len(plotted)}" + (f"; {hidden} diverged, not shown)" if hidden else ")")
    if plotted:
      ax.scatter(*zip(*plotted), s=18, color="0.65", alpha=0.8, zorder=2, label=label)

  path = [p for p in (point(e) for e in lineage(results)) if p]
  if path:
    ax.plot(*zip(*path), "-o", color="C0", markersize=5, linewidth=1.6, zorder=3,
            label="chosen lineage")
    ax.annotate("ancestor", path[0], textcoords="offset points", xytext=(6, 6), fontsize=8,
                color="C0")

  models = _models(results)
  winner = point(models.get("squishednet") or {})
  if winner:
    ax.scatter(*winner, s=180, marker="*", color="C3", edgecolor="black", linewidth=0.6,
               zorder=5, label=models["squishednet"].get("label") or "SquishedNet")

  markers = ["s", "^", "D", "v", "P", "h"]
  baselines = [(name, entry) for name, entry in models.items() if name not in _LEAD_MODELS]
  for index, (name, entry) in enumerate(baselines):
    where = point(entry)
    if not where:
      continue
    label = entry.get("label") or name
    ax.scatter(*where, s=60, marker=markers[index % len(markers)], color=f"C{index + 1}",
               edgecolor="black", linewidth=0.5, zorder=4, label=label)
    ax.annotate(label, where, textcoords="offset points", xytext=(6, -10), fontsize=7,
                color=f"C{index + 1}")

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
  ax.set_title(f"{results.get('run_name') or 'run'}: model size vs validation top-1"
               + (f" ({dataset})" if dataset else ""))
  ax.set_xlabel("size (MB of float32 weights, log scale)" if xs else "size (MB)")
  ax.set_ylabel("validation top-1")
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
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7,
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
  lines = [f"run {results.get('run_name') or DASH} ({dataset.get('name') or DASH}): winner "
           f"{results.get('winner') or DASH}, {len(results.get('generations') or [])} generations, "
           f"stop: {_reason(results.get('stop_reason'))}"]
  width = max([len(name) for name in models] + [8])
  for name, entry in models.items():
    line = (f"  {name:<{width}} {_count(entry.get('params')):>10} params "
            f"{_mb(entry.get('size_mb')):>7} MB  top-1 {_percent(entry.get('top1')):>7}  "
            f"LiteRT b1 {_speed((entry.get('litert_images_per_sec') or {}).get('1')):>7} img/s")
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
      if extras:
        line += "  (" + ", ".join(extras) + ")"
    lines.append(line)
  return "\n".join(lines)
