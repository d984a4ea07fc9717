"""Networks (paper Tables 2-3): MLPs, twin critics, value net, stacked Gaussian components, prior.

Ensembles (the twin critics, the O policy components) are one stacked parameter pytree created
with `nn.vmap`, so a forward pass is one batched computation, not a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from awmp.distributions import LOG_STD_MAX, LOG_STD_MIN


class MLP(nn.Module):
    """Dense layers with ReLU between them and a linear output layer."""

    hidden: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


class _QNet(nn.Module):
    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)(jnp.concatenate([obs, action], axis=-1))[..., 0]


class TwinCritic(nn.Module):
    """Q_1, Q_2 as one stacked ensemble: (obs (B, s), action (B, d)) -> (2, B)."""

    hidden: Sequence[int]
    num: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            _QNet,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return ensemble(self.hidden)(obs, action)


class ValueNet(nn.Module):
    """V(s; psi): obs (B, s) -> (B,)."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)(obs)[..., 0]


class _GaussianHead(nn.Module):
    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.act_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class GaussianPolicy(nn.Module):
    """One tanh-Gaussian policy: obs (B, s) -> mean, log_std, each (B, d)."""

    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _GaussianHead(self.hidden, self.act_dim)(obs)


class StackedGaussianPolicy(nn.Module):
    """O independent tanh-Gaussian components: obs (B, s) -> mean, log_std, each (O, B, d)."""

    hidden: Sequence[int]
    act_dim: int
    num_components: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        stack = nn.vmap(
            _GaussianHead,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_components,
        )
        return stack(self.hidden, self.act_dim)(obs)


class DeterministicPolicy(nn.Module):
    """TD3's actor: obs (B, s) -> tanh action (B, d)."""

    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.act_dim)(obs))


class PriorNet(nn.Module):
    """P(h | s, a; eta) (Section 3.1): (obs, action) -> logits over the O components.

    With `recon_dim` > 0 it also returns a decoder's reconstruction of (s, a) from the logits
    (the reference code's optional reconstruction term).
    """

    hidden: Sequence[int]
    num_components: int
    recon_dim: int = 0

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        x = jnp.concatenate([obs, action], axis=-1)
        logits = MLP(self.hidden, self.num_components)(x)
        recon = (
            MLP(tuple(reversed(self.hidden)), self.recon_dim)(logits) if self.recon_dim else None
        )
        return logits, recon


class StackedDeterministicPolicy(nn.Module):
    """O independent TD3 actors (TD3-AWMP's components): obs (B, s) -> tanh actions (O, B, d).

    Each component is a `DeterministicPolicy`; component g's parameters are the g-th slice of
    the stacked pytree (a `DeterministicPolicy` pytree with a leading axis of length O).
    """

    hidden: Sequence[int]
    act_dim: int
    num_components: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        stack = nn.vmap(
            DeterministicPolicy,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_components,
        )
        return stack(self.hidden, self.act_dim)(obs)
