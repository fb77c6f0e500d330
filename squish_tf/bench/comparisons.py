"""The speed-ups a run reports: which of its models' .tflite files are compared (each model's
fp32 and int8 against the reference's fp32), timed interleaved at the run's resolution and
again at `pair_resolutions`."""

import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from squish_tf.bench import pairs as pairs_lib
from squish_tf.bench.config import RESOLUTION_BATCH_SIZES, BenchmarkConfig
from squish_tf.runtime import litert as litert_lib

# What the report's speed-ups compare: each model's files against the reference's fp32 file.
PAIRED_ARTEFACTS = ("tflite_fp32", "tflite_int8")
REFERENCE_ARTEFACT = "tflite_fp32"


def comparison_pairs(models: Mapping[str, Mapping[str, Any]], reference: str = "ancestor",
                     reference_artefact: str = REFERENCE_ARTEFACT,
                     artefacts: Optional[Sequence[str]] = PAIRED_ARTEFACTS
                    ) -> List[Tuple[str, str]]:
  """(subject, reference) keys of the files whose speed-up the report shows.

  Args:
    models: benchmark.json's "models" ({name: {"artefacts": {...}}}).
    reference: the model speed-ups are over.
    reference_artefact: its file they are over.
    artefacts: the files of every model compared against it (None: every
      .tflite file); a model's file is not paired with itself.

  Returns:
    e.g. [("ancestor/tflite_int8", "ancestor/tflite_fp32"),
          ("squishednet/tflite_fp32", "ancestor/tflite_fp32"),
          ("squishednet/tflite_int8", "ancestor/tflite_fp32"), ...]; empty when
    the reference has no such file.
  """
  base = pairs_lib.artefact_key(reference, reference_artefact)
  if reference_artefact not in ((models.get(reference) or {}).get("artefacts") or {}):
    return []
  out: List[Tuple[str, str]] = []
  for name, entry in models.items():
    for artefact in (entry.get("artefacts") or {}):
      if not artefact.startswith("tflite_"):
        continue
      if artefacts is not None and artefact not in artefacts:
        continue
      key = pairs_lib.artefact_key(name, artefact)
      if key != base:
        out.append((key, base))
  return out


def measure_model_pairs(models: Mapping[str, Mapping[str, Any]],
                        pairs: Sequence[Tuple[str, str]], pixels: Optional[np.ndarray] = None,
                        config: BenchmarkConfig = BenchmarkConfig(),
                        listener: Optional[pairs_lib.Listener] = None,
                        convert: Callable[[str, int], bytes] = pairs_lib.tflite_at_size
                       ) -> Dict[str, Any]:
  """Times benchmarked .tflite files interleaved: "interleaved", "pairs" and "resolutions".

  Args:
    models: benchmark.json's "models"; keys "model/artefact" name their files.
    pairs: (subject, reference) keys, e.g. from `comparison_pairs`.
    pixels: uint8 images to time on (noise when None).
    config: num_threads, batch_sizes and the pair_* settings.
    listener: told of each session ("pairs") and pair ("pair"; `pairs.measure_pairs`).
    convert: (model_dir, image_size) -> fp32 .tflite bytes at that size, for
      `config.pair_resolutions` (`speed_pairs.tflite_at_size`; tests pass a
      stand-in).
  """
  if not pairs or config.pair_rounds == 0:
    return {}
  result = _measure_files(models, pairs, pixels, config, listener)
  result["interleaved"]["image_size"] = run_image_size(models, pairs[0][1])
  resolutions = {}
  for size in config.pair_resolutions:
    measured = measure_pairs_at_size(models, pairs, size, config, listener, convert)
    if measured is not None:
      resolutions[str(size)] = measured
  if resolutions:
    result["resolutions"] = resolutions
  return result


def run_image_size(models: Mapping[str, Mapping[str, Any]], key: str) -> Optional[int]:
  """The input height of the file "model/artefact" as benchmarked (the run's resolution)."""
  model, artefact = key.split("/", 1)
  entry = models.get(model) or {}
  size = entry.get("image_size")
  if size:
    return int(size[0])
  path = ((entry.get("artefacts") or {}).get(artefact) or {}).get("path")
  if path and os.path.isfile(path):
    return litert_lib.LiteRTRunner(path).input_size[0]
  return None


def measure_pairs_at_size(models: Mapping[str, Mapping[str, Any]],
                          pairs: Sequence[Tuple[str, str]], image_size: int,
                          config: BenchmarkConfig = BenchmarkConfig(),
                          listener: Optional[pairs_lib.Listener] = None,
                          convert: Callable[[str, int], bytes] = pairs_lib.tflite_at_size
                         ) -> Optional[Dict[str, Any]]:
  """The fp32-vs-fp32 pairs again, every model rebuilt at image_size: one "resolutions" entry.

  Each model named in such a pair is converted once (`convert(model_dir,
  image_size)`, in memory); a model that cannot be rebuilt there is listed
  under "errors" and its pairs hold {"error": ...}. The files run interleaved
  at `RESOLUTION_BATCH_SIZES` with the config's rounds and round seconds.

  Returns:
    {"image_size", "batch_sizes", "files": {key: {"bytes"}}, "errors":
     {model: message}, "convert_seconds", "interleaved", "pairs"} (see the
    module docstring), or None when no pair is fp32 against fp32 or the
    files already run at image_size.
  """
  chosen = [(s, r) for s, r in pairs if s.endswith("/" + REFERENCE_ARTEFACT)
            and r.endswith("/" + REFERENCE_ARTEFACT)]
  if not chosen or run_image_size(models, chosen[0][1]) == int(image_size):
    return None
  started = time.perf_counter()
  files: Dict[str, bytes] = {}
  errors: Dict[str, str] = {}
  converted: Dict[str, bytes] = {}  # by model dir: two names for one model convert once
  for key in dict.fromkeys(k for pair in chosen for k in (pair[1], pair[0])):
    model = key.split("/", 1)[0]
    model_dir = (models.get(model) or {}).get("model_dir")
    try:
      if not model_dir:
        raise ValueError(f"benchmark.json records no model_dir for {model!r}, so it cannot be "
                         "rebuilt at another size.")
      if model_dir not in converted:
        converted[model_dir] = convert(model_dir, int(image_size))
      files[key] = converted[model_dir]
    except Exception as error:  # pylint: disable=broad-except
      # One model that will not rebuild or convert at this size (a baseline whose
      # graph fixes it) loses its pair, not the benchmark.
      errors[model] = str(error) if isinstance(error, ValueError) else (
          f"{type(error).__name__}: {error}")
      if listener is not None:
        listener({"event": "rebuild_error", "model": model, "image_size": int(image_size),
                  "error": str(error)})
  entry: Dict[str, Any] = {
      "image_size": int(image_size), "batch_sizes": list(RESOLUTION_BATCH_SIZES),
      "files": {key: {"bytes": len(content)} for key, content in files.items()},
      "errors": errors, "convert_seconds": time.perf_counter() - started}
  timed = [(s, r) for s, r in chosen if s in files and r in files]
  measured: Dict[str, Any] = {"interleaved": {}, "pairs": {}}
  if timed:
    if listener is not None:
      listener({"event": "pairs", "image_size": int(image_size), "rounds": config.pair_rounds,
                "num_threads": config.num_threads})
    measured = pairs_lib.measure_pairs(
        files, timed, RESOLUTION_BATCH_SIZES, None, config.num_threads, config.pair_rounds,
        config.pair_round_seconds, config.pair_min_invokes, config.pair_max_invokes,
        max(config.warmup_runs, 1), listener=listener)
  for subject, reference in chosen:
    if (subject, reference) not in timed:
      failed = [errors[k.split("/", 1)[0]] for k in (subject, reference)
                if k.split("/", 1)[0] in errors]
      measured["pairs"][pairs_lib.pair_key(subject, reference)] = {
          str(size): {"error": "; ".join(failed)} for size in RESOLUTION_BATCH_SIZES}
  entry.update(interleaved=measured["interleaved"], pairs=measured["pairs"])
  return entry


def _measure_files(models: Mapping[str, Mapping[str, Any]], pairs: Sequence[Tuple[str, str]],
                   pixels: Optional[np.ndarray], config: BenchmarkConfig,
                   listener: Optional[pairs_lib.Listener]) -> Dict[str, Any]:
  """The pairs of the benchmarked files themselves: "interleaved" and "pairs"."""
  known = {pairs_lib.artefact_key(model, artefact): art["path"]
           for model, entry in models.items()
           for artefact, art in (entry.get("artefacts") or {}).items()
           if artefact.startswith("tflite_")}
  files: Dict[str, str] = {}
  for key in dict.fromkeys(k for pair in pairs for k in pair):
    if key not in known:
      raise ValueError(f"Pair member {key!r} is not a benchmarked .tflite file; expected one of "
                       f"{sorted(known)} ('<model>/tflite_<format>').")
    files[key] = known[key]
  if listener is not None:
    listener({"event": "pairs", "image_size": None, "rounds": config.pair_rounds,
              "num_threads": config.num_threads})
  return pairs_lib.measure_pairs(files, pairs, config.batch_sizes, pixels, config.num_threads,
                                 config.pair_rounds, config.pair_round_seconds,
                                 config.pair_min_invokes, config.pair_max_invokes,
                                 max(config.warmup_runs, 1), listener=listener)
