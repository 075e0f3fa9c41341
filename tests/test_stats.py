"""Bootstrap intervals, McNemar against scipy, percentiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from workbench.evaluation.stats import bootstrap_ci, mcnemar, percentile


def test_bootstrap_ci_contains_point_estimate_and_is_deterministic():
    rng = np.random.default_rng(1)
    values = (rng.random(60) < 0.35).astype(float).tolist()
    lo, hi = bootstrap_ci(values, samples=2000, seed=7)
    assert 0.0 <= lo <= np.mean(values) <= hi <= 1.0
    assert bootstrap_ci(values, samples=2000, seed=7) == (lo, hi)
    assert bootstrap_ci(values, samples=2000, seed=8) != (lo, hi)
    # Roughly the normal-approximation width for a proportion: 2 * 1.96 * sqrt(p(1-p)/n).
    p = np.mean(values)
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / len(values)), rel=0.25)


def test_bootstrap_ci_degenerate_and_large():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    assert bootstrap_ci([0.0]) == (0.0, 0.0)
    big = [float(i % 2) for i in range(5001)]  # exercises the blocked resampling path
    lo, hi = bootstrap_ci(big, samples=1000, seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.05
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])


def _pairs(b: int, c: int, agree_right: int = 3, agree_wrong: int = 2) -> tuple[list[bool], list[bool]]:
    a = [True] * b + [False] * c + [True] * agree_right + [False] * agree_wrong
    bb = [False] * b + [True] * c + [True] * agree_right + [False] * agree_wrong
    return a, bb


@pytest.mark.parametrize("b,c", [(1, 0), (3, 9), (7, 7), (0, 12), (10, 14)])
def test_mcnemar_small_is_exact_binomial(b, c):
    res = mcnemar(*_pairs(b, c))
    assert (res["b"], res["c"]) == (b, c)
    assert res["p_value"] == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


@pytest.mark.parametrize("b,c", [(10, 15), (30, 12), (40, 40), (5, 60)])
def test_mcnemar_large_is_chi_square_with_continuity(b, c):
    res = mcnemar(*_pairs(b, c))
    stat = (abs(b - c) - 1) ** 2 / (b + c)
    assert res["p_value"] == pytest.approx(sps.chi2.sf(stat, 1), rel=1e-9)


def test_mcnemar_no_disagreement_and_errors():
    assert mcnemar([True, False], [True, False]) == {"p_value": 1.0, "b": 0, "c": 0}
    assert mcnemar([], []) == {"p_value": 1.0, "b": 0, "c": 0}
    with pytest.raises(ValueError, match="paired"):
        mcnemar([True], [True, False])


def test_percentile_matches_numpy():
    vals = [0.5, 0.1, 0.9, 0.3, 2.0]
    assert percentile(vals, 50) == 0.5
    assert percentile(vals, 95) == pytest.approx(float(np.percentile(vals, 95)))
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)
