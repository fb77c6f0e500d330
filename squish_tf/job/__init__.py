"""The main job on top of every stage: its config, flags, budgets, results and the run.

Modules:
  config   `JobConfig`.
  options  every option declared once, on its config dataclass field: the flags,
           the configs built from them and the Python API's options all read it.
  flags    the absl flags every main shares, and the configs built from them.
  budget   the equal training budgets of the comparisons.
  results  results.json assembled from the stages' files.
  context  what the stages share: the run, its data read through one place, the
           stage mechanics (skip if complete, time, hooks).
  run      `run_job`: one function per stage (ancestor, synthesis, final stage,
           baselines, export, evaluation, benchmark, report), under the run dir's lock.
"""
