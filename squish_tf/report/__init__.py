"""A run's story told from its results: results.json read, report.md written, the figures
drawn and the console's lines.

Modules:
  format    cell formatting and Markdown tables.
  results   reading results.json: models in order, labels, speed-ups, comparisons.
  markdown  `write_report`: report.md (and the figure beside it), its summary and models.
  sections  the evolution and measurement sections of report.md.
  pareto    pareto.png: test top-1 against deployed size.
  console   what the console prints: candidates, generations, tables, the summary.
"""
