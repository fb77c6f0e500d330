"""The machine a figure was measured on (CPU model, cores, versions)."""

import importlib.metadata
import os
import platform
from typing import Any, Dict, Optional


def machine_info() -> Dict[str, Any]:
  """Platform, CPU and library versions: what a timing depends on."""
  info: Dict[str, Any] = {
      "platform": platform.platform(),
      "machine": platform.machine(),
      "processor": _cpu_model() or platform.processor() or None,
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
  }
  if hasattr(os, "sched_getaffinity"):
    info["usable_cpus"] = len(os.sched_getaffinity(0))
  if hasattr(os, "getloadavg"):
    # A load above the CPU count means other work shared the cores: noisy timings.
    info["load_average_1min"] = os.getloadavg()[0]
  for package in ("tensorflow", "keras", "ai-edge-litert"):
    try:
      info[package.replace("-", "_")] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      info[package.replace("-", "_")] = None
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
  except ImportError:
    pass
  return info


def _cpu_model() -> Optional[str]:
  try:
    with open("/proc/cpuinfo", "r", encoding="utf-8") as handle:
      for line in handle:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None
