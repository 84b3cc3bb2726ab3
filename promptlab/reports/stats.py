"""Statistics for reports: intervals for one group, paired tests for two.

Wilson score interval for pass rates, percentile bootstrap for means, paired bootstrap for
mean differences, exact McNemar (a binomial test on the discordant pairs) for pass/fail,
and the exact sign test for paired values. Bootstraps use a seeded generator, so a report
prints the same numbers every time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["wilson", "bootstrap_mean_ci", "paired_bootstrap_ci", "binomial_two_sided",
           "mcnemar_exact", "sign_test", "Z95"]

Z95 = 1.959963984540054
BOOTSTRAP = 2000


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _percentiles(sorted_stats: Sequence[float]) -> tuple[float, float]:
    n = len(sorted_stats)
    lo = sorted_stats[max(0, int(math.floor(0.025 * (n - 1))))]
    hi = sorted_stats[min(n - 1, int(math.ceil(0.975 * (n - 1))))]
    return (lo, hi)


def bootstrap_mean_ci(values: Sequence[float], seed: int = 0,
                      resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    if n == 1 or min(values) == max(values):
        return (values[0], values[0]) if n == 1 else (min(values), max(values))
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return _percentiles(means)


def paired_bootstrap_ci(diffs: Sequence[float], seed: int = 0,
                        resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95% interval of the mean paired difference (resampling pairs)."""
    return bootstrap_mean_ci(diffs, seed, resamples)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value from the discordant pairs (A passed alone, B passed alone)."""
    return binomial_two_sided(a_only, a_only + b_only)


def sign_test(diffs: Sequence[float]) -> float:
    """Exact sign test p-value for paired differences (ties dropped)."""
    pos = sum(1 for d in diffs if d > 0)
    neg = sum(1 for d in diffs if d < 0)
    return binomial_two_sided(pos, pos + neg)
