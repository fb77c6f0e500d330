"""The report's sections: what to ship, generations, candidates, why evolution stopped, the
latency model, the figure's caption, the paper's figures and stage times."""

from typing import Any, List, Mapping, Union

from squish_tf.layout import STAGES
from squish_tf.records import CandidateResult, Generation, ModelResult, Results
from squish_tf.report.format import (
  DASH,
  finite_number,
  fmt_count,
  fmt_duration,
  fmt_images,
  fmt_kb_mb,
  fmt_macs_m,
  fmt_mb,
  fmt_percent,
  fmt_reason,
  fmt_speed,
  fmt_text,
  fmt_value,
  markdown_table,
)
from squish_tf.report.frontier import member_labels
from squish_tf.report.pareto import PAPER_NOTE
from squish_tf.report.results import (
  accuracy_split,
  candidate_records,
  drop_cell,
  final_word,
  is_on_test,
  is_polished,
  ordered_models,
  retrained,
  run_pixels_text,
  ship_order,
  short_label,
  speedup_cell,
  speedup_range,
  top1_header,
)

SHIP_HEADING = "## What to ship"
SHIP_SPEEDUP_BATCH = "1"


def arena_cell(entry: Mapping[str, Any]) -> str:
  """The TFLM tensor arena the int8 file needs: "52 KB"; "cannot run" when TFLM could not run
  it; "–" when the microcontroller check was not made."""
  micro = entry.get("micro")
  if not isinstance(micro, Mapping) or not micro:
    return DASH
  arena = finite_number(micro.get("arena_bytes"))
  if arena is not None:
    return fmt_kb_mb(arena)
  return "cannot run" if micro.get("unsupported_op") or micro.get("error") else DASH


def ship_section(results: Mapping[str, Any]) -> str:
  """A heading and one narrow row per model: what a deployment needs to decide, nothing else.

  The SquishedNet first, then the ancestor and the baselines: deployed fp32 size, the int8
  .tflite's bytes, top-1, the measured fp32 speed-up over the ancestor at batch 1 and the
  run's resolution (median [min–max] of the interleaved rounds), and the TFLM arena.
  """
  models = ordered_models(results)
  if not models:
    return ""
  ancestor = models.get("ancestor") or {}
  pixels = run_pixels_text(results)
  batch = SHIP_SPEEDUP_BATCH
  speed = f"Speed-up ({pixels}, batch {batch})" if pixels else f"Speed-up (batch {batch})"
  header = ["Network", "Size (MB, fp32)", "int8 file", top1_header(results), speed,
            "TFLM arena"]
  rows = []
  budgets = member_labels(results)
  budgets = budgets if len(budgets) > 1 else {}
  for name in ship_order(models):
    entry = models[name]
    label = fmt_text(f"SquishedNet {budgets[name]}" if name in budgets
                     else short_label(name, entry))
    rows.append([f"**{label}**" if name in budgets or name == "squishednet" else label,
                 fmt_mb(entry.get("size_mb")),
                 fmt_kb_mb(entry.get("tflite_int8_bytes")), fmt_percent(entry.get("top1")),
                 speedup_cell(entry, ancestor, batch), arena_cell(entry)])
  rounds = sorted({spread[2] for entry in models.values()
                   for spread in [speedup_range(entry, batch)] if spread and spread[2]})
  how = (f"the median of {'/'.join(str(r) for r in rounds)} interleaved rounds' ratios "
         "[min–max]" if rounds else "measured on this machine's CPU")
  note = ("Size: deployed float32 weights (params × 4 bytes). int8 file: the int8 .tflite "
          "(KB = 1,024 bytes). Speed-up: the model's fp32 .tflite over the ancestor's with "
          f"LiteRT at batch {batch}, {how}. TFLM arena: the tensor arena TensorFlow Lite for "
          f"Microcontrollers needs to run the int8 file. {DASH} = not measured; the tables "
          "below hold the rest.")
  unmet = (results.get("family") or {}).get("unmet") or []
  if unmet:
    note += (f" Not reached within the accuracy budget: {', '.join(unmet)} (evolution stopped "
             "before a chosen offspring met it; the deepest member is the SquishedNet).")
  return "\n\n".join([SHIP_HEADING, markdown_table(header, rows), note])


def _generations(record: Results) -> List[Generation]:
  """The generation summaries in order; reconstructed from the candidates for older results."""
  generations = record.generations
  if not generations:
    candidates = record.candidates
    numbers = sorted({c.generation for c in candidates if c.generation is not None})
    generations = [Generation(generation=g, chosen=next(
        (c.id for c in candidates if c.generation == g and c.chosen), None)) for g in numbers]
  return sorted(generations, key=lambda g: finite_number(g.generation) or 0)


def generations_table(results: Mapping[str, Any]) -> str:
  record = Results.coerce(results)
  candidates = record.candidates
  generations = _generations(record)
  if not generations and not candidates:
    return "No generations in these results."
  by_id = candidate_records(record)
  on_test = is_on_test(results)
  split = accuracy_split(results)
  header = ["Gen", "Parent", "Candidates", "Chosen", "Params (deployed)", "Size (MB)",
            "MACs (M)"]
  header += ["Val top-1 (selection)"] if on_test else []
  header += [top1_header(results), f"Drop ({split}, pts)", "NetScore", "Stop reason"]
  align = ["r", "l", "r", "l", "r", "r", "r"] + ["r"] * (4 if on_test else 3) + ["l"]

  def figures(entry: Union[ModelResult, CandidateResult]) -> List[str]:
    out = [fmt_count(entry.params), fmt_mb(entry.size_mb), fmt_macs_m(entry.macs)]
    out += [fmt_percent(entry.validation_top1)] if on_test else []
    out += [fmt_percent(entry.top1)]
    return out

  rows = []
  ancestor = record.models.get("ancestor") or ModelResult()
  if not ancestor.is_empty():
    rows.append(["0", DASH, DASH, "ancestor"] + figures(ancestor)
                + [DASH, fmt_value(ancestor.netscore, ".2f"), DASH])
  for generation in generations:
    number = generation.generation
    tried = [c for c in candidates if c.generation == number]
    diverged = sum(1 for c in tried if c.status == "diverged")
    tried_text = str(len(tried)) + (f" ({diverged} diverged)" if diverged else "")
    chosen = by_id.get(generation.chosen)
    rows.append([fmt_text(number), fmt_text(generation.parent or (chosen and chosen.parent)),
                 tried_text if tried else DASH, fmt_text(generation.chosen)]
                + figures(chosen or CandidateResult())
                + [drop_cell(chosen.top1, ancestor.top1) if chosen else DASH,
                   fmt_value(chosen and chosen.netscore, ".2f"),
                   fmt_reason(generation.stop_reason)])
  if is_polished(record):
    squished = record.models["squishednet"]
    rows.append(["polish", fmt_text(record.winner), DASH,
                 f"**SquishedNet ({final_word(record)})**"]
                + figures(squished)
                + [drop_cell(squished.top1, ancestor.top1), fmt_value(squished.netscore, ".2f"),
                   DASH])
  table = markdown_table(header, rows, align=align)
  notes = [f"Drop = the ancestor's {split} top-1 minus the model's, in points (negative: a "
           "gain)"]
  if on_test:
    notes[0] += ("; it is measured as evolution measures it, but on the test figures. "
                 "Selection and the accuracy budget read the validation column.")
  else:
    notes[0] += "."
  if retrained(record):
    notes.append("The **polish** row is the SquishedNet: the last generation's winner's widths "
                 "trained from fresh weights for the lineage's budget, as the baselines train.")
  elif is_polished(record):
    notes.append("The **polish** row is the SquishedNet: the last generation's winner after a "
                 "final, longer fine-tune distilled from the ancestor.")
  return table + "\n\n" + " ".join(notes)


def stop_line(results: Mapping[str, Any]) -> str:
  record = Results.coerce(results)
  winner, reason = record.winner, record.stop_reason
  if not winner and not reason:
    return ""
  polish = ""
  if retrained(record):
    polish = ", its widths then trained from scratch into the SquishedNet"
  elif is_polished(record):
    polish = ", then polished into the SquishedNet"
  return (f"Winner: `{winner or DASH}`{polish}. Stop reason: {fmt_reason(reason)}. Every candidate, "
          "chosen or not, is listed below and in `lineage.json`.")


def candidates_section(results: Mapping[str, Any]) -> str:
  """Every candidate evolution trained, with both the selection and the reported accuracy."""
  record = Results.coerce(results)
  candidates = record.candidates
  if not candidates:
    return ""
  ancestor = record.models.get("ancestor") or ModelResult()
  on_test = is_on_test(record)
  split = accuracy_split(results)
  header = ["Candidate", "Parent", "Params (deployed)", "Size (MB)", "MACs (M)", "F"]
  header += ["Val top-1 (selection)"] if on_test else []
  header += [top1_header(results), f"Drop ({split}, pts)", "Images trained", "Time", "Status"]
  rows = []
  for c in sorted(candidates, key=lambda c: (finite_number(c.generation) or 0,
                                             finite_number(c.candidate) or 0,
                                             finite_number(c.attempt) or 0)):
    attempt = finite_number(c.attempt)
    name = fmt_text(c.id) + (f" (retry {attempt:.0f})" if attempt else "")
    status = "**chosen**" if c.chosen else fmt_text(c.status)
    row = [name, fmt_text(c.parent), fmt_count(c.params), fmt_mb(c.size_mb),
           fmt_macs_m(c.macs), fmt_value(c.env_factor, ".3f")]
    row += [fmt_percent(c.validation_top1)] if on_test else []
    row += [fmt_percent(c.top1), drop_cell(c.top1, ancestor.top1), fmt_images(c.train_images),
            fmt_duration(c.wall_seconds), status]
    rows.append(row)
  align = ["l", "l"] + ["r"] * (len(header) - 3) + ["l"]
  return "### Every candidate\n\n" + markdown_table(header, rows, align=align) + (
      "\n\nF = the mean environmental factor of the draw." + (
          " Selection read only the validation column; the test column was measured afterwards "
          "and played no part in any choice." if on_test else ""))


def latency_section(results: Mapping[str, Any]) -> str:
  """The latency model's predictions against each candidate's interleaved measurement."""
  record = Results.coerce(results)
  summary = record.latency_model
  if summary is None:
    return ""
  rows = []
  for c in record.candidates:
    if c.predicted_latency_ms is None:
      continue
    rows.append([fmt_text(c.id) + (" (chosen)" if c.chosen else ""),
                 fmt_value(c.expected_latency_ms, ".3f"),
                 fmt_value(c.predicted_latency_ms, ".3f"),
                 fmt_value(c.measured_latency_ms, ".3f"),
                 fmt_value(c.latency_error, "+.1f", 100.0, "%"),
                 fmt_value(c.predicted_speedup, ".2f", suffix="x"),
                 _ratio_range(c.measured_speedup or {}),
                 fmt_value(c.speedup_error, "+.1f", 100.0, "%")])
  header = ["Candidate", "Expected (ms)", "Predicted (ms)", "Measured (ms)", "Error",
            "Predicted speed-up", "Measured speed-up (min-max)", "Speed-up error"]
  text = ("### Latency model\n\n"
          f"Latency at batch 1 predicted from the table of this machine or the named device "
          f"(`{fmt_text(summary.table)}`) and measured with each candidate timed "
          "interleaved with the ancestor once its generation was trained. The ancestor: "
          f"{fmt_value(summary.ancestor_predicted_ms, '.3f')} ms predicted, "
          f"{fmt_value(summary.ancestor_measured_ms, '.3f')} ms measured. Median |error| of "
          "the latency: "
          f"{fmt_value(summary.median_abs_error_chosen, '.1f', 100.0, '%')} on the chosen "
          f"offspring, {fmt_value(summary.median_abs_error_all, '.1f', 100.0, '%')} on all "
          f"{fmt_count(summary.measured_candidates)} measured; of the speed-up over the "
          "ancestor (the same error relative to the ancestor's, which does not depend on how "
          "busy the machine was at the two moments): "
          f"{fmt_value(summary.median_abs_speedup_error_chosen, '.1f', 100.0, '%')} and "
          f"{fmt_value(summary.median_abs_speedup_error_all, '.1f', 100.0, '%')}.")
  devices = sorted({c.measured_device for c in record.candidates if c.measured_device})
  if devices:
    text += (f" The candidates were timed on the device {', '.join(devices)} itself (its "
             "format, threads and runtime), the clock its table predicts.")
  elif not summary.measured_candidates and any(c.measured_latency_ms is not None
                                               for c in record.candidates):
    text += (" The table is a profile measured on another device: the candidates were timed "
             "here with LiteRT, a different clock, so no error against it is computed.")
  if rows:
    text += "\n\n" + markdown_table(header, rows, align=["l"] + ["r"] * (len(header) - 1))
  return text


def _ratio_range(stats: Mapping[str, Any]) -> str:
  if not isinstance(stats, Mapping) or finite_number(stats.get("median")) is None:
    return DASH
  return (f"{finite_number(stats['median']):.2f}x ({fmt_value(stats.get('min'), '.2f')}-"
          f"{fmt_value(stats.get('max'), '.2f')})")


def figure_caption(results: Mapping[str, Any]) -> str:
  split = accuracy_split(results)
  polish = " star: the SquishedNet;"
  if retrained(results):
    polish = (" star: the SquishedNet, the winner's widths trained from scratch (dotted: its "
              "step from the evolved winner);")
  elif is_polished(results):
    polish = (" star: the SquishedNet, after the polish (dotted: the polish's step from the "
              "evolved winner);")
  return (f"Accuracy on the {split} split. Grey: every candidate evolution tried; line: the "
          f"chosen lineage from the ancestor to the evolved winner;{polish} coloured markers: "
          "baselines; hollow markers: the paper's SquishedNets, whose accuracy is on another "
          "dataset (ImageNet-10) and so only shows their trade-off.")


def paper_section(results: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
  record = Results.coerce(results)
  paper = [p for p in record.paper or [] if isinstance(p, Mapping)]
  reference = finite_number((record.reference or {}).get("squeezenet_v1_1_size_mb"))
  ours = dataset.get("name") or "this run's dataset"
  size = finite_number(dataset.get("image_size"))
  ours_px = f" at {size:.0f}×{size:.0f} px" if size else ""
  intro = (f"Shafiee, Li, Chwyl and Wong (2017, arXiv 1711.07459) report these SquishedNets on "
           f"**ImageNet-10**, timed on an **NVIDIA Jetson TX1**. This run used "
           f"{ours}{ours_px}, timed with LiteRT on a CPU: a different dataset and device, so the "
           "numbers are **not directly comparable**. They are here as the paper's trade-off (how "
           "much size it gave up for how much accuracy and speed), not as a target.")
  # Quoted figures keep the paper's own precision (2.4 MB, not 2.400).
  rows = [[fmt_text(p.get("label") or PAPER_NOTE), fmt_value(p.get("size_mb"), "g"),
           fmt_value(p.get("top1"), "g", 100.0, "%"), fmt_speed(p.get("images_per_sec"))] for p in paper]
  if reference:
    rows.append(["SqueezeNet v1.1 (float32 weights, for scale)", f"{reference:g}", DASH, DASH])
  if not rows:
    return intro
  return intro + "\n\n" + markdown_table(["Source", "Size (MB)", "Top-1", "Images/s"], rows)


def time_table(results: Mapping[str, Any]) -> str:
  wall = Results.coerce(results).wall_seconds or {}
  if not wall:
    return "Stage times were not recorded."
  stages = [s for s in STAGES if s in wall] + sorted(
      s for s in wall if s not in STAGES and s != "total")
  rows = [[fmt_text(s), fmt_duration(wall.get(s))] for s in stages]
  if "total" in wall:
    rows.append(["**total**", f"**{fmt_duration(wall.get('total'))}**"])
  return markdown_table(["Stage", "Wall time"], rows)
