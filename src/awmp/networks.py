"""Networks (paper Tables 2-3): MLPs, twin critics, value net, stacked Gaussian components, prior.

Ensembles (the twin critics, the O policy components) are one stacked parameter pytree created
with `nn.vmap`, so a forward pass is one batched computation, not a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field as flax_field

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


def _stacked(module: type[nn.Module], num_components: int) -> type[nn.Module]:
    """`module` made O independent copies with one stacked parameter pytree (leading axis O),
    applied to the same input: outputs gain a leading axis of length O."""
    return nn.vmap(
        module,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=num_components,
    )


class StackedGaussianPolicy(nn.Module):
    """O independent tanh-Gaussian components: obs (B, s) -> mean, log_std, each (O, B, d)."""

    hidden: Sequence[int]
    act_dim: int
    num_components: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _stacked(_GaussianHead, self.num_components)(self.hidden, self.act_dim)(obs)


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


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017, Algorithm 1) over the leading axes, as CrossQ uses it.

    Train mode (`train=True`), with batch mean mu_B and biased variance var_B, running mean mu
    and variance var, sigma_B = sqrt(var_B + eps), sigma = sqrt(var + eps):
        r = clip(sigma_B / sigma, 1 / r_max, r_max),  d = clip((mu_B - mu) / sigma, -d_max, d_max)
        x_hat = (x - mu_B) / sigma_B * r + d           (r and d are constants: stop-gradient)
        mu <- m mu + (1 - m) mu_B,  var <- m var + (1 - m) var_B,  steps <- steps + 1
    Eval mode: x_hat = (x - mu) / sqrt(var + eps); nothing changes. Output: scale * x_hat + bias.

    Warm-up (CrossQ's reference code, sbx/sac/policies.py of adityab/CrossQ): for the first
    `warmup_steps` train-mode calls of this layer r_max = 1 and d_max = 0, so r = 1, d = 0 and
    the layer is plain batch normalisation while its running statistics build up; from then on
    r_max and d_max take their values (Ioffe 2017, Sec. 4: 3 and 5). Ioffe ramps them gradually
    instead; the CrossQ code switches at once, and so does this layer. The running statistics and
    the step count live in the `batch_stats` collection (a pytree next to `params`).
    """

    train: bool
    momentum: float = 0.99
    epsilon: float = 1e-3
    r_max: float = 3.0
    d_max: float = 5.0
    warmup_steps: int = 100_000

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        feat = (x.shape[-1],)
        mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(feat, jnp.float32))
        var = self.variable("batch_stats", "var", lambda: jnp.ones(feat, jnp.float32))
        steps = self.variable("batch_stats", "steps", lambda: jnp.zeros((), jnp.int32))
        scale = self.param("scale", nn.initializers.ones, feat)
        bias = self.param("bias", nn.initializers.zeros, feat)
        if not self.train:
            return (x - mean.value) / jnp.sqrt(var.value + self.epsilon) * scale + bias
        axes = tuple(range(x.ndim - 1))
        mu_b = jnp.mean(x, axis=axes)
        var_b = jnp.mean(jnp.square(x - mu_b), axis=axes)
        sigma_b = jnp.sqrt(var_b + self.epsilon)
        sigma = jnp.sqrt(var.value + self.epsilon)
        warm = steps.value >= self.warmup_steps
        r_max = jnp.where(warm, self.r_max, 1.0)
        d_max = jnp.where(warm, self.d_max, 0.0)
        r = jax.lax.stop_gradient(jnp.clip(sigma_b / sigma, 1.0 / r_max, r_max))
        d = jax.lax.stop_gradient(jnp.clip((mu_b - mean.value) / sigma, -d_max, d_max))
        if not self.is_initializing():
            m = self.momentum
            mean.value = m * mean.value + (1.0 - m) * jax.lax.stop_gradient(mu_b)
            var.value = m * var.value + (1.0 - m) * jax.lax.stop_gradient(var_b)
            steps.value = steps.value + 1
        return ((x - mu_b) / sigma_b * r + d) * scale + bias


class _BRNQNet(nn.Module):
    hidden: Sequence[int]
    train: bool
    brn: dict

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        # CrossQ's critic: BRN on the input, then Dense -> ReLU -> BRN per hidden layer, and a
        # linear output (reference code, sbx/sac/policies.py `Critic`).
        x = BatchRenorm(self.train, **self.brn)(jnp.concatenate([obs, action], axis=-1))
        for width in self.hidden:
            x = BatchRenorm(self.train, **self.brn)(nn.relu(nn.Dense(width)(x)))
        return nn.Dense(1)(x)[..., 0]


class BRNTwinCritic(nn.Module):
    """CrossQ's twin critic with batch renormalisation: (obs (B, s), action (B, d)) -> (2, B).

    `train` picks the BRN mode (build one module of each; they share the variables' layout).
    Each member has its own parameters and running statistics (stacked on a leading axis).
    """

    hidden: Sequence[int]
    train: bool
    brn: dict = flax_field(default_factory=dict)
    num: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            _BRNQNet,
            variable_axes={"params": 0, "batch_stats": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return ensemble(self.hidden, self.train, self.brn)(obs, action)


class BRNGaussianPolicy(nn.Module):
    """CrossQ's tanh-Gaussian actor with batch renormalisation (reference code's default
    `bn_mode="brn_actor"`): BRN on the input and after each ReLU; obs (B, s) -> mean, log_std."""

    hidden: Sequence[int]
    act_dim: int
    train: bool
    brn: dict = flax_field(default_factory=dict)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = BatchRenorm(self.train, **self.brn)(obs)
        for width in self.hidden:
            x = BatchRenorm(self.train, **self.brn)(nn.relu(nn.Dense(width)(x)))
        mean, log_std = jnp.split(nn.Dense(2 * self.act_dim)(x), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


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
        return _stacked(DeterministicPolicy, self.num_components)(self.hidden, self.act_dim)(obs)


class MixturePolicy(nn.Module):
    """A Gaussian-mixture policy (SAC-GMM): O stacked tanh-Gaussian components and a softmax
    weight head. obs (B, s) -> logits (B, O) of w(.|s), mean and log_std, each (O, B, d)."""

    hidden: Sequence[int]
    act_dim: int
    num_components: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_std = StackedGaussianPolicy(self.hidden, self.act_dim, self.num_components)(obs)
        logits = MLP(self.hidden, self.num_components)(obs)
        return logits, mean, log_std
