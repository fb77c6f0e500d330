"""A config field's declared bounds and choices, checked in one place.

A config dataclass declares what a field takes in its metadata (`squish_tf.job.options` reads
the same metadata to make the field a flag):

  lower_bound, upper_bound:   inclusive bounds (absl's flags check them too);
  greater_than, less_than:    exclusive bounds (absl has none: only the config checks them);
  enum_values:                the values a string may take.

A bounded integer field must hold an integer (not a bool), a bounded float field a finite
number. `check(config)` in a config's `__post_init__` refuses a value outside what its field
declares, naming the flag (`flag` in the metadata, else the field's name) and the value. None
is always accepted: an Optional option left unset.
"""

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Any, Dict, Mapping

BOUNDS = ("lower_bound", "upper_bound", "greater_than", "less_than")


def check(config: Any) -> None:
  """Raises ValueError for the first field of the dataclass `config` outside its declaration."""
  numeric = _numeric_fields(type(config))
  for field in dataclasses.fields(config):
    meta = field.metadata
    if not any(key in meta for key in BOUNDS + ("enum_values",)):
      continue
    check_value(f"--{meta.get('flag', field.name)}", getattr(config, field.name), meta,
                numeric.get(field.name))


def check_value(name: str, value: Any, meta: Mapping[str, Any], numeric: Any = None) -> None:
  """Raises ValueError when `value` is outside what `meta` declares for the option `name`.

  Args:
    name: the option as the message names it ("--population").
    value: its value.
    meta: the field's metadata (bounds, enum_values).
    numeric: int or float when the field holds one (its bounds are then checked), else None.
  """
  if value is None:
    return
  choices = meta.get("enum_values")
  if choices is not None and value not in choices:
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")
  bounds = {key: meta[key] for key in BOUNDS if meta.get(key) is not None}
  if not bounds or numeric is None:
    return
  if numeric is int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
      raise ValueError(f"{name} must be an integer{_range(bounds, ' ')}, got {value!r}.")
  elif (not isinstance(value, numbers.Real) or isinstance(value, bool)
        or not math.isfinite(value)):
    raise ValueError(f"{name} must be a finite number{_range(bounds, ' ')}, got {value!r}.")
  inside = (value >= bounds.get("lower_bound", -math.inf)
            and value <= bounds.get("upper_bound", math.inf)
            and value > bounds.get("greater_than", -math.inf)
            and value < bounds.get("less_than", math.inf))
  if not inside:
    kind = "an integer " if numeric is int else ""
    raise ValueError(f"{name} must be {kind}{_range(bounds, '')}, got {value!r}.")


def _range(bounds: Dict[str, Any], lead: str) -> str:
  """">= 1", "> 0", "in (0, 1]" for the declared bounds (with `lead` before it)."""
  low = ("[", bounds["lower_bound"]) if "lower_bound" in bounds else (
      ("(", bounds["greater_than"]) if "greater_than" in bounds else None)
  high = ("]", bounds["upper_bound"]) if "upper_bound" in bounds else (
      (")", bounds["less_than"]) if "less_than" in bounds else None)
  if low and high:
    return f"{lead}in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
  if low:
    return f"{lead}{'>=' if low[0] == '[' else '>'} {low[1]:g}"
  return f"{lead}{'<=' if high[0] == ']' else '<'} {high[1]:g}"


@functools.lru_cache(maxsize=None)
def _numeric_fields(config: type) -> Dict[str, Any]:
  """{field: int or float} of the fields of `config` typed int or float (or Optional of one)."""
  found = {}
  for name, annotation in typing.get_type_hints(config).items():
    members = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
      members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(members) == 1 and members[0] in (int, float):
      found[name] = members[0]
  return found
