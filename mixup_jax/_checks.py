"""Type predicates shared by every validator, so "an int" means one thing everywhere."""

from __future__ import annotations

import numbers

import numpy as np


def is_int(value) -> bool:
  """A Python or NumPy integer scalar; not a bool, not an array."""
  return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
  """A real Python or NumPy scalar; not a bool, not complex, not an array."""
  return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
