"""The statistics of awmp's reports: the IQM, percentile-bootstrap intervals (one group, a
difference of two, paired differences), exact permutation and sign-flip tests, and the sample
standard deviation. Pure NumPy/SciPy functions of arrays of per-run values; `awmp.report` and
`awmp.study` use them, and tests check each against brute-force enumeration."""

from __future__ import annotations

import math

import numpy as np
import scipy.stats


def iqm(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean after cutting floor(n/4) values from each end
    (`scipy.stats.trim_mean(x, 0.25)`, as rliable's `iqm`)."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        raise ValueError("iqm of an empty sample")
    if axis is None:
        return float(scipy.stats.trim_mean(x.ravel(), 0.25))
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


STATISTICS = {"mean": _mean, "iqm": lambda x, axis=-1: iqm(x, axis=axis)}


def sample_std(x) -> float:
    """The sample standard deviation (n - 1 in the denominator) used in every table and figure;
    NaN for fewer than two values."""
    x = np.asarray(x, np.float64).ravel()
    return float(np.std(x, ddof=1)) if x.size >= 2 else math.nan


def _resamplable(x: np.ndarray) -> np.ndarray:
    """scipy's bootstrap needs two runs; every resample of one run is that run, and so is every
    resample of two copies of it, so a single run is passed twice (same distribution)."""
    return np.repeat(x, 2) if x.size == 1 else x


def bootstrap_ci(
    x: np.ndarray, reps: int = 20_000, level: float = 0.95, seed: int = 0, statistic: str = "iqm"
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the IQM (or `statistic`, "mean") over runs
    (rliable's default method), by `scipy.stats.bootstrap`: `reps` resamples of the n runs;
    fixed `seed` so reports are reproducible."""
    x = np.asarray(x, np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    ci = scipy.stats.bootstrap(
        (_resamplable(x),), STATISTICS[statistic], n_resamples=reps, confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True,
    ).confidence_interval  # fmt: skip
    return float(ci.low), float(ci.high)


def bootstrap_diff_ci(
    a: np.ndarray,
    b: np.ndarray,
    statistic: str = "mean",
    reps: int = 20_000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(stat(a) - stat(b), lo, hi): the difference of two groups' mean or IQM with a
    percentile-bootstrap CI (`scipy.stats.bootstrap`, unpaired: the runs of each group are
    resampled independently; seeds of different algorithms share nothing but the number)."""
    a, b = (np.asarray(v, np.float64).ravel() for v in (a, b))
    if a.size == 0 or b.size == 0:
        raise ValueError("bootstrap of an empty sample")
    f = STATISTICS[statistic]

    def diff(x, y, axis=-1):
        return f(x, axis=axis) - f(y, axis=axis)

    ci = scipy.stats.bootstrap(
        (_resamplable(a), _resamplable(b)), diff, n_resamples=reps, confidence_level=level,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True, paired=False,
    ).confidence_interval  # fmt: skip
    return float(diff(a, b)), float(ci.low), float(ci.high)


def permutation_p(
    a: np.ndarray,
    b: np.ndarray,
    exact_limit: int = 200_000,
    reps: int = 100_000,
    seed: int = 0,
    alternative: str = "two-sided",
) -> float:
    """Two-sided p of the difference of means mean(a) - mean(b) under a permutation test
    (`scipy.stats.permutation_test`, independent samples): 2 x the smaller of the fractions of
    relabellings of the pooled runs whose difference is at least / at most the observed one,
    clipped to 1. Exact (every relabelling once) when there are at most `exact_limit` of them,
    as with the 3-5 seeds per group here (C(6, 3) = 20, C(10, 5) = 252); otherwise `reps`
    random relabellings. Unlike the percentile bootstrap it needs no large-sample
    approximation, so it is the check to quote beside a bootstrap CI from 3 seeds per group.
    NaN when a group has fewer than 2 runs (a test with 2 relabellings says nothing).
    `alternative="greater"`: the one-sided p of H1 mean(a) > mean(b), the fraction of
    relabellings whose difference is at least the observed one."""
    a, b = (np.asarray(v, np.float64).ravel() for v in (a, b))
    if a.size == 0 or b.size == 0:
        raise ValueError("permutation test of an empty sample")
    if a.size < 2 or b.size < 2:
        return math.nan
    exact = math.comb(a.size + b.size, a.size) <= exact_limit
    res = scipy.stats.permutation_test(
        (a, b), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent", vectorized=True, alternative=alternative,
        n_resamples=np.inf if exact else reps, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(min(res.pvalue, 1.0))


def paired_bootstrap_ci(
    d: np.ndarray, reps: int = 20_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(d), lo, hi): the mean of paired differences d_i = a_i - b_i (e.g. one run's
    parameters scored two ways on the same episodes) with a percentile-bootstrap CI that
    resamples the pairs (`bootstrap_ci` of the mean)."""
    lo, hi = bootstrap_ci(d, reps, level, seed, statistic="mean")
    return float(np.mean(d)), lo, hi


def sign_flip_p(
    d: np.ndarray, exact_limit: int = 200_000, reps: int = 100_000, seed: int = 0
) -> float:
    """Two-sided p of the mean of paired differences under the sign-flip permutation test
    (`scipy.stats.permutation_test` with one sample: under the null each pair's difference is
    as likely to have either sign): 2 x the smaller of the fractions of the 2^n sign patterns
    whose mean is at least / at most the observed one, clipped to 1. Exact when 2^n <=
    `exact_limit`. With n pairs the smallest p possible is 2 / 2^n (1/16 for 5 seeds).
    NaN for fewer than 2 pairs."""
    d = np.asarray(d, np.float64).ravel()
    if d.size == 0:
        raise ValueError("permutation test of an empty sample")
    if d.size < 2:
        return math.nan
    exact = 2**d.size <= exact_limit
    res = scipy.stats.permutation_test(
        (d,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
        vectorized=True, alternative="two-sided", n_resamples=np.inf if exact else reps,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(min(res.pvalue, 1.0))
