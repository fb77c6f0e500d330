"""The absl mains as a user runs them: files written, --flagfile re-runs, one-line errors."""

import ast
import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(main, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", f"pipelines.{main}", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def _error_line(result):
  lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(lines) == 1, result.stderr[-2000:]
  return lines[0]


def test_train_main_writes_model_dir_and_flagfile_reruns(tmp_path):
  model_dir = str(tmp_path / "ancestor")
  args = [f"--model_dir={model_dir}", "--image_size=32", "--shapes10_train_size=128",
          "--shapes10_validation_size=64", "--batch_size=32", "--train_epochs=1", "--seed=3",
          "--min_train_steps=0"]
  first = _run("train", *args)
  assert first.returncode == 0, first.stderr[-3000:]
  for name in ("model.keras", "spec.json", "metrics.json", "flags.txt"):
    assert os.path.isfile(os.path.join(model_dir, name))
  flags_txt = open(os.path.join(model_dir, "flags.txt")).read().splitlines()
  assert f"--model_dir={model_dir}" in flags_txt
  assert "--image_size=32" in flags_txt and "--seed=3" in flags_txt
  metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
  assert metrics["image_size"] == 32 and metrics["params"] == 727_626
  assert "plan (estimated" in first.stdout and "already complete" not in first.stdout
  # TensorFlow's start-up noise is gone from a main that loads it.
  assert "InitializeLog" not in first.stderr, first.stderr[-2000:]
  again = _run("train", f"--flagfile={os.path.join(model_dir, 'flags.txt')}", "--verbosity=0")
  assert again.returncode == 0, again.stderr[-3000:]
  assert json.load(open(os.path.join(model_dir, "metrics.json"))) == metrics  # not retrained
  # A finished ancestor is said to be done, and no steps are timed for a plan.
  assert "[ancestor] already complete, skipped" in again.stdout.splitlines()
  assert "plan (estimated" not in again.stdout and "budget:" not in again.stdout
  assert f"{model_dir}: val top-1 {metrics['top1']:.4f}" in again.stdout
  assert "InitializeLog" in again.stderr  # --verbosity brings TensorFlow's start-up lines back


def test_train_main_missing_data_dir_is_one_line_and_writes_nothing(tmp_path):
  model_dir = tmp_path / "m"
  result = _run("train", f"--model_dir={model_dir}", "--dataset=folder",
                f"--data_dir={tmp_path / 'no_such_dir'}")
  assert result.returncode == 2
  assert "no_such_dir" in _error_line(result)
  assert not model_dir.exists()


def test_run_main_unknown_dataset_lists_known_ones(tmp_path):
  result = _run("run", f"--run_dir={tmp_path / 'run'}", "--dataset=cifar11")
  assert result.returncode == 2
  line = _error_line(result)
  assert "cifar11" in line and "shapes10" in line and "imagenet10" in line
  assert not (tmp_path / "run").exists()
  # TensorFlow's start-up noise is gone: the error is what the user reads.
  assert result.stderr.strip() == line, result.stderr[-2000:]
  # (--verbosity brings it back: test_train_main_writes_model_dir_and_flagfile_reruns.)


def test_synthesize_main_bad_env_factor(tmp_path, toy_parent_dir):
  result = _run("synthesize", f"--parent_dir={toy_parent_dir}", f"--run_dir={tmp_path / 'r'}",
                "--env_factor=1.5")
  assert result.returncode == 2
  assert "--env_factor must be in (0, 1], got 1.5" in _error_line(result)
  assert not (tmp_path / "r").exists()


def test_export_main_model_dir_without_model(tmp_path):
  result = _run("export", f"--model_dir={tmp_path}", "--dataset=none")
  assert result.returncode == 2
  assert "spec.json" in _error_line(result)
  assert not (tmp_path / "export").exists()


def test_run_main_refuses_unknown_augmentations_and_baselines(tmp_path):
  result = _run("run", f"--run_dir={tmp_path / 'run'}", "--augment=translate,rotate",
                "--verbosity=0")
  assert result.returncode == 2
  line = _error_line(result)
  assert "rotate" in line and "flip" in line and "translate" in line
  # Refused before TensorFlow loads: --verbosity=0 would show its start-up lines.
  assert "InitializeLog" not in result.stderr, result.stderr[-2000:]
  result = _run("run", f"--run_dir={tmp_path / 'run'}", "--baselines=width_scaled,resnet")
  assert result.returncode == 2
  assert "resnet" in _error_line(result) and "width_scaled_distilled" in _error_line(result)
  assert not (tmp_path / "run").exists()


def test_a_value_read_late_is_refused_before_anything_is_written(tmp_path, toy_parent_dir):
  """A misspelt format or an image too small: exit 2 before the lock, flags.txt or the data."""
  run_dir = tmp_path / "run"
  result = _run("run", f"--run_dir={run_dir}", "--formats=fp32,fp33")
  assert result.returncode == 2
  line = _error_line(result)
  assert "fp33" in line and "saved_model" in line and "qat_int8" in line
  result = _run("run", f"--run_dir={run_dir}", "--image_size=7")
  assert result.returncode == 2
  assert "--image_size=7" in _error_line(result) and "31 px" in _error_line(result)
  assert "budget" not in result.stdout
  assert not run_dir.exists()
  model_dir = tmp_path / "ancestor"
  result = _run("train", f"--model_dir={model_dir}", "--image_size=7")
  assert result.returncode == 2 and "--image_size=7" in _error_line(result)
  assert not model_dir.exists()
  export_dir = tmp_path / "export"
  result = _run("export", f"--model_dir={toy_parent_dir}", f"--export_dir={export_dir}",
                "--dataset=shapes10", "--formats=int8,fp33")
  assert result.returncode == 2 and "fp33" in _error_line(result)
  assert not export_dir.exists()


def test_help_lists_the_shared_flags_with_defaults():
  result = _run("run", "--help")  # absl prints the help and exits with status 1
  for flag in ("--generations", "--offspring_epochs", "--final_epochs", "--distill_alpha",
               "--augment", "--train_epochs", "--formats", "--batch_sizes", "--run_name"):
    assert f"  {flag}:" in result.stdout, flag
  assert "(default: '2')" in result.stdout  # --generations, say


def test_every_console_script_helps_with_its_own_flags():
  """`squish --help` as installed: the script's module is not the one that defines the flags."""
  scripts = {"squish": "--final_epochs", "squish-export": "--formats"}  # all share flag_defs.run
  for script, flag in scripts.items():
    path = os.path.join(os.path.dirname(sys.executable), script)
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert f"  {flag}:" in result.stdout and "(default: " in result.stdout, (script, result)


# -- no TensorFlow before the flags are checked -----------------------------------------

MAINS = ("run", "train", "synthesize", "export", "benchmark", "predict", "profile")
TENSORFLOW = ("tensorflow", "keras", "tf_keras", "tensorflow_datasets",
              "tensorflow_model_optimization")


def _source(module):
  """The file of a module of this repository, or None (a third-party one)."""
  base = os.path.join(ROOT, *module.split("."))
  return next((path for path in (base + ".py", os.path.join(base, "__init__.py"))
               if os.path.isfile(path)), None)


def _imported_on_import(path):
  """The modules that importing `path` imports (function bodies run later, when called)."""
  with open(path, encoding="utf-8") as handle:
    todo = list(ast.parse(handle.read(), path).body)
  names = []
  while todo:
    node = todo.pop()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      continue
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    todo.extend(ast.iter_child_nodes(node))
  return names


def tensorflow_on_import(module):
  """The chains of imports by which importing `module` would load TensorFlow."""
  chains, seen, todo = [], set(), [(module, module)]
  while todo:
    current, chain = todo.pop()
    if current in seen:
      continue
    seen.add(current)
    parts = current.split(".")
    packages = [".".join(parts[:i]) for i in range(1, len(parts))]  # their __init__ runs first
    for name in _imported_on_import(_source(current)) + packages:
      if name.split(".")[0] in TENSORFLOW:
        chains.append(f"{chain} -> {name}")
      elif _source(name):
        todo.append((name, f"{chain} -> {name}"))
  return chains


def test_the_mains_load_tensorflow_only_once_their_flags_are_checked():
  """`--help` and a refused flag take no TensorFlow start-up: a main imports the libraries that
  need it inside main(), after its checks and `pipelines.import_tensorflow()`."""
  for main in MAINS:
    chains = tensorflow_on_import(f"pipelines.{main}")
    assert not chains, "\n".join(chains)
  # The check sees TensorFlow through the library: the data pipeline loads it.
  assert any(chain.endswith("-> tensorflow")
             for chain in tensorflow_on_import("squish_tf.data.pipeline"))
