"""The main job on top of every stage: its config, flags, budgets, results and the run.

Modules:
  config   `JobConfig`.
  flags    the absl flags every main shares, and the configs built from them.
  budget   the equal training budgets of the comparisons.
  results  results.json assembled from the stages' files.
  run      `run_job`: one function per stage (ancestor, synthesis, final stage,
           baselines, export, evaluation, benchmark, report).
"""
