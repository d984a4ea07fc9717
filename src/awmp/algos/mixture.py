"""The mixture machinery that SAC-AWMP, TD3-AWMP and SAC-GMM share.

- Stacked components: `awmp.networks.StackedGaussianPolicy` / `StackedDeterministicPolicy`
  (one parameter pytree with a leading axis of length O); outputs are (O, B, ...).
- Picking and drawing a component: `pick` (each row's component), `gumbel_max` (g ~ w by the
  Gumbel-max trick), `argmax_pick` (the most probable component's action).
- Mixture densities: `mixture_log_density` (tanh-Gaussian components, SAC-AWMP eq. 15 with
  eq. 28) and `awmp.distributions.tanh_mixture_log_prob` (at a pre-tanh point, SAC-GMM).
- A twin critic at every component's action: `critic_at` (Q_j(s, a_g)), `gating_q` (Qbar_1,
  no gradient).
- Gating: `gating_log_weights`, log_softmax_g((Qbar(s, a_g) - alpha log pi_g(a_g|s)) / T)
  (SAC-AWMP eq. 16-17; TD3-AWMP with alpha = 0).
- The prior network and its burst: `awmp.algos.prior` (the math), `prior_hook` (the loop's
  hook) and `warmup_log_mu` (the behaviour density of warm-up actions); `PriorMethods`, the
  methods SAC-AWMP and TD3-AWMP share around them (the advantage of eq. 19, J_eta, the burst,
  h's action, the hook's host side and the Agent).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from awmp.algos import Agent, Hook, prior
from awmp.buffer import ReplayBuffer
from awmp.distributions import mixture_log_prob

sg = jax.lax.stop_gradient


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


def critic_at(critic_net: Any, params: Any, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """Q_j(s, a_g) (2, O, B) of a twin critic with `params` at one action per component:
    obs (B, s), actions (O, B, d)."""
    obs_o = jnp.broadcast_to(obs, (actions.shape[0], *obs.shape))
    return critic_net.apply(params, obs_o, actions)


def gating_q(critic_net: Any, target_critic: Any, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """Qbar_1(s, a_g) (O, B), the target critic's first head at each component's action (O, B,
    d): what the gating (SAC-AWMP eq. 16-17) ranks. No gradient reaches any parameter."""
    return critic_at(critic_net, sg(target_critic), obs, sg(actions))[0]


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


class PriorMethods:
    """The methods SAC-AWMP (`AWMP`) and TD3-AWMP (`TD3AWMP`) share around their prior network
    (awmp.algos.prior: eq. 5-14, 19) and their Agent.

    A class using it has `spec`, `cfg` (the prior's switches and `prior_action`), `critic_net`
    (twin Q), `prior_net`, `prior_opt` (the prior's optimiser), `nets(state)` (every network's
    parameters by name: target_critic and prior among them), `target_value(params, obs)` (Vbar,
    the advantage's baseline), `init`, `act`, `act_deterministic`, `update`.
    """

    def advantage(self, params: dict, batch: dict) -> jax.Array:
        """A(s, a) = min_j Qbar_j(s, a) - Vbar(s) (eq. 19 with the target networks; Vbar is
        `target_value`: SAC-AWMP's target V network, TD3-AWMP's target mixture's value without
        smoothing noise, as TD3 has no V network), held fixed."""
        obs = batch["obs"]
        q_bar = jnp.min(self.critic_net.apply(sg(params["target_critic"]), obs, batch["action"]), 0)
        return sg(q_bar - self.target_value(params, obs))

    def prior_objective(
        self, params: dict, batch: dict, eps: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """J_eta (eq. 5) on one B_on batch (obs, action, log_mu) and its diagnostics
        (awmp.algos.prior.prior_objective), with `advantage` (eq. 19) in the importance weights.

        eps: (B, s + d) standard normals of the perturbation x~ = x + sigma |x| eps.
        Only the prior's parameters receive a gradient.
        """
        return prior.prior_objective(
            self.prior_net,
            self.cfg,
            params["prior"],
            batch,
            eps,
            lambda b: self.advantage(params, b),
        )

    def prior_burst(self, state: Any, data: dict) -> tuple[Any, dict]:
        """One burst of prior updates: `lax.scan` over data's leading axis (K steps), every other
        network frozen (awmp.algos.prior.prior_burst).

        data: obs (K, B, s), action (K, B, d), log_mu (K, B). Returns the new state and the
        diagnostics' burst mean (`prior_mi`, ...) plus `prior_mi_last`, `prior_ess_last` and
        `prior_ess_min`.
        """
        frozen = self.nets(state)
        return prior.prior_burst(
            state,
            data,
            lambda p, batch, e: self.prior_objective({**frozen, "prior": p}, batch, e),
            self.prior_opt,
            self.spec.obs_dim + self.spec.act_dim,
        )

    def prior_logits(
        self, params: dict, batch: dict, policy_action: Callable[[], jax.Array]
    ) -> jax.Array:
        """The logits of h = P(.|s, a~) (B, O) with the prior network frozen, a~ the current
        policy's action (`prior_action=policy`, SAC-AWMP Alg. 1 l.15-16: `policy_action()`) or
        the stored one (`buffer`, the reference code)."""
        a_prior = policy_action() if self.cfg.prior_action == "policy" else batch["action"]
        logits, _ = self.prior_net.apply(sg(params["prior"]), batch["obs"], a_prior)
        return logits

    def prior_weights_at(self, state: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        """h = P(.|s, a) (B, O) at `action` (for `weights`, awmp inspect)."""
        logits, _ = self.prior_net.apply(state.prior, obs, action)
        return prior.prior_weights(logits)

    def draw_prior_data(
        self, env_step: int, buffer: ReplayBuffer, rng: np.random.Generator, grad_steps: int
    ) -> dict[str, np.ndarray] | None:
        """The host side of the loop's hook (`prior.draw_prior_data`: a burst's data every
        `prior_interval` steps, none before the first gradient step)."""
        return prior.draw_prior_data(self.cfg, env_step, buffer, rng, grad_steps)

    def burst_due(self, env_step: int) -> bool:
        """Whether a prior burst may be due after `env_step` (every `prior_interval` steps)."""
        return prior.burst_due(self.cfg, env_step)

    def hook_metric_names(self) -> tuple[str, ...]:
        """The names of a burst's metrics (the hook's train.csv columns)."""
        return prior.hook_metric_names(self.cfg)

    def mixture_agent(self, name: str, acting_fields: tuple[str, ...]) -> Agent:
        """The Agent of a mixture with a prior: the behaviour density `log_mu` stored with each
        transition (uniform for warm-up actions) and the prior's bursts as the loop's hook."""
        return Agent.of(
            self,
            name,
            extra_fields={"log_mu": ()},
            warmup_extras=warmup_log_mu(self.spec.act_dim),
            hook=prior_hook(self.cfg, self.prior_burst),
            acting_fields=acting_fields,
        )
