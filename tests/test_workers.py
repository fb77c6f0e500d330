"""The process pool: device plans on fake GPU lists, threads per worker, in-process calls, and
one real pool worker that reports what its initializer set up."""

import os
import threading

from absl import logging
import pytest

from squish_tf.runtime import workers


def test_each_worker_gets_its_own_gpu_and_workers_are_capped_by_the_gpus():
  assert workers.worker_devices(2, ["0", "1", "2"]) == ["0", "1"]
  assert workers.worker_devices(2, ["GPU-a1", "GPU-b2"]) == ["GPU-a1", "GPU-b2"]
  with pytest.raises(ValueError, match=r"3 workers but 2 GPUs \(\['0', '1'\]\).*at most as many"):
    workers.worker_devices(3, ["0", "1"])
  with pytest.raises(ValueError, match="num_workers must be >= 1, got 0"):
    workers.worker_devices(0, ["0"])

  plan = workers.plan_devices(4, ["0", "1"], cores=16)
  assert (plan.workers, plan.gpus, plan.threads) == (2, ("0", "1"), None)
  assert plan.note == ("--workers=4 capped to 2: 2 GPUs visible (0, 1), and each worker process "
                       "takes a GPU of its own.")
  # One GPU: one worker, in this process, and the cap is said.
  plan = workers.plan_devices(2, ["3"], cores=16)
  assert (plan.workers, plan.gpus, plan.threads) == (1, (), None)
  assert plan.note.startswith("--workers=2 capped to 1: 1 GPU visible (3)")
  # As many GPUs as workers or more: nothing to say.
  plan = workers.plan_devices(2, ["0", "1", "2", "3"], cores=16)
  assert (plan.workers, plan.gpus, plan.note) == (2, ("0", "1"), None)


def test_visible_gpu_ids_follow_cuda_visible_devices():
  assert workers.visible_gpu_ids(2) == ["0", "1"]
  assert workers.visible_gpu_ids(2, "") == ["0", "1"]
  # TensorFlow's GPU i is the i-th entry of CUDA_VISIBLE_DEVICES.
  assert workers.visible_gpu_ids(2, "2,3") == ["2", "3"]
  assert workers.visible_gpu_ids(1, " 5, 6") == ["5"]
  assert workers.visible_gpu_ids(0, "-1") == []


def test_cpu_threads_are_cores_over_workers_at_least_one():
  assert workers.threads_per_worker(cores=2, workers=2) == 1
  assert workers.threads_per_worker(cores=8, workers=3) == 2
  assert workers.threads_per_worker(cores=16, workers=1) == 16
  assert workers.threads_per_worker(cores=1, workers=4) == 1
  with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
    workers.threads_per_worker(cores=4, workers=0)
  plan = workers.plan_devices(2, [], cores=2)
  assert (plan.workers, plan.gpus, plan.threads, plan.note) == (2, (), 1, None)
  # One worker runs in this process, whose thread pools stay as they are.
  assert workers.plan_devices(1, [], cores=8) == workers.DevicePlan(workers=1)
  with pytest.raises(ValueError, match="--workers must be >= 1, got 0"):
    workers.plan_devices(0, [], cores=2)


def test_one_worker_runs_each_call_here_when_its_result_is_read():
  calls = []
  with workers.WorkerPool(1) as pool:
    assert pool.in_process and pool.plan == workers.DevicePlan(workers=1)
    futures = [pool.submit(lambda x, scale=1: calls.append(x) or x * scale, x, scale=10)
               for x in (1, 2)]
    assert calls == []  # nothing ran yet: each call runs when its result is read
    assert futures[1].result() == 20 and calls == [2]
    assert futures[0].result() == 10 and calls == [2, 1]


def _worker_report():
  """What a pool worker's initializer set up."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  return {"pid": os.getpid(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "intra": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter": tf.config.threading.get_inter_op_parallelism_threads(),
          "tf_log_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
          "allow_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
          "verbosity": logging.get_verbosity(),
          "watched": any(t.name == workers.ORPHAN_WATCH_THREAD and t.daemon
                         for t in threading.enumerate()),
          "parent": os.getppid()}


def test_a_pool_worker_takes_its_gpu_slot_and_thread_share_quietly(capfd):
  capfd.readouterr()
  # A GPU plan on this CPU host: the worker still sets its CUDA_VISIBLE_DEVICES
  # (TensorFlow then finds no GPU there); threads as a CPU plan would give.
  # One call starts one worker (the pool spawns on demand): TensorFlow's import
  # costs seconds per process.
  plan = workers.DevicePlan(workers=2, gpus=("5", "7"), threads=1)
  with workers.WorkerPool(2, plan=plan) as pool:
    assert not pool.in_process
    report = pool.submit(_worker_report).result()
  assert report["pid"] != os.getpid()
  assert report["cuda"] == "5"  # the first worker takes the first slot
  assert (report["intra"], report["inter"]) == (1, 1)
  assert report["tf_log_level"] == "2"
  assert report["allow_growth"] == os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"  # GPU memory
  assert report["verbosity"] == logging.get_verbosity()
  assert report["watched"] and report["parent"] == os.getpid()  # it ends if this process dies
  # TensorFlow's start-up lines went to /dev/null in the worker.
  err = capfd.readouterr().err
  assert "InitializeLog" not in err and "cuInit" not in err and "cuda drivers" not in err


def test_a_call_in_a_fresh_process_runs_elsewhere_with_every_core():
  report = workers.call_in_fresh_process(_worker_report)
  assert report["pid"] != os.getpid()
  assert (report["intra"], report["inter"]) == (0, 0)  # TensorFlow's default: every core
  assert report["tf_log_level"] == "2" and report["verbosity"] == logging.get_verbosity()
  assert report["watched"]


def test_an_orphaned_worker_ends_itself():
  parents = iter([10, 10, 10, 1])  # re-parented to init on the fourth look
  calls = []

  def sleep(seconds):
    calls.append(("sleep", seconds))

  def exit_process(code):
    calls.append(("exit", code))

  workers.exit_when_orphaned(10, interval=0.25, getppid=lambda: next(parents),
                             exit_process=exit_process, sleep=sleep)
  assert calls == [("sleep", 0.25)] * 3 + [("exit", workers.ORPHAN_EXIT_CODE)]
