"""The docs and the flags cannot disagree: docs/options.md, the README's table, every flag named."""

import glob
import importlib.util
import os
import re

from squish_tf.job import options as options_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Flags every absl main has, and what a `--noNAME` stands for in the docs.
ABSL_FLAGS = {"help", "helpfull", "flagfile", "verbosity", "noNAME"}
# LiteRT's benchmark_model flags that docs/devices.md's adb lines pass (not squish_tf's).
BENCHMARK_MODEL_FLAGS = {"graph", "num_threads", "use_xnnpack", "enable_op_profiling",
                         "op_profiling_output_mode", "op_profiling_output_file"}
FLAG = re.compile(r"(?<![\w-])--([A-Za-z][A-Za-z0-9_]*)")
DEFINED = re.compile(r"""(?:DEFINE_\w+|add_argument)\(\s*["'](?:--)?(\w+)["']""")
TABLE_ROW = re.compile(r"^\| `--(\w+)` \| ([^|]+) \|", re.MULTILINE)


def _generator():
  spec = importlib.util.spec_from_file_location("docs_options", os.path.join(ROOT, "docs",
                                                                             "options.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _read(*parts):
  with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
    return handle.read()


def _docs():
  """{path: text} of README.md and docs/*.md."""
  paths = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
  return {os.path.relpath(path, ROOT): _read(path) for path in paths}


def _flags_of_the_code():
  """Every flag a main, the job's options, a benchmark script or the Jetson script defines."""
  names = {option.name for option in options_lib.squish_options()}
  sources = (glob.glob(os.path.join(ROOT, "pipelines", "*.py")) +
             glob.glob(os.path.join(ROOT, "benchmarks", "*.py")) +
             [os.path.join(ROOT, "squish_tf", "job", "flags.py"),
              os.path.join(ROOT, "squish_tf", "export", "jetson_trt.py"),
              os.path.join(ROOT, "squish_tf", "bench", "device_measure.py")])
  for path in sources:
    names.update(DEFINED.findall(_read(path)))
  booleans = {o.name for o in options_lib.squish_options() if o.kind == "boolean"}
  return names | {"no" + name for name in booleans} | ABSL_FLAGS | BENCHMARK_MODEL_FLAGS


def test_options_md_is_generated_from_the_declarations():
  expected = _generator().render(options_lib.squish_options())
  assert _read("docs", "options.md") == expected, (
      "docs/options.md differs from the option declarations: run python docs/options.py")


def test_options_md_lists_every_option_once():
  text = _read("docs", "options.md")
  listed = [name for name, _ in TABLE_ROW.findall(text)]
  assert listed == [option.name for option in options_lib.squish_options()]


def test_the_readme_table_gives_the_declared_defaults():
  readme = _read("README.md")
  section = readme[readme.index("### The main options"):readme.index("## Python API")]
  rows = TABLE_ROW.findall(section)
  assert len(rows) >= 10, "the README's table of the main options is missing"
  by_name = {option.name: option for option in options_lib.squish_options()}
  default_text = _generator().default_text
  wrong = {name: (cell.strip(), default_text(by_name[name])) for name, cell in rows
           if name not in by_name or cell.strip() != default_text(by_name[name])}
  assert not wrong, f"README defaults that differ from the declarations (README, declared): {wrong}"


def test_every_flag_the_docs_name_exists():
  known = _flags_of_the_code()
  unknown = {path: sorted(set(FLAG.findall(text)) - known) for path, text in _docs().items()}
  unknown = {path: names for path, names in unknown.items() if names}
  assert not unknown, f"flags named in the docs that no main defines: {unknown}"


def test_the_checks_can_fail():
  """A misspelt flag and a wrong default are found."""
  known = _flags_of_the_code()
  assert set(FLAG.findall("run `--image_size=64` or --imagesize")) - known == {"imagesize"}
  option = next(o for o in options_lib.squish_options() if o.name == "image_size")
  assert _generator().default_text(option) == "`64`" != "`32`"
