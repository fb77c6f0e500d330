"""Are channel counts that are multiples of 4 or 8 faster in LiteRT on this machine?

Evidence for `--channel_multiple`'s default. The few-class ancestor
(`spec.squishednet_base`, no batch norm: what every export deploys) at half
width is given channel counts that are multiples of nothing (odd), then every
layer's count is rounded to a multiple of 4 and of 8, down or up, layer by
layer, so that the rounded net keeps the odd net's MACs (within 1%;
`rounded_spec`): the nets do the same work, and differ in divisibility.
Rounding alone would not do that: a 5-filter squeeze layer becomes 8, +60%.
Two odd nets ("families"), each layer at 0.5 x its width - 3 (29, 5, 61, ...)
and + 3 (35, 11, 67, ...), guard against one lucky shape (`--offsets=-1,1`:
31, 7, 63 ... and 33, 9, 65 ...). `--rounding=up` asks synthesis's question
instead: every count rounded UP to the multiple (33 -> 40), as
`--channel_multiple` rounds survivors; the rounded nets then have more MACs,
and the raw speed-up says whether those cost time.

Each net gets random weights, is written as a SavedModel and converted to
fp32 and full-int8 TFLite exactly as the export does (`squish_tf.export`;
int8 calibrated on random pixels, which is fine for timing). Per family and
format, the three nets plus the multiple-1 file loaded twice (the noise
floor: it should give 1.00) run interleaved in the shared LiteRT runner,
batch 1, `--num_threads` threads (`squish_tf.runtime.timing`: A B C D A B C D ...,
`--rounds` rounds of ~`--round_seconds` per file, then again with the files
in reverse order; the ratios of both sessions are pooled).

Per file the table gives the speed-up over multiple 1 (median of the
per-round ratios, [min-max]) raw, and per MAC: raw ratio x (its MACs / the
multiple-1 net's MACs), i.e. how much faster each MMAC runs (the MACs are
within 1%, so the two barely differ). A multiple helps when its speed-up is
above 1 by more than the self-pair's distance from 1, in both families.

  python benchmarks/channel_multiple.py                  # 64 and 224 px
  python benchmarks/channel_multiple.py --image_sizes=64 --rounds=9
"""

import contextlib
import io
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.net import spec as spec_lib  # noqa: E402
from squish_tf.runtime import litert, timing  # noqa: E402

_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["64", "224"], "Input sizes, one session each.")
_FORMATS = flags.DEFINE_list("formats", ["fp32", "int8"], "TFLite formats: fp32, int8.")
_MULTIPLES = flags.DEFINE_list("multiples", ["1", "4", "8"], "Channel multiples; the first is "
                               "the reference.")
_OFFSETS = flags.DEFINE_list("offsets", ["-3", "3"], "Families: each layer gets 0.5 x its "
                             "width + offset filters before rounding (odd offsets: odd counts).")
_ROUNDING = flags.DEFINE_enum(
    "rounding", "balanced", ["balanced", "up"],
    "balanced: each count to the multiple below or above, keeping the odd net's MACs (same "
    "work, different divisibility); up: every count rounded up, as synthesis rounds survivors "
    "(--channel_multiple): more MACs, the question being whether they cost time.")
_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT threads.", lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 25, "Interleaved rounds per session (two sessions: "
                               "the files in order, then reversed).", lower_bound=1)
_ROUND_SECONDS = flags.DEFINE_float("round_seconds", 0.05, "Each file's share of a round.")
_CALIBRATION = flags.DEFINE_integer("calibration_images", 16, "Random images calibrating int8.",
                                    lower_bound=1)
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write every figure here.")


def layer_counts(spec: spec_lib.NetSpec):
  """[conv1, fire2 squeeze, expand1x1, expand3x3, fire3 ...] filter counts."""
  return [spec.conv1_filters] + [c for f in spec.fires for c in (f.squeeze, f.expand1x1,
                                                                  f.expand3x3)]


def with_counts(spec: spec_lib.NetSpec, counts, name: str) -> spec_lib.NetSpec:
  """`spec` with its prunable layers' filter counts replaced (order of `layer_counts`)."""
  fires = tuple(spec_lib.FireSpec(*counts[1 + 3 * i:4 + 3 * i]) for i in range(len(spec.fires)))
  return spec.replace(conv1_filters=counts[0], fires=fires, name=name)


def odd_spec(base: spec_lib.NetSpec, offset: int) -> spec_lib.NetSpec:
  """`base` at half width plus `offset` filters per layer (odd counts for an odd offset)."""
  counts = [max(1, c // 2 + offset) for c in layer_counts(base)]
  # Keras scope names allow no "+": half_minus3 / half_plus3.
  return with_counts(base, counts, f"half_{'plus' if offset >= 0 else 'minus'}{abs(offset)}_m1")


def rounded_spec(odd: spec_lib.NetSpec, multiple: int) -> spec_lib.NetSpec:
  """Every count of `odd` rounded to a multiple, down or up, keeping its MACs.

  Layer by layer, the count goes to the multiple below or above it (never
  below `multiple`), whichever leaves the whole net's MACs (later layers
  still at their odd counts) closer to the odd net's: the rounded net does
  the same work with divisible channel counts.
  """
  counts = layer_counts(odd)
  target = odd.macs()
  for index, count in enumerate(list(counts)):
    down = max(multiple, count // multiple * multiple)
    up = -(-count // multiple) * multiple
    best = None
    for candidate in dict.fromkeys((down, up)):
      trial = counts[:index] + [candidate] + counts[index + 1:]
      error = abs(with_counts(odd, trial, "trial").macs() - target)
      if best is None or error < best[0]:
        best = (error, candidate)
    counts[index] = best[1]
  return with_counts(odd, counts, odd.name.replace("_m1", f"_m{multiple}"))


def rounded_up_spec(odd: spec_lib.NetSpec, multiple: int) -> spec_lib.NetSpec:
  """Every count of `odd` rounded up to a multiple, as synthesis rounds survivor counts."""
  counts = [-(-count // multiple) * multiple for count in layer_counts(odd)]
  return with_counts(odd, counts, odd.name.replace("_m1", f"_up{multiple}"))


def convert(spec: spec_lib.NetSpec, formats, work_dir: str, calibration: int):
  """{format: .tflite bytes} of a random-weight model of `spec`, converted as the export does."""
  from squish_tf.export import saved_model as saved_model_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.net import models  # pylint: disable=g-import-not-at-top

  saved = os.path.join(work_dir, spec.name + f"_{spec.input_shape[0]}")
  saved_model_lib.write_saved_model(models.build_model(spec, seed=0), spec, saved)
  pixels = np.random.default_rng(0).integers(0, 256, (calibration, *spec.input_shape))
  out = {}
  for fmt in formats:
    with contextlib.redirect_stdout(io.StringIO()):
      out[fmt] = tflite_lib.convert_saved_model(
          saved, fmt, pixels.astype(np.float32) if fmt == "int8" else None)
  return out


def time_both_orders(files, reference: str):
  """Interleaved sessions of the files in the given order, then reversed; ratios pooled.

  A file's place in the round can matter on a busy machine (the first after
  another process ran sees cold caches), so every session is run twice, the
  second time with the files in reverse order, and a file's speed-up over
  `reference` is the median of its per-round ratios over both sessions.

  Returns:
    {"ratios": {key: timing.spread of the pooled ratios} (not the reference),
     "images_per_sec": {key: median over all rounds}, "sessions": [two
     time_interleaved results without their raw seconds]}.
  """
  runners = {key: litert.LiteRTRunner(content, num_threads=_THREADS.value)
             for key, content in files.items()}
  pixels = np.random.default_rng(0).integers(
      0, 256, (1, *runners[reference].input_shape), dtype=np.uint8)
  calls = {key: runner.prepare(pixels) for key, runner in runners.items()}
  ratios = {key: [] for key in files if key != reference}
  speeds = {key: [] for key in files}
  sessions = []
  for order in (list(calls), list(reversed(list(calls)))):
    ordered = {key: calls[key] for key in order}
    invokes = timing.calibrate_invokes(ordered, _ROUND_SECONDS.value, max_invokes=5000)
    result = timing.time_interleaved(ordered, _ROUNDS.value, invokes)
    for key in ratios:
      ratios[key] += timing.ratio_stats(result, key, reference)["ratios"]
    for key in speeds:
      speeds[key] += list(1.0 / timing.seconds_per_invoke(result, key))
    sessions.append({"order": order, "invokes": result["invokes"],
                     "load_average": result["load_average"]})
  return {"ratios": {key: dict(timing.spread(values), rounds=len(values))
                     for key, values in ratios.items()},
          "images_per_sec": {key: float(np.median(values)) for key, values in speeds.items()},
          "sessions": sessions}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  multiples = [int(m) for m in _MULTIPLES.value]
  offsets = [int(o) for o in _OFFSETS.value]
  work_dir = tempfile.mkdtemp(prefix="channel_multiple_")
  rows = []
  record = {"settings": {"num_threads": _THREADS.value, "rounds": _ROUNDS.value,
                         "round_seconds": _ROUND_SECONDS.value, "multiples": multiples,
                         "offsets": offsets, "rounding": _ROUNDING.value}, "sessions": []}
  for size in (int(s) for s in _IMAGE_SIZES.value):
    base = spec_lib.squishednet_base(10, (size, size, 3), batch_norm=False)
    for offset in offsets:
      odd = odd_spec(base, offset)
      rounding = rounded_spec if _ROUNDING.value == "balanced" else rounded_up_spec
      specs = {m: rounding(odd, m) for m in multiples}
      files_by_format = {m: convert(s, _FORMATS.value, work_dir, _CALIBRATION.value)
                         for m, s in specs.items()}
      for fmt in _FORMATS.value:
        files = {f"m{m}": files_by_format[m][fmt] for m in multiples}
        reference = f"m{multiples[0]}"
        files[reference + " again"] = files[reference]
        timed = time_both_orders(files, reference)
        macs = {f"m{m}": s.macs() for m, s in specs.items()}
        macs[reference + " again"] = macs[reference]
        for key in files:
          stats = timed["ratios"].get(key)
          scale = macs[key] / macs[reference]
          rows.append({
              "image_size": size, "format": fmt, "family": f"half{offset:+d}", "file": key,
              "macs": macs[key], "mac_ratio": scale,
              "images_per_sec": timed["images_per_sec"][key],
              "ratio": None if stats is None else stats["median"],
              "ratio_min": None if stats is None else stats["min"],
              "ratio_max": None if stats is None else stats["max"],
              "ratio_q1": None if stats is None else stats["q1"],
              "ratio_q3": None if stats is None else stats["q3"],
              "per_mac": None if stats is None else stats["median"] * scale,
              "per_mac_min": None if stats is None else stats["min"] * scale,
              "per_mac_max": None if stats is None else stats["max"] * scale,
          })
        record["sessions"].append({"image_size": size, "format": fmt, "offset": offset,
                                   "specs": {m: s.to_dict() for m, s in specs.items()},
                                   **timed})
        loads = [t["load_average"] for t in timed["sessions"]]
        print(f"{size}px {fmt} half{offset:+d}: done (load {loads[0]['start']:.2f}->"
              f"{loads[-1]['end']:.2f})", flush=True)
  print(f"\nLiteRT, batch 1, {_THREADS.value} threads, 2 x {_ROUNDS.value} interleaved rounds "
        "(files in order, then reversed); speed over multiple 1 of the same family (> 1: "
        "faster), median of the per-round ratios [min-max]\n")
  print("| px | format | family | multiple | MMACs | img/s | speed-up [min-max] | quartiles | "
        "per-MAC speed-up |")
  print("|---:|---|---|---|---:|---:|---|---|---|")
  for row in rows:
    raw = ("1 (reference)" if row["ratio"] is None else
           f"{row['ratio']:.3f} [{row['ratio_min']:.3f}-{row['ratio_max']:.3f}]")
    per_mac = ("1" if row["per_mac"] is None else
               f"{row['per_mac']:.3f} [{row['per_mac_min']:.3f}-{row['per_mac_max']:.3f}]")
    quartiles = ("" if row["ratio"] is None else
                 f"{row['ratio_q1']:.3f}-{row['ratio_q3']:.3f}")
    print(f"| {row['image_size']} | {row['format']} | {row['family']} | {row['file']} | "
          f"{row['macs'] / 1e6:.1f} | {row['images_per_sec']:.0f} | {raw} | {quartiles} | "
          f"{per_mac} |")
  print("\nSummary: per-MAC speed-up over multiple 1, median over the families "
        "(and the self-pair, the noise floor)\n")
  print("| px | format | " + " | ".join(f"m{m}" for m in multiples[1:]) + " | m1 vs itself |")
  print("|---:|---|" + "---|" * len(multiples))
  for size in (int(s) for s in _IMAGE_SIZES.value):
    for fmt in _FORMATS.value:
      cells = []
      for key in [f"m{m}" for m in multiples[1:]] + [f"m{multiples[0]} again"]:
        values = [r["per_mac"] for r in rows if r["image_size"] == size and r["format"] == fmt
                  and r["file"] == key]
        cells.append(", ".join(f"{v:.3f}" for v in values))
      print(f"| {size} | {fmt} | " + " | ".join(cells) + " |")
  if _OUTPUT_JSON.value:
    with open(_OUTPUT_JSON.value + ".tmp", "w", encoding="utf-8") as handle:
      json.dump({"rows": rows, **record}, handle, indent=2)
    os.replace(_OUTPUT_JSON.value + ".tmp", _OUTPUT_JSON.value)


if __name__ == "__main__":
  app.run(main)
