"""BUILD mirrors the package: every module, main and test file has its Bazel target."""

import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_build():
  """Evaluates BUILD (Starlark is a Python subset here) with recording stubs."""
  targets = []

  def rule(kind):
    def record(**kwargs):
      targets.append(dict(kwargs, kind=kind))
    return record

  namespace = {}

  def load(label, *symbols):
    del label
    for symbol in symbols:  # py_* keep their recorders; anything else becomes a no-op
      namespace.setdefault(symbol, lambda *args, **kwargs: None)

  namespace.update({
      "load": load,
      "package": lambda **kwargs: None,
      "py_library": rule("py_library"),
      "py_binary": rule("py_binary"),
      "py_test": rule("py_test"),
      "filegroup": rule("filegroup"),
  })
  with open(os.path.join(ROOT, "BUILD"), encoding="utf-8") as handle:
    exec(compile(handle.read(), "BUILD", "exec"), namespace)  # pylint: disable=exec-used
  return targets


def _files(pattern):
  return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern),
                                                            recursive=True))


@pytest.fixture(scope="module")
def targets():
  return _parse_build()


def test_library_lists_every_module(targets):
  libraries = [t for t in targets if t["kind"] == "py_library" and t["name"] == "squish_tf"]
  assert len(libraries) == 1, "BUILD needs one py_library named squish_tf (the top)"
  listed = [src for t in targets if t["kind"] == "py_library" for src in t["srcs"]]
  missing = [f for f in _files("squish_tf/**/*.py") + _files("third_party/**/*.py")
             if f not in listed]
  assert not missing, f"modules missing from the py_library of their room in BUILD: {missing}"
  twice = sorted({f for f in listed if listed.count(f) > 1})
  assert not twice, f"modules listed by two libraries in BUILD: {twice}"


def test_room_deps_mirror_the_imports(targets):
  """A room's library depends on exactly the rooms its modules import (tests/test_layout.py)."""
  import test_layout  # pylint: disable=g-import-not-at-top

  library_of = {src[:-3].replace(os.sep, ".").replace(".__init__", ""): t["name"]
                for t in targets if t["kind"] == "py_library" for src in t["srcs"]
                if src.startswith("squish_tf/")}
  declared = {t["name"]: {d for d in t.get("deps", []) if isinstance(d, str) and
                          d.startswith(":squish_tf")} for t in targets
              if t["kind"] == "py_library" and t["name"] in library_of.values()}
  needed = {name: set() for name in set(library_of.values())}
  for module, path in test_layout.LIBRARY.items():
    for target in test_layout.imports_of(module, path)[0]:
      if library_of[target] != library_of[module]:
        needed[library_of[module]].add(":" + library_of[target])
  for name, deps in needed.items():
    if name == "squish_tf":  # the top depends on every room, as the package does
      continue
    assert declared[name] == deps, f"{name}: BUILD deps {sorted(declared[name])}, imports {sorted(deps)}"


def test_every_main_has_a_binary(targets):
  mains = {t["main"] for t in targets if t["kind"] == "py_binary"}
  expected = [f for f in _files("pipelines/*.py") if not f.endswith("__init__.py")]
  missing = [f for f in expected if f not in mains]
  assert not missing, f"pipelines mains without a py_binary in BUILD: {missing}"


def test_every_test_file_has_a_test(targets):
  tested = {src for t in targets if t["kind"] == "py_test" for src in t["srcs"]}
  missing = [f for f in _files("tests/test_*.py") if f not in tested]
  assert not missing, f"test files without a py_test in BUILD: {missing}"


def test_every_listed_file_exists(targets):
  for target in targets:
    for path in list(target.get("srcs", [])) + list(target.get("data", [])):
      assert os.path.exists(os.path.join(ROOT, path)), f"{target['name']}: {path} does not exist"


def test_test_support_files_are_declared(targets):
  declared = {src for t in targets for src in t.get("srcs", [])}
  helpers = [f for f in _files("tests/*.py") if not os.path.basename(f).startswith("test_")]
  missing = [f for f in helpers if f not in declared]
  assert not missing, f"test helpers missing from BUILD: {missing}"


def test_target_names_are_unique(targets):
  names = [t["name"] for t in targets]
  assert len(names) == len(set(names))


def test_every_main_has_a_console_script():
  import ast  # pylint: disable=g-import-not-at-top
  import configparser  # pylint: disable=g-import-not-at-top

  parser = configparser.ConfigParser()
  parser.read(os.path.join(ROOT, "setup.cfg"))
  scripts = {}
  for line in parser["options.entry_points"]["console_scripts"].strip().splitlines():
    name, target = (part.strip() for part in line.split("="))
    scripts[name] = target
  targets = set(scripts.values())
  for main in _files("pipelines/*.py"):
    module = main[:-3].replace(os.sep, ".")
    if module.endswith("__init__"):
      continue
    assert f"{module}:run" in targets, f"{main} has no console script in setup.cfg"
  for target in targets:
    # Parsed, not imported: each main defines its own absl flags, and two mains
    # in one process would define --model_dir twice.
    module, function = target.split(":")
    tree = ast.parse(open(os.path.join(ROOT, module.replace(".", os.sep) + ".py")).read())
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
  assert scripts["squish"] == "pipelines.run:run"
