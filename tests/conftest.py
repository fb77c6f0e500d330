"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, shared fixtures."""

import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from squish_tf.runtime import workers  # noqa: E402

# TensorFlow's start-up lines, which no log level stops, would otherwise reach the terminal
# from the pytest-xdist controller (it imports this file too, outside any capture).
workers.import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two logical CPU devices let the mirrored strategy run with two replicas on a
# CPU-only machine. This must happen before TensorFlow initialises its runtime,
# hence here, at collection time, for the whole session.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
# A pytest-xdist worker (`make test`: one per core) takes its share of the cores for an op's
# threads, as the job's worker processes do (`workers.threads_per_worker`): more threads than
# that only wait on each other's cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
  tf.config.threading.set_intra_op_parallelism_threads(workers.threads_per_worker(
      workers.usable_cores(), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture
def fast_latency(request, monkeypatch):
  """Every run times its candidates in LiteRT (~1.3 s of conversion each): the modules that
  evolve (`pytestmark = pytest.mark.usefixtures("fast_latency")`) time them by their MACs
  instead (`toy.fake_latency`: evolve's default `measure` seam, nothing else). A test there
  that asks for `real_latency` converts and times for real; the session's readme_run (the
  README's example, end to end) does too."""
  if "real_latency" in request.fixturenames:
    return
  import toy  # pylint: disable=g-import-not-at-top

  toy.fake_latency(monkeypatch)


@pytest.fixture
def real_latency():
  """Opts a test out of `fast_latency`."""


@pytest.fixture(autouse=True)
def fixed_step_costs(request, monkeypatch):
  """The plan before every job (`job.estimate.measure_costs`) builds and traces the ancestor
  and a quarter-size network to time their steps: seconds per job call, and no test here
  reads the figures. Every test gets fixed costs instead; a test that asks for
  `real_step_costs` times the steps for real (as every subprocess main does)."""
  if "real_step_costs" in request.fixturenames:
    return
  import toy  # pylint: disable=g-import-not-at-top

  toy.fixed_step_costs(monkeypatch)


@pytest.fixture
def backup_every_epoch(monkeypatch):
  """A fit backs up at most every `trainer.BACKUP_SECONDS`; the tests' fits take less. A test
  that kills a fit after a given epoch and resumes it asks for this: every epoch is backed up,
  as Keras does (test_train checks the period with a fake clock). Other tests back up as a
  run does: their fits end before the first backup is due."""
  from squish_tf.train import trainer  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(trainer, "BACKUP_SECONDS", 0.0)


@pytest.fixture
def real_step_costs():
  """Opts a test out of `fixed_step_costs`."""


@pytest.fixture(scope="session")
def toy_parent_dir(tmp_path_factory):
  """A model dir of toy.TINY trained on toy.data to 100% (a parent for evolution and baselines)."""
  import toy  # pylint: disable=g-import-not-at-top

  from squish_tf.data import config as data_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import config as train_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.train import trainer as train_lib  # pylint: disable=g-import-not-at-top

  directory = str(tmp_path_factory.mktemp("toy_parent") / "ancestor")
  train, val, info = toy.data()
  metrics = train_lib.train_model_dir(
      directory, toy.TINY, data_config_lib.DataConfig(image_size=32),
      train_config_lib.TrainConfig(epochs=8, learning_rate=1e-2, warmup_epochs=0), train, val, info,
      seed=0, verbose=0)
  # Tests downstream assume a parent that learned (pruning keeps its accuracy, say). The
  # data order is fixed (toy.data), but without a warm-up one order in eight left a class's
  # ReLUs dead (64.6%, measured): say so here rather than in some test downstream.
  assert metrics["top1"] == 1.0, metrics
  return directory


def readme_example() -> str:
  """The README's Python API example, as written there."""
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
    readme = handle.read()
  section = readme[readme.index("## Python API"):]
  start = section.index("```python\n") + len("```python\n")
  return section[start:section.index("\n```", start)]


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory):
  """The README's Python API example, run as written, killed once: the main job end to end.

  The example runs in a scratch directory (its paths are relative, as a
  user's are: it writes saved_models/tiny). Its `squish_tf.run` call is killed
  right after the synthesis stage and called again with the same options, as
  a user re-runs a killed command, so this one run of the whole job serves
  test_api (the example, its results and flags.txt) and test_job (resume by
  stage, every file, consistent numbers). Every read of the test split is
  recorded with the stages finished before it in that call. The plan's step costs are fixed,
  as in every test (`toy.fixed_step_costs`); the candidates are timed for real.

  Returns:
    A dict: `where` (the scratch directory), `run_dir` (as the example names
    it, relative to `where`) and `abs_run_dir`; `results` and `options` of the
    example's call; `text`/`log` (its console output); `calls` (per job call:
    the stages finished and the lines logged); `test_reads`; and, as they were
    after the kill, `ancestor_mtime` and `lineage_before`.
  """
  import toy  # pylint: disable=g-import-not-at-top

  from squish_tf import api  # pylint: disable=g-import-not-at-top
  from squish_tf.data import pipeline as data_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import run as job  # pylint: disable=g-import-not-at-top

  where = str(tmp_path_factory.mktemp("readme"))
  abs_run_dir = os.path.join(where, "saved_models", "tiny")
  options_seen, calls, test_reads, after_kill = [], [], [], {}
  original_run, original_run_job, original_load_test = api.run, job.run_job, data_lib.load_test

  def recording_run_job(*args, on_stage_done=(), log=print, **kwargs):
    call = {"stages": [], "log": []}
    calls.append(call)

    def log_line(line):
      call["log"].append(line)
      log(line)

    def stage_done(stage):
      call["stages"].append(stage)
      if len(calls) == 1 and stage == "synthesis":
        raise toy.Stop()

    return original_run_job(*args, on_stage_done=list(on_stage_done) + [stage_done],
                            log=log_line, **kwargs)

  def recording_load_test(*args, **kwargs):
    test_reads.append({"call": len(calls), "finished": list(calls[-1]["stages"])})
    return original_load_test(*args, **kwargs)

  def run_killed_once(**options):
    options_seen.append(dict(options))
    with pytest.raises(toy.Stop):
      original_run(**options)
    model_path = os.path.join(abs_run_dir, "ancestor", "model.keras")
    after_kill.update(ancestor_mtime=os.path.getmtime(model_path), test_reads=list(test_reads),
                      lineage_before=open(os.path.join(abs_run_dir, "lineage.json")).read())
    return original_run(**options)

  namespace, out = {}, io.StringIO()
  with pytest.MonkeyPatch.context() as patch:
    patch.chdir(where)
    toy.fixed_step_costs(patch)  # a session fixture: set up before any test's autouse ones
    patch.setattr(api, "run", run_killed_once)
    patch.setattr(job, "run_job", recording_run_job)
    patch.setattr(data_lib, "load_test", recording_load_test)
    with contextlib.redirect_stdout(out):
      exec(compile(readme_example(), "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert len(options_seen) == 1 and len(calls) == 2
  assert namespace["again"] == namespace["results"]
  assert not after_kill.pop("test_reads"), "the killed call read the test split"
  return dict(after_kill, where=where, run_dir=os.path.join("saved_models", "tiny"),
              abs_run_dir=abs_run_dir, results=namespace["results"], options=options_seen[0],
              text=out.getvalue(), log=out.getvalue().splitlines(), calls=calls,
              test_reads=test_reads)



# With pytest-xdist (`make test` runs two workers, as the machine has two cores: much of a
# test's time is single-threaded graph tracing, so two workers overlap it), the tests of a
# module run in one worker, so that its module-scoped fixtures are built once; test_api and
# test_job share one worker, as they share the one readme_run.
_SHARED_SCOPES = {"tests/test_api.py": "readme_run", "tests/test_job.py": "readme_run"}
# A worker takes the next scope when it is nearly done with its last one: the costliest scopes
# go first, longest first (xdist would order them by their number of tests), so that the cheap
# ones fill in at the end and both workers finish together. Most costly first, roughly.
_COSTLIEST_FIRST = (
    "readme_run", "tests/test_export_formats.py", "tests/test_evolution.py",
    "tests/test_baselines.py", "tests/test_polish.py", "tests/test_pipelines.py",
    "tests/test_export_jetson.py", "tests/test_train.py", "tests/test_deep_budget.py",
    "tests/test_budgets.py", "tests/test_family.py", "tests/test_latency.py",
    "tests/test_predict.py", "tests/test_workers.py", "tests/test_distill.py",
    "tests/test_micro_budget.py", "tests/test_synthesis.py", "tests/test_profiles.py",
    "tests/test_data.py", "tests/test_benchmark.py", "tests/test_surgery.py",
    "tests/test_export_errors.py", "tests/test_ladder.py", "tests/test_models.py",
    "tests/test_litert.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  from xdist import scheduler  # pylint: disable=g-import-not-at-top

  class ByModule(scheduler.LoadScopeScheduling):

    def _split_scope(self, nodeid):
      module = nodeid.split("::", 1)[0]
      return _SHARED_SCOPES.get(module, module)

    def _assign_work_unit(self, node):
      costliest = next((scope for scope in _COSTLIEST_FIRST if scope in self.workqueue), None)
      if costliest is not None:
        self.workqueue.move_to_end(costliest, last=False)
      super()._assign_work_unit(node)

  return ByModule(config, log)
