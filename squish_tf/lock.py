"""One writer per run directory: a lock file taken before anything is written.

  with lock.RunLock(run_dir, command="squish --run_name=demo") as held:
    with held.refusal():   # checks that may refuse the run: on error the dir is as it was
      ...validate the data, write flags.txt...
    ...the stages...

The lock is `<run_dir>/squish.lock`, a small JSON file (pid, host, start time,
command) created atomically: written under a temporary name, then hard-linked
onto the lock's name, which fails when the name exists, so two runs can never
both create it and a reader never sees half a lock. A second run on a locked
directory stops with `RunDirInUse` (a FileExistsError: the mains print it as
one line and exit 2) before writing anything. A lock whose process is gone (a
run killed with SIGKILL, a machine that rebooted mid-run) is taken over with a
warning; a lock held on another host cannot be checked from here and is
refused with what to delete if that run is gone.

`refusal()` wraps the checks a run makes before its first stage: when one of
them raises, whatever they wrote into the directory (a data index, flags.txt)
is removed again, and a directory the run created is removed whole, so a
refused run leaves the run dir as it found it.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import socket
import sys
from typing import Callable, Iterator, Optional, Set

LOCK_FILE = "squish.lock"


class RunDirInUse(FileExistsError):
  """Another live run holds the run directory's lock."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a lock: what the lock file says."""

  pid: int
  host: str
  started: str
  command: str = ""

  def describe(self) -> str:
    command = f" ({self.command})" if self.command else ""
    return f"pid {self.pid} on {self.host}, started {self.started}{command}"


def read_holder(path: str) -> Optional[Holder]:
  """The lock file's holder, or None when it is missing or unreadable."""
  try:
    with open(path, encoding="utf-8") as handle:
      fields = json.load(handle)
    return Holder(int(fields["pid"]), str(fields["host"]), str(fields["started"]),
                  str(fields.get("command", "")))
  except (OSError, ValueError, KeyError, TypeError):
    return None


def process_alive(pid: int) -> bool:
  """Whether a process with this pid exists on this machine."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # it exists, under another user
    return True
  return True


class RunLock:
  """The lock of one run directory (a context manager; see the module docstring)."""

  def __init__(self, directory: str, command: Optional[str] = None,
               warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr)):
    self.directory = directory
    self.path = os.path.join(directory, LOCK_FILE)
    self.holder = Holder(os.getpid(), socket.gethostname(),
                         datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                         command or " ".join(os.path.basename(a) if i == 0 else a
                                             for i, a in enumerate(sys.argv)))
    self._warn = warn
    self._created_dir = False
    self._held = False

  def __enter__(self) -> "RunLock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()

  def acquire(self) -> None:
    """Takes the lock; raises RunDirInUse naming the holder when a live run has it."""
    if self._held:
      return
    self._created_dir = not os.path.isdir(self.directory)
    os.makedirs(self.directory, exist_ok=True)
    try:
      if self._link():
        self._held = True
        return
      holder = read_holder(self.path)
      if holder is not None and not self._stale(holder):
        raise RunDirInUse(
            f"{self.directory} is in use by another run: {holder.describe()}. Wait for it to "
            "finish or use another --run_name/--run_dir" +
            ("" if holder.host == self.holder.host else
             f"; if that run is gone, delete {self.path}") + ".")
      what = ("an unreadable lock" if holder is None
              else f"the lock of a run that is gone ({holder.describe()})")
      self._warn(f"warning: taking over {what} in {self.directory}")
      # Replace it, then read it back: of two runs taking over at once, one reads the
      # other's pid and stops.
      self._write(self.path + f".{os.getpid()}.tmp", replace=True)
      again = read_holder(self.path)
      if again != self.holder:
        raise RunDirInUse(f"{self.directory} was taken over by another run at the same time: "
                          f"{again.describe() if again else 'unknown'}.")
      self._held = True
    finally:
      if not self._held:
        self._remove_dir_if_created()

  def release(self) -> None:
    """Removes the lock file when it is still ours (and the directory, if it made it empty)."""
    if not self._held:
      return
    self._held = False
    if read_holder(self.path) == self.holder:
      os.remove(self.path)
    self._remove_dir_if_created()

  @contextlib.contextmanager
  def refusal(self) -> Iterator[None]:
    """On error inside, removes every path that appeared in the run directory inside it."""
    before = _entries(self.directory)
    try:
      yield
    except BaseException:
      # Deepest first, so a new directory is emptied before it is removed.
      for name in sorted(_entries(self.directory) - before - {LOCK_FILE}, reverse=True):
        path = os.path.join(self.directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
          shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
          os.remove(path)
      raise

  def _stale(self, holder: Holder) -> bool:
    return holder.host == self.holder.host and not process_alive(holder.pid)

  def _link(self) -> bool:
    """Creates the lock file atomically; False when it exists."""
    temp = self.path + f".{os.getpid()}.tmp"
    self._write(temp, replace=False)
    try:
      os.link(temp, self.path)
      return True
    except FileExistsError:
      return False
    finally:
      os.remove(temp)

  def _write(self, temp: str, replace: bool) -> None:
    with open(temp, "w", encoding="utf-8") as handle:
      json.dump(dataclasses.asdict(self.holder), handle)
      handle.flush()
      os.fsync(handle.fileno())
    if replace:
      os.replace(temp, self.path)

  def _remove_dir_if_created(self) -> None:
    if self._created_dir and os.path.isdir(self.directory) and not os.listdir(self.directory):
      os.rmdir(self.directory)


def _entries(directory: str) -> Set[str]:
  """Every path under `directory`, relative to it (none when it does not exist)."""
  found = set()
  for root, dirs, files in os.walk(directory):
    for name in dirs + files:
      found.add(os.path.relpath(os.path.join(root, name), directory))
  return found
