"""What the console prints: a candidate and a generation as evolution reports them, the
benchmark's table, the speed pairs and the run's one-paragraph summary."""

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from squish_tf.records import Candidate, Generation, Results
from squish_tf.report.format import (
  DASH,
  finite_number,
  fmt_count,
  fmt_mb,
  fmt_percent,
  fmt_reason,
  fmt_speed,
)
from squish_tf.report.frontier import family_ladder_sentences, verdict_sentence
from squish_tf.report.results import (
  accuracy_split,
  comparison_phrase,
  comparisons,
  final_word,
  is_polished,
  measured_speedup,
  ordered_models,
  resolution_speedup,
  speed_resolutions,
)


def benchmark_listener(log: Callable[[str], None] = print) -> Callable[[Dict[str, Any]], None]:
  """The benchmark's events (`squish_tf.bench.benchmark.benchmark_models`' listener) as lines
  to `log`: a model's name, a line per artefact, each pair session and pair."""

  def listener(event: Dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "model":
      log(f"{event['name']}:")
    elif kind == "artefact":
      log(artefact_line(event["name"], event["result"]))
    elif kind == "pairs":
      where = (f" at {event['image_size']} px, fp32 rebuilt with the same weights,"
               if event.get("image_size") else ",")
      log(f"speed-ups{where} interleaved ({event['rounds']} rounds, {event['num_threads']} "
          "threads):")
    elif kind == "pair":
      log(f"  b{event['batch_size']} {event['pair']}: {format_ratio(event['stats'])}")
    elif kind == "rebuild_error":
      log(f"  {event['model']} at {event['image_size']} px: {event['error']}")

  return listener


def artefact_line(name: str, result: Mapping[str, Any]) -> str:
  speeds = ", ".join(
      f"b{size} " + (f"{stats['images_per_sec']:.1f} img/s" if "images_per_sec" in stats
                     else "unsupported")
      for size, stats in result["batches"].items())
  top1 = "–" if result.get("top1") is None else f"{100 * result['top1']:.2f}%"
  return f"  {name:<16} {result['bytes'] / 1e6:8.3f} MB  top-1 {top1:>7}  {speeds}"


def format_table(result: Mapping[str, Any]) -> str:
  """A fixed-width text table of a benchmark dict (one row per artefact)."""
  batch_sizes = [str(b) for b in result.get("settings", {}).get("batch_sizes", [])]
  if not batch_sizes:
    batch_sizes = sorted({size for entry in result.get("models", {}).values()
                          for art in entry.get("artefacts", {}).values()
                          for size in art.get("batches", {})}, key=int)
  header = ["model", "artefact", "MB", "top-1", "agree"]
  for size in batch_sizes:
    header += [f"b{size} img/s", f"b{size} p50 ms", f"b{size} p99 ms"]
  rows = [header]
  for model_name, entry in result.get("models", {}).items():
    for name, art in entry.get("artefacts", {}).items():
      row = [model_name, name, _num(art.get("bytes"), 1e-6, ".3f"),
             _num(art.get("top1"), 100, ".2f"), _num(art.get("agreement"), 100, ".1f")]
      for size in batch_sizes:
        stats = art.get("batches", {}).get(size) or {}
        latency = stats.get("latency_ms") or {}
        if "error" in stats:
          row += ["unsupported", "–", "–"]
        else:
          row += [_num(stats.get("images_per_sec"), 1, ".1f"), _num(latency.get("p50"), 1, ".3f"),
                  _num(latency.get("p99"), 1, ".3f")]
      rows.append(row)
    for name in entry.get("missing", []):
      rows.append([model_name, name, "not exported"] + [""] * (len(header) - 3))
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = []
  for index, row in enumerate(rows):
    cells = [cell.ljust(width) if i < 2 else cell.rjust(width)
             for i, (cell, width) in enumerate(zip(row, widths))]
    lines.append("  ".join(cells).rstrip())
    if index == 0:
      lines.append("  ".join("-" * width for width in widths))
  return "\n".join(lines)


def _num(value: Optional[float], factor: float, fmt: str) -> str:
  return "–" if value is None else format(value * factor, fmt)


def console_listener(event: Dict[str, Any]) -> None:
  """Prints one line per candidate and a table per generation."""
  if event["event"] == "candidate":
    print(format_candidate(event["record"], event["ancestor_top1"]), flush=True)
  elif event["event"] == "generation":
    print(format_generation(event["summary"], event["records"], event["ancestor_top1"]),
          flush=True)
  elif event["event"] == "deep":
    print(format_deep(event["record"], event["ancestor_top1"]), flush=True)


def format_candidate(record: Union[Mapping[str, Any], Candidate], ancestor_top1: float) -> str:
  """One console line per candidate."""
  c = Candidate.coerce(record)
  retry = f" (retry {c.attempt})" if c.attempt else ""
  head = f"gen {c.generation:3d} cand {c.candidate:2d}{retry}: "
  if c.status != "ok":
    return head + (f"DIVERGED (loss NaN) at {c.params:,} params; discarded, "
                   "a fresh draw replaces it")
  return head + (f"{c.params:>9,} params {c.size_mb:7.3f} MB "
                 f"{c.macs / 1e6:8.2f} M MACs  top-1 {c.top1:.4f} "
                 f"({100 * (c.top1 - ancestor_top1):+.2f} pts)  "
                 f"F {c.env_factor:.3f}  {c.wall_seconds:.1f}s{_refused(c)}")


def format_deep(record: Union[Mapping[str, Any], Candidate], ancestor_top1: float) -> str:
  """The line of a candidate's deeper fine-tune before a stop for accuracy."""
  c = Candidate.coerce(record)
  head = f"gen {c.generation:3d} cand {c.candidate:2d}: {c.deep_epochs} epochs deeper, "
  if c.deep_top1 is None:
    return head + "DIVERGED (loss NaN); its short fine-tune's weights stay"
  return head + (f"top-1 {c.deep_top1:.4f} ({100 * (c.deep_top1 - ancestor_top1):+.2f} pts, "
                 f"was {c.top1:.4f})  {c.deep_wall_seconds:.1f}s")


def _refused(candidate: Candidate) -> str:
  """Why a candidate can never be chosen beyond its accuracy: the microcontroller budgets."""
  over = (candidate.micro or {}).get("over")
  return f"  REFUSED, over the microcontroller budget: {'; '.join(over)}" if over else ""


def format_generation(summary: Union[Mapping[str, Any], Generation],
                      records: Sequence[Union[Mapping[str, Any], Candidate]],
                      ancestor_top1: float) -> str:
  """A summary table of one generation."""
  g = Generation.coerce(summary)
  lines = [f"generation {g.generation} (parent {g.parent}):",
           f"  {'candidate':<16} {'params':>10} {'size MB':>8} {'M MACs':>8} {'top-1':>7} "
           f"{'drop':>7}  status"]
  for r in (Candidate.coerce(record) for record in records):
    if r.status != "ok":
      lines.append(f"  {r.id:<16} {r.params:>10,} {r.size_mb:>8.3f} "
                   f"{r.macs / 1e6:>8.2f} {'-':>7} {'-':>7}  diverged")
      continue
    mark = "chosen" if r.id == g.chosen else (
        "over budget" if (r.micro or {}).get("over") else "")
    lines.append(f"  {r.id:<16} {r.params:>10,} {r.size_mb:>8.3f} "
                 f"{r.macs / 1e6:>8.2f} {r.top1:>7.4f} "
                 f"{100 * (ancestor_top1 - r.top1):>6.2f}p  {mark}")
  if g.stop_reason:
    lines.append(f"  stop: {g.stop_reason}")
  return "\n".join(lines)


def format_results_summary(results: Mapping[str, Any]) -> str:
  """A few lines for the console at the end of a run."""
  record = Results.coerce(results)
  models = ordered_models(results)
  ancestor = models.get("ancestor") or {}
  base_model = record.models.get("ancestor")
  split = accuracy_split(record)
  polished = ""
  if is_polished(record):  # with --final_init=best, the better of both on validation
    kept = ", the better on validation" if record.final_choice else ""
    polished = f" ({final_word(record)}{kept})"
  lines = [f"run {record.run_name or DASH} ({(record.dataset and record.dataset.name) or DASH}): "
           f"winner {record.winner or DASH}{polished}, {len(record.generations)} generations, "
           f"stop: {fmt_reason(record.stop_reason)}; accuracies are {split}-split top-1"]
  width = max([len(name) for name in models] + [8])
  for name, entry in models.items():
    model = record.models[name]
    line = (f"  {name:<{width}} {fmt_count(model.params):>10} params "
            f"{fmt_mb(model.size_mb):>7} MB  {split} top-1 {fmt_percent(model.top1):>7}"
            f"  LiteRT b1 {fmt_speed((model.litert_images_per_sec or {}).get(1)):>7} "
            "img/s")
    if name != "ancestor" and ancestor:
      size, base = finite_number(model.size_mb), finite_number(base_model.size_mb)
      top1, base_top1 = finite_number(model.top1), finite_number(base_model.top1)
      extras = []
      if size and base:
        extras.append(f"{base / size:.2f}× smaller")
      if top1 is not None and base_top1 is not None:
        extras.append(f"{100 * (top1 - base_top1):+.2f} points")
      speedup = measured_speedup(entry, ancestor, "1")
      if speedup is not None:
        extras.append(f"{speedup:.2f}× speed b1")
      for image, batch in speed_resolutions({name: entry}):
        extras.append(f"{resolution_speedup(entry, image, batch):.2f}× at {image} px b{batch}")
      if extras:
        line += "  (" + ", ".join(extras) + ")"
    lines.append(line)
  if models.get("squishednet"):
    for comparison in comparisons(results):
      lines.append(f"  squishednet vs {comparison['name']}: it "
                   f"{comparison_phrase(comparison, bold=False)} on {split} top-1")
    for verdict in [verdict_sentence(results)] + family_ladder_sentences(results, split):
      if verdict:
        lines.append(f"  {verdict}")
  return "\n".join(lines)


def format_ratio(stats: Mapping[str, Any]) -> str:
  """"1.65x [1.52-1.71] (7 rounds)", or the error."""
  if "error" in stats:
    return f"unsupported ({stats['error']})"
  return (f"{stats['ratio_median']:.2f}x [{stats['ratio_min']:.2f}-{stats['ratio_max']:.2f}] "
          f"({stats['rounds']} rounds)")


def format_pairs(result: Mapping[str, Any]) -> str:
  """Fixed-width text tables of the pairs of a benchmark dict (one row per pair).

  The files as benchmarked first, then one table per entry of "resolutions"
  (the fp32 files rebuilt at that size).
  """
  tables = [_pairs_table(result)] if result.get("pairs") else []
  for image_size, measured in (result.get("resolutions") or {}).items():
    if measured.get("pairs"):
      tables.append(_pairs_table(measured, f" at {image_size} px (fp32, same weights)"))
  return "\n\n".join(tables)


def _pairs_table(result: Mapping[str, Any], where: str = "") -> str:
  pairs = result.get("pairs") or {}
  sizes = sorted({size for by_size in pairs.values() for size in by_size}, key=int)
  header = [f"pair{where} (speed of the first over the second, interleaved)"] + [
      f"b{size} median [min-max]" for size in sizes]
  rows = [header]
  for name, by_size in pairs.items():
    row = [name]
    for size in sizes:
      stats = by_size.get(size)
      if not stats:
        row.append("–")
      elif "error" in stats:
        row.append("unsupported")
      else:
        row.append(f"{stats['ratio_median']:.2f}x [{stats['ratio_min']:.2f}-"
                   f"{stats['ratio_max']:.2f}]")
    rows.append(row)
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = []
  for index, row in enumerate(rows):
    lines.append("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
    if index == 0:
      lines.append("  ".join("-" * width for width in widths))
  load = [(size, batch.get("load_average") or {})
          for size, batch in ((result.get("interleaved") or {}).get("batches") or {}).items()]
  loads = [f"b{size} {_load(l.get('start'))}->{_load(l.get('end'))}" for size, l in load]
  if loads:
    lines.append("load average (1 min) during the sessions: " + ", ".join(loads))
  return "\n".join(lines)


def _load(value: Optional[float]) -> str:
  return "?" if value is None else f"{value:.2f}"
