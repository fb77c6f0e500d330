"""Registries of the open sets: baselines, export formats, costs, selection rules, env modes.

Each set is one `Registry` of small frozen records, one record per member, each saying
what it is called (`name`, the flag's value), how a reader calls it (`label`) and what it
does (a callable). Adding a member is one `register(...)` call, in the package or from
outside it (a test, a user's module); every list of allowed values, every lookup and
every label the report prints come from the registry, so no table elsewhere names them.

A record may name its callable by reference, "package.module:function", loaded on first
use (`load`): the words of a set (names, labels) are then read without importing what
makes the members (TensorFlow), which the report and the option declarations rely on.
"""

import importlib
from typing import Callable, Dict, Generic, Iterator, Tuple, TypeVar, Union

Entry = TypeVar("Entry")
# A callable, or where to import it from: "package.module:attribute".
Reference = Union[str, Callable[..., object]]


class Registry(Generic[Entry]):
  """Named records of one open set, in the order they were registered.

  Records are anything with a `name` attribute (frozen dataclasses here).
  """

  def __init__(self, what: str, flag: str):
    """An empty registry.

    Args:
      what: what a member is ("baseline", "export format"), for error messages.
      flag: the option that takes a member's name ("--baselines"), for error messages.
    """
    self.what = what
    self.flag = flag
    self._entries: Dict[str, Entry] = {}

  def register(self, entry: Entry, replace: bool = False) -> Entry:
    """Adds `entry` under `entry.name`; returns it (so it can decorate or be kept).

    Raises:
      ValueError: the name is taken (pass replace=True to swap it) or empty.
    """
    name = getattr(entry, "name", "")
    if not name or not isinstance(name, str):
      raise ValueError(f"A {self.what} needs a non-empty string name, got {name!r}.")
    if name in self._entries and not replace:
      raise ValueError(f"A {self.what} named {name!r} is already registered; pick another "
                       "name, or pass replace=True to replace it.")
    self._entries[name] = entry
    return entry

  def unregister(self, name: str) -> Entry:
    """Removes and returns the member `name` (a test's toy member, say)."""
    return self._entries.pop(self.lookup(name).name)

  def lookup(self, name: str) -> Entry:
    """The member called `name`.

    Raises:
      ValueError: no such member (the message lists the known ones).
    """
    if name not in self._entries:
      raise ValueError(f"Unknown {self.what} {name!r}; {self.flag} takes one of "
                       f"{', '.join(self._entries)}.")
    return self._entries[name]

  def names(self) -> Tuple[str, ...]:
    """Every member's name, in registration order."""
    return tuple(self._entries)

  def entries(self) -> Tuple[Entry, ...]:
    """Every member, in registration order."""
    return tuple(self._entries.values())

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[Entry]:
    return iter(self.entries())

  def __len__(self) -> int:
    return len(self._entries)


def load(reference: Reference) -> Callable[..., object]:
  """The callable itself, or the one "package.module:attribute" names, imported now.

  Raises:
    ValueError: a string that is not "module:attribute".
  """
  if callable(reference):
    return reference
  module, _, attribute = str(reference).partition(":")
  if not module or not attribute:
    raise ValueError(f"A reference is a callable or 'package.module:attribute', got "
                     f"{reference!r}.")
  return getattr(importlib.import_module(module), attribute)
