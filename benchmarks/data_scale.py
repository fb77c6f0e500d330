"""Real data at real scale: an ImageNet-10-sized JPEG folder through `data.load` and the main job.

Writes a 10-class JPEG folder of --num_images shapes10 images at --file_px px
(13,000 at 256 px, like ImageNet-10's training split) into --work_dir (kept
and reused while complete), then prints:

  (a) preparation   the first `data.load` of the folder (scan, stat, decode
                    every training and validation file once to index it) and
                    later loads that read the index file (this process's own
                    index forgotten each time, as in a new process); goal
                    <= 1 s. --cache=none, so no image cache is written.
  (b) throughput    training images/sec of squishednet_base at --image_size
                    fed by the `data.load` pipeline (decoded images cached as
                    --cache places them, filled by one untimed pass), by the
                    same pipeline decoding every step (--cache=none), and from
                    memory (pre-made batches): rounds in turn A B C A B C ...,
                    median ratio to memory with min-max; goal >= 0.9.
  (c) peak memory   the main job (`squish`) with --workers=2 on a subset of
                    --job_images of the folder at --image_size: the resident
                    memory (VmRSS) of its whole process tree, sampled every
                    --sample_seconds from /proc, at its peak; goal <= 6 GiB.
                    A tiny budget: 2 ancestor epochs, 1 generation of 2
                    offspring x 1 epoch, no polish, no baselines, fp32 export.
  (d) resume        the same job at --resume_image_size px with 4-epoch
                    offspring fine-tunes, killed (SIGKILL, whole process tree)
                    halfway through an offspring's third epoch, then re-run:
                    the epochs each offspring trains again; goal <= 1 (the
                    one that was running).

  python benchmarks/data_scale.py --num_images=13000 --job_images=2600

Keep it short on a shared machine with --parts and smaller --num_images,
--job_images and --steps. --cleanup=all deletes --work_dir at the end.
"""

import dataclasses
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import app, flags, logging  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pipelines  # noqa: E402
pipelines.import_tensorflow()  # TensorFlow, without its start-up noise
from squish_tf.data import cache as cache_lib  # noqa: E402
from squish_tf.data import config as data_config_lib  # noqa: E402
from squish_tf.data import folder as folder_lib  # noqa: E402
from squish_tf.data import pipeline as data  # noqa: E402
from squish_tf.data import shapes10  # noqa: E402
from squish_tf.net import models  # noqa: E402
from squish_tf.net import spec as spec_lib  # noqa: E402
from squish_tf.train import config as train_config_lib  # noqa: E402
from squish_tf.train import trainer as train  # noqa: E402

_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/data_scale",
                                "Where the folder, caches and runs go.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 13000, "Images in the folder.", lower_bound=20)
_FILE_PX = flags.DEFINE_integer("file_px", 256, "Side of the written JPEG files.", lower_bound=8)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Training image size for (b) and (c).",
                                   lower_bound=8)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size for (b) and (c).", lower_bound=1)
_CACHE = flags.DEFINE_enum("cache", "auto", list(data_config_lib.CACHE_MODES),
                           "Placement of the cached pipeline in (b).")
_STEPS = flags.DEFINE_integer("steps", 8, "Timed training steps per round in (b).", lower_bound=1)
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 3, "Untimed steps before each round.",
                                     lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds per feed in (b).", lower_bound=1)
_MEMORY_BATCHES = flags.DEFINE_integer("memory_batches", 8,
                                       "Distinct pre-made batches of the in-memory feed.",
                                       lower_bound=1)
_JOB_IMAGES = flags.DEFINE_integer("job_images", 2600,
                                   "Images of the folder the job runs of (c) and (d) use "
                                   "(the first of each class); 0 = all.", lower_bound=0)
_JOB_CACHES = flags.DEFINE_list("job_caches", ["auto"], "--cache values to run (c) with.")
_RESUME_IMAGE_SIZE = flags.DEFINE_integer("resume_image_size", 64, "Image size of (d)'s runs.",
                                          lower_bound=8)
_SAMPLE_SECONDS = flags.DEFINE_float("sample_seconds", 0.5, "RSS sampling period of (c).",
                                     lower_bound=0.05)
_PARTS = flags.DEFINE_list("parts", ["a", "b", "c", "d"], "Which measurements to make.")
_CLEANUP = flags.DEFINE_enum("cleanup", "runs", ["none", "runs", "all"],
                             "What to delete at the end: nothing, the caches and job runs "
                             "(the folder stays for the next time), or --work_dir.")

_CHUNK = 500  # images drawn per shapes10 call (bounded memory while writing)
_SQUISH = os.path.join(os.path.dirname(sys.executable), "squish")


def _gib(size: float) -> str:
  return f"{size / 2**30:.2f} GiB"


def _median_range(values: Sequence[float], digits: int = 3) -> str:
  return (f"{statistics.median(values):.{digits}f} (min {min(values):.{digits}f}, "
          f"max {max(values):.{digits}f}, n={len(values)})")


# -- the folder -------------------------------------------------------------------


def write_folder(root: str, count: int, px: int) -> bool:
  """A class-per-folder JPEG tree of `count` shapes10 images; False if it is there already."""
  marker = os.path.join(root, ".complete")
  if os.path.isfile(marker):
    return False
  shutil.rmtree(root, ignore_errors=True)
  for name in shapes10.CLASS_NAMES:
    os.makedirs(os.path.join(root, name))
  for start in range(0, count, _CHUNK):
    size = min(_CHUNK, count - start)
    images, labels = shapes10.generate(size, px, seed=start // _CHUNK, split="train")
    for offset, (image, label) in enumerate(zip(images, labels)):
      encoded = tf.io.encode_jpeg(image, quality=90).numpy()
      path = os.path.join(root, shapes10.CLASS_NAMES[label], f"{start + offset:05d}.jpg")
      with open(path, "wb") as handle:
        handle.write(encoded)
  with open(marker, "w", encoding="utf-8") as handle:
    handle.write(f"{count} images at {px} px\n")
  return True


def subset_folder(root: str, target: str, count: int) -> str:
  """The first count / 10 files of each class of `root`, hard-linked under `target`."""
  marker = os.path.join(target, ".complete")
  if os.path.isfile(marker):
    return target
  shutil.rmtree(target, ignore_errors=True)
  per_class = max(2, count // len(shapes10.CLASS_NAMES))
  for name in shapes10.CLASS_NAMES:
    os.makedirs(os.path.join(target, name))
    for file_name in sorted(os.listdir(os.path.join(root, name)))[:per_class]:
      os.link(os.path.join(root, name, file_name), os.path.join(target, name, file_name))
  with open(marker, "w", encoding="utf-8") as handle:
    handle.write(f"{per_class} per class\n")
  return target


def _folder_bytes(root: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


# -- (a) preparation ----------------------------------------------------------------


def measure_preparation(root: str, cache_dir: str) -> None:
  shutil.rmtree(cache_dir, ignore_errors=True)
  config = data_config_lib.DataConfig(dataset="folder", data_dir=root, image_size=_IMAGE_SIZE.value,
                           batch_size=_BATCH_SIZE.value, cache="none", cache_dir=cache_dir)
  folder_lib.FOLDER_INDEXES.clear()
  start = time.perf_counter()
  _, _, info = data.load(config)
  first = time.perf_counter() - start
  later, same_process = [], []
  for _ in range(3):
    folder_lib.FOLDER_INDEXES.clear()
    start = time.perf_counter()
    data.load(config)
    later.append(time.perf_counter() - start)
    start = time.perf_counter()
    data.load(config)
    same_process.append(time.perf_counter() - start)
  folder_lib.FOLDER_INDEXES.clear()
  start = time.perf_counter()
  _, test_info = data.load_test(config)
  first_test = time.perf_counter() - start
  folder_lib.FOLDER_INDEXES.clear()
  start = time.perf_counter()
  data.load_test(config)
  later_test = time.perf_counter() - start
  index = folder_lib.folder_index_path(cache_dir, root)
  print(f"(a) preparation: {info.train_count} train + {info.validation_count} validation + "
        f"{test_info.test_count} test files")
  print(f"    first load() (scan, decode-check {info.train_count + info.validation_count} files, "
        f"write the index): {first:7.2f} s")
  print(f"    later load() (index file read):      {_median_range(later, 3)} s")
  print(f"    later load() in the same process:    {_median_range(same_process, 3)} s")
  print(f"    load_test(): first {first_test:.2f} s ({test_info.test_count} files checked), "
        f"later {later_test:.3f} s; index file {os.path.getsize(index) / 2**20:.1f} MiB",
        flush=True)


# -- (b) throughput -----------------------------------------------------------------


class _StepTimer(keras.callbacks.Callback):
  """Wall time from the end of the warm-up steps to the end of the last step."""

  def __init__(self, warmup_steps: int):
    super().__init__()
    self._warmup = warmup_steps
    self.start = self.stop = None

  def on_train_batch_end(self, batch, logs=None):
    if batch + 1 == self._warmup:
      self.start = time.perf_counter()
    self.stop = time.perf_counter()


def _images_per_sec(model, dataset: tf.data.Dataset) -> float:
  timer = _StepTimer(_WARMUP_STEPS.value)
  model.fit(dataset, epochs=1, steps_per_epoch=_WARMUP_STEPS.value + _STEPS.value,
            callbacks=[timer], shuffle=False, verbose=0)
  return _STEPS.value * _BATCH_SIZE.value / (timer.stop - timer.start)


def measure_throughput(root: str, cache_dir: str) -> None:
  shutil.rmtree(cache_dir, ignore_errors=True)
  size = _IMAGE_SIZE.value
  config = data_config_lib.DataConfig(dataset="folder", data_dir=root, image_size=size,
                           batch_size=_BATCH_SIZE.value, cache=_CACHE.value, cache_dir=cache_dir)
  start = time.perf_counter()
  train_ds, _, info = data.load(config)
  load_seconds = time.perf_counter() - start
  placement = dict(info.cache)[data_config_lib.TRAIN]
  start = time.perf_counter()
  batches = sum(1 for _ in train_ds)  # fills a memory cache (a disk cache is written by load)
  fill_seconds = time.perf_counter() - start
  cached = train_ds.repeat()
  uncached = data.load(dataclasses.replace(config, cache="none"))[0].repeat()
  images, labels = [], []
  for batch_images, batch_labels in train_ds.take(_MEMORY_BATCHES.value):
    images.append(batch_images)
    labels.append(batch_labels)
  memory = tf.data.Dataset.from_tensor_slices((tf.stack(images), tf.stack(labels))).repeat()

  keras.utils.set_random_seed(0)
  spec = spec_lib.squishednet_base(info.num_classes, (size, size, 3))
  model = models.build_model(spec, seed=0)
  train.compile_model(model, train_config_lib.TrainConfig(), steps_per_epoch=len(train_ds))
  feeds = {"pipeline": cached, "memory": memory, "uncached": uncached}
  rates: Dict[str, List[float]] = {name: [] for name in feeds}
  for _ in range(_ROUNDS.value):
    for name, feed in feeds.items():
      rates[name].append(_images_per_sec(model, feed))
  budget = cache_lib.memory_budget(config.processes)
  print(f"(b) training throughput at {size} px, batch {_BATCH_SIZE.value}, "
        f"{_STEPS.value} timed steps x {_ROUNDS.value} rounds per feed (A B C A B C ...)")
  print(f"    train split {info.train_count} images = {_gib(info.train_count * size * size * 3)} "
        f"decoded; --cache={_CACHE.value} placed it: {placement} (memory budget "
        f"{_gib(budget)}); load() {load_seconds:.2f} s")
  fill_rate = batches * _BATCH_SIZE.value / fill_seconds
  print(f"    first pass (decode + fill, no model): {fill_rate:6.0f} images/s "
        f"({fill_seconds:.1f} s)")
  for name, label in (("pipeline", f"data.load, cached ({placement})"),
                      ("uncached", "data.load, --cache=none"), ("memory", "in memory")):
    print(f"    {label:<32} {_median_range(rates[name], 1)} images/s")
  for name in ("pipeline", "uncached"):
    ratios = [a / b for a, b in zip(rates[name], rates["memory"])]
    print(f"    ratio {name} / memory:            {_median_range(ratios)}", flush=True)


# -- (c) peak memory and (d) resume: the main job -------------------------------------


def _children() -> Dict[int, List[int]]:
  tree: Dict[int, List[int]] = {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    tree.setdefault(int(fields[1]), []).append(int(entry))
  return tree


def _tree_rss(root_pid: int) -> Dict[int, int]:
  """{pid: VmRSS bytes} of `root_pid` and all its descendants."""
  tree, out, todo = _children(), {}, [root_pid]
  while todo:
    pid = todo.pop()
    todo.extend(tree.get(pid, []))
    try:
      with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
          if line.startswith("VmRSS:"):
            out[pid] = int(line.split()[1]) * 1024
    except OSError:
      continue
  return out


def _job_command(data_dir: str, run_dir: str, image_size: int, extra: Sequence[str]) -> List[str]:
  return [_SQUISH, "--dataset=folder", f"--data_dir={data_dir}", f"--run_dir={run_dir}",
          f"--image_size={image_size}", f"--batch_size={_BATCH_SIZE.value}", "--workers=2",
          "--generations=1", "--population=2", "--final_epochs=0", "--baselines=none",
          "--formats=fp32", "--eval_images=200", "--batch_sizes=1", "--min_runs=3",
          "--min_seconds=0.1", *extra]


def _job_env() -> Dict[str, str]:
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def measure_job_memory(data_dir: str, run_dir: str, cache: str, images: int) -> None:
  shutil.rmtree(run_dir, ignore_errors=True)
  size = _IMAGE_SIZE.value
  command = _job_command(data_dir, run_dir, size, ["--train_epochs=2", "--offspring_epochs=1",
                                                   f"--cache={cache}"])
  os.makedirs(os.path.dirname(run_dir), exist_ok=True)
  log_path = run_dir + ".log"
  start = time.perf_counter()
  peak_total, peak_pid, peak_processes = 0, {}, 0
  with open(log_path, "w", encoding="utf-8") as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_job_env(),
                               start_new_session=True)
    while process.poll() is None:
      rss = _tree_rss(process.pid)
      if sum(rss.values()) > peak_total:
        peak_total, peak_processes = sum(rss.values()), len(rss)
      for pid, value in rss.items():
        peak_pid[pid] = max(peak_pid.get(pid, 0), value)
      time.sleep(_SAMPLE_SECONDS.value)
  seconds = time.perf_counter() - start
  largest_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
  decoded = images * size * size * 3
  budget = cache_lib.memory_budget(3)
  print(f"(c) peak resident memory of `squish --workers=2 --cache={cache}` on {images} images at "
        f"{size} px (decoded {_gib(decoded)}; auto's budget now {_gib(budget)} per process of 3)")
  print(f"    exit {process.returncode} after {seconds:.0f} s (log: {log_path})")
  print(f"    peak of the tree's summed VmRSS:      {_gib(peak_total)} ({peak_processes} "
        f"processes at that moment)")
  print(f"    peak per process (MiB):              "
        f"{', '.join(f'{v / 2**20:.0f}' for v in sorted(peak_pid.values(), reverse=True)[:6])}")
  print(f"    largest reaped child (ru_maxrss):    {_gib(largest_child)}", flush=True)
  if process.returncode:
    with open(log_path, encoding="utf-8") as handle:
      print("    last log lines:\n      " + "\n      ".join(handle.read().splitlines()[-8:]))


_EPOCH = re.compile(r"^(gen_\d+/cand_\d+) epoch (\d+)/(\d+) - (\d+)s")


def _run_watching(command: List[str], log_path: str, stop_when, timeout: float
                  ) -> Tuple[Dict[str, List[int]], int]:
  """Runs `command`, reading its epoch lines; kills its process tree when stop_when(...) says.

  stop_when(label, epoch, seconds, epochs so far) returns None, or the seconds
  to wait before the kill. Lines already written when the tree dies are read too.

  Returns ({candidate: epochs it printed, in order}, exit status).
  """
  epochs: Dict[str, List[int]] = {}
  killed = False
  with open(log_path, "a", encoding="utf-8") as log:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=_job_env(), start_new_session=True, text=True)
    timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    try:
      for line in process.stdout:
        log.write(line)
        match = _EPOCH.match(line)
        if not match:
          continue
        label, epoch, seconds = match.group(1), int(match.group(2)), int(match.group(4))
        epochs.setdefault(label, []).append(epoch)
        delay = None if killed else stop_when(label, epoch, seconds, epochs)
        if delay is not None:
          time.sleep(delay)
          os.killpg(process.pid, signal.SIGKILL)
          killed = True  # read on to the end of what the tree wrote
    finally:
      timer.cancel()
      process.wait()
      process.stdout.close()
  return epochs, process.returncode


def measure_resume(data_dir: str, run_dir: str) -> None:
  shutil.rmtree(run_dir, ignore_errors=True)
  os.makedirs(os.path.dirname(run_dir), exist_ok=True)
  log_path = run_dir + ".log"
  epochs = 4
  command = _job_command(data_dir, run_dir, _RESUME_IMAGE_SIZE.value,
                         ["--train_epochs=3", f"--offspring_epochs={epochs}"])

  def kill_in_third_epoch(label, epoch, seconds, seen):
    del seen
    if label.endswith("cand_00") and epoch == 2:
      return max(0.5, seconds / 2)  # halfway through epoch 3
    return None

  before, status = _run_watching(command, log_path, kill_in_third_epoch, timeout=1800)

  pending = [label for label, seen in before.items() if seen[-1] < epochs]

  def stop_when_fine_tuned(label, epoch, seconds, seen):
    del label, epoch, seconds
    done = [c for c in pending if seen.get(c) and seen[c][-1] == epochs]
    return 0.0 if len(done) == len(pending) else None

  after, _ = _run_watching(command, log_path, stop_when_fine_tuned, timeout=1800)
  print(f"(d) resume after SIGKILL halfway through gen_001/cand_00's epoch 3 of {epochs} "
        f"({_RESUME_IMAGE_SIZE.value} px, workers=2; first run's exit status {status})")
  for label in sorted(before):
    done = max(before[label])
    # Epochs the re-run trains that had started before the kill (the running one: done + 1).
    redone = len([e for e in after.get(label, []) if e <= done + 1]) if done < epochs else len(
        after.get(label, []))
    print(f"    {label}: epochs finished before the kill {before[label]}, re-run trained "
          f"{after.get(label, [])} -> epochs redone: {redone}")
  print(f"    (log: {log_path})", flush=True)


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # data.load logs each placement at INFO
  work = _WORK_DIR.value
  print(f"CPUs: {os.cpu_count()}  load average at start: "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}  available memory "
        f"{_gib(cache_lib.available_memory_bytes())}")
  root = os.path.join(work, f"folder_{_NUM_IMAGES.value}_{_FILE_PX.value}px")
  start = time.perf_counter()
  written = write_folder(root, _NUM_IMAGES.value, _FILE_PX.value)
  print(f"folder {root}: {_NUM_IMAGES.value} JPEGs at {_FILE_PX.value} px, "
        f"{_folder_bytes(root) / 2**20:.0f} MiB"
        f"{f', written in {time.perf_counter() - start:.0f} s' if written else ' (reused)'}",
        flush=True)
  parts = set(_PARTS.value)
  if "a" in parts:
    measure_preparation(root, os.path.join(work, "cache_a"))
  if "b" in parts:
    measure_throughput(root, os.path.join(work, "cache_b"))
  job_images = _JOB_IMAGES.value or _NUM_IMAGES.value
  job_root = root if job_images >= _NUM_IMAGES.value else subset_folder(
      root, os.path.join(work, f"subset_{job_images}"), job_images)
  if "c" in parts:
    for cache in _JOB_CACHES.value:
      measure_job_memory(job_root, os.path.join(work, "runs", f"memory_{cache}"), cache,
                         job_images)
  if "d" in parts:
    measure_resume(job_root, os.path.join(work, "runs", "resume"))
  if _CLEANUP.value == "all":
    shutil.rmtree(work, ignore_errors=True)
  elif _CLEANUP.value == "runs":
    for name in ("cache_a", "cache_b", "runs"):
      shutil.rmtree(os.path.join(work, name), ignore_errors=True)
  print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
  app.run(main)
