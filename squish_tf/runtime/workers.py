"""Worker processes for evolution and the baselines: one spawn pool, devices planned per worker.

Offspring fine-tunes and baselines are independent trainings; `WorkerPool`
runs them in spawned processes (a forked TensorFlow runtime deadlocks), or in
this process when there is one worker. Each worker is set up by
`initialize_worker` before TensorFlow starts its runtime there:

- quiet: TensorFlow's C++ start-up lines (oneDNN, "Could not find cuda
  drivers", "failed call to cuInit") go to /dev/null and absl logs at the
  parent's verbosity; a parent at INFO or more (absl `--verbosity=0`) keeps
  them;
- GPU hosts: each worker sees one GPU of its own, with memory growth on (a
  process otherwise takes the whole GPU; on in the main process too, see
  TF_FORCE_GPU_ALLOW_GROWTH below), and `--workers` is capped by the GPUs
  visible;
- CPU hosts: each worker's TensorFlow thread pools get cores / workers
  threads, so two workers on two cores do not run four busy pools;
- orphans exit: a watch thread ends the worker once the process that started it is gone
  (killed with SIGTERM or SIGKILL, which a pool's own shutdown never sees), instead of
  training on alone and holding the cores a resumed run needs.

The plan (`plan_devices`, `worker_devices`, `threads_per_worker`,
`visible_gpu_ids`) is pure; TensorFlow is imported only inside the functions
at the edge (`import_tensorflow_quietly`, `local_gpu_ids`,
`configure_devices`, `initialize_worker`): a worker sets its environment
before TensorFlow loads.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from absl import logging

# A worker's slot in the GPU queue: (index among the parent's visible GPUs, CUDA id).
GpuSlot = Tuple[int, str]


# GPU memory growth in every process that can start workers (the main job imports
# this module through evolution and baselines, before TensorFlow creates a GPU
# device) and, inherited, in each worker: a process without it takes the whole
# GPU, and a worker on the main process's GPU then finds no memory left.
# TensorFlow reads the variable when it creates its GPU devices; a user's own
# setting is kept.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


@dataclasses.dataclass(frozen=True)
class DevicePlan:
  """How many workers run and what each sees.

  Attributes:
    workers: worker processes (1: everything runs in this process).
    gpus: per worker, the CUDA id of the GPU it gets; empty on a CPU host.
    threads: TensorFlow intra- and inter-op threads per worker on a CPU host;
      None on a GPU host and in-process (the main keeps its pools).
    note: why fewer workers run than were asked for, or None.
  """

  workers: int
  gpus: Tuple[str, ...] = ()
  threads: Optional[int] = None
  note: Optional[str] = None


def visible_gpu_ids(num_gpus: int, cuda_visible_devices: Optional[str] = None) -> List[str]:
  """The CUDA ids of the GPUs TensorFlow lists, in its order.

  Args:
    num_gpus: GPUs TensorFlow lists in this process.
    cuda_visible_devices: this process's CUDA_VISIBLE_DEVICES, or None when
      unset. A worker given one of these ids sees that GPU alone; without the
      variable TensorFlow's i-th GPU is CUDA device i.

  Returns:
    e.g. ["0", "1"], or ["2", "3"] under CUDA_VISIBLE_DEVICES=2,3.
  """
  if cuda_visible_devices is None or not cuda_visible_devices.strip():
    return [str(index) for index in range(num_gpus)]
  ids = [part.strip() for part in cuda_visible_devices.split(",") if part.strip()]
  return ids[:num_gpus]


def worker_devices(num_workers: int, gpus: Sequence[str]) -> List[Optional[str]]:
  """Per worker, the GPU it gets (one each, in order), or None for every worker on a CPU host.

  Args:
    num_workers: worker processes, >= 1.
    gpus: the visible GPUs (CUDA ids); empty on a CPU host.

  Raises:
    ValueError: more workers than GPUs (two processes would share one;
      `plan_devices` caps the workers first).
  """
  if num_workers < 1:
    raise ValueError(f"num_workers must be >= 1, got {num_workers!r}.")
  if not gpus:
    return [None] * num_workers
  if num_workers > len(gpus):
    raise ValueError(f"{num_workers} workers but {len(gpus)} GPUs ({list(gpus)}): each worker "
                     "takes a GPU of its own; run at most as many workers as GPUs.")
  return list(gpus[:num_workers])


def threads_per_worker(cores: int, workers: int) -> int:
  """TensorFlow threads per worker process on a CPU host: cores / workers, at least 1."""
  if workers < 1:
    raise ValueError(f"workers must be >= 1, got {workers!r}.")
  return max(1, int(cores) // workers)


def plan_devices(requested: int, gpus: Sequence[str], cores: int) -> DevicePlan:
  """The workers that run for `requested` (--workers) on a host with `gpus` and `cores`.

  Args:
    requested: --workers, >= 1.
    gpus: visible GPUs (CUDA ids, `visible_gpu_ids`); empty on a CPU host.
    cores: CPU cores this process may use.

  Returns:
    A DevicePlan: on a GPU host at most one worker per GPU (with a note when
    that caps `requested`), each on its own GPU; on a CPU host `requested`
    workers of cores / workers threads each.
  """
  if requested < 1:
    raise ValueError(f"--workers must be >= 1, got {requested!r}.")
  workers, note = requested, None
  if gpus and requested > len(gpus):
    workers = len(gpus)
    note = (f"--workers={requested} capped to {workers}: {len(gpus)} GPU"
            f"{'s' if len(gpus) > 1 else ''} visible ({', '.join(gpus)}), and each worker "
            "process takes a GPU of its own.")
  if workers == 1:
    return DevicePlan(workers=1, note=note)
  if gpus:
    return DevicePlan(workers=workers, gpus=tuple(worker_devices(workers, gpus)), note=note)
  return DevicePlan(workers=workers, threads=threads_per_worker(cores, workers), note=note)


def usable_cores() -> int:
  """CPU cores this process may run on (its affinity mask where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow (and probes its devices) with file descriptor 2 on /dev/null.

  TensorFlow writes its start-up lines straight to the stderr descriptor,
  before any logging setting applies and whatever TF_CPP_MIN_LOG_LEVEL says
  (tensorflow#100442); errors after the import show as usual.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.config.list_physical_devices()  # the CUDA probe logs here, once
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def local_gpu_ids() -> List[str]:
  """The CUDA ids of the GPUs TensorFlow lists in this process."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  return visible_gpu_ids(len(tf.config.list_physical_devices("GPU")),
                         os.environ.get("CUDA_VISIBLE_DEVICES"))


def configure_devices(gpu_index: Optional[int] = None, threads: Optional[int] = None) -> None:
  """Memory growth on every visible GPU; one GPU and `threads` threads when given.

  Must run before TensorFlow initialises its runtime in this process (before
  any op, model or dataset); afterwards TensorFlow refuses with RuntimeError.

  Args:
    gpu_index: the GPU this process keeps, as an index into the GPUs
      TensorFlow listed before CUDA_VISIBLE_DEVICES was narrowed (when the
      variable came too late: a main module imported TensorFlow first), or
      None to keep every visible GPU.
    threads: intra- and inter-op threads, or None for TensorFlow's default.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  gpus = tf.config.list_physical_devices("GPU")
  if gpu_index is not None and len(gpus) > 1:
    # TensorFlow enumerated the parent's GPUs before this worker's
    # CUDA_VISIBLE_DEVICES applied: keep this worker's one.
    gpus = [gpus[gpu_index]]
    tf.config.set_visible_devices(gpus, "GPU")
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
  if threads is not None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


# The orphan watch: its thread's name, how often it looks, and the exit code of an orphan.
ORPHAN_WATCH_THREAD = "squish_tf-orphan-watch"
ORPHAN_CHECK_SECONDS = 1.0
ORPHAN_EXIT_CODE = 70


def exit_when_orphaned(parent: int, interval: float = ORPHAN_CHECK_SECONDS,
                       getppid: Callable[[], int] = os.getppid,
                       exit_process: Callable[[int], Any] = os._exit,
                       sleep: Callable[[float], Any] = time.sleep) -> None:
  """Waits while this process's parent is `parent`, then ends the process at once.

  A worker whose parent died is re-parented (to init or a subreaper), so its parent
  id changes. `os._exit` skips clean-up on purpose: the parent that would read the
  results is gone, and every file the job writes is written atomically.
  """
  while getppid() == parent:
    sleep(interval)
  exit_process(ORPHAN_EXIT_CODE)


def watch_parent() -> threading.Thread:
  """Starts the daemon thread that ends this worker when its parent is gone."""
  thread = threading.Thread(target=exit_when_orphaned, args=(os.getppid(),),
                            name=ORPHAN_WATCH_THREAD, daemon=True)
  thread.start()
  return thread


def initialize_worker(gpu_slots: Any, threads: Optional[int], verbosity: int) -> None:
  """Runs first in every worker process: the orphan watch, environment, quiet TensorFlow,
  devices, verbosity.

  Args:
    gpu_slots: a queue of `GpuSlot`s (one per worker; each worker takes one),
      or None on a CPU host.
    threads: TensorFlow threads for this worker (CPU hosts), or None.
    verbosity: the parent's absl verbosity; below INFO the start-up noise is
      silenced.
  """
  watch_parent()
  slot: Optional[GpuSlot] = gpu_slots.get() if gpu_slots is not None else None
  if slot is not None:
    # Before TensorFlow's CUDA probe this is all it takes; configure_devices
    # narrows the GPUs when a main module probed them first.
    os.environ["CUDA_VISIBLE_DEVICES"] = slot[1]
  if verbosity < logging.INFO:
    import_tensorflow_quietly()
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.get_logger().setLevel("ERROR")  # retracing advice, as in the mains
  logging.set_verbosity(verbosity)
  configure_devices(gpu_index=None if slot is None else slot[0], threads=threads)


def call_in_fresh_process(function: Callable[..., Any], *args, **kwargs) -> Any:
  """function(*args, **kwargs) in one spawned worker that exits afterwards.

  What the call allocated (a training's activations, its data caches) goes
  back to the operating system with the process, where memory a process has
  once used stays with it. The worker is set up as a pool's would be, with
  every core's threads and the first visible GPU. The function and arguments
  must be picklable; its exceptions are re-raised here.
  """
  gpus = local_gpu_ids()
  context = multiprocessing.get_context("spawn")
  slots = None
  if gpus:
    slots = context.Queue()
    slots.put((0, gpus[0]))
  try:
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=initialize_worker,
        initargs=(slots, None, logging.get_verbosity())) as executor:
      return executor.submit(function, *args, **kwargs).result()
  finally:
    if slots is not None:
      slots.cancel_join_thread()
      slots.close()


class Deferred:
  """A future computed when its result is asked for.

  In-process calls run one at a time, in the order their results are read,
  so a caller that records each result before asking for the next sees the
  same sequence as with workers.
  """

  def __init__(self, function: Callable[..., Any], *args, **kwargs):
    self._call = (function, args, kwargs)

  def result(self) -> Any:
    function, args, kwargs = self._call
    return function(*args, **kwargs)


class WorkerPool:
  """Calls in spawned worker processes set up by `initialize_worker`, or in this process.

    pool = WorkerPool(workers)
    try:
      futures = [pool.submit(train_one, name) for name in names]
      results = [future.result() for future in futures]  # re-raises a worker's error
    finally:
      pool.close()

  With one worker (asked for, or after capping to the GPUs visible) calls run
  in this process when their result is read (`Deferred`). Functions and
  arguments given to a pool of processes must be picklable (module-level
  functions, functools.partial).
  """

  def __init__(self, workers: int, plan: Optional[DevicePlan] = None):
    """Starts `workers` processes (on demand), or none for one worker.

    Args:
      workers: --workers.
      plan: the devices (default: planned from this host's GPUs and cores).
    """
    if plan is None:
      gpus = local_gpu_ids() if workers > 1 else []
      plan = plan_devices(workers, gpus, usable_cores())
    self.plan = plan
    if plan.note:
      logging.warning(plan.note)
    self._executor: Optional[concurrent.futures.ProcessPoolExecutor] = None
    self._slots = None
    if plan.workers > 1:
      context = multiprocessing.get_context("spawn")
      if plan.gpus:
        self._slots = context.Queue()
        for index, gpu in enumerate(plan.gpus):
          self._slots.put((index, gpu))
      self._executor = concurrent.futures.ProcessPoolExecutor(
          max_workers=plan.workers, mp_context=context, initializer=initialize_worker,
          initargs=(self._slots, plan.threads, logging.get_verbosity()))

  @property
  def in_process(self) -> bool:
    return self._executor is None

  def submit(self, function: Callable[..., Any], *args, **kwargs):
    """A future of function(*args, **kwargs) (`Deferred` in process)."""
    if self._executor is None:
      return Deferred(function, *args, **kwargs)
    return self._executor.submit(function, *args, **kwargs)

  def close(self) -> None:
    """Waits for running calls, drops queued ones, and stops the workers."""
    if self._executor is not None:
      self._executor.shutdown(wait=True, cancel_futures=True)
      self._executor = None
    if self._slots is not None:
      # Slots no worker took (the pool starts workers on demand) must not hold up exit.
      self._slots.cancel_join_thread()
      self._slots.close()
      self._slots = None

  def __enter__(self) -> "WorkerPool":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
