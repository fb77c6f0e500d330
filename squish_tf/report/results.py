"""Reading results.json for the report: models in table order, their labels, speed-ups,
accuracy drops, the lineage and the comparisons the prose states."""

from typing import Any, Dict, List, Mapping, Optional, Tuple

from squish_tf.export import formats as formats_lib
from squish_tf.records import CandidateResult, ModelResult, Results
from squish_tf.report.format import DASH, finite_number, fmt_ratio
from squish_tf.train import baseline_registry

# The two models a run is about, first in every table; the baselines follow in their
# registry's order (`squish_tf.train.baseline_registry`, which also names them).
_LEAD_LABELS = {"ancestor": "Ancestor", "squishednet": "SquishedNet"}


def accuracy_split(results: Mapping[str, Any]) -> str:
  """The split every reported accuracy is on: "test", or "validation" for older results."""
  return str(Results.coerce(results).accuracy_split or "validation")


def is_on_test(results: Mapping[str, Any]) -> bool:
  return accuracy_split(results) == "test"


def top1_header(results: Mapping[str, Any], what: str = "top-1") -> str:
  """ "Test top-1" (or "Validation top-1" for older results)."""
  return f"{accuracy_split(results).capitalize()} {what}"


def model_order() -> Tuple[str, ...]:
  """Table order: the ancestor, the SquishedNet, then every registered baseline."""
  return tuple(_LEAD_LABELS) + baseline_registry.names()


def ordered_models(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  """The compared models in table order (`model_order`, then the rest as given)."""
  models = {name: dict(entry or {}) for name, entry in (results.get("models") or {}).items()}
  ordered = {name: models[name] for name in model_order() if name in models}
  ordered.update({name: entry for name, entry in models.items() if name not in ordered})
  return ordered


def model_label(name: str, entry: Mapping[str, Any]) -> str:
  return (ModelResult.coerce(entry).label or _LEAD_LABELS.get(name)
          or baseline_registry.label(name) or name)


def short_label(name: str, entry: Mapping[str, Any]) -> str:
  """ "SquishedNet", "Width-scaled, distilled": a model's name in a narrow table or a figure."""
  return (_LEAD_LABELS.get(name) or baseline_registry.short_label(name)
          or model_label(name, entry))


def rivals() -> Tuple[Tuple[str, str], ...]:
  """(name, how a sentence names it) of the baselines the summary weighs the SquishedNet
  against, in order."""
  return tuple((baseline.name, baseline.rival) for baseline in baseline_registry.rivals())


def ship_order(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
  """The what-to-ship table's rows: a family's other members (lineage order), the SquishedNet,
  the ancestor, then the rest in table order."""
  members = [name for name, entry in models.items()
             if ModelResult.coerce(entry).kind == "member"]
  first = members + [name for name in ("squishednet", "ancestor") if name in models]
  return first + [name for name in models if name not in first]


def exported_formats(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
  """Every file some model's `formats` records: the registry's order (`formats.artefact_order`),
  then the others as given."""
  found: List[str] = []
  for entry in models.values():
    for name in ModelResult.coerce(entry).formats or {}:
      if name not in found:
        found.append(name)
  known = [name for name in formats_lib.artefact_order() if name in found]
  return known + [name for name in found if name not in known]


def file_label(artefact: str) -> str:
  """ "TFLite int8": what a reader calls an exported file (its format's label), else its name."""
  return formats_lib.artefact_label(artefact)


def batch_sizes(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
  sizes = set()
  for model in (ModelResult.coerce(entry) for entry in models.values()):
    for speeds in (model.litert_images_per_sec, model.speedup_vs_ancestor):
      sizes.update(str(size) for size in (speeds or {}))
  return sorted(sizes, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def measured_speedup(entry: Mapping[str, Any], ancestor: Mapping[str, Any], size: str,
             key: str = "speedup_vs_ancestor") -> Optional[float]:
  """The measured speed-up over the ancestor (the interleaved pair's median).

  Results that record speed-ups (`key` present) are never second-guessed: a
  pair that was not measured stays unknown. Only older results without the
  field fall back to the ratio of the two separately timed speeds.
  """
  model, size = ModelResult.coerce(entry), size_key(size)
  speedups = getattr(model, key)
  if isinstance(speedups, Mapping) or key != "speedup_vs_ancestor":
    return finite_number((speedups or {}).get(size))
  own = finite_number((model.litert_images_per_sec or {}).get(size))
  base = finite_number((ModelResult.coerce(ancestor).litert_images_per_sec or {}).get(size))
  return own / base if own is not None and base else None


def size_key(size: Any) -> Any:
  """A batch or image size as the records key it (an int; "1" -> 1)."""
  return int(size) if isinstance(size, str) and size.isdigit() else size


def speedup_range(entry: Mapping[str, Any], size: str,
                   key: str = "speedup_vs_ancestor") -> Optional[Tuple[float, float, Any]]:
  """(min, max, rounds) of the per-round ratios behind a speed-up, when measured interleaved."""
  return _range((getattr(ModelResult.coerce(entry), f"{key}_range") or {}).get(size_key(size)))


def _range(spread: Any) -> Optional[Tuple[float, float, Any]]:
  """(min, max, rounds) of a recorded {"min", "max", "rounds"}, or None if either end is unknown."""
  if not isinstance(spread, Mapping):
    return None
  low, high = finite_number(spread.get("min")), finite_number(spread.get("max"))
  if low is None or high is None:
    return None
  return low, high, spread.get("rounds")


def _ratio_cell(value: Optional[float], spread: Optional[Tuple[float, float, Any]]) -> str:
  """ "1.65× [1.52–1.71]": a speed-up and its rounds' min–max; the bare ratio without both."""
  if value is None or spread is None:
    return fmt_ratio(value)
  return f"{value:.2f}× [{spread[0]:.2f}–{spread[1]:.2f}]"


def speedup_cell(entry: Mapping[str, Any], ancestor: Mapping[str, Any], size: str,
                  key: str = "speedup_vs_ancestor") -> str:
  """ "1.65× [1.52–1.71]": the median of the interleaved rounds' ratios and their min–max."""
  return _ratio_cell(measured_speedup(entry, ancestor, size, key), speedup_range(entry, size, key))


def speed_resolutions(models: Mapping[str, Mapping[str, Any]]) -> List[Tuple[str, str]]:
  """(image size, batch size) of every speed-up measured at another resolution, in order."""
  found = set()
  for entry in models.values():
    for image_size, by_batch in (ModelResult.coerce(entry).speedup_at_resolution or {}).items():
      for batch, value in (by_batch or {}).items():
        if finite_number(value) is not None:
          found.add((str(image_size), str(batch)))
  return sorted(found, key=lambda pair: (int(pair[0]) if pair[0].isdigit() else 0, pair[0],
                                         int(pair[1]) if pair[1].isdigit() else 0))


def resolution_speedup(entry: Mapping[str, Any], image_size: str, batch: str
                        ) -> Optional[float]:
  """The interleaved pair's median speed-up over the ancestor at another resolution."""
  by_image = ModelResult.coerce(entry).speedup_at_resolution or {}
  return finite_number((by_image.get(size_key(image_size)) or {}).get(size_key(batch)))


def resolution_cell(entry: Mapping[str, Any], image_size: str, batch: str) -> str:
  """ "3.10× [2.95–3.30]" at another resolution, or "–"."""
  by_image = ModelResult.coerce(entry).speedup_at_resolution_range or {}
  spread = (by_image.get(size_key(image_size)) or {}).get(size_key(batch))
  return _ratio_cell(resolution_speedup(entry, image_size, batch), _range(spread))


def run_pixels_text(results: Mapping[str, Any]) -> Optional[str]:
  """ "64 px": the run's image size, when known."""
  dataset = Results.coerce(results).dataset
  size = finite_number(dataset.image_size if dataset else None)
  return None if size is None else f"{size:.0f} px"


def drop_cell(top1: Any, ancestor_top1: Any) -> str:
  """The ancestor's top-1 minus a model's, in points (negative: a gain), as evolution measures."""
  top1, base = finite_number(top1), finite_number(ancestor_top1)
  if top1 is None or base is None:
    return DASH
  drop = 100 * (base - top1)
  return f"{0.0 if round(drop, 2) == 0 else drop:.2f}"


def candidates_by_id(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  """Candidates by id; of a retried candidate, the last attempt (the one selection saw)."""
  return {c.get("id"): c for c in results.get("candidates") or [] if isinstance(c, Mapping)}


def candidate_records(results: Mapping[str, Any]) -> Dict[str, CandidateResult]:
  """`candidates_by_id` as records."""
  return {c.id: c for c in Results.coerce(results).candidates}


def is_polished(results: Mapping[str, Any]) -> bool:
  """Whether a final stage made the SquishedNet from the evolved winner."""
  record = Results.coerce(results)
  squished = record.models.get("squishednet")
  return bool(record.polished) and squished is not None and not squished.is_empty()


def retrained(results: Mapping[str, Any]) -> bool:
  """Whether that final stage trained the winner's widths from scratch (--final_init=scratch)."""
  return is_polished(results) and Results.coerce(results).final_init == "scratch"


def final_word(results: Mapping[str, Any]) -> str:
  return "retrained" if retrained(results) else "polished"


# How the report and --final_init=best's reason name the two final trainings.
FINAL_WORDS = {"scratch": "the widths retrained from scratch",
               "inherit": "the polished inherited weights"}


def final_choice_sentence(results: Mapping[str, Any]) -> str:
  """With --final_init=best, which final training was kept and why; "" otherwise."""
  choice = Results.coerce(results).final_choice if is_polished(results) else None
  if not isinstance(choice, Mapping) or {choice.get("kept"), choice.get("other")} != set(
      FINAL_WORDS):
    return ""
  figures = choice.get("validation_top1") or {}
  other = choice["other"]

  def pct(init):
    value = figures.get(init)
    return f"{100 * float(value):.2f}%" if isinstance(value, (int, float)) else "n/a"

  return (f"`--final_init=best` trained both and kept {FINAL_WORDS[choice['kept']]} "
          f"({pct(choice['kept'])} validation top-1, against {pct(other)} for "
          f"{FINAL_WORDS[other]}): the choice reads the validation split only.")


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
  by_id = candidates_by_id(results)
  generations = results.get("generations") or []
  if generations:
    for generation in sorted(generations, key=lambda g: finite_number(g.get("generation")) or 0):
      chosen = by_id.get(generation.get("chosen"))
      if chosen:
        path.append(chosen)
  else:
    chosen = [c for c in by_id.values() if c.get("chosen")]
    path.extend(sorted(chosen, key=lambda c: finite_number(c.get("generation")) or 0))
  return path


def comparisons(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """The SquishedNet against each width-scaled baseline present, on the reported split.

  Returns:
    One dict per baseline in `results["models"]`: name, description, the two
    top-1 fractions (either may be None) and `points`, the SquishedNet's
    top-1 minus the baseline's in points (None when either is missing).
  """
  models = Results.coerce(results).models
  squished = models.get("squishednet")
  out = []
  for name, description in rivals():
    if name not in models:
      continue
    entry = models[name]
    own, theirs = finite_number(squished and squished.top1), finite_number(entry.top1)
    points = None if own is None or theirs is None else 100 * (own - theirs)
    out.append({"name": name, "description": description, "top1": own, "baseline_top1": theirs,
                "size_mb": finite_number(entry.size_mb), "points": points})
  return out


def comparison_phrase(comparison: Mapping[str, Any], bold: bool = True) -> str:
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
