"""Statistics for comparing methods on few questions: bootstrap intervals, paired McNemar test, percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_BOOTSTRAP_BLOCK = 2_000_000  # resampled values held in memory at once


def bootstrap_ci(values: Sequence[float], samples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (resampling questions with replacement); seeded."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("bootstrap_ci needs at least one value; there were no rows to resample")
    if samples < 1 or not 0 < alpha < 1:
        raise ValueError(f"bootstrap_ci: samples must be >= 1 and alpha in (0, 1), got samples={samples}, alpha={alpha}")
    rng = np.random.default_rng(seed)
    n = arr.size
    per_block = max(1, _BOOTSTRAP_BLOCK // n)
    means = np.empty(samples, dtype=np.float64)
    for start in range(0, samples, per_block):
        k = min(per_block, samples - start)
        means[start : start + k] = arr[rng.integers(0, n, size=(k, n))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided binomial p-value for k successes in n trials with p = 0.5."""
    lo = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(lo + 1)) / 2**n
    return min(1.0, 2 * tail)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float | int]:
    """Paired McNemar test on the same questions: b = a right & b wrong, c = a wrong & b right.

    Exact two-sided binomial p when b + c < 25, else chi-square (1 dof) with continuity correction;
    p = 1.0 when the methods never disagree.
    """
    if len(a) != len(b):
        raise ValueError(f"mcnemar needs paired results: got {len(a)} and {len(b)} values; pair them by question id")
    b_count = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    c_count = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = b_count + c_count
    if n == 0:
        p = 1.0
    elif n < 25:
        p = _binom_two_sided_half(b_count, n)
    else:
        stat = (abs(b_count - c_count) - 1) ** 2 / n
        p = math.erfc(math.sqrt(stat / 2))  # survival function of chi-square with 1 dof
    return {"p_value": float(p), "b": b_count, "c": c_count}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy.percentile."""
    if len(values) == 0:
        raise ValueError("percentile of an empty list; there were no rows")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
