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

from awmp.algos import Agent, Algorithm, gradient_step, init_actor_critic, polyak
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
    check_temperature(cfg, "sac")


def check_temperature(cfg: Any, section: str) -> None:
    """The checks of `alpha` and `learn_alpha` (SAC, SAC-GMM, CrossQ): finite and >= 0, > 0 when
    learned (its initial value)."""
    require(
        cfg.alpha >= 0 and math.isfinite(cfg.alpha),
        f"{section}.alpha",
        cfg.alpha,
        "finite and >= 0",
    )
    require(
        not (cfg.learn_alpha and cfg.alpha <= 0),
        f"{section}.alpha",
        cfg.alpha,
        "> 0 with learn_alpha",
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


def initial_log_alpha(alpha: float) -> jax.Array:
    """log alpha as the state holds it: the log of the configured alpha, -inf for alpha = 0."""
    return jnp.asarray(math.log(alpha) if alpha > 0 else -jnp.inf, jnp.float32)


def step_metrics(
    q_loss: jax.Array, pi_loss: jax.Array, q: jax.Array, logp: jax.Array, alpha: jax.Array
) -> dict[str, jax.Array]:
    """One gradient step's metrics: the losses, mean Q, the entropy estimate -mean log pi, alpha."""
    return {
        "q_loss": q_loss,
        "pi_loss": pi_loss,
        "q_mean": jnp.mean(q),
        "entropy": -jnp.mean(logp),
        "alpha": alpha,
    }


class SoftActorCritic:
    """SAC's parts that do not depend on the policy's form, shared by `SAC` and SAC-GMM
    (awmp.algos.sac_gmm.SACGMM): twin critics with a Polyak target, a fixed or learned alpha.

    A subclass adds its policy network; its state has the policy's fields (SAC: actor,
    actor_opt; SAC-GMM: policy, policy_opt) and critic, target_critic, log_alpha, critic_opt,
    alpha_opt, key, step.
    """

    def __init__(self, spec: EnvSpec, cfg: Any) -> None:
        self.spec, self.cfg = spec, cfg
        self.critic_net = TwinCritic(tuple(cfg.hidden))
        self.opt = optax.adam(cfg.lr)
        self.target_entropy = -float(spec.act_dim)

    def init_fields(self, key: jax.Array, policy_net: Any, policy: str = "actor") -> dict:
        """The initial state's fields: the policy's parameters and Adam state (named `policy`
        and `policy`_opt), the critics with their target equal to them, log alpha from
        `cfg.alpha` with its Adam state, the key left after initialising, step 0."""
        opt = self.opt
        params, critic, key = init_actor_critic(key, self.spec, policy_net, self.critic_net)
        log_alpha = initial_log_alpha(self.cfg.alpha)
        return {
            policy: params,
            "critic": critic,
            "target_critic": critic,
            "log_alpha": log_alpha,
            f"{policy}_opt": opt.init(params),
            "critic_opt": opt.init(critic),
            "alpha_opt": opt.init(log_alpha),
            "key": key,
            "step": jnp.zeros((), jnp.int32),
        }

    def alpha(self, state: Any) -> jax.Array:
        """The entropy temperature: learned (exp log_alpha) or the configured constant."""
        return jnp.exp(state.log_alpha) if self.cfg.learn_alpha else jnp.asarray(self.cfg.alpha)

    def critic_step(
        self, state: Any, batch: dict, next_a: jax.Array, next_logp: jax.Array, alpha: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], Any, Any]:
        """One Adam step of the twin critics: ((J_Q, Q (2, B)), critics, their Adam state).

        J_Q = 1/2 sum_j mean (Q_j(s,a) - y)^2 (eq. 22) on the target (eq. 23, SAC-v2 form)
        y = r + gamma (1 - terminated) (min_j Qbar_j(s',a') - alpha log pi(a'|s')), given the
        next action a' ~ pi(.|s') (B, d) and log pi(a'|s') (B,); it bootstraps unless truly
        terminated.
        """
        critic_net, gamma = self.critic_net, self.cfg.gamma
        next_q = jnp.min(critic_net.apply(state.target_critic, batch["next_obs"], next_a), axis=0)
        y = batch["reward"] + gamma * (1.0 - batch["terminated"]) * (next_q - alpha * next_logp)
        y = jax.lax.stop_gradient(y)

        def critic_loss(params):  # eq. 22: 1/2 (Q_j(s,a) - y)^2, summed over j = 1, 2
            q = critic_net.apply(params, batch["obs"], batch["action"])  # (2, B)
            return 0.5 * jnp.sum(jnp.mean((q - y) ** 2, axis=1)), q

        return gradient_step(critic_loss, state.critic, state.critic_opt, self.opt, has_aux=True)

    def next_state(
        self,
        state: Any,
        key: jax.Array,
        critic: Any,
        critic_opt: Any,
        logp: jax.Array,
        **policy: Any,
    ) -> Any:
        """The state after one gradient step, from the stepped critics and policy (`policy`:
        its fields by name): with `learn_alpha`, one Adam step of log alpha on
        J(alpha) = E[-log alpha (log pi(a~|s) + target_entropy)] (Haarnoja et al. 2018b, eq.
        18; logp: the actor's estimate of log pi, held fixed); the Polyak step of the target
        critics (tau); the new key; step + 1."""
        log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
        if self.cfg.learn_alpha:  # Haarnoja et al. 2018b, eq. 18
            entropy_gap = jax.lax.stop_gradient(logp + self.target_entropy)

            def alpha_loss(la):
                return -jnp.mean(la * entropy_gap)

            _, log_alpha, alpha_opt = gradient_step(alpha_loss, log_alpha, alpha_opt, self.opt)
        return state.replace(
            critic=critic,
            target_critic=polyak(state.target_critic, critic, self.cfg.tau),
            log_alpha=log_alpha,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            key=key,
            step=state.step + 1,
            **policy,
        )


class SAC(SoftActorCritic):
    """SAC's networks and pure functions for one (EnvSpec, SACConfig): the tanh-Gaussian actor
    here, the critics and alpha in `SoftActorCritic`.

    `agent` is what the training loop uses; the methods are pure functions of a state (as in
    awmp.algos.sac_awmp.AWMP), so tests and tools can call them directly.
    """

    def __init__(self, spec: EnvSpec, cfg: SACConfig) -> None:
        super().__init__(spec, cfg)
        self.actor_net = GaussianPolicy(tuple(cfg.hidden), spec.act_dim)

    def init(self, key: jax.Array) -> SACState:
        return SACState(**self.init_fields(key, self.actor_net))

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
        opt, actor_net, critic_net = self.opt, self.actor_net, self.critic_net
        key, k_next, k_pi = jax.random.split(state.key, 3)
        alpha = self.alpha(state)

        # Critics on eq. 22-23 at a' ~ pi(.|s').
        mean, log_std = actor_net.apply(state.actor, batch["next_obs"])
        next_a, next_logp = sample_tanh_gaussian(k_next, mean, log_std)
        (q_loss, q), critic, critic_opt = self.critic_step(state, batch, next_a, next_logp, alpha)

        def actor_loss(params):  # eq. 26 with O = 1: alpha log pi(a~|s) - min_j Q_j(s, a~)
            mean, log_std = actor_net.apply(params, batch["obs"])
            a, logp = sample_tanh_gaussian(k_pi, mean, log_std)
            q_pi = jnp.min(critic_net.apply(critic, batch["obs"], a), axis=0)
            return jnp.mean(alpha * logp - q_pi), logp

        (pi_loss, logp), actor, actor_opt = gradient_step(
            actor_loss, state.actor, state.actor_opt, opt, has_aux=True
        )
        # alpha (eq. 18) and the target critics
        new_state = self.next_state(
            state, key, critic, critic_opt, logp, actor=actor, actor_opt=actor_opt
        )
        return new_state, step_metrics(q_loss, pi_loss, q, logp, alpha)

    @functools.cached_property
    def agent(self) -> Agent:
        """The Agent the training loop uses (awmp.algos interface)."""
        # act: actor and key (split); act_deterministic: actor. Alpha is not read.
        return Agent.of(self, "sac", acting_fields=("actor", "key"))


def build(spec: EnvSpec, cfg: SACConfig) -> SAC:
    """SAC's networks and pure functions (the Agent is `build(...).agent`)."""
    return SAC(spec, cfg)


def make_agent(spec: EnvSpec, cfg: SACConfig) -> Agent:
    """The SAC Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="sac", label="SAC", section="sac", config=SACConfig, make_agent=make_agent, check=check
)
