"""What the seed-by-seed benchmark scripts share (speed_frontier.py, device_aim.py, ...): the
job options given as --extra=name=value, their quiet logging, the ratio they print and the
summary.json they write after their seeds. Not a benchmark itself.
"""

import os
import shutil
from typing import Any, Dict, Iterable, Mapping, Sequence

from absl import flags, logging

from squish_tf import files as files_lib


def extra_options(options: Dict[str, Any], extra: Iterable[str]) -> Dict[str, Any]:
  """`options` with each name=value of `extra` (--extra) added, a value as its text."""
  for item in extra:
    name, _, value = item.partition("=")
    options[name] = value
  return options


def share_ancestor(source: str, run_dir: str, files: Sequence[str] = ()) -> None:
  """The seed's trained ancestor (without its export), and each of `files` that `source` has
  (e.g. its latency table), copied into a later run's dir; nothing when it has one already."""
  if os.path.exists(os.path.join(run_dir, "ancestor")):
    return
  os.makedirs(run_dir, exist_ok=True)
  shutil.copytree(os.path.join(source, "ancestor"), os.path.join(run_dir, "ancestor"),
                  ignore=shutil.ignore_patterns("export"))
  for name in files:
    if os.path.exists(os.path.join(source, name)):
      shutil.copy(os.path.join(source, name), os.path.join(run_dir, name))


def quiet_logging() -> None:
  """absl's WARNING level unless --verbosity was given (the converter's INFO lines off, as the
  mains keep them)."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def speed(median: float, low: float, high: float) -> str:
  """A median ratio with its min-max: '2.00x [1.90-2.10]'."""
  return f"{median:.2f}x [{low:.2f}-{high:.2f}]"


def percent(value) -> str:
  """A fraction as '97.25%', or 'n/a' for None."""
  return "n/a" if value is None else f"{100 * value:.2f}%"


def speed_of(stats) -> str:
  """`speed` of a {"median", "min", "max"} dict."""
  return speed(stats["median"], stats["min"], stats["max"])


def write_summary(run_dir: str, flag_values: Mapping[str, Any],
                  per_seed: Mapping[int, Any]) -> str:
  """Writes `<run_dir>/summary.json` ({"flags", "per_seed"}) atomically, says so, returns its
  path."""
  path = os.path.join(run_dir, "summary.json")
  files_lib.write_json(path, {"flags": dict(flag_values), "per_seed": per_seed})
  print(f"wrote {path}")
  return path
