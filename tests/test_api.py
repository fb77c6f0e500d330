"""squish_tf.run: the `squish` command from Python, with its flags, defaults, files and results."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

from absl import flags, logging
from absl.testing import flagsaver
import pytest

import squish_tf
from squish_tf import api
from squish_tf import layout as layout_lib
from squish_tf.job import flags as flag_defs
from squish_tf.job import run as job
from squish_tf.report import console as console_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
# Small enough for about a minute on 2 busy cores. One worker: no process pool to start.
TINY = dict(image_size=32, shapes10_train_size=320, shapes10_validation_size=96,
            shapes10_test_size=64, batch_size=32, train_epochs=1, generations=1, population=1,
            offspring_epochs=1, final_epochs=1, max_accuracy_drop=1.0, baselines="none",
            formats="fp32", batch_sizes="1", min_seconds=0.0, min_runs=2, eval_images=64,
            workers=1, run_name="tiny")
# Options away from their defaults, of every kind (list, bool, optional float, path...).
OTHERS = dict(TINY, augment="flip,translate", distill=False, target_size_mb=0.4,
              target_fraction=0.5, target_macs=1_000_000, optimizer="sgd", batch_norm=False,
              classifier_activation="relu", teacher="parent", run_dir="some/where",
              baselines=["width_scaled"], batch_sizes=(1, 4), formats=None)
_LINE = re.compile(r"^--(?P<name>[a-z0-9_]+)(?:=(?P<value>.*))?$")


@pytest.fixture(scope="module")
def run_main():
  from pipelines import run as run_main_lib  # pylint: disable=g-import-not-at-top  (defines flags)

  return run_main_lib


class _Captured(Exception):
  pass


def _cli(run_main, argv, monkeypatch):
  """What `squish <argv>` passes to job.run_job (the main stops right there)."""
  captured = {}

  def fake_run_job(*args, **kwargs):
    captured.update(kwargs, args=args)
    raise _Captured()

  monkeypatch.setattr(job, "run_job", fake_run_job)
  was_parsed, verbosity = FLAGS.is_parsed(), logging.get_verbosity()
  try:
    with flagsaver.flagsaver():
      FLAGS.unparse_flags()
      FLAGS(["squish", *argv])
      with pytest.raises(_Captured):
        run_main.main([])
      captured["configs"] = dict(
          data=flag_defs.data_config_from_flags(), train=flag_defs.train_config_from_flags(),
          evolution=flag_defs.evolution_config_from_flags(),
          synthesis=flag_defs.synthesis_config_from_flags(),
          benchmark=flag_defs.benchmark_config_from_flags())
  finally:
    if not was_parsed:
      FLAGS.unparse_flags()  # leave the process's flags as other tests expect them
    logging.set_verbosity(verbosity)
  return captured


def _assert_same_as_cli(plan, cli):
  config, data, train, evolution, synthesis = cli["args"]
  assert plan.job == config
  assert (plan.data, plan.train, plan.evolution, plan.synthesis) == (data, train, evolution,
                                                                       synthesis)
  assert (plan.data, plan.train, plan.evolution, plan.synthesis, plan.job.benchmark) == tuple(
      cli["configs"][k] for k in ("data", "train", "evolution", "synthesis", "benchmark"))
  assert cli["strategy"] is None and plan.distribution_strategy == "off"
  assert plan.run_flags == cli["run_flags"]
  assert plan.command == cli["command"]
  # The same lines (the order is checked against a fresh CLI process below: here other
  # mains imported by other tests may have defined the shared flags in another order).
  assert sorted(plan.flags_text.splitlines()) == sorted(cli["flags_text"].splitlines())


def _flag_lines(text):
  for line in text.splitlines():
    match = _LINE.match(line)
    assert match, line
    yield match


# -- the options are the main job's flags -----------------------------------------------


def test_options_are_exactly_the_main_jobs_flags(run_main):
  by_module = FLAGS.flags_by_module_dict()
  cli_names = {f.name for module in ("squish_tf.job.flags", run_main.__name__)
               for f in by_module[module]}
  assert set(api.option_names()) == cli_names
  assert len(api.option_names()) == len(cli_names)
  assert not set(api.RUN_KEYWORDS) & cli_names
  ours = api._flag_values()  # pylint: disable=protected-access
  for name in api.option_names():
    theirs, mine = FLAGS[name], ours[name]
    assert mine.default == theirs.default, name
    assert api.defaults()[name] == theirs.default, name
    assert (mine.flag_type(), mine.boolean) == (theirs.flag_type(), theirs.boolean), name
    assert type(mine.parser) is type(theirs.parser), name
    assert type(mine.serializer) is type(theirs.serializer), name
    for attribute in ("lower_bound", "upper_bound", "enum_values"):
      assert getattr(mine.parser, attribute, None) == getattr(theirs.parser, attribute,
                                                              None), (name, attribute)
    # run accepts every flag by name, with its default as value.
    assert api.plan(**{name: api.defaults()[name]}).options == api.defaults()


def test_default_configs_are_the_clis(run_main, monkeypatch):
  plan = api.plan()
  _assert_same_as_cli(plan, _cli(run_main, [], monkeypatch))
  assert plan.job.run_dir == os.path.join("saved_models", "demo")
  assert plan.command == "squish --flagfile=saved_models/demo/flags.txt"
  assert plan.options == api.defaults()
  assert plan.job.check_ancestor  # the CLI always checks


def test_other_options_map_like_the_flags(run_main, monkeypatch, tmp_path):
  plan = api.plan(**OTHERS)
  # flags.txt read back by the CLI gives the same configs: --flagfile reproduces the run.
  path = tmp_path / "flags.txt"
  path.write_text(plan.flags_text)
  _assert_same_as_cli(plan, _cli(run_main, [f"--flagfile={path}"], monkeypatch))
  # ...and so do the options written as command-line flags.
  argv = [f"--{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
          for k, v in OTHERS.items() if not isinstance(v, bool) and v is not None]
  argv += ["--nodistill", "--nobatch_norm"]
  _assert_same_as_cli(plan, _cli(run_main, argv, monkeypatch))
  assert plan.job.run_dir == "some/where" and plan.job.export.formats is None
  assert plan.job.baselines == ("width_scaled",) and plan.job.benchmark.batch_sizes == (1, 4)
  assert "--run_dir=some/where" in plan.flags_text.splitlines()
  assert "--formats" not in plan.flags_text  # None: not written, like the CLI


def test_flags_text_is_the_clis_byte_for_byte():
  """A fresh process running only the main job's module: the CLI's own flags.txt."""
  code = ("import json, sys; from absl import flags; import pipelines.run; "
          "from squish_tf.job import flags as flag_defs; out = []\n"
          "for argv in json.loads(sys.argv[1]):\n"
          "  flags.FLAGS.unparse_flags(); flags.FLAGS(['squish'] + argv)\n"
          "  out.append(flag_defs.flags_text(pipelines.run.MAIN_FLAGS))\n"
          "print(json.dumps(out))")
  other = api.plan(**OTHERS).flags_text
  argvs = [[], [line for line in other.splitlines()]]
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], cwd=ROOT, env=env,
                       check=True, capture_output=True, text=True, timeout=300).stdout
  assert json.loads(out.strip().splitlines()[-1]) == [api.plan().flags_text, other]


# -- errors ---------------------------------------------------------------------------


def test_unknown_option_names_it_suggests_and_lists_the_valid_ones():
  with pytest.raises(ValueError) as error:
    api.plan(generation=3)
  message = str(error.value)
  assert "'generation'" in message and "did you mean 'generations'" in message
  for name in ("dataset", "target_size_mb", "run_dir", "baselines", "verbose", "log"):
    assert name in message
  with pytest.raises(ValueError, match="'imgsize'"):
    squish_tf.run(imgsize=32)  # before anything is loaded or written


@pytest.mark.parametrize("options,words", [
    (dict(image_size=0), ["image_size", "positive"]),
    (dict(image_size=True), ["image_size"]),
    (dict(image_size=None), ["image_size", "None"]),
    (dict(validation_split=0.95), ["validation_split", "0.95"]),
    (dict(optimizer="adamw"), ["optimizer", "adam", "sgd"]),
    (dict(batch_sizes="1,x"), ["--batch_sizes", "1,x"]),
    (dict(baselines="resnet"), ["resnet", "width_scaled"]),
    (dict(env_factor=1.5), ["--env_factor", "1.5"]),
    # Values only a later stage reads are refused before anything runs (job.preflight).
    (dict(formats="fp32,fp33"), ["fp33", "saved_model", "qat_int8"]),
    (dict(image_size=7), ["--image_size=7", "31 px"]),
    (dict(dataset="cifar11"), ["cifar11", "shapes10", "imagenet10"]),
    (dict(pair_resolutions="run,16"), ["--pair_resolutions=16", "31 px"]),
])
def test_bad_values_are_refused_like_the_cli(options, words):
  with pytest.raises(ValueError) as error:
    api.plan(**options)
  for word in words:
    assert word in str(error.value)


def test_a_run_dir_without_a_run_name_names_the_run(run_main, monkeypatch):
  plan = api.plan(run_dir="some/where/win")
  assert plan.job.run_name == "win" and plan.job.run_dir == "some/where/win"
  assert "--run_name=win" in plan.flags_text.splitlines()  # --flagfile names it the same
  _assert_same_as_cli(plan, _cli(run_main, ["--run_dir=some/where/win"], monkeypatch))
  assert api.plan(run_dir="some/where/win/").job.run_name == "win"
  assert api.plan(run_dir="some/where/win", run_name="photos").job.run_name == "photos"
  assert api.plan().job.run_name == "demo"


def test_values_parse_like_the_command_line(tmp_path):
  plan = api.plan(image_size="48", max_accuracy_drop=1, augment=["none"], data_dir=tmp_path,
                  batch_sizes=[2, 16], skip_bad_images="true")
  assert plan.data.image_size == 48 and plan.data.augment == ()
  assert plan.evolution.max_accuracy_drop == 1.0
  assert isinstance(plan.options["max_accuracy_drop"], float)
  assert plan.data.data_dir == str(tmp_path) and plan.data.skip_bad_images
  assert plan.job.benchmark.batch_sizes == (2, 16)
  assert "--max_accuracy_drop=1.0" in plan.flags_text.splitlines()


# -- no TensorFlow on import ----------------------------------------------------------


def test_import_squish_tf_loads_no_tensorflow():
  code = ("import sys, squish_tf, squish_tf.net.spec, squish_tf.api; squish_tf.RunResults; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'keras', 'tf_keras'}))")
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"
  assert squish_tf.RunResults is api.RunResults and squish_tf.ModelResult is api.ModelResult
  with pytest.raises(AttributeError):
    squish_tf.no_such_thing  # pylint: disable=pointless-statement


# -- a tiny run end to end ------------------------------------------------------------


@pytest.fixture
def tiny_run(readme_run, monkeypatch):
  """The README's example, run as written (conftest.readme_run), seen from where it ran.

  Its paths are relative, as a user's are: each test runs in its scratch directory.
  """
  monkeypatch.chdir(readme_run["where"])
  return readme_run


def test_run_returns_the_results_json(tiny_run):
  run_dir, results = tiny_run["run_dir"], tiny_run["results"]
  raw = json.load(open(os.path.join(run_dir, "results.json")))
  assert isinstance(results, api.RunResults)
  assert results.results == raw
  assert (results.run_dir, results.report_path, results.pareto_path, results.frontier_path) == (
      run_dir, os.path.join(run_dir, "report.md"), os.path.join(run_dir, "pareto.png"),
      os.path.join(run_dir, "frontier.png"))
  for path in (results.report_path, results.pareto_path, results.frontier_path,
               os.path.join(run_dir, "flags.txt")):
    assert os.path.isfile(path), path
  assert (results.winner, results.polished, results.stop_reason) == (
      raw["winner"], raw["polished"], raw["stop_reason"])
  assert results.winner and results.polished  # final_epochs=1 polishes the winner
  assert results.wall_seconds == raw["wall_seconds"] and results.wall_seconds["total"] > 0
  assert set(results.models) == set(raw["models"]) == {"ancestor", "squishednet"}
  for name, model in results.models.items():
    entry = raw["models"][name]
    assert model.name == name
    for field in dataclasses.fields(api.ModelResult):
      if field.name not in ("name", "speedup_vs_ancestor"):
        assert getattr(model, field.name) == entry[field.name], (name, field.name)
    assert model.speedup_vs_ancestor == {int(k): v for k, v in
                                         entry["speedup_vs_ancestor"].items()}
  assert results.squishednet is results.models["squishednet"]
  assert results.ancestor.kind == "ancestor" and results.squishednet.kind == "squishednet"
  assert results.squishednet.params < results.ancestor.params
  assert list(results.squishednet.speedup_vs_ancestor) == [1]
  assert results.ancestor.speedup_vs_ancestor == {1: 1.0}
  assert 0.0 <= results.squishednet.top1 <= 1.0
  assert str(results) == console_lib.format_results_summary(raw)
  assert repr(results).startswith("RunResults(") and "results=" not in repr(results)
  assert api.RESULTS_FILE == layout_lib.RESULTS_FILE


def test_run_logs_like_the_cli(tiny_run):
  log = tiny_run["log"]
  assert "[ancestor] ..." in log and "[benchmark] ..." in log
  assert str(tiny_run["results"]) in tiny_run["text"]
  assert f"report: {tiny_run['results'].report_path}" in log


def test_flags_txt_reruns_the_same_job_and_command(tiny_run):
  run_dir, results = tiny_run["run_dir"], tiny_run["results"]
  path = os.path.join(run_dir, "flags.txt")
  text = open(path).read()
  names = set(api.option_names())
  for match in _flag_lines(text):
    name = match["name"]
    assert name in names or (name.startswith("no") and name[2:] in names), name
  given = {m["name"]: m["value"] for m in _flag_lines(text)}
  assert given["run_name"] == "tiny" and given["image_size"] == "32"
  assert given["baselines"] == "none" and given["formats"] == "fp32"
  plan = api.plan(**tiny_run["options"])
  assert text == plan.flags_text
  command = f"squish --flagfile={os.path.join('saved_models', 'tiny', 'flags.txt')}"
  assert results.results["command"] == command == plan.command


def test_a_run_dir_alone_names_the_report_and_results_json(tiny_run, tmp_path):
  """The README's run moved to another directory and resumed with run_dir alone."""
  moved = tmp_path / "elsewhere" / "win"
  shutil.copytree(tiny_run["abs_run_dir"], moved)
  for path in moved.rglob("*.json"):  # the records name their run dir: moved with it
    path.write_text(path.read_text().replace(tiny_run["abs_run_dir"], str(moved)))
  options = {k: v for k, v in tiny_run["options"].items() if k != "run_name"}
  results = squish_tf.run(run_dir=str(moved), log=lambda line: None, **options)
  assert results.results["run_name"] == "win"
  assert json.loads((moved / "results.json").read_text())["run_name"] == "win"
  assert (moved / "report.md").read_text().splitlines()[0] == "# SquishedNets run `win`"
  assert "--run_name=win" in (moved / "flags.txt").read_text().splitlines()


def test_load_gives_an_equal_object(tiny_run):
  results = tiny_run["results"]
  loaded = api.RunResults.load(tiny_run["run_dir"])
  assert loaded == results
  assert squish_tf.RunResults.load(tiny_run["run_dir"]) == results
  with pytest.raises(FileNotFoundError, match="results.json"):
    api.RunResults.load(os.path.join(tiny_run["run_dir"], "ancestor"))


def test_rerun_resumes_every_stage(tiny_run):
  lines = []
  again = squish_tf.run(log=lines.append, verbose=0, **tiny_run["options"])
  assert all(f"[{stage}] already complete, skipped" in lines for stage in job.STAGES
             if stage != "report")
  assert again.models == tiny_run["results"].models
