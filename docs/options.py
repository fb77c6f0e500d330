"""Writes docs/options.md from the option declarations, so the two cannot disagree.

  python docs/options.py            # rewrites docs/options.md
  python docs/options.py --check    # exit 1 when docs/options.md is not what it would write

Every option of `squish` and `squish_tf.run` comes from
`squish_tf.job.options.squish_options()`: its name, kind, default, bounds, values and help, as
`--helpfull` prints them. tests/test_docs.py fails when the committed file differs.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "docs", "options.md")
HEADER = """# Options of `squish` and `squish_tf.run`

Generated from the option declarations by `python docs/options.py`: do not edit by hand.
`squish --helpfull` prints the same. Every main (`squish-train`, `squish-synthesize`,
`squish-export`, `squish-benchmark`) takes the options of its stages with the same names and
meaning, and `--flagfile=<run_dir>/flags.txt` re-runs a run exactly. In `squish_tf.run(**options)`
an option is a keyword of the same name; a boolean `--noNAME` is `NAME=False` there.

| Option | Kind | Default | What it does |
|---|---|---|---|
"""


def default_text(option) -> str:
  """An option's default as a reader types it: `64`, `true`, `translate`, or "unset"."""
  value = option.default
  if value is None:
    return "unset"
  if isinstance(value, bool):
    return "`true`" if value else "`false`"
  if isinstance(value, (list, tuple)):
    return f"`{','.join(str(v) for v in value)}`" if value else "empty"
  if value == "":
    return "empty"
  return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def kind_text(option) -> str:
  """"float in [0, 0.9]", "one of adam, sgd", "list", ..."""
  if option.enum_values:
    return "one of " + ", ".join(f"`{v}`" for v in option.enum_values)
  text = option.kind
  low, high = option.lower_bound, option.upper_bound
  if low is not None and high is not None:
    text += f" in [{low:g}, {high:g}]"
  elif low is not None:
    text += f" >= {low:g}"
  elif high is not None:
    text += f" <= {high:g}"
  return text


def render(options) -> str:
  """docs/options.md for `options` (Option records)."""
  rows = [f"| `--{o.name}` | {kind_text(o)} | {default_text(o)} | "
          f"{' '.join(o.help.split()).replace('|', '&#124;')} |" for o in options]
  return HEADER + "\n".join(rows) + "\n"


def main(argv) -> int:
  sys.path.insert(0, ROOT)
  from squish_tf.job import options as options_lib  # pylint: disable=g-import-not-at-top

  text = render(options_lib.squish_options())
  if "--check" in argv[1:]:
    with open(OUTPUT, encoding="utf-8") as handle:
      same = handle.read() == text
    print(f"{OUTPUT} is {'current' if same else 'stale: run python docs/options.py'}")
    return 0 if same else 1
  with open(OUTPUT, "w", encoding="utf-8") as handle:
    handle.write(text)
  print(f"wrote {OUTPUT} ({len(text.splitlines())} lines)")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
