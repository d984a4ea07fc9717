"""Tanh-squashed diagonal Gaussians (paper eq. 28) and the mixture log-density.

Actions live in [-1, 1]^d: a = tanh(u), u ~ N(mean, exp(log_std)^2). The density of `a` is the
Gaussian density of `u` times |det da/du|^-1 (eq. 28), with
log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) written in its overflow-free form.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # ALGORITHM.md, Notation
_EPS = 1e-6


def log_det_tanh_jacobian(u: jax.Array) -> jax.Array:
    """sum_i log(1 - tanh(u_i)^2) over the last axis, stable for large |u|."""
    return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(u; mean, diag(exp(log_std)^2)) summed over the last axis."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def sample_tanh_gaussian(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-density log pi(a) (eq. 28)."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - log_det_tanh_jacobian(u)


def tanh_gaussian_log_prob(a: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log pi(a) of an action a in (-1, 1)^d (eq. 28); a is clipped just inside the box."""
    a = jnp.clip(a, -1.0 + _EPS, 1.0 - _EPS)
    u = jnp.arctanh(a)
    return gaussian_log_prob(u, mean, log_std) - log_det_tanh_jacobian(u)


def mixture_log_prob(
    a: jax.Array, log_weights: jax.Array, means: jax.Array, log_stds: jax.Array
) -> jax.Array:
    """log sum_g rho_g pi_g(a) (eq. 15) by log-sum-exp.

    a: (..., d); log_weights: (..., O); means, log_stds: (..., O, d).
    """
    comp = tanh_gaussian_log_prob(a[..., None, :], means, log_stds)  # (..., O)
    return jax.nn.logsumexp(log_weights + comp, axis=-1)


def tanh_mixture_log_prob(
    u: jax.Array, log_weights: jax.Array, means: jax.Array, log_stds: jax.Array
) -> jax.Array:
    """log pi(tanh(u)) of a mixture of tanh-Gaussians, given the pre-tanh point u (no arctanh):
    log sum_j w_j N(u; mean_j, std_j^2) - sum_i log(1 - tanh(u_i)^2), by log-sum-exp.

    u: (..., d); log_weights: (..., O); means, log_stds: (..., O, d). The components share the
    tanh, so the Jacobian term is common to all of them and leaves the sum.
    """
    comp = gaussian_log_prob(u[..., None, :], means, log_stds)  # (..., O)
    return jax.nn.logsumexp(log_weights + comp, axis=-1) - log_det_tanh_jacobian(u)
