"""Seed statistics for benchmark tables: mean ± 95% interval, and whether a difference is within noise.

The interval is Student's t over the per-seed values (n - 1 degrees of freedom). Two rows differ beyond
noise when the 95% interval of their per-seed differences (paired by seed) excludes zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t_critical(degrees_of_freedom: int) -> float:
    """The two-sided 95% critical value of Student's t."""
    if degrees_of_freedom < 1:
        raise ValueError(f"need at least 2 values for an interval, got {degrees_of_freedom + 1}")
    return _T95[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T95) else 1.96


@dataclasses.dataclass(frozen=True)
class Interval:
    """mean ± half_width over n values (half_width is NaN for n = 1)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, spec: str = ".4f", suffix: str = "") -> str:
        if math.isnan(self.half_width):
            return f"{self.mean:{spec}}{suffix}"
        return f"{self.mean:{spec}} ± {self.half_width:{spec}}{suffix}"


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean and 95% t-interval half-width of ``values``."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, float("nan"), 1)
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Interval(mean, t_critical(n - 1) * math.sqrt(variance / n), n)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float]) -> Interval:
    """Interval of the per-seed ratios numerator / denominator (paired by position)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"paired values differ in count: {len(numerators)} vs {len(denominators)}")
    return mean_interval([a / b for a, b in zip(numerators, denominators)])


def difference_interval(values: Sequence[float], reference: Sequence[float]) -> Interval:
    """Interval of the per-seed differences values - reference (paired by seed)."""
    if len(values) != len(reference):
        raise ValueError(f"paired values differ in count: {len(values)} vs {len(reference)}")
    return mean_interval([a - b for a, b in zip(values, reference)])


def noise_label(values: Sequence[float], reference: Sequence[float]) -> str:
    """"within noise" when the paired difference's 95% interval contains zero, else "higher" / "lower"."""
    difference = difference_interval(values, reference)
    if not difference.excludes_zero():
        return "within noise"
    return "higher" if difference.mean > 0 else "lower"
