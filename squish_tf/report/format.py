"""Cell formatting shared by every table: numbers, sizes, percentages, speeds and durations,
a dash for what is missing, and GitHub Markdown tables."""

import math
from typing import Any, Iterable, Optional, Sequence

DASH = "–"


def finite_number(value: Any) -> Optional[float]:
  """A finite float, or None for None, non-numbers, NaN and infinities."""
  if value is None or isinstance(value, bool):
    return None
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def fmt_value(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
  value = finite_number(value)
  return DASH if value is None else f"{format(value * scale, spec)}{suffix}"


def fmt_count(value: Any) -> str:
  return fmt_value(value, ",.0f")


def fmt_mb(value: Any) -> str:
  return fmt_value(value, ".3f")


def fmt_bytes_mb(value: Any) -> str:
  return fmt_value(value, ".3f", 1e-6)


def fmt_kb_mb(value: Any) -> str:
  """A file's or buffer's bytes: "205 KB" (KB = 1,024 bytes, as TFLM counts) below 10^6 bytes,
  "1.23 MB" (10^6 bytes, as every MB column) from there."""
  value = finite_number(value)
  if value is None:
    return DASH
  return f"{value / 1024:,.0f} KB" if abs(value) < 1e6 else f"{value / 1e6:,.2f} MB"


def fmt_macs_m(value: Any) -> str:
  return fmt_value(value, ",.2f", 1e-6)


def fmt_percent(value: Any) -> str:
  return fmt_value(value, ".2f", 100.0, "%")


def fmt_images(value: Any) -> str:
  """An image count: 1.23 M, 60.0 k, or the number itself below a thousand."""
  value = finite_number(value)
  if value is None:
    return DASH
  if abs(value) >= 1e6:
    return f"{value / 1e6:,.2f} M"
  if abs(value) >= 1e3:
    return f"{value / 1e3:.1f} k"
  return f"{value:.0f}"


def fmt_speed(value: Any) -> str:
  value = finite_number(value)
  if value is None:
    return DASH
  return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_ratio(value: Any) -> str:
  return fmt_value(value, ".2f", suffix="×")


def fmt_text(value: Any) -> str:
  """A table cell: text with Markdown's table separator escaped."""
  if value is None or value == "":
    return DASH
  return str(value).replace("|", "\\|").replace("\n", " ")


def fmt_duration(seconds: Any) -> str:
  seconds = finite_number(seconds)
  if seconds is None:
    return DASH
  if seconds < 60:
    return f"{seconds:.0f} s"
  minutes, seconds = divmod(int(round(seconds)), 60)
  if minutes < 60:
    return f"{minutes} min {seconds:02d} s"
  hours, minutes = divmod(minutes, 60)
  return f"{hours} h {minutes:02d} min"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]],
           align: Optional[Sequence[str]] = None) -> str:
  """A GitHub Markdown table; `align` holds "l" or "r" per column (text left, numbers right)."""
  align = align or ["l"] + ["r"] * (len(header) - 1)
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def fmt_reason(value: Any) -> str:
  return DASH if not value else str(value).replace("_", " ")


def join_words(parts: Sequence[str]) -> str:
  return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
