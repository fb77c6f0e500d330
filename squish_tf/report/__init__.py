"""A run's story told from its results: results.json read, report.md written, the figures
drawn and the console's lines.

Modules:
  format    cell formatting and Markdown tables.
  results   reading results.json: models in order, labels, speed-ups, comparisons.
  markdown  `write_report`: report.md (and the figure beside it), its summary and models.
  details   report.md's "Models in detail": the model tables split by concern.
  sections  the evolution and measurement sections of report.md.
  pareto    pareto.png: test top-1 against deployed size.
  frontier  the latency frontier (results.json's "frontier"), the width ladder's top-1 at the
            SquishedNet's latency and the verdict against the width multiplier.
  frontier_figure  frontier.png: test top-1 against LiteRT latency.
  console   what the console prints: candidates, generations, tables, the summary.
"""
