"""Device profiles: a latency table's measurements, made on the device a network ships to.

A profile is a JSON file that `measure.py` (`squish_tf.bench.device_measure`, copied into a
pack by `squish-profile pack`) writes on the device, with no TensorFlow there:

  {"version": 1, "device": "pixel7", "runtime": "ai-edge-litert", "runtime_version": "2.3.0",
   "threads": 4, "format": "int8", "image_size": 64, "num_classes": 10,
   "probes": [{"signature": [3, 1, "same", 16, 16, 16, 64, "relu"], "ms": 0.041}, ...],
   "overhead_ms": 0.002, "networks": [{"width": 1.0, "ms": 1.87}, ...], ...}

A probe's signature is `ConvOp.signature` (kernel, stride, padding, input height and width,
C_in, C_out, activation); "moves" are the max pools' and concatenations' one-op models
(`MoveOp.signature`: kind, input height and width, channels); "networks" are the calibration
widths' whole networks. A profile without "moves" (measured before packs held them, or on a
Jetson, whose pack has none) still reads: its table prices them through the slope.
`DeviceProfile.table(spec)` is `latency_table.build_table` of those measurements: the same
table the in-process measurement builds from the same figures.

A Jetson measures the same probes with TF-TRT (`squish-profile pack --format=jetson`, then the
bundle's jetson_trt.py --profile_out on the device): runtime "tf-trt" (or "tensorflow" where
TF-TRT cannot run) and format "fp16" or "fp32", the precision the engines compute in.

BUILT_IN names the devices `--device=` measures here on first use (`squish_tf.bench.devices`).
numpy only: no TensorFlow.
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional

from squish_tf import files as files_lib
from squish_tf.bench import device_measure
from squish_tf.bench.latency_table import FORMATS, LatencyTable, Measurements, build_table
from squish_tf.net import spec as spec_lib

PROFILE_VERSION = device_measure.PROFILE_VERSION
# A profile's formats: the .tflite packs' and TF-TRT FP16's (the Jetson's FP32 is "fp32").
PROFILE_FORMATS = FORMATS + ("fp16",)
# The runtimes of jetson_trt.py, which measures a Jetson pack rather than a .tflite one.
JETSON_RUNTIMES = ("tf-trt", "tensorflow")


@dataclasses.dataclass(frozen=True)
class BuiltInDevice:
  """A device this machine measures itself (`--device=`).

  Attributes:
    name: the --device value.
    format: the .tflite it times (fp32 or int8).
    threads: interpreter threads.
    runtime: the measure.py --runtime.
    description: what it stands for, for --help.
  """

  name: str
  format: str
  threads: int
  runtime: str
  description: str


BUILT_IN = {device.name: device for device in (
    BuiltInDevice("cpu_fp32", "fp32", 2, "ai-edge-litert",
                  "the fp32 file, LiteRT with XNNPACK on 2 threads (the default clock)"),
    BuiltInDevice("cpu_int8", "int8", 1, "ai-edge-litert",
                  "the int8 file, LiteRT with XNNPACK on 1 thread (a phone's little core)"),
    BuiltInDevice("tflm", "int8", 1, "tflite-micro",
                  "the int8 file, TFLite-Micro's reference kernels (a Cortex-M without SIMD)"),
)}
DEVICES = tuple(BUILT_IN)


@dataclasses.dataclass(frozen=True)
class Clock:
  """What evolution times its candidates on, on this machine.

  Attributes:
    format: the .tflite it times (fp32 or int8).
    threads: interpreter threads.
    runtime: `device_measure.LITERT_RUNTIME` or `device_measure.MICRO_RUNTIME`.
    device: the built-in device it is (`BUILT_IN`), or None: this machine's LiteRT in the
      run's --latency_format.
    matches_table: whether the run's latency table predicts this clock, so that a prediction
      and a measurement compare (False with a --device_profile measured elsewhere).
  """

  format: str
  threads: int
  runtime: str
  device: Optional[str]
  matches_table: bool


def measuring_clock(device: Optional[str], device_profile: Optional[str], latency_format: str,
                    threads: int) -> Clock:
  """The clock a run times its candidates on: a built-in device's own (its format, threads
  and runtime), else this machine's LiteRT in `latency_format` on `threads` threads, which a
  profile measured on another device does not predict."""
  if device is not None:
    built_in = BUILT_IN[device]
    return Clock(built_in.format, built_in.threads, built_in.runtime, device, True)
  return Clock(latency_format, threads, device_measure.LITERT_RUNTIME, None,
               device_profile is None)


@dataclasses.dataclass
class DeviceProfile:
  """One device's measurements for one pack.

  Attributes:
    device: the device's name.
    runtime: the interpreter that timed it (ai-edge-litert, tflite-runtime,
      tflite-micro, or benchmark_model for op-profiling CSVs; tf-trt or tensorflow on a
      Jetson).
    runtime_version: its version, when known.
    threads: interpreter threads.
    format: fp32 or int8 (the .tflite timed), or fp16 (TF-TRT's FP16 engines).
    image_size: the pack's input size (pixels, square).
    num_classes: the pack's classes.
    measurements: the probes', overhead's and networks' milliseconds.
    architecture: the spec the pack was made for (`NetSpec.architecture_key`).
    host: what the device said about itself (system, machine, processor).
    source: "timed" by measure.py, or "op_profiling_csv".
    seconds: how long the measuring took.
  """

  device: str
  runtime: str
  runtime_version: Optional[str]
  threads: int
  format: str
  image_size: int
  num_classes: int
  measurements: Measurements
  architecture: Dict[str, Any] = dataclasses.field(default_factory=dict)
  host: Dict[str, Any] = dataclasses.field(default_factory=dict)
  source: str = "timed"
  seconds: Optional[float] = None

  def describe(self) -> str:
    """"pixel7 (ai-edge-litert 2.3.0, int8, 4 threads)": how runs name the device."""
    runtime = " ".join(str(part) for part in (self.runtime, self.runtime_version) if part)
    return (f"{self.device} ({runtime}, {self.format}, {self.threads} "
            f"thread{'s' if self.threads != 1 else ''})")

  def key(self) -> Dict[str, Any]:
    """The table's key: the device and how it was measured."""
    return {"clock": f"device {self.describe()}", "device": self.device, "runtime": self.runtime,
            "runtime_version": self.runtime_version, "format": self.format,
            "threads": self.threads, "host": dict(self.host), "source": self.source}

  def table(self, spec: spec_lib.NetSpec) -> LatencyTable:
    """The latency table of `spec` on this device (`build_table` of the measurements).

    Raises:
      ValueError: the profile was measured at another input size, or lacks
        convolutions of `spec` (another architecture); the message says how
        to pack for this one.
    """
    size, classes = spec.input_shape[0], spec.num_classes
    jetson = self.runtime in JETSON_RUNTIMES
    pack = (f"squish-profile pack --image_size={size} --num_classes={classes} "
            f"--format={'jetson' if jetson else self.format}")
    if int(self.image_size) != int(size):
      raise ValueError(f"The device profile of {self.device!r} was measured at "
                       f"{self.image_size} px, the run is at {size} px. Pack and measure at "
                       f"this size: `{pack}`, then "
                       f"{'jetson_trt.py --profile_out' if jetson else 'measure.py'} on the "
                       "device.")
    try:
      return build_table(spec, self.format, self.threads, self.measurements,
                         key=files_lib.json_round_trip(self.key()))
    except ValueError as error:
      raise ValueError(f"The device profile of {self.device!r} does not fit this network: "
                       f"{error} (`{pack}`)") from None

  def to_json(self) -> Dict[str, Any]:
    m = self.measurements
    return {"version": PROFILE_VERSION, "device": self.device, "runtime": self.runtime,
            "runtime_version": self.runtime_version, "threads": self.threads,
            "format": self.format, "image_size": self.image_size,
            "num_classes": self.num_classes, "architecture": self.architecture,
            "host": self.host, "source": self.source, "seconds": self.seconds,
            "probes": [{"signature": list(s), "ms": ms} for s, ms in m.op_ms.items()],
            "overhead_ms": m.overhead_ms,
            "networks": [{"width": w, "ms": ms} for w, ms in m.network_ms.items()],
            "moves": [{"signature": list(s), "ms": ms} for s, ms in m.move_ms.items()]}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "DeviceProfile":
    """Reads `to_json`'s (and measure.py's) dict; raises ValueError naming what is wrong."""
    if data.get("version") != PROFILE_VERSION:
      raise ValueError(f"device profile version {data.get('version')!r}, expected "
                       f"{PROFILE_VERSION}: measure it again with the measure.py of a new pack.")
    missing = [k for k in ("device", "runtime", "threads", "format", "image_size", "probes",
                           "overhead_ms", "networks") if data.get(k) is None]
    if missing:
      raise ValueError(f"device profile without {missing}: not measure.py's output.")
    if data["format"] not in PROFILE_FORMATS:
      raise ValueError(f"device profile format {data['format']!r}, expected one of "
                       f"{PROFILE_FORMATS}.")
    measurements = Measurements(
        op_ms={tuple(probe["signature"]): float(probe["ms"]) for probe in data["probes"]},
        overhead_ms=float(data["overhead_ms"]),
        network_ms={float(network["width"]): float(network["ms"])
                    for network in data["networks"]},
        move_ms={tuple(move["signature"]): float(move["ms"]) for move in data.get("moves", [])})
    return cls(device=str(data["device"]), runtime=str(data["runtime"]),
               runtime_version=data.get("runtime_version"), threads=int(data["threads"]),
               format=data["format"], image_size=int(data["image_size"]),
               num_classes=int(data.get("num_classes") or 0), measurements=measurements,
               architecture=dict(data.get("architecture") or {}),
               host=dict(data.get("host") or {}), source=str(data.get("source", "timed")),
               seconds=data.get("seconds"))


def load_profile(path: str) -> DeviceProfile:
  """The profile at `path`; a ValueError that says what was given and expected."""
  try:
    data = files_lib.read_json(path)
  except FileNotFoundError:
    raise ValueError(f"--device_profile={path}: no such file. Write one with measure.py of a "
                     "`squish-profile pack` on the device, or jetson_trt.py --profile_out of a "
                     "Jetson pack (docs/devices.md).") from None
  except ValueError as error:
    raise ValueError(f"--device_profile={path} is not JSON ({error}).") from None
  try:
    return DeviceProfile.from_json(data)
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(f"--device_profile={path}: {error}") from None
