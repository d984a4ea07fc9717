"""TD3 (Fujimoto, van Hoof and Meger 2018, "Addressing Function Approximation Error in
Actor-Critic Methods"): twin critics, target policy smoothing, delayed policy updates.

Losses, with B an off-policy batch from the replay buffer (equation numbers of the TD3 paper):
- target action (eq. 14-15, target policy smoothing):
  a' = clip(mu_bar(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma~^2).
- clipped double-Q target (eq. 10): y = r + gamma (1 - terminated) min_j Qbar_j(s', a').
- critic: J_Q = sum_j E[(Q_j(s,a) - y)^2]  (Algorithm 1, "update critics").
- actor, every `policy_delay` critic steps (Section 5.2): J_mu = -E[Q_1(s, mu(s))] (deterministic
  policy gradient through Q_1 only, Algorithm 1), followed by the Polyak update of both targets.

Actions live in [-1, 1]^d (awmp.envs rescales), so "max action" is 1 and noise scales are
absolute. The delayed branch is a `lax.cond` inside the one jitted `update`, driven by the
step counter in the state, so the update stays pure (vmap over seeds turns it into a select).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from awmp.algos import Agent, Algorithm, gradient_step, init_actor_critic, polyak
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import DeterministicPolicy, TwinCritic
from awmp.strict import StrictFields


@dataclass
class TD3Config(StrictFields):
    """TD3 (Fujimoto et al. 2018): the hyperparameters of its paper (Section 6.1)."""

    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the actor and each critic (TD3 paper, Section 6.1: (400, 300))."""
    batch_size: int = 100
    """Mini-batch size (TD3 paper, Section 6.1: 100)."""
    lr: float = 1e-3
    """Adam learning rate of the actor and the critics (TD3 paper, Section 6.1: 1e-3)."""
    tau: float = 0.005
    """Polyak coefficient of the target actor and critics (TD3 paper, Section 6.1: 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (TD3 paper, Section 6.1: 0.99)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise on the [-1, 1] box (TD3 paper, Sec. 6.1: 0.2)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (TD3 paper, Section 6.1: 0.5)."""
    policy_delay: int = 2
    """Critic updates per actor and target update, d (TD3 paper, Section 5.2: 2)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise on the actor's action (TD3 paper, Sec. 6.1: 0.1)."""


def check(cfg: TD3Config, _train) -> None:
    """TD3's own checks (awmp.config.validate does the common ones)."""
    check_td3_fields(cfg, "td3")
    require(cfg.exploration_noise >= 0, "td3.exploration_noise", cfg.exploration_noise, ">= 0")


def check_td3_fields(cfg: Any, section: str) -> None:
    """The checks of TD3's tau, policy_noise, noise_clip and policy_delay (TD3, TD3-AWMP)."""
    require(0 < cfg.tau <= 1, f"{section}.tau", cfg.tau, "in (0, 1]")
    require(cfg.policy_noise >= 0, f"{section}.policy_noise", cfg.policy_noise, ">= 0")
    require(cfg.noise_clip >= 0, f"{section}.noise_clip", cfg.noise_clip, ">= 0")
    require(cfg.policy_delay >= 1, f"{section}.policy_delay", cfg.policy_delay, ">= 1")


@flax.struct.dataclass
class TD3State:
    actor: Any
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any
    key: jax.Array
    step: jax.Array  # critic updates done so far; the actor updates when (step + 1) % delay == 0
    last_pi_loss: jax.Array  # the most recent actor loss, so every update reports one


def init_fields(actor: Any, critic: Any, opt: Any, key: jax.Array) -> dict[str, Any]:
    """TD3's initial state fields (TD3State's, which TD3-AWMP's state has too): the targets
    equal to the networks, their Adam states, the key, step 0 and a last actor loss of 0."""
    return {
        "actor": actor,
        "critic": critic,
        "target_actor": actor,
        "target_critic": critic,
        "actor_opt": opt.init(actor),
        "critic_opt": opt.init(critic),
        "key": key,
        "step": jnp.zeros((), jnp.int32),
        "last_pi_loss": jnp.zeros((), jnp.float32),
    }


def smoothed_target_action(
    key: jax.Array, target_mu: jax.Array, noise: float, noise_clip: float
) -> jax.Array:
    """Target policy smoothing (TD3 eq. 14-15): clip(mu_bar(s') + clip(eps, -c, c), -1, 1)."""
    eps = jnp.clip(noise * jax.random.normal(key, target_mu.shape), -noise_clip, noise_clip)
    return jnp.clip(target_mu + eps, -1.0, 1.0)


def td_target(
    actor_net: nn.Module,
    critic_net: nn.Module,
    target_actor: Any,
    target_critic: Any,
    batch: dict[str, jax.Array],
    key: jax.Array,
    cfg: TD3Config,
) -> tuple[jax.Array, jax.Array]:
    """The critics' regression target y (B,) and the smoothed target action a' (B, d).

    Clipped double-Q (TD3 eq. 10) at the smoothed target action (eq. 14-15):
    y = r + gamma (1 - terminated) min_j Qbar_j(s', a'). Time-limit truncations are not
    terminal, so the target bootstraps through them.
    """
    target_mu = actor_net.apply(target_actor, batch["next_obs"])
    next_a = smoothed_target_action(key, target_mu, cfg.policy_noise, cfg.noise_clip)
    target_q = critic_net.apply(target_critic, batch["next_obs"], next_a)  # (2, B)
    y = batch["reward"] + cfg.gamma * (1.0 - batch["terminated"]) * jnp.min(target_q, axis=0)
    return jax.lax.stop_gradient(y), next_a


def critic_loss(
    critic_net: nn.Module, params: Any, batch: dict[str, jax.Array], y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """J_Q = sum_j E[(Q_j(s,a) - y)^2] (TD3 Algorithm 1, "update critics") and Q (2, B)."""
    q = critic_net.apply(params, batch["obs"], batch["action"])  # (2, B)
    return jnp.sum(jnp.mean((q - y) ** 2, axis=1)), q


def critic_step(
    critic_net: nn.Module, opt: Any, state: Any, batch: dict[str, jax.Array], y: jax.Array
) -> tuple[tuple[jax.Array, jax.Array], Any, Any]:
    """One Adam step of the twin critics on `critic_loss` towards y (B,): ((J_Q, Q (2, B)),
    critics, their Adam state). `state` has critic and critic_opt (TD3, TD3-AWMP)."""
    return gradient_step(
        lambda params: critic_loss(critic_net, params, batch, y),
        state.critic,
        state.critic_opt,
        opt,
        has_aux=True,
    )


def delayed_actor_update(
    state: Any, critic: Any, actor_loss: Callable[[Any], jax.Array], opt: Any, cfg: Any
) -> tuple:
    """TD3's delayed step (Section 5.2): every `cfg.policy_delay` critic steps, one step of the
    actor on `actor_loss` and the Polyak update of both targets (towards the updated `critic`);
    otherwise all unchanged. A `lax.cond` on the state's step counter (vmap over seeds turns it
    into a select). Returns (step, actor, actor_opt, target_actor, target_critic, pi_loss);
    `state` has actor, actor_opt, target_actor, target_critic, last_pi_loss and step (TD3,
    TD3-AWMP)."""

    def delayed_update(_):
        pi_loss, actor, actor_opt = gradient_step(actor_loss, state.actor, state.actor_opt, opt)
        return (
            actor,
            actor_opt,
            polyak(state.target_actor, actor, cfg.tau),
            polyak(state.target_critic, critic, cfg.tau),
            pi_loss,
        )

    def skip(_):
        return (
            state.actor,
            state.actor_opt,
            state.target_actor,
            state.target_critic,
            state.last_pi_loss,
        )

    step = state.step + 1
    return step, *jax.lax.cond(step % cfg.policy_delay == 0, delayed_update, skip, None)


def next_state(
    state: Any,
    key: jax.Array,
    critic: Any,
    critic_opt: Any,
    actor_loss: Callable[[Any], jax.Array],
    opt: Any,
    cfg: Any,
) -> tuple[Any, jax.Array]:
    """The state after one TD3 update from the stepped critics (`critic_step`) and the new key:
    every `cfg.policy_delay` steps the actor and both targets too (`delayed_actor_update`).
    Returns it and the most recent actor loss (TD3, TD3-AWMP)."""
    step, actor, actor_opt, target_actor, target_critic, pi_loss = delayed_actor_update(
        state, critic, actor_loss, opt, cfg
    )
    new_state = state.replace(
        actor=actor,
        critic=critic,
        target_actor=target_actor,
        target_critic=target_critic,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        key=key,
        step=step,
        last_pi_loss=pi_loss,
    )
    return new_state, pi_loss


class TD3:
    """TD3's networks and pure functions for one (EnvSpec, TD3Config).

    `agent` is what the training loop uses; the methods are pure functions of a state (as in
    awmp.algos.sac_awmp.AWMP), so tests and tools can call them directly.
    """

    def __init__(self, spec: EnvSpec, cfg: TD3Config) -> None:
        self.spec, self.cfg = spec, cfg
        self.actor_net = DeterministicPolicy(tuple(cfg.hidden), spec.act_dim)
        self.critic_net = TwinCritic(tuple(cfg.hidden))
        self.opt = optax.adam(cfg.lr)

    def init(self, key: jax.Array) -> TD3State:
        actor, critic, key = init_actor_critic(key, self.spec, self.actor_net, self.critic_net)
        return TD3State(**init_fields(actor, critic, self.opt, key))

    def act(self, state: TD3State, obs: jax.Array) -> tuple[TD3State, jax.Array, dict]:
        """Exploration: mu(s) + N(0, sigma^2), clipped to the action box (TD3 Algorithm 1)."""
        key, sub = jax.random.split(state.key)
        mu = self.actor_net.apply(state.actor, obs)
        noise = self.cfg.exploration_noise * jax.random.normal(sub, mu.shape, mu.dtype)
        return state.replace(key=key), jnp.clip(mu + noise, -1.0, 1.0), {}

    def act_deterministic(self, state: TD3State, obs: jax.Array) -> jax.Array:
        """mu(s) (evaluation)."""
        return self.actor_net.apply(state.actor, obs)

    def update(self, state: TD3State, batch: dict) -> tuple[TD3State, dict]:
        """One critic step (eq. 10, 14-15); the actor and both targets every `policy_delay`."""
        cfg, opt, actor_net, critic_net = self.cfg, self.opt, self.actor_net, self.critic_net
        key, k_noise = jax.random.split(state.key)

        y, _ = td_target(
            actor_net, critic_net, state.target_actor, state.target_critic, batch, k_noise, cfg
        )

        (q_loss, q), critic, critic_opt = critic_step(critic_net, opt, state, batch, y)

        def actor_loss(params):  # deterministic policy gradient through Q_1 (Algorithm 1)
            a = actor_net.apply(params, batch["obs"])
            return -jnp.mean(critic_net.apply(critic, batch["obs"], a)[0])

        new_state, pi_loss = next_state(state, key, critic, critic_opt, actor_loss, opt, cfg)
        return new_state, {"q_loss": q_loss, "pi_loss": pi_loss, "q_mean": jnp.mean(q)}

    @functools.cached_property
    def agent(self) -> Agent:
        """The Agent the training loop uses (awmp.algos interface)."""
        # act: actor + key (noise); act_deterministic: actor
        return Agent.of(self, "td3", acting_fields=("actor", "key"))


def build(spec: EnvSpec, cfg: TD3Config) -> TD3:
    """TD3's networks and pure functions (the Agent is `build(...).agent`)."""
    return TD3(spec, cfg)


def make_agent(spec: EnvSpec, cfg: TD3Config) -> Agent:
    """The TD3 Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="td3", label="TD3", section="td3", config=TD3Config, make_agent=make_agent, check=check
)
