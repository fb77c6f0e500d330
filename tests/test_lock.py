"""One writer per run dir: the lock refuses a live holder, takes over a dead one, cleans a refusal."""

import json
import os
import subprocess
import sys

import pytest
import toy

from squish_tf import lock as lock_lib


def _plant(directory, pid, host=None):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, lock_lib.LOCK_FILE), "w") as handle:
    json.dump({"pid": pid, "host": host or os.uname().nodename,
               "started": "2026-12-04T10:00:00+00:00", "command": "squish --run_name=x"}, handle)


def _dead_pid():
  done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  return int(done.stdout)


def test_the_lock_names_its_holder_and_goes_with_it(tmp_path):
  run_dir = str(tmp_path / "run")
  with lock_lib.RunLock(run_dir, command="squish --run_name=run") as held:
    holder = lock_lib.read_holder(held.path)
    assert holder.pid == os.getpid() and holder.command == "squish --run_name=run"
    assert holder.host == os.uname().nodename and "T" in holder.started
  assert not os.path.exists(os.path.join(run_dir, lock_lib.LOCK_FILE))
  assert not os.path.exists(run_dir)  # it made the directory, which stayed empty


def test_a_second_writer_is_refused_and_writes_nothing(tmp_path):
  run_dir = str(tmp_path / "run")
  with lock_lib.RunLock(run_dir, command="first"):
    with open(os.path.join(run_dir, "flags.txt"), "w") as handle:
      handle.write("--run_name=run\n")
    before = toy.tree(run_dir)
    with pytest.raises(lock_lib.RunDirInUse, match=f"pid {os.getpid()} on .* \\(first\\)") as err:
      with lock_lib.RunLock(run_dir, command="second"):
        raise AssertionError("the second run must not get here")
    assert "\n" not in str(err.value) and isinstance(err.value, FileExistsError)
    assert toy.tree(run_dir) == before
    assert lock_lib.read_holder(os.path.join(run_dir, lock_lib.LOCK_FILE)).command == "first"


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path):
  run_dir = str(tmp_path / "run")
  dead = _dead_pid()
  _plant(run_dir, dead)
  warnings = []
  with lock_lib.RunLock(run_dir, command="new", warn=warnings.append) as held:
    assert lock_lib.read_holder(held.path).pid == os.getpid()
  assert len(warnings) == 1 and f"pid {dead}" in warnings[0] and "gone" in warnings[0]
  assert os.listdir(run_dir) == []  # the directory was there before: it stays


def test_a_lock_on_another_host_is_refused_with_what_to_delete(tmp_path):
  run_dir = str(tmp_path / "run")
  _plant(run_dir, _dead_pid(), host="elsewhere")
  with pytest.raises(lock_lib.RunDirInUse, match="on elsewhere.*delete .*squish.lock"):
    lock_lib.RunLock(run_dir).acquire()


def test_a_refusal_leaves_the_run_dir_as_it_found_it(tmp_path):
  fresh, existing = str(tmp_path / "fresh"), str(tmp_path / "existing")
  os.makedirs(os.path.join(existing, "data_cache"))
  with open(os.path.join(existing, "data_cache", "old.json"), "w") as handle:
    handle.write("{}")
  before = toy.tree(existing)
  for run_dir in (fresh, existing):
    with pytest.raises(ValueError, match="bad image"):
      with lock_lib.RunLock(run_dir) as held:
        with held.refusal():
          os.makedirs(os.path.join(run_dir, "data_cache"), exist_ok=True)
          with open(os.path.join(run_dir, "data_cache", "folder_index.json"), "w") as handle:
            handle.write("{}")
          with open(os.path.join(run_dir, "flags.txt"), "w") as handle:
            handle.write("--x\n")
          raise ValueError("1 bad image")
  assert not os.path.exists(fresh)
  assert toy.tree(existing) == before
  # Work after the checks is kept when a later stage fails.
  with pytest.raises(RuntimeError):
    with lock_lib.RunLock(existing) as held:
      with held.refusal():
        pass
      open(os.path.join(existing, "ancestor.txt"), "w").close()
      raise RuntimeError("a stage failed")
  assert os.path.exists(os.path.join(existing, "ancestor.txt"))
