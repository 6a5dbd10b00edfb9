"""Seeds to claims: mean +- standard error, paired differences and a verdict.

A reproduction compares a method with ERM over the same seeds: seed s of both runs
shares its initialisation, data order and augmentation, so the per-seed difference
cancels most of the seed-to-seed noise. The verdict asks whether the 95 % confidence
interval of the mean paired difference (Student's t, n - 1 degrees of freedom)
excludes zero:

  diff = paired_difference(mixup_errors, erm_errors)
  verdict(diff, lower_is_better=True)   # 'reproduced' if the whole interval is < 0
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

# Two-sided 95 % quantiles of Student's t, t_{0.975}(df) for df = 1..30; larger df
# use the normal quantile. Listed so that the verdict needs no statistics package.
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
          2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
          2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A mean over n seeds with its standard error and 95 % t-interval half-width."""

  mean: float
  se: float
  n: int

  @property
  def half_width(self) -> float:
    """Half the width of the two-sided 95 % confidence interval of the mean."""
    return t_975(self.n - 1) * self.se

  def __str__(self) -> str:
    return f"{self.mean:.2f} +- {self.se:.2f}"

  def to_json(self) -> dict[str, float | int]:
    return {"mean": self.mean, "se": self.se, "n": self.n,
            "ci95": [self.mean - self.half_width, self.mean + self.half_width]}


def t_975(df: int) -> float:
  """The two-sided 95 % quantile of Student's t with `df` degrees of freedom."""
  if df < 1:
    raise ValueError(f"df must be >= 1 (at least two seeds), got {df}.")
  return _T_975[df - 1] if df <= len(_T_975) else 1.960


def mean_se(values: Sequence[float]) -> Estimate:
  """Mean and standard error (sample std / sqrt(n)) of at least two values."""
  values = [float(v) for v in values]
  n = len(values)
  if n < 2:
    raise ValueError(f"values needs at least two seeds for a standard error, got {n}.")
  mean = sum(values) / n
  variance = sum((v - mean) ** 2 for v in values) / (n - 1)
  return Estimate(mean=mean, se=math.sqrt(variance / n), n=n)


def paired_difference(method: Sequence[float], baseline: Sequence[float]) -> Estimate:
  """Mean +- SE of method[s] - baseline[s] over seeds s (same seeds, same order)."""
  if len(method) != len(baseline):
    raise ValueError(f"method and baseline need one value per seed each, got {len(method)} "
                     f"and {len(baseline)}.")
  return mean_se([m - b for m, b in zip(method, baseline)])


def verdict(difference: Estimate, *, lower_is_better: bool = True) -> str:
  """'reproduced' if the 95 % interval of the difference lies on the claimed side of 0.

  'contradicted' if it lies wholly on the other side, 'inconclusive' if it covers 0.
  The paper's claim is always "the method improves on ERM": lower error
  (lower_is_better) or, for metrics such as accuracy, higher.
  """
  low, high = difference.mean - difference.half_width, difference.mean + difference.half_width
  better, worse = (high < 0, low > 0) if lower_is_better else (low > 0, high < 0)
  return "reproduced" if better else "contradicted" if worse else "inconclusive"
