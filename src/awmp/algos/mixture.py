"""The mixture machinery that SAC-AWMP, TD3-AWMP and SAC-GMM share.

- Stacked components: `awmp.networks.StackedGaussianPolicy` / `StackedDeterministicPolicy`
  (one parameter pytree with a leading axis of length O); outputs are (O, B, ...).
- Picking and drawing a component: `pick` (each row's component), `gumbel_max` (g ~ w by the
  Gumbel-max trick), `argmax_pick` (the most probable component's action).
- Mixture densities: `mixture_log_density` (tanh-Gaussian components, SAC-AWMP eq. 15 with
  eq. 28) and `awmp.distributions.tanh_mixture_log_prob` (at a pre-tanh point, SAC-GMM).
- Gating: `gating_log_weights`, log_softmax_g((Qbar(s, a_g) - alpha log pi_g(a_g|s)) / T)
  (SAC-AWMP eq. 16-17; TD3-AWMP with alpha = 0).
- The prior network and its burst: `awmp.algos.prior` (the math), `prior_hook` (the loop's
  hook) and `warmup_log_mu` (the behaviour density of warm-up actions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from awmp.algos import Hook, prior
from awmp.distributions import mixture_log_prob


def pick(x: jax.Array, g: jax.Array) -> jax.Array:
    """x[g_b, b]: each row's component, from x (O, B, ...) and indices g (B,)."""
    idx = g.reshape((1, -1) + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=0)[0]


def gumbel_max(log_w: jax.Array, gumbel: jax.Array) -> jax.Array:
    """g ~ w (B,) from log w (B, O) and standard Gumbels (B, O): argmax_g (log w_g + G_g)."""
    return jnp.argmax(log_w + gumbel, axis=-1)


def argmax_pick(x: jax.Array, log_w: jax.Array) -> jax.Array:
    """The most probable component's row of x (O, B, ...): x[argmax_g w_g(s_b), b]."""
    return pick(x, jnp.argmax(log_w, axis=-1))


def mixture_log_density(
    action: jax.Array, log_rho: jax.Array, means: jax.Array, log_stds: jax.Array
) -> jax.Array:
    """log sum_g rho_g pi_g(a|s) (SAC-AWMP eq. 15 with eq. 28) by log-sum-exp.

    action: (B, d); log_rho: (B, O); means, log_stds: (O, B, d), the components' pre-tanh
    Gaussians as `StackedGaussianPolicy` returns them.
    """
    return mixture_log_prob(
        action, log_rho, jnp.swapaxes(means, 0, 1), jnp.swapaxes(log_stds, 0, 1)
    )


def gating_log_weights(
    q_bar: jax.Array,
    temperature: float = 1.0,
    log_pi: jax.Array | None = None,
    alpha: Any = 0.0,
) -> jax.Array:
    """log rho(g|s) = log_softmax_g((Qbar(s, a_g) - alpha log pi_g(a_g|s)) / T) (SAC-AWMP eq.
    16-17); without log_pi, log_softmax_g(Qbar / T) (TD3-AWMP: deterministic components).

    q_bar, log_pi: (..., O), one action per component.
    """
    x = q_bar if log_pi is None else q_bar - alpha * log_pi
    return jax.nn.log_softmax(x / temperature, axis=-1)


def warmup_log_mu(act_dim: int) -> Callable[[np.ndarray], dict]:
    """The buffer extras of a warm-up action: log mu(a) of the uniform density on [-1, 1]^d."""
    log_mu = np.float32(prior.uniform_log_density(act_dim))
    return lambda action: {"log_mu": log_mu}


def prior_hook(cfg: Any, apply: Callable) -> Hook:
    """The loop's hook for the prior network's bursts (awmp.algos.prior: schedule, host-side
    draw, metric names); apply(state, data) -> (state, metrics) is the algorithm's burst."""
    return Hook(
        due=functools.partial(prior.burst_due, cfg),
        draw=functools.partial(prior.draw_prior_data, cfg),
        apply=apply,
        metric_names=prior.hook_metric_names(cfg),
    )
