"""Prints the shape of the code base: the figures a maintainer reviews it by.

  python benchmarks/code_shape.py [--root=.]

For squish_tf/ (the library; third_party/ and generated code aside):
  - function-level imports: `import` statements inside a function or method;
  - string-key look-ups: `x["key"]` subscripts and `x.get("key")` calls with a literal string key,
    the way untyped records are read;
  - functions over 60 lines or 8 parameters (self and cls not counted), per room;
and the line counts of README.md and RESULTS.md. Everything is read with `ast`; nothing is
imported, so the script runs without TensorFlow.
"""

import ast
import collections
import os

from absl import app
from absl import flags

_ROOT = flags.DEFINE_string("root", os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "The repository to measure.")
_MAX_LINES = flags.DEFINE_integer("max_lines", 60, "A function longer than this is counted.")
_MAX_PARAMS = flags.DEFINE_integer("max_params", 8, "A function with more parameters is counted.")
_GENERATED = "_generated.py"


def _library_files(root):
  top = os.path.join(root, "squish_tf")
  for directory, _, names in os.walk(top):
    for name in sorted(names):
      if name.endswith(".py") and not name.endswith(_GENERATED):
        yield os.path.join(directory, name)


def _function_level_imports(tree):
  count = 0
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):
          count += 1
  return count  # a nested function's imports count once per enclosing function


def _string_key_lookups(tree):
  count = 0
  for node in ast.walk(tree):
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(
        node.slice.value, str):
      count += 1
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr == "get" and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)):
      count += 1
  return count


def _parameters(function):
  arguments = function.args
  names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
  names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
  return len([name for name in names if name not in ("self", "cls")])


def _large_functions(tree, max_lines, max_params):
  found = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      lines = node.end_lineno - node.lineno + 1
      params = _parameters(node)
      if lines > max_lines or params > max_params:
        found.append((node.name, lines, params))
  return found


def _lines(path):
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as handle:
    return sum(1 for _ in handle)


def main(argv):
  del argv
  root = _ROOT.value
  imports = lookups = 0
  large_by_room = collections.defaultdict(list)
  for path in _library_files(root):
    with open(path, encoding="utf-8") as handle:
      tree = ast.parse(handle.read(), path)
    imports += _function_level_imports(tree)
    lookups += _string_key_lookups(tree)
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    room = parts[1] if len(parts) > 2 else parts[-1][:-3]
    for name, lines, params in _large_functions(tree, _MAX_LINES.value, _MAX_PARAMS.value):
      large_by_room[room].append(f"{relative}:{name} ({lines} lines, {params} params)")
  total_large = sum(len(found) for found in large_by_room.values())
  print(f"function-level imports in squish_tf: {imports}")
  print(f"string-key look-ups in squish_tf: {lookups}")
  print(f"functions over {_MAX_LINES.value} lines or {_MAX_PARAMS.value} parameters: "
        f"{total_large}")
  for room in sorted(large_by_room):
    print(f"  {room}: {len(large_by_room[room])}")
    for entry in large_by_room[room]:
      print(f"    {entry}")
  print(f"README.md lines: {_lines(os.path.join(root, 'README.md'))}")
  print(f"RESULTS.md lines: {_lines(os.path.join(root, 'RESULTS.md'))}")


if __name__ == "__main__":
  app.run(main)
