"""pareto.png: test top-1 against deployed size for the lineage, the SquishedNet, the
baselines and the paper's SquishedNets."""

from typing import Any, List, Mapping, Optional, Tuple

from squish_tf.report.format import finite_number
from squish_tf.report.results import (
  accuracy_split,
  candidates_by_id,
  is_polished,
  lineage,
  model_label,
  ordered_models,
  retrained,
  short_label,
)

FIGURE_SIZE = (8.0, 5.0)  # inches
DPI = 130
PAPER_NOTE = "paper, ImageNet-10, Jetson TX1"
# Where the model table puts the compared models: the pair the run is about,
# then the baselines in the order the job trains them, then anything else.
_LEAD_MODELS = ("ancestor", "squishednet")
# Baseline colours on the figure: C0 is the lineage and C3 the SquishedNet.
_BASELINE_COLOURS = ("C1", "C2", "C4", "C5", "C6", "C8", "C9")


def pareto_figure(results: Mapping[str, Any]):
  """Deployed size (MB, log x) against the reported top-1 (test): candidates, lineage,
  the (polished) SquishedNet, baselines, paper.

  Returns:
    A matplotlib Figure on an Agg canvas.
  """
  # Imported here so that reading results never pays for matplotlib.
  from matplotlib import figure as figure_lib  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  split = accuracy_split(results)
  fig = figure_lib.Figure(figsize=FIGURE_SIZE, dpi=DPI)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  xs: List[float] = []

  def point(entry: Mapping[str, Any]) -> Optional[Tuple[float, float]]:
    size, top1 = finite_number(entry.get("size_mb")), finite_number(entry.get("top1"))
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

  models = ordered_models(results)
  squished = models.get("squishednet") or {}
  winner = point(squished)
  if winner:
    polished = is_polished(results)
    evolved = candidates_by_id(results).get(results.get("winner")) or {}
    start = point(evolved) if polished else None
    if start:
      ax.plot(*zip(start, winner), ":", color="C3", linewidth=1.4, zorder=4,
              label="retrained from scratch" if retrained(results) else "polish")
    label = model_label("squishednet", squished)
    ax.scatter(*winner, s=180, marker="*", color="C3", edgecolor="black", linewidth=0.6,
               zorder=5, label=label)

  markers = ["s", "^", "D", "v", "P", "h", "X"]
  # The width ladder's rungs (--baselines=ladder) are one series, by size.
  rungs = sorted(p for p in (point(entry) for entry in models.values()
                             if entry.get("matched_on") == "ladder") if p)
  if rungs:
    ax.plot(*zip(*rungs), "--", marker=".", color="0.3", linewidth=1.0, zorder=3,
            label=f"width ladder ({len(rungs)} aligned uniform "
            f"width{'s' if len(rungs) != 1 else ''})")
  baselines = [(name, entry) for name, entry in models.items()
               if name not in _LEAD_MODELS and entry.get("matched_on") != "ladder"]
  for index, (name, entry) in enumerate(baselines):
    where = point(entry)
    if not where:
      continue
    label = model_label(name, entry)
    colour = _BASELINE_COLOURS[index % len(_BASELINE_COLOURS)]
    ax.scatter(*where, s=60, marker=markers[index % len(markers)], color=colour,
               edgecolor="black", linewidth=0.5, zorder=4, label=label)
    # Alternate below / above: the two width-scaled baselines share a size.
    ax.annotate(short_label(name, entry), where, textcoords="offset points",
                xytext=(6, -10 if index % 2 == 0 else 5), fontsize=7, color=colour)

  paper = [p for p in (point(p) for p in results.get("paper") or [] if isinstance(p, Mapping))
           if p]
  if paper:
    ax.scatter(*zip(*paper), s=70, marker="o", facecolor="none", edgecolor="black",
               linewidth=1.2, zorder=4, label=f"{PAPER_NOTE} (other dataset)")
    for where in paper:
      ax.annotate(f"paper {where[0]:g} MB", where, textcoords="offset points", xytext=(6, 4),
                  fontsize=7)

  reference = finite_number((results.get("reference") or {}).get("squeezenet_v1_1_size_mb"))
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
