"""The latency frontier: test top-1 against LiteRT latency for every measured network, its
staircases (the best top-1 available at or below each latency), and the verdicts against the
width multiplier and against the width ladder (the best ladder network at least as fast).

Latency here is comparable across points although no two were timed in one
session: every network (the candidates during evolution, the exported models in
the benchmark, a ladder's widths in its script) was timed interleaved with the
ancestor in its own session, and its speed-up over the ancestor there is what
survives the machine's load. Each point's latency is therefore

    latency_ms = ancestor_ms / speed-up (median of the interleaved rounds),

ancestor_ms being the ancestor's fp32 batch-1 latency the benchmark measured,
1000 / models["ancestor"]["litert_images_per_sec"]["1"]: every point is on the
benchmark's clock. The speed-up's min-max over the rounds becomes the latency's
spread. All figures are LiteRT fp32, batch 1, at the run's resolution.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from squish_tf.records import CandidateResult, ModelResult
from squish_tf.report import paired as paired_lib
from squish_tf.report.format import finite_number, join_words

KINDS = ("ancestor", "candidate", "squishednet", "member", "baseline", "ladder")
# The two uniform width multipliers the SquishedNet is judged against: matched on deployed
# size, and matched on measured latency (absent when within LATENCY_TOLERANCE of the first).
SIZE_MATCH, LATENCY_MATCH = "width_scaled", "width_scaled_latency"
LATENCY_TOLERANCE = 0.05


def ancestor_latency_ms(models: Mapping[str, Union[ModelResult, Mapping[str, Any]]]
                        ) -> Optional[float]:
  """The ancestor's fp32 batch-1 latency (ms) as the benchmark measured it, or None."""
  ancestor = ModelResult.coerce(models.get("ancestor"))
  speed = finite_number((ancestor.litert_images_per_sec or {}).get(1))
  return 1000.0 / speed if speed and speed > 0 else None


def _point(name: str, kind: str, top1: Any, size_mb: Any, speedup: Any, low: Any, high: Any,
           ancestor_ms: float, chosen: Optional[bool] = None) -> Optional[Dict[str, Any]]:
  """A frontier point, or None when the speed-up was not measured."""
  speedup = finite_number(speedup)
  if speedup is None or speedup <= 0:
    return None
  return {"name": name, "kind": kind, "top1": finite_number(top1),
          "latency_ms": ancestor_ms / speedup, "speedup": speedup,
          "speedup_min": finite_number(low), "speedup_max": finite_number(high),
          "size_mb": finite_number(size_mb), "chosen": chosen}


def frontier_points(models: Mapping[str, Union[ModelResult, Mapping[str, Any]]],
                    candidates: Sequence[Union[CandidateResult, Mapping[str, Any]]]
                    ) -> List[Dict[str, Any]]:
  """results.json's "frontier": every network with a measured speed-up over the ancestor.

  Args:
    models: results.json's "models" (the ancestor's `litert_images_per_sec`
      gives ancestor_ms; every model's `speedup_vs_ancestor["1"]` and
      `speedup_vs_ancestor_range["1"]` its point).
    candidates: the candidate records (results.json's "candidates", or the
      lineage's with `top1` replaced by the test figure); those without
      `measured_speedup` ({"median", "min", "max"} over the ancestor, LiteRT
      fp32 batch 1) are left out, and so are those timed in another
      `measured_format` (--latency_format=int8), which the fp32 models'
      speed-ups would not compare with.

  Returns:
    [{"name", "kind" (KINDS), "top1" (test), "latency_ms" (ancestor_ms /
      speed-up, see the module's docstring), "speedup" (median over the
      ancestor), "speedup_min", "speedup_max", "size_mb", "chosen" (candidates;
      None for models), for candidates "generation", and for the width
      ladder's rungs (kind "baseline") "width_multiplier", "channel_multiple"
      and "ladder": true}]: the ancestor, the exported models, then the
    candidates; [] without the ancestor's latency.
  """
  ancestor_ms = ancestor_latency_ms(models)
  if ancestor_ms is None:
    return []
  points = []
  for name, entry in models.items():
    model = ModelResult.coerce(entry)
    spread = (model.speedup_vs_ancestor_range or {}).get(1) or {}
    kind = model.kind if model.kind in KINDS else (
        name if name in ("ancestor", "squishednet") else "baseline")
    point = _point(name, kind, model.top1, model.size_mb,
                   (model.speedup_vs_ancestor or {}).get(1), spread.get("min"),
                   spread.get("max"), ancestor_ms)
    if point:
      points.append(point)
  points.sort(key=lambda p: p["kind"] != "ancestor")  # the ancestor first: the reference
  for point in points:  # the width ladder's rungs (--baselines=ladder) say their width
    model = ModelResult.coerce(models[point["name"]])
    if model.matched_on == "ladder":
      point.update(width_multiplier=model.width_multiplier,
                   channel_multiple=model.channel_multiple, ladder=True)
  for c in (CandidateResult.coerce(record) for record in candidates):
    if c.has("measured_format") and c.measured_format != "fp32":
      continue  # timed as int8 (--latency_format=int8): not on the fp32 models' clock
    measured = c.measured_speedup
    if isinstance(measured, Mapping):
      median, low, high = measured.get("median"), measured.get("min"), measured.get("max")
    else:  # a bare median
      median, low, high = measured, None, None
    point = _point(str(c.id), "candidate", c.top1, c.size_mb, median, low, high, ancestor_ms,
                   chosen=bool(c.chosen))
    if point and (c.status == "ok" or not c.has("status")):
      point["generation"] = c.generation
      points.append(point)
  return points


def frontier_of(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The run's frontier: results.json's "frontier", or for results written before it
  existed, the same points built from its models and candidates."""
  recorded = results.get("frontier")
  if isinstance(recorded, list):
    return [dict(p) for p in recorded if isinstance(p, Mapping)]
  candidates = [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]
  return frontier_points(results.get("models") or {}, candidates)


def ladder_of(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The width ladder's points with a latency (ms), by latency; [] without a ladder.

  The job's rungs (--baselines=ladder: frontier points of kind "baseline" with
  "ladder": true), then results.json's optional "ladder" of older results (a
  benchmark script added it: kind "ladder", with "width_multiplier"). A point
  without `latency_ms` gets one from its speed-up, as the frontier's.
  """
  ancestor_ms = ancestor_latency_ms(results.get("models") or {})
  rungs = [p for p in frontier_of(results) if p.get("ladder")]
  out = []
  for point in rungs + [dict(p, kind="ladder") for p in results.get("ladder") or []
                        if isinstance(p, Mapping)]:
    point = dict(point)
    latency = finite_number(point.get("latency_ms"))
    speedup = finite_number(point.get("speedup"))
    if latency is None and speedup and ancestor_ms:
      latency = ancestor_ms / speedup
    if latency is not None and latency > 0:
      point["latency_ms"] = latency
      out.append(point)
  return sorted(out, key=lambda p: p["latency_ms"])


def staircase(points: Sequence[Mapping[str, Any]], right: Any = None
              ) -> Tuple[List[float], List[float]]:
  """The best top-1 available at or below each latency: the corners of a step line.

  Args:
    points: frontier points; those without a finite latency or top-1 are skipped.
    right: where the last step ends (a latency; None or not past the slowest corner: it
      ends there).

  Returns:
    (latencies, top-1s) of the corners, by latency: a point is a corner when it is more
    accurate than every point at least as fast, and each top-1 holds from its latency to
    the next corner's (matplotlib's `step(..., where="post")`).
  """
  known = sorted((x, y) for x, y in ((finite_number(p.get("latency_ms")),
                                      finite_number(p.get("top1"))) for p in points)
                 if x is not None and y is not None)
  xs: List[float] = []
  ys: List[float] = []
  for x, y in known:
    if ys and y <= ys[-1]:
      continue  # a faster point is at least as accurate
    if xs and x == xs[-1]:
      ys[-1] = y
    else:
      xs.append(x)
      ys.append(y)
  end = finite_number(right)
  if xs and end is not None and end > xs[-1]:
    xs.append(end)
    ys.append(ys[-1])
  return xs, ys


def ladder_verdict(point: Mapping[str, Any], ladder: Sequence[Mapping[str, Any]],
                   test_correct: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
  """One network against the width ladder: the best ladder network at least as fast.

  No interpolation: only ladder networks whose latency is at most `point`'s count, and of
  those the most accurate (the faster on a tie); a more accurate but slower one is not
  available at `point`'s budget.

  Args:
    point: a frontier point ("name", "latency_ms", "top1"): the SquishedNet, or any one
      network judged (a family's member).
    ladder: the ladder's points (`ladder_of`).
    test_correct: results.json's "test_correct", to pair the two networks' test outcomes.

  Returns:
    {"name", "latency_ms", "top1" (the point's), "rival" (the ladder point, or None when
    none is at least as fast), "points" (100 x (top1 - the rival's top-1); None without
    both), "rungs" (how many ladder points have a latency), "fastest" (the fastest of
    them), "paired" (`paired.paired_of` of the point and its rival: the difference's 95%
    interval and McNemar p; None without both networks' per-image outcomes)}; None without a
    ladder or a latency for `point`.
  """
  latency = finite_number(point.get("latency_ms"))
  timed = [p for p in ladder if finite_number(p.get("latency_ms")) is not None]
  if latency is None or not timed:
    return None
  fast = [p for p in timed if finite_number(p.get("latency_ms")) <= latency
          and finite_number(p.get("top1")) is not None]
  rival = max(fast, key=lambda p: (finite_number(p.get("top1")),
                                   -finite_number(p.get("latency_ms"))), default=None)
  own = finite_number(point.get("top1"))
  points = None if rival is None or own is None else 100 * (own - finite_number(rival["top1"]))
  paired = None if rival is None else paired_lib.paired_of(
      test_correct, str(point.get("name")), str(rival.get("name")))
  return {"name": point.get("name"), "latency_ms": latency, "top1": own, "rival": rival,
          "points": points, "paired": paired, "rungs": len(timed),
          "fastest": min(timed, key=lambda p: finite_number(p.get("latency_ms")))}


def _ladder_name(point: Mapping[str, Any]) -> str:
  """A ladder point's name, with its width multiplier unless the name says it."""
  multiplier = finite_number(point.get("width_multiplier"))
  name = str(point.get("name"))
  if multiplier is None or any(f"{multiplier:{f}}" in name for f in (".2f", "g")):
    return name
  return f"{name} (width ×{multiplier:.2f})"


def ladder_sentence(verdict: Optional[Mapping[str, Any]], subject: str = "the SquishedNet",
                    split: str = "test") -> Optional[str]:
  """`ladder_verdict` in words, for the console and the report; None without a verdict."""
  if not verdict:
    return None
  rungs = verdict["rungs"]
  head = (f"Against the width ladder ({rungs} uniform width{'s' if rungs != 1 else ''}), "
          f"{subject} at {verdict['latency_ms']:.3f} ms")
  rival = verdict["rival"]
  if rival is None:
    fastest = verdict["fastest"]
    return (f"{head} has no rival: no ladder network with a {split} top-1 is at least as fast "
            f"(the fastest, {_ladder_name(fastest)}, takes "
            f"{finite_number(fastest.get('latency_ms')):.3f} ms).")
  speedup = finite_number(rival.get("speedup"))
  where = (f"{finite_number(rival['latency_ms']):.3f} ms"
           + (f", {speedup:.2f}x over the ancestor" if speedup else ""))
  points = verdict["points"]
  if points is None:
    outcome = "is not comparable on top-1 (it has none)"
  elif round(points, 2) == 0:
    outcome = "is as accurate (+0.00 points)"
  else:
    outcome = (f"is {points:+.2f} points more accurate" if points > 0
               else f"is {-points:.2f} points less accurate")
  outcome += paired_lib.noise_text(verdict.get("paired"))
  return (f"{head} {outcome} than the best ladder network at least as fast, "
          f"{_ladder_name(rival)} ({where}, {100 * finite_number(rival['top1']):.2f}% "
          f"{split} top-1).")


def member_labels(results: Mapping[str, Any]) -> Dict[str, str]:
  """{model name: its budgets ("1.5x", "2x+0.8MB")} of a family's members, the SquishedNet's
  included; {} for a run without --targets or --target_* (results.json's "family")."""
  family = results.get("family") or {}
  return {str(m.get("name")): "+".join(m.get("labels") or []) or "deepest"
          for m in family.get("members") or [] if isinstance(m, Mapping)}


def no_ladder_sentence(results: Mapping[str, Any]) -> Optional[str]:
  """For a family of two or more budgets (--targets) without a width ladder: that no member
  is judged against one, and the flag that adds it (the run's identity leaves --baselines out,
  so a re-run with it resumes and trains only the rungs); None otherwise."""
  family = results.get("family") or {}
  if len(family.get("targets") or []) < 2 or ladder_of(results):
    return None
  return ("No width ladder was trained in this run, so no member of the family is judged "
          "against the best uniform width at least as fast: the same command with "
          "--baselines=ladder keeps what this run trained and adds one (one training per rung, "
          "each as long as a baseline's).")


def family_ladder_sentences(results: Mapping[str, Any], split: str = "test") -> List[str]:
  """Each member of a family of two or more against the width ladder, in lineage order (the
  SquishedNet last); for a family of one, the SquishedNet's (`squishednet_ladder_sentence`).
  A family of two or more budgets without a ladder gets `no_ladder_sentence`."""
  missing = no_ladder_sentence(results)
  if missing:
    return [missing]
  labels = member_labels(results)
  if len(labels) < 2:
    said = squishednet_ladder_sentence(results, split)
    return [said] if said else []
  points = {p.get("name"): p for p in frontier_of(results)
            if p.get("kind") in ("member", "squishednet")}
  ladder = ladder_of(results)
  out = []
  for name, budget in labels.items():
    if name in points:
      subject = (f"the {budget} member" + (" (the SquishedNet)" if name == "squishednet" else ""))
      said = ladder_sentence(ladder_verdict(points[name], ladder, results.get("test_correct")),
                             subject=subject, split=split)
      if said:
        out.append(said)
  return out


def squishednet_ladder_sentence(results: Mapping[str, Any], split: str = "test"
                                ) -> Optional[str]:
  """The SquishedNet against the width ladder (`ladder_verdict`, `ladder_sentence`); None
  without a ladder or a SquishedNet latency."""
  squished = next((p for p in frontier_of(results) if p.get("kind") == "squishednet"), None)
  if squished is None:
    return None
  return ladder_sentence(ladder_verdict(squished, ladder_of(results), results.get("test_correct")),
                         split=split)


def _ratio(squished: Mapping[str, Any], rival: Mapping[str, Any]) -> Optional[float]:
  """The SquishedNet's batch-1 speed over the rival's: the ratio of their speed-ups over the
  ancestor (each measured interleaved with the ancestor)."""
  own = finite_number((squished.get("speedup_vs_ancestor") or {}).get("1"))
  theirs = finite_number((rival.get("speedup_vs_ancestor") or {}).get("1"))
  return own / theirs if own and theirs else None


def _points_text(squished: Mapping[str, Any], rival: Mapping[str, Any],
                 paired: Optional[Mapping[str, Any]] = None) -> str:
  own, theirs = finite_number(squished.get("top1")), finite_number(rival.get("top1"))
  if own is None or theirs is None:
    return "not comparable on top-1 (one of them has none)"
  points = 100 * (own - theirs)
  if round(points, 2) == 0:
    return "as accurate (+0.00 points)" + paired_lib.noise_text(paired)
  return (f"+{points:.2f} points more accurate" if points > 0 else (
      f"{-points:.2f} points less accurate")) + paired_lib.noise_text(paired)


def _outcome(squished: Mapping[str, Any], rival: Mapping[str, Any]) -> Optional[str]:
  own, theirs = finite_number(squished.get("top1")), finite_number(rival.get("top1"))
  if own is None or theirs is None:
    return None
  points = round(100 * (own - theirs), 2)
  return "wins" if points > 0 else "loses" if points < 0 else "ties"


def _rival_name(name: str, rival: Mapping[str, Any]) -> str:
  size = finite_number(rival.get("size_mb"))
  return f"{name}, {size:.3f} MB" if size is not None else name


def verdict_sentence(results: Mapping[str, Any]) -> Optional[str]:
  """One sentence: the SquishedNet against the uniform width multiplier at equal size
  (width_scaled) and at equal latency (width_scaled_latency), with who wins and by how much.

  At equal size it gives the test top-1 difference in points and the speed
  ratio SquishedNet / width_scaled (their batch-1 speed-ups over the
  ancestor); at equal latency the top-1 difference. Without
  width_scaled_latency, width_scaled answers both when it runs within
  LATENCY_TOLERANCE of the SquishedNet's speed (the job then trains no second
  baseline); if the measured ratio says otherwise the sentence says so.

  Returns:
    The sentence, or None without a SquishedNet or either baseline.
  """
  models = results.get("models") or {}
  squished = models.get("squishednet")
  size_rival, latency_rival = models.get(SIZE_MATCH), models.get(LATENCY_MATCH)
  if not isinstance(squished, Mapping) or not (size_rival or latency_rival):
    return None
  clauses, outcomes = [], []

  def paired_of(name: str) -> Optional[Dict[str, Any]]:
    return paired_lib.paired_of(results.get("test_correct"), "squishednet", name)

  if isinstance(size_rival, Mapping):
    ratio = _ratio(squished, size_rival)
    speed = f" and {ratio:.2f}x as fast" if ratio is not None else ""
    clauses.append(f"at equal size ({_rival_name(SIZE_MATCH, size_rival)}) the SquishedNet is "
                   f"{_points_text(squished, size_rival, paired_of(SIZE_MATCH))}{speed}")
    outcomes.append(("at equal size", _outcome(squished, size_rival)))
  if isinstance(latency_rival, Mapping):
    subject = "it" if clauses else "the SquishedNet"
    clauses.append(f"at equal latency ({_rival_name(LATENCY_MATCH, latency_rival)}) {subject} "
                   f"is {_points_text(squished, latency_rival, paired_of(LATENCY_MATCH))}"
                   f"{_match_text(latency_rival)}")
    outcomes.append(("at equal latency", _outcome(squished, latency_rival)))
  else:
    ratio = _ratio(squished, size_rival)
    if ratio is not None and abs(ratio - 1) > LATENCY_TOLERANCE:
      clauses.append(f"at equal latency these results hold no latency-matched baseline "
                     f"({LATENCY_MATCH} absent, and {SIZE_MATCH} runs at {1 / ratio:.2f}x "
                     "the SquishedNet's speed)")
    else:
      clauses.append(f"at equal latency {SIZE_MATCH} is within "
                     f"{100 * LATENCY_TOLERANCE:.0f}% of the SquishedNet's latency too, so it "
                     "answers both")
      outcomes.append(("at equal latency", _outcome(squished, size_rival)))
  verbs = {"wins": [], "loses": [], "ties": []}
  for where, outcome in outcomes:
    if outcome:
      verbs[outcome].append(where)
  said = [f"{verb} {' and '.join(wheres)}" for verb, wheres in verbs.items() if wheres]
  score = f", the SquishedNet {join_words(said)}" if said else ""
  return f"Against the width multiplier{score}: " + "; ".join(clauses) + "."


def _match_text(rival: Mapping[str, Any]) -> str:
  """How close the latency match came, when it missed the tolerance: the reader must know the
  baseline was not quite of equal latency (and which way)."""
  match = rival.get("latency_match") or {}
  ratio = finite_number(match.get("ratio"))
  if ratio is None or abs(ratio - 1) <= LATENCY_TOLERANCE:
    return ""
  return (f" (the closest match ran {ratio:.2f}x the SquishedNet's speed, outside "
          f"{100 * LATENCY_TOLERANCE:.0f}%)")


def verdict_paragraph(results: Mapping[str, Any], split: str = "test") -> Optional[str]:
  """The report's verdicts under its opening: against the width multiplier
  (`verdict_sentence`), then against the width ladder; None without either."""
  said = [s for s in [verdict_sentence(results)] + family_ladder_sentences(results, split) if s]
  return " ".join(said) or None


def frontier_caption(results: Mapping[str, Any], split: str = "test") -> str:
  """report.md's words under frontier.png: what a latency is, and what the staircases are."""
  frontier = frontier_of(results)
  if not frontier:
    return ("No network has a measured latency in these results (the benchmark did not time "
            "the ancestor at batch 1), so the frontier is empty.")
  ancestor_ms = next((p["latency_ms"] for p in frontier if p.get("kind") == "ancestor"), None)
  measured = sum(1 for p in frontier if p.get("kind") == "candidate")
  lines = [f"LiteRT fp32 latency at batch 1 and the run's resolution against {split} top-1. "
           "Every network was timed interleaved with the ancestor in its own session (the "
           "candidates during evolution, the exported models in the benchmark), so a latency "
           "here is the ancestor's benchmark latency"
           + (f" ({ancestor_ms:.3f} ms)" if ancestor_ms else "")
           + " divided by the network's median speed-up over the ancestor, and the error bars "
           "are the min–max of its per-round speed-ups: every point is on the benchmark's "
           "clock. " + (f"{measured} candidate{'s' if measured != 1 else ''} measured; the "
                        "line joins the chosen lineage from the ancestor." if measured else
                        "No candidate was timed during evolution in these results.")]
  steps = (f"The steps are the best {split} top-1 available at or below each latency: solid, "
           "the evolved networks' (the ancestor, the timed candidates, the SquishedNet)")
  ladder = ladder_of(results)
  if ladder:
    tiles = sorted({int(p["channel_multiple"]) for p in ladder
                    if finite_number(p.get("channel_multiple"))})
    aligned = (f", every channel count a multiple of {join_words([str(t) for t in tiles])}"
               if tiles else "")
    steps += (f"; dashed, the width ladder's ({len(ladder)} uniform "
              f"width{'s' if len(ladder) != 1 else ''}{aligned}, and the ancestor). A network "
              "is judged against the best ladder network at least as fast, never against a "
              "line drawn between two")
  lines.append(steps + ".")
  return " ".join(lines)
