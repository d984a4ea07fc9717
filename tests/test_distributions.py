"""Tanh-Gaussian log-density (eq. 28) against independent float64 references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from awmp import distributions
from awmp.distributions import (
    log_det_tanh_jacobian,
    sample_tanh_gaussian,
    tanh_gaussian_log_prob,
)


def _ref_log_prob(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Change of variables in float64: p(a) = N(atanh a; mean, std) / prod(1 - a^2)."""
    u = np.arctanh(a)
    log_n = -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    return np.sum(log_n - np.log1p(-(a**2)), axis=-1)


@pytest.mark.parametrize("trial", range(3))
def test_log_prob_matches_change_of_variables(trial):
    rng = np.random.default_rng(trial)
    d = int(rng.integers(1, 7))
    mean = rng.normal(size=(64, d)) * 2
    log_std = rng.uniform(-2.0, 1.0, size=(64, d))
    # |u| <= 7 keeps a inside the clip at 1 - 1e-6 (|u| = 7.25), which this formula has not.
    a = np.tanh(np.clip(rng.normal(size=(64, d)) * 1.5, -7.0, 7.0))
    with jax.enable_x64(True):
        ours = np.asarray(
            tanh_gaussian_log_prob(jnp.asarray(a), jnp.asarray(mean), jnp.asarray(log_std))
        )
    np.testing.assert_allclose(ours, _ref_log_prob(a, mean, np.exp(log_std)), rtol=1e-9, atol=1e-9)


def test_sample_log_prob_is_density_of_sample():
    rng = np.random.default_rng(20261207)
    mean = rng.normal(size=(128, 3))
    log_std = rng.uniform(-1.5, 0.5, size=(128, 3))
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    with jax.enable_x64(True):
        a, logp = sample_tanh_gaussian(key, jnp.asarray(mean), jnp.asarray(log_std))
        a, logp = np.asarray(a), np.asarray(logp)
    keep = np.all(np.abs(a) < 1 - 1e-9, axis=-1)  # atanh is ill-conditioned at the edge
    np.testing.assert_allclose(
        logp[keep], _ref_log_prob(a[keep], mean[keep], np.exp(log_std[keep])), rtol=1e-7
    )


@pytest.mark.parametrize("seed", range(5))
def test_density_integrates_to_one(seed):
    """1-D: the density on (-1, 1) integrates to 1 (trapezoid rule in u = atanh a). Actions
    are clipped to |a| <= 1 - _EPS before the density is taken (so it is exact only inside), so
    the integral inside plus the Gaussian mass of u beyond atanh(1 - _EPS) (scipy's normal
    CDF) must be 1."""
    rng = np.random.default_rng(seed)
    mean, log_std = rng.normal(), rng.uniform(-1.0, 0.5)
    u_max = np.arctanh(1 - distributions._EPS)
    std = np.exp(log_std)
    u = np.linspace(max(mean - 12 * std, -u_max), min(mean + 12 * std, u_max), 200_001)
    a = np.tanh(u)
    with jax.enable_x64(True):
        logp = np.asarray(
            tanh_gaussian_log_prob(
                jnp.asarray(a[:, None]), jnp.full((len(a), 1), mean), jnp.full((len(a), 1), log_std)
            )
        )
    # p(a) da = p(a) (1 - tanh(u)^2) du
    inside = np.trapezoid(np.exp(logp) * (1 - a**2), u)
    tails = scipy.stats.norm.cdf(-u_max, mean, std) + scipy.stats.norm.sf(u_max, mean, std)
    assert inside + tails == pytest.approx(1.0, abs=1e-6)


def test_log_det_jacobian_stable_for_large_inputs():
    u = jnp.asarray([[-50.0, 0.0, 50.0]])
    val = float(log_det_tanh_jacobian(u)[0])
    # log(1 - tanh(u)^2) ~ log 4 - 2|u| for large |u|
    assert np.isfinite(val)
    assert val == pytest.approx(2 * (np.log(4) - 100.0), rel=1e-6)
