"""Mean ± 95% t-interval over seeds, and which differences are within noise (no flags: importable by tests).

Every benchmark table reports each metric as ``mean ± half-width`` of the two-sided 95% Student-t interval
of the mean over its seeds (n seeds: t_{0.975, n-1} · s / √n, s the sample standard deviation). A row is
compared to a reference row through the interval of the *paired* difference: run k of both rows used seed k
(same split, same data order), so the difference per seed cancels what the seed does to both. The
difference is "within noise" when that interval contains 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

CONFIDENCE = 0.95
# t_{0.975, df} for df = 1..30 (two-sided 95%).
_T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
          2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
          2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, a Cornish-Fisher expansion around z = 1.96 beyond."""
    if df < 1:
        raise ValueError(f"a t-interval needs at least 2 values (df >= 1), got df={df}")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


class Interval(NamedTuple):
    """``mean ± half_width`` (the 95% t-interval of a mean; half_width is NaN for one value). Unpacks as
    ``(mean, half_width)``."""

    mean: float
    half_width: float

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
    """The mean of ``values`` and the half-width of its 95% t-interval (NaN for a single value)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("no values to summarize")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"non-finite values {values.tolist()}")
    if values.size == 1:
        return Interval(float(values[0]), float("nan"))
    half_width = t_quantile_975(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return Interval(float(values.mean()), half_width)


def _paired(values: Sequence[float], reference: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    if values.shape != reference.shape:
        raise ValueError(f"paired values need the same seeds: {values.size} vs {reference.size} values")
    return values, reference


def difference_interval(values: Sequence[float], reference: Sequence[float]) -> Interval:
    """Interval of the per-seed differences ``values - reference`` (paired by seed)."""
    values, reference = _paired(values, reference)
    return mean_interval(values - reference)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float]) -> Interval:
    """Interval of the per-seed ratios ``numerator / denominator`` (paired by position)."""
    numerators, denominators = _paired(numerators, denominators)
    return mean_interval(numerators / denominators)


def noise_label(values: Sequence[float], reference: Sequence[float]) -> str:
    """"within noise" when the paired difference's interval contains 0, else "higher" / "lower"."""
    difference = difference_interval(values, reference)
    if not difference.excludes_zero():
        return "within noise"
    return "higher" if difference.mean > 0 else "lower"


def summarize(values: Sequence[float]) -> dict:
    """``{"mean", "ci", "n", "values"}`` of one metric over seeds (ci = the half-width)."""
    mean, half_width = mean_interval(values)
    return {"mean": mean, "ci": half_width, "n": len(values), "values": [float(v) for v in values]}


def paired_difference(values: Sequence[float], reference: Sequence[float]) -> dict:
    """Interval of mean(values - reference) over paired seeds: ``{"mean", "ci", "within_noise"}``."""
    mean, half_width = difference_interval(values, reference)
    return {"mean": mean, "ci": half_width, "within_noise": bool(not abs(mean) > half_width)}


def format_interval(summary: dict, digits: int = 4) -> str:
    """``"0.6812 ± 0.0031"`` (just the mean for a single seed)."""
    if not math.isfinite(summary["ci"]):
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['ci']:.{digits}f}"


def format_difference(difference: dict, digits: int = 4) -> str:
    """``"+0.0123 ± 0.0040"`` for a difference beyond noise, ``"+0.0010 ± 0.0040 (noise)"`` within it."""
    text = f"{difference['mean']:+.{digits}f} ± {difference['ci']:.{digits}f}"
    return text + (" (noise)" if difference["within_noise"] else "")


def parse_seeds(text: Sequence[str] | str) -> list[int]:
    """``--seeds`` (a comma-separated string or a list) as a list of distinct ints."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        seeds = [int(str(s).strip()) for s in items if str(s).strip()]
    except ValueError:
        raise ValueError(f"--seeds must be integers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct integers, got {text!r}")
    return seeds
