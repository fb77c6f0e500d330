"""frontier.png: test top-1 against LiteRT latency (fp32, batch 1, the run's resolution) for
the ancestor, every measured candidate with the chosen lineage, the SquishedNet, the
baselines and an optional width ladder, each with the spread of its speed-up as error bars,
and two staircases: the best top-1 available at or below each latency among the evolved
networks, and among the width ladder's (`frontier.staircase`).

Drawn from results.json alone (its "frontier", or for older results the same
points built from its models and candidates, and its optional "ladder"); see
squish_tf.report.frontier for how a latency is put on the benchmark's clock.
"""

from typing import Any, Dict, List, Mapping, Optional, Tuple

from squish_tf.report.format import finite_number
from squish_tf.report.frontier import frontier_of, ladder_of, ladder_verdict, staircase
from squish_tf.report.pareto import DPI, FIGURE_SIZE
from squish_tf.report.results import (
  accuracy_split,
  model_label,
  ordered_models,
  retrained,
  run_pixels_text,
  short_label,
)

# Baseline colours: C0 is the lineage, C3 the SquishedNet (as on pareto.png).
_BASELINE_COLOURS = ("C1", "C2", "C4", "C5", "C6", "C8", "C9")
_MARKERS = ("s", "^", "D", "v", "P", "h", "X")


def _plotted(point: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
  """{"x": latency ms, "y": top-1, "low", "high": latency at the speed-up's max and min, ...}
  of a point with both; None otherwise."""
  latency, top1 = finite_number(point.get("latency_ms")), finite_number(point.get("top1"))
  if latency is None or top1 is None or latency <= 0:
    return None
  speedup = finite_number(point.get("speedup"))
  fastest, slowest = finite_number(point.get("speedup_max")), finite_number(point.get("speedup_min"))
  # latency = ancestor_ms / speedup, so the speed-up's max is the latency's min.
  low = latency * speedup / fastest if speedup and fastest else latency
  high = latency * speedup / slowest if speedup and slowest else latency
  return dict(point, x=latency, y=top1, low=min(low, latency), high=max(high, latency))


def figure_points(results: Mapping[str, Any]) -> Dict[str, Any]:
  """What frontier.png draws, from `results` alone.

  Returns:
    {"ancestor": point or None, "candidates": [points], "lineage": [the
     ancestor then the chosen candidates by generation], "squishednet": point
     or None, "winner": the evolved winner's candidate point or None,
     "baselines": [points, table order; the ladder's rungs aside], "ladder":
     [points by latency], "ladder_rival": the best ladder point at least as
     fast as the SquishedNet or None (`frontier.ladder_verdict`), "steps":
     {"evolved": (xs, ys) of the ancestor, the candidates and the
     SquishedNet, "ladder": (xs, ys) of the ladder and the ancestor, or
     None without a ladder} (`frontier.staircase`, each ending at the
     slowest point drawn), "hidden": measured candidates without a test
     top-1}. A point is a frontier point with "x" (latency ms), "y" (top-1),
     "low" and "high" (the latency's spread).
  """
  frontier = frontier_of(results)
  by_kind: Dict[str, List[Dict[str, Any]]] = {}
  hidden = 0
  for point in frontier:
    plotted = _plotted(point)
    if plotted is None:
      hidden += point.get("kind") == "candidate"
      continue
    by_kind.setdefault(str(point.get("kind")), []).append(plotted)
  ancestor = (by_kind.get("ancestor") or [None])[0]
  squished = (by_kind.get("squishednet") or [None])[0]
  candidates = by_kind.get("candidate") or []
  chosen = sorted((c for c in candidates if c.get("chosen")),
                  key=lambda c: (finite_number(c.get("generation")) or 0, str(c.get("name"))))
  order = list(ordered_models(results))
  baselines = sorted((p for p in by_kind.get("baseline") or [] if not p.get("ladder")),
                     key=lambda p: order.index(p["name"]) if p["name"] in order else len(order))
  ladder = [p for p in (_plotted(p) for p in ladder_of(results)) if p]
  winner = next((c for c in candidates if c.get("name") == results.get("winner")), None)
  members = by_kind.get("member") or []
  lead = [p for p in (ancestor, squished) if p]
  right = max((p["x"] for p in lead + candidates + members + ladder), default=None)
  verdict = ladder_verdict(squished, ladder) if squished else None
  return {"ancestor": ancestor, "candidates": candidates,
          "lineage": ([ancestor] if ancestor else []) + chosen, "squishednet": squished,
          "members": members,
          "winner": winner, "baselines": baselines, "ladder": ladder,
          "ladder_rival": verdict["rival"] if verdict else None,
          "steps": {"evolved": staircase(lead + candidates + members, right),
                    "ladder": staircase(ladder + lead[:1], right) if ladder else None},
          "hidden": hidden}


def _xy(points: List[Mapping[str, Any]]) -> Tuple[List[float], List[float]]:
  return [p["x"] for p in points], [p["y"] for p in points]


def _xerr(points: List[Mapping[str, Any]]) -> List[List[float]]:
  return [[p["x"] - p["low"] for p in points], [p["high"] - p["x"] for p in points]]


def frontier_figure(results: Mapping[str, Any]):
  """Latency (ms, log x) against the reported top-1 (test); see the module docstring.

  Returns:
    A matplotlib Figure on an Agg canvas.
  """
  # Imported here so that reading results never pays for matplotlib.
  from matplotlib import figure as figure_lib  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  split = accuracy_split(results)
  drawn = figure_points(results)
  fig = figure_lib.Figure(figsize=FIGURE_SIZE, dpi=DPI)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  errors = {"fmt": "none", "elinewidth": 0.9, "capsize": 2}
  xs: List[float] = []

  candidates = drawn["candidates"]
  if candidates or drawn["hidden"]:
    hidden = drawn["hidden"]
    label = f"candidates ({len(candidates)}" + (f"; {hidden} untested, not shown)" if hidden
                                               else ")")
    if candidates:
      ax.errorbar(*_xy(candidates), xerr=_xerr(candidates), ecolor="0.75", zorder=2, **errors)
      ax.scatter(*_xy(candidates), s=18, color="0.65", alpha=0.8, zorder=2, label=label)
  path = drawn["lineage"]
  if path:
    ax.plot(*_xy(path), "-o", color="C0", markersize=5, linewidth=1.6, zorder=3,
            label="chosen lineage" if len(path) > 1 else "ancestor")
    ax.errorbar(*_xy(path), xerr=_xerr(path), ecolor="C0", zorder=3, **errors)
    if drawn["ancestor"]:
      ax.annotate("ancestor", (path[0]["x"], path[0]["y"]), textcoords="offset points",
                  xytext=(6, 6), fontsize=8, color="C0")

  evolved_steps, ladder_steps = drawn["steps"]["evolved"], drawn["steps"]["ladder"]
  if evolved_steps[0]:
    ax.step(*evolved_steps, where="post", color="C3", linewidth=1.0, alpha=0.55, zorder=2,
            label="best evolved at or below each latency")
  ladder = drawn["ladder"]
  if ladder:
    ax.step(*ladder_steps, where="post", linestyle="--", color="0.3", linewidth=1.1, zorder=3,
            label="best uniform width at or below each latency")
    ax.scatter(*_xy(ladder), s=14, color="0.3", zorder=3, label="uniform width ladder")
    ax.errorbar(*_xy(ladder), xerr=_xerr(ladder), ecolor="0.5", zorder=3, **errors)
    for p in ladder:
      multiplier = finite_number(p.get("width_multiplier"))
      if multiplier is not None:
        ax.annotate(f"×{multiplier:g}", (p["x"], p["y"]), textcoords="offset points",
                    xytext=(4, -9), fontsize=6, color="0.3")

  squished = drawn["squishednet"]
  if squished:
    winner = drawn["winner"]
    if winner and winner is not squished and results.get("polished"):
      ax.plot([winner["x"], squished["x"]], [winner["y"], squished["y"]], ":", color="C3",
              linewidth=1.4, zorder=4,
              label="retrained from scratch" if retrained(results) else "polish")
    ax.errorbar([squished["x"]], [squished["y"]], xerr=_xerr([squished]), ecolor="C3",
                zorder=5, **errors)
    ax.scatter(squished["x"], squished["y"], s=180, marker="*", color="C3", edgecolor="black",
               linewidth=0.6, zorder=5,
               label=model_label("squishednet", ordered_models(results).get("squishednet") or {}))
  models = ordered_models(results)
  for point in drawn["members"]:  # a --targets family's other members
    ax.errorbar([point["x"]], [point["y"]], xerr=_xerr([point]), ecolor="C3", zorder=5, **errors)
    ax.scatter(point["x"], point["y"], s=90, marker="*", color="C1", edgecolor="black",
               linewidth=0.5, zorder=5)
    ax.annotate(short_label(point["name"], models.get(point["name"]) or {}),
                (point["x"], point["y"]), textcoords="offset points", xytext=(6, 5), fontsize=7,
                color="C1")
  for index, point in enumerate(drawn["baselines"]):
    colour = _BASELINE_COLOURS[index % len(_BASELINE_COLOURS)]
    ax.errorbar([point["x"]], [point["y"]], xerr=_xerr([point]), ecolor=colour, zorder=4,
                **errors)
    ax.scatter(point["x"], point["y"], s=60, marker=_MARKERS[index % len(_MARKERS)],
               color=colour, edgecolor="black", linewidth=0.5, zorder=4,
               label=model_label(point["name"], models.get(point["name"]) or {}))
    ax.annotate(short_label(point["name"], models.get(point["name"]) or {}),
                (point["x"], point["y"]),
                textcoords="offset points", xytext=(6, -10 if index % 2 == 0 else 5),
                fontsize=7, color=colour)

  for group in ([drawn["ancestor"], squished], candidates, ladder, drawn["baselines"],
                drawn["members"]):
    for p in group:
      if p:
        xs += [p["low"], p["high"]]
  dataset = (results.get("dataset") or {}).get("name")
  ax.set_title(f"{results.get('run_name') or 'run'}: LiteRT latency vs {split} top-1"
               + (f" ({dataset})" if dataset else ""))
  pixels = run_pixels_text(results)
  ax.set_xlabel("LiteRT fp32 latency, batch 1" + (f", {pixels}" if pixels else "")
                + " (ms, ancestor's ms ÷ interleaved speed-up, log scale)")
  ax.set_ylabel(f"{split} top-1")
  ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
  if xs:
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(ticker.LogLocator(base=10, subs=(1.5, 3.0, 4.0, 7.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7,
              frameon=False)
  else:
    ax.text(0.5, 0.5, "no network has both a measured latency and a top-1", transform=ax.transAxes,
            ha="center", va="center", color="0.4")
  ax.margins(y=0.08)
  ax.grid(True, which="both", alpha=0.3)
  fig.tight_layout()
  return fig
