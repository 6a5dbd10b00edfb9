"""The checks every validator shares, so "an int" or "a probability" means one thing
everywhere (the mixing spec, the one-call functions, the config checks)."""

from __future__ import annotations

import numbers

import numpy as np


def is_int(value) -> bool:
  """A Python or NumPy integer scalar; not a bool, not an array."""
  return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
  """A real Python or NumPy scalar; not a bool, not complex, not an array."""
  return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_traced(value) -> bool:
  """A value only known when the program runs (checked there, not here)."""
  import jax  # pylint: disable=import-outside-toplevel

  return isinstance(value, jax.core.Tracer)


def check_concentration(name: str, value, *, zero: str = "no mixing") -> None:
  """A Beta / Dirichlet concentration: a finite scalar >= 0, or traced."""
  if is_traced(value):
    return
  array = np.asarray(value)
  if array.shape != ():
    raise ValueError(f"{name} must be a scalar, got shape {array.shape}.")
  if (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number)
      or not np.isfinite(array) or array < 0):
    raise ValueError(f"{name} must be a finite number >= 0 (0 means {zero}), got {value!r}.")


def check_probability(name: str, value) -> None:
  """A probability in [0, 1], or traced."""
  if is_traced(value):
    return
  array = np.asarray(value)
  if (array.shape != () or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number)
      or not 0.0 <= float(array) <= 1.0):
    raise ValueError(f"{name} must lie in [0, 1], got {value!r}.")


def check_label_smoothing(name: str, value) -> None:
  """epsilon in [0, 1): at 1 every target is uniform and nothing is learned."""
  if is_traced(value):
    return
  if not is_number(value) or not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must lie in [0, 1) (1 makes every target uniform), got "
                     f"{value!r}.")


def check_choice(name: str, value, choices) -> None:
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")
