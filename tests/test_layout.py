"""The house by stage: imports run only downward, no circle, no private name crosses a module,
and every doc the code names exists."""

import ast
import collections
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The rooms, ground floor first: a module may import its own room and the rooms below it.
LEVELS = (
    ("squish_tf.fields", "squish_tf.files", "squish_tf.layout", "squish_tf.lock",
     "squish_tf.records", "squish_tf.registry"),
    ("squish_tf.runtime",),
    ("squish_tf.net",),
    ("squish_tf.data",),
    ("squish_tf.train",),
    ("squish_tf.export",),
    ("squish_tf.bench",),
    ("squish_tf.evolve",),
    ("squish_tf.report",),  # words what the rooms below measure and record
    ("squish_tf.job",),
    ("squish_tf.api", "squish_tf"),
)
MAX_LINES = 500
WHOLE = "reads best whole"  # what a longer module's docstring says, with the reason


def _modules(top):
  found = {}
  for directory, _, files in os.walk(os.path.join(ROOT, top)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        found[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
  return found


LIBRARY = _modules("squish_tf")
CHECKED = {**LIBRARY, **_modules("pipelines"), **_modules("benchmarks")}


def _tree(path):
  with open(path, encoding="utf-8") as handle:
    return ast.parse(handle.read(), path)


def imports_of(module, path):
  """{imported squish_tf module: line} and [(line, what)] of private names taken from another module."""
  imported, private, aliases = {}, [], {}
  tree = _tree(path)
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        if full in LIBRARY:  # from package import module
          imported.setdefault(full, node.lineno)
          aliases[alias.asname or alias.name] = full
        elif node.module in CHECKED:
          imported.setdefault(node.module, node.lineno)
          if alias.name.startswith("_"):
            private.append((node.lineno, f"from {node.module} import {alias.name}"))
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name in LIBRARY:
          imported.setdefault(alias.name, node.lineno)
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in aliases and node.attr.startswith("_")
        and not node.attr.startswith("__")):
      private.append((node.lineno, f"{node.value.id}.{node.attr} ({aliases[node.value.id]})"))
  imported.pop(module, None)
  return imported, private


def _level(module):
  """The level of `module`'s room; `squish_tf` itself is only its __init__."""
  for level, rooms in enumerate(LEVELS):
    for room in rooms:
      if module == room or (room != "squish_tf" and module.startswith(room + ".")):
        return level
  raise AssertionError(f"{module} is in no room of LEVELS: add it to one")


@pytest.fixture(scope="module")
def graph():
  return {module: imports_of(module, path)[0] for module, path in LIBRARY.items()}


def test_every_module_sits_in_a_room():
  for module in LIBRARY:
    _level(module)


def test_imports_run_only_downward(graph):
  upward = [f"{module} (level {_level(module)}) imports {target} (level {_level(target)}) "
            f"at line {line}"
            for module, targets in sorted(graph.items()) for target, line in targets.items()
            if _level(target) > _level(module)]
  assert not upward, "\n".join(upward)


def test_no_import_circle(graph):
  """Depth-first search for a cycle among modules (function-level imports count too)."""
  state, stack, cycles = collections.defaultdict(int), [], []

  def visit(module):
    state[module] = 1
    stack.append(module)
    for target in graph.get(module, {}):
      target = target if target in graph else None
      if target is None:
        continue
      if state[target] == 1:
        cycles.append(stack[stack.index(target):] + [target])
      elif state[target] == 0:
        visit(target)
    stack.pop()
    state[module] = 2

  for module in sorted(graph):
    if state[module] == 0:
      visit(module)
  assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("module", sorted(CHECKED))
def test_no_private_name_crosses_a_module(module):
  _, private = imports_of(module, CHECKED[module])
  assert not private, f"{module} takes private names of other modules: {private}"


def test_modules_are_small_or_say_why():
  long = []
  for module, path in sorted(LIBRARY.items()):
    with open(path, encoding="utf-8") as handle:
      lines = handle.read().count("\n")
    if lines > MAX_LINES and WHOLE not in (ast.get_docstring(_tree(path)) or ""):
      long.append(f"{module}: {lines} lines")
  assert not long, (f"modules over {MAX_LINES} lines whose docstring does not say why the "
                    f"module {WHOLE}: {long}")


# Markdown files the code names (in docstrings, comments, help and paths), e.g. docs/method.md.
NAMED_DOC = re.compile(r"[\w./<>-]*\w\.md\b")
# What a run writes (not a file of the repository).
RUN_OUTPUTS = ("report.md",)
# Where the code is: every file here may name a doc.
CODE = ("squish_tf/**/*.py", "pipelines/*.py", "benchmarks/*.py", "tests/**/*.py", "docs/*.py",
        "Makefile", "BUILD", "setup.cfg", "pyproject.toml")


def named_docs(text):
  """The *.md paths `text` names, run outputs aside."""
  return sorted({name for name in NAMED_DOC.findall(text)
                 if os.path.basename(name) not in RUN_OUTPUTS})


def _doc_exists(name, where):
  """A named doc exists: from the repository's root, docs/, or the naming file's folder."""
  return any(os.path.isfile(os.path.join(base, name))
             for base in (ROOT, os.path.join(ROOT, "docs"), os.path.dirname(where)))


def test_every_doc_the_code_names_exists():
  missing = []
  for pattern in CODE:
    for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
      with open(path, encoding="utf-8") as handle:
        text = handle.read()
      missing += [f"{os.path.relpath(path, ROOT)} names {name}" for name in named_docs(text)
                  if not _doc_exists(name, path)]
  assert not missing, "docs the code names that are not in the repository:\n" + "\n".join(missing)


def test_the_doc_checker_sees_a_missing_doc():
  gone = "design/SYNTHESIS" + ".md"  # split, so this file does not name it
  text = f"See {gone} and docs/method.md; writes <run_dir>/report.md."
  assert named_docs(text) == [gone, "docs/method.md"]
  here = os.path.join(ROOT, "squish_tf", "api.py")
  assert not _doc_exists(gone, here) and _doc_exists("docs/method.md", here)


def test_the_checker_sees_a_private_import(tmp_path):
  """The checks above can fail: a planted private import and attribute are found."""
  planted = tmp_path / "planted.py"
  planted.write_text("from squish_tf.net import spec as spec_lib\n"
                     "from squish_tf.net.spec import _as_int\n"
                     "spec_lib._positive('x', 1)\n")
  _, private = imports_of("planted", str(planted))
  assert [line for line, _ in private] == [2, 3]


def test_the_report_sits_above_what_it_words():
  """Core rooms return numbers and records; report/ words them, so it imports them, not back."""
  for room in ("squish_tf.bench", "squish_tf.evolve", "squish_tf.train", "squish_tf.export"):
    assert _level("squish_tf.report") > _level(room), room
  assert _level("squish_tf.job") > _level("squish_tf.report")


# The modules of the config dataclasses (the options) and of the targets they resolve to: none
# may import TensorFlow or Keras, directly or through the squish_tf modules (and packages) it
# imports.
CONFIG_MODULES = ("squish_tf.data.config", "squish_tf.train.config", "squish_tf.evolve.config",
                  "squish_tf.evolve.encoding", "squish_tf.export.config",
                  "squish_tf.bench.config", "squish_tf.job.config", "squish_tf.job.budget_config",
                  "squish_tf.job.options",
                  "squish_tf.evolve.targets", "squish_tf.evolve.target_list")
TENSORFLOW = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization")


def _run_on_import(tree):
  """The nodes of `tree` that run when the module is imported (function bodies do not)."""
  todo = list(ast.iter_child_nodes(tree))
  while todo:
    node = todo.pop()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      todo.extend(node.decorator_list if not isinstance(node, ast.Lambda) else ())
      continue
    yield node
    todo.extend(ast.iter_child_nodes(node))


def _imports_on_import(path, everywhere):
  """{imported module name: line} of `path`'s import statements that run on import (all of
  them when `everywhere`)."""
  tree = _tree(path)
  found = {}
  for node in (ast.walk(tree) if everywhere else _run_on_import(tree)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
      continue
    for name in names:
      found.setdefault(name, node.lineno)
  return found


def _packages_of(module):
  """The packages Python imports before `module` (their __init__ runs first)."""
  parts = module.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in LIBRARY]


def tensorflow_reached(module):
  """The chains from `module` to TensorFlow or Keras through the squish_tf modules that
  importing it imports: every import statement of `module` itself counts (a config's method
  may not import TensorFlow either), of the others those that run on import."""
  chains, seen, todo = [], set(), [(module, (module,))]
  while todo:
    current, chain = todo.pop()
    if current in seen:
      continue
    seen.add(current)
    imported = _imports_on_import(LIBRARY[current], everywhere=current == module)
    for name, line in imported.items():
      if name.split(".")[0] in TENSORFLOW:
        chains.append(" -> ".join(chain) + f" -> {name} (line {line})")
    targets = [name for name in imported if name in LIBRARY and name != current]
    for target in targets + _packages_of(current):
      todo.append((target, chain + (target,)))
  return chains


@pytest.mark.parametrize("module", CONFIG_MODULES)
def test_config_modules_import_no_tensorflow(module):
  """Checked statically on every import statement, at module level or not."""
  chains = tensorflow_reached(module)
  assert not chains, f"{module} reaches TensorFlow:\n" + "\n".join(chains)


def test_config_modules_load_no_tensorflow():
  """And dynamically: a fresh interpreter imports them all without loading TensorFlow."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  code = (f"import sys; import {', '.join(CONFIG_MODULES)}; "
          f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(TENSORFLOW)!r}))")
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"


def test_the_checker_sees_tensorflow_through_an_import(tmp_path, monkeypatch):
  """The static check can fail: a planted config that imports the trainer is caught."""
  planted = tmp_path / "planted_config.py"
  planted.write_text("from squish_tf.train import trainer as train_lib\n")
  monkeypatch.setitem(LIBRARY, "planted_config", str(planted))
  chains = tensorflow_reached("planted_config")
  assert chains and chains[0].startswith("planted_config -> squish_tf.train.trainer")
