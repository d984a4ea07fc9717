"""SAC (Haarnoja et al. 2018b): twin Q with target Q, tanh-Gaussian policy, fixed or learned alpha.

Losses, with B an off-policy batch from the replay buffer:
- critic: J_Q = E[1/2 (Q_j(s,a) - y)^2], y = r + gamma (1 - terminated) (min_j Qbar_j(s',a') -
  alpha log pi(a'|s')), a' ~ pi(.|s')  (paper eq. 22-23 with SAC-v2's target critic in place of V).
- policy: J_pi = E[alpha log pi(a~|s) - min_j Q_j(s, a~)], a~ reparameterised (eq. 26 with O = 1).
- temperature: J(alpha) = E[-log alpha (log pi(a~|s) + target_entropy)], target -act_dim.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from awmp.algos import Agent, Algorithm, polyak
from awmp.distributions import sample_tanh_gaussian
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import GaussianPolicy, TwinCritic
from awmp.strict import StrictFields


@dataclass
class SACConfig(StrictFields):
    """SAC (Haarnoja et al. 2018b): twin Q + target Q, tanh-Gaussian policy."""

    hidden: tuple[int, ...] = (400, 400)
    """Hidden layer sizes of the policy and each critic (paper Table 2: (400, 400))."""
    batch_size: int = 100
    """Off-policy mini-batch size (paper Table 2: 100)."""
    lr: float = 3e-4
    """Adam learning rate for every network (paper Table 2: 3e-4)."""
    tau: float = 0.005
    """Polyak coefficient of the target critics (paper Table 2: 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (paper Table 2: 0.99)."""
    alpha: float = 0.2
    """Entropy temperature alpha; the initial value with `learn_alpha` (paper Table 1: 0.2)."""
    learn_alpha: bool = False
    """Learn alpha towards a target entropy of -act_dim (Haarnoja et al. 2018b)."""


def check(cfg: SACConfig, _train) -> None:
    """SAC's own checks (awmp.config.validate does the common ones)."""
    require(0 < cfg.tau <= 1, "sac.tau", cfg.tau, "in (0, 1]")
    require(cfg.alpha >= 0 and math.isfinite(cfg.alpha), "sac.alpha", cfg.alpha, "finite and >= 0")
    require(
        not (cfg.learn_alpha and cfg.alpha <= 0), "sac.alpha", cfg.alpha, "> 0 with learn_alpha"
    )


@flax.struct.dataclass
class SACState:
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array
    step: jax.Array


class SAC:
    """SAC's networks and pure functions for one (EnvSpec, SACConfig).

    `agent` is what the training loop uses; the methods are pure functions of a state (as in
    awmp.algos.sac_awmp.AWMP), so tests and tools can call them directly.
    """

    def __init__(self, spec: EnvSpec, cfg: SACConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.actor_net = GaussianPolicy(tuple(cfg.hidden), spec.act_dim)
        self.critic_net = TwinCritic(tuple(cfg.hidden))
        self.opt = optax.adam(cfg.lr)
        self.target_entropy = -float(spec.act_dim)

    def init(self, key: jax.Array) -> SACState:
        cfg, spec, opt = self.cfg, self.spec, self.opt
        k_actor, k_critic, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, spec.obs_dim))
        act = jnp.zeros((1, spec.act_dim))
        actor = self.actor_net.init(k_actor, obs)
        critic = self.critic_net.init(k_critic, obs, act)
        log_alpha = jnp.asarray(math.log(cfg.alpha) if cfg.alpha > 0 else -jnp.inf, jnp.float32)
        return SACState(
            actor=actor,
            critic=critic,
            target_critic=critic,
            log_alpha=log_alpha,
            actor_opt=opt.init(actor),
            critic_opt=opt.init(critic),
            alpha_opt=opt.init(log_alpha),
            key=key,
            step=jnp.zeros((), jnp.int32),
        )

    def alpha(self, state: SACState) -> jax.Array:
        """The entropy temperature: learned (exp log_alpha) or the configured constant."""
        return jnp.exp(state.log_alpha) if self.cfg.learn_alpha else jnp.asarray(self.cfg.alpha)

    def act(self, state: SACState, obs: jax.Array) -> tuple[SACState, jax.Array, dict]:
        """A tanh-Gaussian sample (exploration); the state's key advances."""
        key, sub = jax.random.split(state.key)
        mean, log_std = self.actor_net.apply(state.actor, obs)
        action, _ = sample_tanh_gaussian(sub, mean, log_std)
        return state.replace(key=key), action, {}

    def act_deterministic(self, state: SACState, obs: jax.Array) -> jax.Array:
        """tanh of the policy mean (evaluation)."""
        mean, _ = self.actor_net.apply(state.actor, obs)
        return jnp.tanh(mean)

    def update(self, state: SACState, batch: dict) -> tuple[SACState, dict]:
        """One gradient step: critics (eq. 22-23), policy (eq. 26), alpha (eq. 18), target."""
        cfg, opt, actor_net, critic_net = self.cfg, self.opt, self.actor_net, self.critic_net
        key, k_next, k_pi = jax.random.split(state.key, 3)
        alpha = self.alpha(state)

        # Critic target (eq. 23, SAC-v2 form): bootstrap unless truly terminated.
        mean, log_std = actor_net.apply(state.actor, batch["next_obs"])
        next_a, next_logp = sample_tanh_gaussian(k_next, mean, log_std)
        next_q = jnp.min(critic_net.apply(state.target_critic, batch["next_obs"], next_a), axis=0)
        y = batch["reward"] + cfg.gamma * (1.0 - batch["terminated"]) * (next_q - alpha * next_logp)
        y = jax.lax.stop_gradient(y)

        def critic_loss(params):  # eq. 22: 1/2 (Q_j(s,a) - y)^2, summed over j = 1, 2
            q = critic_net.apply(params, batch["obs"], batch["action"])  # (2, B)
            return 0.5 * jnp.sum(jnp.mean((q - y) ** 2, axis=1)), q

        (q_loss, q), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
        updates, critic_opt = opt.update(grads, state.critic_opt)
        critic = optax.apply_updates(state.critic, updates)

        def actor_loss(params):  # eq. 26 with O = 1: alpha log pi(a~|s) - min_j Q_j(s, a~)
            mean, log_std = actor_net.apply(params, batch["obs"])
            a, logp = sample_tanh_gaussian(k_pi, mean, log_std)
            q_pi = jnp.min(critic_net.apply(critic, batch["obs"], a), axis=0)
            return jnp.mean(alpha * logp - q_pi), logp

        (pi_loss, logp), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        updates, actor_opt = opt.update(grads, state.actor_opt)
        actor = optax.apply_updates(state.actor, updates)

        log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
        if cfg.learn_alpha:  # Haarnoja et al. 2018b, eq. 18
            entropy_gap = jax.lax.stop_gradient(logp + self.target_entropy)

            def alpha_loss(la):
                return -jnp.mean(la * entropy_gap)

            grads = jax.grad(alpha_loss)(state.log_alpha)
            updates, alpha_opt = opt.update(grads, state.alpha_opt)
            log_alpha = optax.apply_updates(state.log_alpha, updates)

        new_state = state.replace(
            actor=actor,
            critic=critic,
            target_critic=polyak(state.target_critic, critic, cfg.tau),
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            key=key,
            step=state.step + 1,
        )
        metrics = {
            "q_loss": q_loss,
            "pi_loss": pi_loss,
            "q_mean": jnp.mean(q),
            "entropy": -jnp.mean(logp),
            "alpha": alpha,
        }
        return new_state, metrics

    @functools.cached_property
    def agent(self) -> Agent:
        """The Agent the training loop uses (awmp.algos interface)."""
        return Agent(
            name="sac",
            init=self.init,
            act=self.act,
            act_deterministic=self.act_deterministic,
            update=self.update,
            # act: actor and key (split); act_deterministic: actor. Alpha is not read.
            acting_fields=("actor", "key"),
        )


def build(spec: EnvSpec, cfg: SACConfig) -> SAC:
    """SAC's networks and pure functions (the Agent is `build(...).agent`)."""
    return SAC(spec, cfg)


def make_agent(spec: EnvSpec, cfg: SACConfig) -> Agent:
    """The SAC Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="sac", label="SAC", section="sac", config=SACConfig, make_agent=make_agent, check=check
)
