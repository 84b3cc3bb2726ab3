"""The statistics match scipy (a reference used in tests only) to the stated precision."""

from __future__ import annotations

import pytest
from scipy import stats as sp

from promptlab.reports.stats import (
    binomial_two_sided,
    bootstrap_mean_ci,
    mcnemar_exact,
    sign_test,
    wilson,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 40), (1, 1), (50, 97)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = sp.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 6), (1, 6), (3, 6), (2, 15), (9, 20), (0, 0)])
def test_exact_binomial_matches_scipy(k: int, n: int) -> None:
    expected = 1.0 if n == 0 else sp.binomtest(k, n, 0.5).pvalue
    assert binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(k, n - k) == pytest.approx(expected, rel=1e-12)


def test_sign_test_drops_ties() -> None:
    diffs = [1.0, 0.5, 0.0, 0.0, 2.0, -1.0, 3.0, 0.2]
    assert sign_test(diffs) == pytest.approx(sp.binomtest(5, 6, 0.5).pvalue)


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    import random

    rng = random.Random(5)
    values = [rng.gauss(3.0, 1.0) for _ in range(60)]
    lo, hi = bootstrap_mean_ci(values)
    ref = sp.bootstrap((values,), lambda x, axis: x.mean(axis=axis), method="percentile",
                       confidence_level=0.95, n_resamples=20000, random_state=1)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05)
    assert bootstrap_mean_ci(values) == (lo, hi)  # seeded: the same every time
