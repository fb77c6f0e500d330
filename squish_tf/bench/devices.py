"""The clock a run aims at: this machine's table, a device's profile, or a built-in device.

  pack(spec, "int8", "pack_dir")           # probes, calibration networks, manifest, measure.py
  # on the device: python measure.py --threads=4 --device_name=pixel7 --out=profile.json
  pack(spec, JETSON, "pack_dir")           # the same as frozen graphs, and jetson_trt.py
  # on a Jetson: python3 jetson_trt.py --profile_out=profile.json --device_name=tx1
  clock_table(run_dir, spec, "fp32", 2, device_profile="profile.json")

A pack holds every one-convolution model the latency table of `spec` samples
(`latency_table.probe_signatures`, converted as `latency.measure` converts them), its one-op max
pools and concatenations (`latency_table.move_signatures`; not in a Jetson pack, whose profile's
table prices them through its slope), the overhead probe and the whole networks at the
calibration widths, a manifest.json (written last: a pack
without it is incomplete), models.txt (the model files, one a line, for a shell loop over
benchmark_model) and measure.py (`squish_tf.bench.device_measure`'s source, standalone). A
Jetson pack (`jetson_pack`) holds frozen graphs and the Jetson bundle's jetson_trt.py instead.

A built-in device (`--device=`, `profile.BUILT_IN`) is packed in a temporary directory and
measured here by measure.py in a subprocess, as a device would measure it, on first use; its
profile is cached as device_<name>_<px>px_<classes>c.json in --device_cache_dir (default: the
run dir) and measured again for another host, runtime version or architecture.
"""

import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Optional

from squish_tf import files as files_lib
from squish_tf.bench import device_measure
from squish_tf.bench import latency as latency_lib
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import profile as profile_lib
from squish_tf.net import spec as spec_lib

MEASURE_SCRIPT = "measure.py"
MODELS_LIST = "models.txt"
MODELS_DIR = "models"
# The pack of frozen graphs the Jetson bundle's jetson_trt.py measures (TF-TRT on the device).
JETSON = "jetson"
PACK_FORMATS = latency_table_lib.FORMATS + (JETSON,)

Progress = Optional[Callable[[str], None]]


def pack(spec: spec_lib.NetSpec, fmt: str, out_dir: str, progress: Progress = print
         ) -> Dict[str, Any]:
  """Writes the pack of `spec`'s latency table in `fmt` into `out_dir`; returns its manifest.

  `fmt` is fp32 or int8 (.tflite models and measure.py), or JETSON (frozen graphs and the
  Jetson bundle's jetson_trt.py, which measures them with TF-TRT on the device).
  """
  if fmt not in PACK_FORMATS:
    raise ValueError(f"--format must be one of {PACK_FORMATS}, got {fmt!r}.")
  log = progress or (lambda _: None)
  signatures = latency_table_lib.probe_signatures(spec)
  networks = latency_table_lib.calibration_specs(spec)
  log(f"pack ({fmt}, {spec.input_shape[0]} px): converting {len(signatures)} single "
      f"convolutions and {len(networks)} networks into {out_dir} ...")
  os.makedirs(os.path.join(out_dir, MODELS_DIR), exist_ok=True)
  models = []
  if fmt == JETSON:
    from squish_tf.bench import jetson_pack  # pylint: disable=g-import-not-at-top

    suffix, script, source = jetson_pack.SUFFIX, jetson_pack.SCRIPT, jetson_pack.script_path()
    conv, network = jetson_pack.conv_graph, jetson_pack.spec_graph
  else:
    suffix, script, source = ".tflite", MEASURE_SCRIPT, device_measure.__file__

    def conv(signature):
      return latency_lib.conv_tflite(signature, fmt)

    def network(scaled):
      return latency_lib.spec_tflite(scaled, fmt)

  def add(name: str, content: bytes, **entry: Any) -> None:
    relative = f"{MODELS_DIR}/{name}{suffix}"
    files_lib.write_bytes(os.path.join(out_dir, relative), content)
    models.append(dict(name=name, file=relative, **entry))

  for index, signature in enumerate(signatures):
    add(f"op{index}", conv(signature), kind="probe", signature=list(signature))
  if fmt != JETSON:
    for index, signature in enumerate(latency_table_lib.move_signatures(spec)):
      add(f"move{index}", latency_lib.move_tflite(signature, fmt), kind="move",
          signature=list(signature))
  add("op_overhead", conv(latency_table_lib.OVERHEAD_SIGNATURE), kind="overhead",
      signature=list(latency_table_lib.OVERHEAD_SIGNATURE))
  for width, scaled in networks.items():
    add(f"net{width:g}", network(scaled), kind="network", width=width)
  if fmt == JETSON:  # the input each graph takes, batch dimension aside
    for model in models:
      model["input_shape"] = (list(model["signature"][3:6]) if "signature" in model
                              else list(spec.input_shape))
  manifest = {"version": device_measure.PROFILE_VERSION, "format": fmt,
              "image_size": int(spec.input_shape[0]), "num_classes": int(spec.num_classes),
              "architecture": files_lib.json_round_trip(spec.architecture_key()),
              "models": models}
  if fmt == JETSON:
    manifest.update(input=jetson_pack.INPUT, output=jetson_pack.OUTPUT)
  with open(source, encoding="utf-8") as handle:
    files_lib.write_text(os.path.join(out_dir, script), handle.read())
  files_lib.write_text(os.path.join(out_dir, MODELS_LIST),
                       "".join(model["file"] + "\n" for model in models))
  files_lib.write_json(os.path.join(out_dir, device_measure.MANIFEST), manifest)
  return manifest


def run_measure(pack_dir: str, device_name: str, out: str, runtime: str = "ai-edge-litert",
                threads: int = 1) -> profile_lib.DeviceProfile:
  """Runs the pack's measure.py in a subprocess of this Python; returns the profile it wrote."""
  command = [sys.executable, MEASURE_SCRIPT, f"--device_name={device_name}",
             f"--runtime={runtime}", f"--threads={threads}", f"--out={os.path.abspath(out)}"]
  done = subprocess.run(command, cwd=pack_dir, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
    raise RuntimeError(f"measure.py of the pack in {pack_dir} failed ({done.returncode}):\n"
                       f"{tail}")
  return profile_lib.load_profile(out)


def cache_file(name: str, spec: spec_lib.NetSpec) -> str:
  """The cached profile's file name of a built-in device for `spec`."""
  return f"device_{name}_{spec.input_shape[0]}px_{spec.num_classes}c.json"


def _cached(path: str, device: profile_lib.BuiltInDevice,
            spec: spec_lib.NetSpec) -> Optional[profile_lib.DeviceProfile]:
  """The profile at `path` when it was measured for `device` and `spec` on this host."""
  data = files_lib.optional_read_json(path)
  if data is None:
    return None
  try:
    profile = profile_lib.DeviceProfile.from_json(data)
    profile.table(spec)
  except (KeyError, TypeError, ValueError):
    return None
  if not profile.measurements.move_ms:  # measured before packs held max pools and concats
    return None
  same = (profile.host == files_lib.json_round_trip(device_measure.host_info())
          and profile.runtime == device.runtime and profile.format == device.format
          and profile.threads == device.threads
          and profile.runtime_version == device_measure.runtime_version(device.runtime))
  return profile if same else None


def built_in_profile(name: str, spec: spec_lib.NetSpec, cache_dir: str,
                     progress: Progress = print) -> profile_lib.DeviceProfile:
  """The built-in device's profile for `spec`: cached in `cache_dir`, else packed and measured
  here (a minute or two) and cached."""
  if name not in profile_lib.BUILT_IN:
    raise ValueError(f"--device must be one of {profile_lib.DEVICES}, got {name!r}.")
  device = profile_lib.BUILT_IN[name]
  path = os.path.join(cache_dir, cache_file(name, spec))
  cached = _cached(path, device, spec)
  if cached is not None:
    return cached
  log = progress or (lambda _: None)
  log(f"device {name}: {device.description}; packing and measuring it here (cached in {path}) "
      "...")
  os.makedirs(cache_dir, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix=f"pack_{name}_") as work:
    pack(spec, device.format, work, progress=None)
    profile = run_measure(work, name, os.path.join(work, "profile.json"), device.runtime,
                          device.threads)
  files_lib.write_json(path, profile.to_json())
  return profile


def clock_table(run_dir: str, spec: spec_lib.NetSpec, fmt: str, threads: int,
                device: Optional[str] = None, device_profile: Optional[str] = None,
                cache_dir: Optional[str] = None, progress: Progress = print
                ) -> latency_table_lib.LatencyTable:
  """The run's latency table: from --device_profile, from the built-in --device, else measured
  here in `fmt` on `threads` threads (`latency.load_or_measure`, cached in the run dir)."""
  if not device and not device_profile:
    return latency_lib.load_or_measure(
        os.path.join(run_dir, latency_table_lib.table_file(fmt)), spec, fmt, threads,
        progress=progress)
  if device_profile:
    profile = profile_lib.load_profile(device_profile)
  else:
    profile = built_in_profile(device, spec, cache_dir or run_dir, progress)
  table = profile.table(spec)
  if progress:
    progress(f"latency clock: device {profile.describe()}; the ancestor predicted at "
             f"{table.predict(spec):.3f} ms.")
  return table

