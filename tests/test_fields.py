"""A config field's declared bounds and choices, checked in one place (squish_tf.fields)."""

import dataclasses
import math
from typing import Optional

import pytest

from squish_tf import fields


@dataclasses.dataclass(frozen=True)
class Toy:
  count: int = dataclasses.field(default=1, metadata=dict(lower_bound=1))
  share: float = dataclasses.field(default=0.5, metadata=dict(greater_than=0.0, upper_bound=1.0))
  below: Optional[float] = dataclasses.field(default=None, metadata=dict(
      flag="below_one", lower_bound=0.0, less_than=1.0))
  mode: str = dataclasses.field(default="a", metadata=dict(enum_values=("a", "b")))
  free: float = -math.inf  # declares nothing: not checked

  def __post_init__(self):
    fields.check(self)


@pytest.mark.parametrize("values,message", [
    (dict(count=0), "--count must be an integer >= 1, got 0."),
    (dict(count=True), "--count must be an integer >= 1, got True."),
    (dict(count=1.5), "--count must be an integer >= 1, got 1.5."),
    (dict(share=0.0), "--share must be in (0, 1], got 0.0."),
    (dict(share=float("nan")), "--share must be a finite number in (0, 1], got nan."),
    (dict(below=1.0), "--below_one must be in [0, 1), got 1.0."),
    (dict(mode="c"), "--mode must be one of ('a', 'b'), got 'c'."),
])
def test_a_value_outside_its_declaration_is_refused_naming_flag_and_value(values, message):
  with pytest.raises(ValueError) as error:
    Toy(**values)
  assert str(error.value) == message


def test_declared_values_pass():
  assert Toy(count=3, share=1.0, below=0.0, mode="b").count == 3
  assert Toy(below=None).below is None  # an Optional option left unset
