"""The records' machinery: a dataclass whose fields say how each maps to its JSON key.

`Record.to_json()` gives the dict a file holds, keys in the order the writer has always
written them; `Record.from_json(data)` reads it tolerantly (a key an older file lacks is the
field's default, a malformed entry reads as an empty one, a key the record does not declare
is kept in `extra` and written back). Optional keys (`optional()` fields) are written only
when they hold a value, or when the record was read with the key present (or `make`-d with
it), so a file round-trips byte for byte.
"""

import dataclasses
from typing import (Any, Callable, ClassVar, Dict, FrozenSet, Iterable, Mapping, Optional, Type,
                    TypeVar)

_OPTIONAL = "optional"  # field metadata: the key is written only when present
_CODEC = "codec"  # field metadata: a Codec between the JSON value and the attribute
_JSON = "json"  # field metadata: False for an attribute the JSON does not hold
_EXTRA = "extra"  # field metadata: the field gathers the keys no other field declares

R = TypeVar("R", bound="Record")


@dataclasses.dataclass(frozen=True)
class Codec:
  """How one field's value maps to JSON (`encode`) and back (`decode`)."""

  encode: Callable[[Any], Any]
  decode: Callable[[Any], Any]


def _identity(item: Any) -> Any:
  return item


PLAIN = Codec(_identity, _identity)


def record_codec(cls: Type["Record"]) -> Codec:
  """A nested record (None stays None)."""
  return Codec(lambda item: None if item is None else item.to_json(),
               lambda data: None if data is None else cls.from_json(data))


def records_codec(cls: Type["Record"]) -> Codec:
  """A list of records; entries that are not dicts (hand-made or broken files) are dropped."""

  def decode(data):
    if not isinstance(data, (list, tuple)):
      return []
    return [cls.from_json(item) for item in data if isinstance(item, Mapping)]

  return Codec(lambda items: [item.to_json() for item in items], decode)


def int_keys_codec(inner: Codec = PLAIN) -> Codec:
  """A dict keyed by batch or image size: ints here, strings ("1", "224") in the file."""

  def decode(data):
    if not isinstance(data, Mapping):
      return None if data is None else {}
    return {_int_key(key): inner.decode(item) for key, item in data.items()}

  def encode(items):
    if items is None:
      return None
    return {str(key): inner.encode(item) for key, item in items.items()}

  return Codec(encode, decode)


def _int_key(key: Any) -> Any:
  return int(key) if isinstance(key, str) and key.isdigit() else key


BY_BATCH = int_keys_codec()  # {batch size: value}
BY_RESOLUTION = int_keys_codec(BY_BATCH)  # {image size: {batch size: value}}


def value(codec: Codec = PLAIN, default_factory: Optional[Callable[[], Any]] = None) -> Any:
  """A field the file always holds (None is written as null); a collection's `default_factory`
  (dict, list) makes it that empty collection when the file lacks it."""
  if default_factory is not None:
    return dataclasses.field(default_factory=default_factory, metadata={_CODEC: codec})
  return dataclasses.field(default=None, metadata={_CODEC: codec})


def attribute(default: Any = None) -> Any:
  """A field the file does not hold (a model's name, its key in the file)."""
  return dataclasses.field(default=default, metadata={_JSON: False})


def optional(codec: Codec = PLAIN) -> Any:
  """A field whose key the file holds only sometimes: written when not None, or when the
  record was read with the key present or `make`-d with it."""
  return dataclasses.field(default=None, metadata={_OPTIONAL: True, _CODEC: codec})


def extra() -> Any:
  """The keys a record does not declare (an older or newer file's), written back as read."""
  return dataclasses.field(default_factory=dict, metadata={_EXTRA: True, _JSON: False})


class Record:
  """Base of the records: JSON from the dataclass fields, in declaration order."""

  VERSION: ClassVar[Optional[int]] = None  # written as "version" by a file's top record

  @classmethod
  def from_json(cls: Type[R], data: Any, **attributes) -> R:
    """The record a file's dict describes; `attributes` are the ones the JSON does not hold.

    A key the dict lacks is the field's default (None); `data` that is not a dict reads as {}.
    """
    data = data if isinstance(data, Mapping) else {}
    values = dict(attributes)
    known = {"version"} if cls.VERSION is not None else set()
    gather = None
    for field in dataclasses.fields(cls):
      if field.metadata.get(_EXTRA):
        gather = field.name
      if field.metadata.get(_JSON, True) is False:
        continue
      known.add(field.name)
      if field.name in data:
        values[field.name] = field.metadata.get(_CODEC, PLAIN).decode(data[field.name])
    if gather is not None:
      values[gather] = {key: item for key, item in data.items() if key not in known}
    return cls._present(values, set(data))

  @classmethod
  def decode(cls, data: Mapping[str, Any]) -> Dict[str, Any]:
    """{field: value} of the keys of `data` this record declares, read as `from_json` reads
    them (for `make`, when some figures come as a file's dict)."""
    fields = {field.name: field for field in dataclasses.fields(cls)
              if field.metadata.get(_JSON, True) is not False}
    return {key: fields[key].metadata.get(_CODEC, PLAIN).decode(item)
            for key, item in data.items() if key in fields}

  @classmethod
  def make(cls: Type[R], **values) -> R:
    """Like the constructor, but every optional field given is written (None as null)."""
    return cls._present(values, set(values))

  @classmethod
  def _present(cls: Type[R], values: Dict[str, Any], keys: Iterable[str]) -> R:
    record = cls(**values)
    optional_names = {field.name for field in dataclasses.fields(cls)
                      if field.metadata.get(_OPTIONAL)}
    object.__setattr__(record, "_written", frozenset(optional_names & set(keys)))
    return record

  def to_json(self) -> Dict[str, Any]:
    """The dict the file holds (keys in the writer's order; the file sorts them anyway)."""
    written: FrozenSet[str] = getattr(self, "_written", frozenset())
    out: Dict[str, Any] = {}
    if self.VERSION is not None:
      out["version"] = self.VERSION
    gathered: Dict[str, Any] = {}
    for field in dataclasses.fields(self):
      item = getattr(self, field.name)
      if field.metadata.get(_EXTRA):
        gathered = item or {}
      if field.metadata.get(_JSON, True) is False:
        continue
      if field.metadata.get(_OPTIONAL) and item is None and field.name not in written:
        continue
      out[field.name] = field.metadata.get(_CODEC, PLAIN).encode(item)
    out.update(gathered)
    return out

  def has(self, name: str) -> bool:
    """Whether the file holds field `name`'s key (an optional key may be absent)."""
    return getattr(self, name) is not None or name in getattr(self, "_written", frozenset())

  def is_empty(self) -> bool:
    """Whether the record holds no value at all (read from an empty or malformed entry)."""
    return all(item in (None, {}, []) for key, item in self.to_json().items() if key != "version")

  @classmethod
  def coerce(cls: Type[R], data: Any) -> R:
    """`data` itself when it is already this record, else `from_json(data)`."""
    return data if isinstance(data, cls) else cls.from_json(data)
