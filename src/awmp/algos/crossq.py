"""CrossQ (Bhatt, Palenicek et al., ICLR 2024, "CrossQ: Batch Normalization in Deep Reinforcement
Learning for Greater Sample Efficiency and Simplicity"): SAC without target networks, batch
renormalisation (BRN, Ioffe 2017) in the critics and the actor, wider critics, and the current
(s, a) and next (s', a') pairs in one joint forward pass through the critic.

Losses, with B an off-policy batch from the replay buffer:
- critic (Haarnoja et al. 2018b, eq. 5 with the soft value of eq. 3, CrossQ Section 3: no target
  network): one train-mode pass of Q_j on [(s, a); (s', a')], a' ~ pi(.|s') from the actor in eval
  mode, split into Q_j(s, a) and Q_j(s', a'); y = r + gamma (1 - terminated) (min_j Q_j(s', a') -
  alpha log pi(a'|s')), held constant (stop-gradient); J_Q = sum_j 1/2 mean (Q_j(s, a) - y)^2.
  The BRN layers see both halves' statistics, and their running statistics move once per step.
- actor, every `policy_delay` critic steps (Haarnoja et al. 2018b, eq. 7 with the
  reparameterised a~ = f(eps; s)): J_pi = mean(alpha log pi(a~|s) - min_j Q_j(s, a~)),
  the actor in train mode (its BRN statistics move), the just-updated critic in eval mode.
- temperature, after each actor step (Haarnoja et al. 2018b, eq. 18 with alpha = exp(log alpha)):
  J(alpha) = alpha (H - H_target), H = -mean log pi(a~|s) of that actor step, H_target = -|A|.

Every default is the CrossQ paper's (its appendix hyperparameter table) as set by the authors'
code (adityab/CrossQ, train.py `-algo crossq`, sbx/sac/{sac,policies}.py); docs/ALGORITHM.md
"Baseline: CrossQ" lists them and what this module chose where the paper is silent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from awmp.algos import Agent, Algorithm, init_actor_critic
from awmp.algos.sac import check_temperature, initial_log_alpha
from awmp.distributions import sample_tanh_gaussian
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import BRNGaussianPolicy, BRNTwinCritic, GaussianPolicy
from awmp.strict import StrictFields


@dataclass
class CrossQConfig(StrictFields):
    """CrossQ (Bhatt et al. 2024): the hyperparameters of its paper and reference code."""

    hidden: tuple[int, ...] = (2048, 2048)
    """Hidden layer sizes of each critic (CrossQ hyperparameter table: critic width 2048)."""
    policy_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor (CrossQ hyperparameter table: actor width 256)."""
    batch_size: int = 256
    """Off-policy mini-batch size; the joint pass sees twice as many rows (CrossQ table: 256)."""
    lr: float = 1e-3
    """Adam learning rate of the actor, the critics and the temperature (CrossQ table: 1e-3)."""
    adam_b1: float = 0.5
    """Adam beta_1 of the actor and the critics (CrossQ table: 0.5; the temperature's Adam keeps
    the default 0.9, as the reference code's)."""
    adam_b2: float = 0.999
    """Adam beta_2 of the actor and the critics (CrossQ table: 0.999)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (CrossQ table: 0.99)."""
    policy_delay: int = 3
    """Critic steps per actor and temperature step (CrossQ table: policy delay 3)."""
    alpha: float = 1.0
    """Initial temperature alpha (reference code: SBX's ent_coef='auto', initial value 1.0)."""
    learn_alpha: bool = True
    """Learn alpha towards a target entropy of -|A| (CrossQ table; Haarnoja et al. 2018b)."""
    actor_brn: bool = True
    """Batch renormalisation in the actor too (reference code's default bn_mode='brn_actor')."""
    brn_momentum: float = 0.99
    """BRN running-statistics decay m: stat <- m stat + (1 - m) batch (CrossQ table: 0.99)."""
    brn_epsilon: float = 1e-3
    """BRN epsilon added to variances (reference code's BatchRenorm: 0.001)."""
    brn_r_max: float = 3.0
    """BRN clip of r after the warm-up (Ioffe 2017, Sec. 4; CrossQ reference code: 3)."""
    brn_d_max: float = 5.0
    """BRN clip of d after the warm-up (Ioffe 2017, Sec. 4; CrossQ reference code: 5)."""
    brn_warmup_steps: int = 100_000
    """Train-mode calls of each BRN layer with r_max = 1, d_max = 0, i.e. plain batch norm
    (CrossQ reference code: 100,000)."""


def check(cfg: CrossQConfig, _train) -> None:
    """CrossQ's own checks (awmp.config.validate does the common ones)."""
    require(
        len(cfg.policy_hidden) >= 1 and all(h >= 1 for h in cfg.policy_hidden),
        "crossq.policy_hidden",
        cfg.policy_hidden,
        "one or more positive layer sizes",
    )
    require(0 <= cfg.adam_b1 < 1, "crossq.adam_b1", cfg.adam_b1, "in [0, 1)")
    require(0 <= cfg.adam_b2 < 1, "crossq.adam_b2", cfg.adam_b2, "in [0, 1)")
    require(cfg.policy_delay >= 1, "crossq.policy_delay", cfg.policy_delay, ">= 1")
    check_temperature(cfg, "crossq")
    require(0 <= cfg.brn_momentum < 1, "crossq.brn_momentum", cfg.brn_momentum, "in [0, 1)")
    require(cfg.brn_epsilon > 0, "crossq.brn_epsilon", cfg.brn_epsilon, "> 0")
    require(cfg.brn_r_max >= 1, "crossq.brn_r_max", cfg.brn_r_max, ">= 1")
    require(cfg.brn_d_max >= 0, "crossq.brn_d_max", cfg.brn_d_max, ">= 0")
    require(cfg.brn_warmup_steps >= 0, "crossq.brn_warmup_steps", cfg.brn_warmup_steps, ">= 0")


@flax.struct.dataclass
class CrossQState:
    actor: Any  # params
    actor_stats: Any  # BRN running statistics of the actor ({} without actor_brn)
    critic: Any
    critic_stats: Any  # BRN running statistics of both critics (stacked on a leading axis)
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array
    step: jax.Array  # critic steps so far; the actor moves when (step + 1) % policy_delay == 0
    last_pi_loss: jax.Array  # the latest actor loss and entropy, so every update reports them
    last_entropy: jax.Array


@dataclass(frozen=True)
class Nets:
    """The networks in both BRN modes (same variables); `actor_*` are plain without actor_brn."""

    critic_train: nn.Module
    critic_eval: nn.Module
    actor_train: nn.Module
    actor_eval: nn.Module


def make_nets(spec: EnvSpec, cfg: CrossQConfig) -> Nets:
    brn = {
        "momentum": cfg.brn_momentum,
        "epsilon": cfg.brn_epsilon,
        "r_max": cfg.brn_r_max,
        "d_max": cfg.brn_d_max,
        "warmup_steps": cfg.brn_warmup_steps,
    }
    hidden, policy_hidden = tuple(cfg.hidden), tuple(cfg.policy_hidden)
    if cfg.actor_brn:
        actor_train = BRNGaussianPolicy(policy_hidden, spec.act_dim, True, brn)
        actor_eval = BRNGaussianPolicy(policy_hidden, spec.act_dim, False, brn)
    else:
        actor_train = actor_eval = GaussianPolicy(policy_hidden, spec.act_dim)
    return Nets(
        BRNTwinCritic(hidden, True, brn), BRNTwinCritic(hidden, False, brn), actor_train, actor_eval
    )


def _split(variables) -> tuple[Any, Any]:
    return variables["params"], variables.get("batch_stats", {})


def _vars(params, stats) -> dict:
    return {"params": params, "batch_stats": stats}


def joint_critic_pass(
    nets: Nets, params: Any, stats: Any, batch: dict[str, jax.Array], next_a: jax.Array
) -> tuple[jax.Array, jax.Array, Any]:
    """CrossQ's joint forward pass: Q_j on [(s, a); (s', a')] in train mode, one BRN step.

    Returns Q_j(s, a) (2, B), Q_j(s', a') (2, B) and the critics' new running statistics.
    """
    obs = jnp.concatenate([batch["obs"], batch["next_obs"]], axis=0)
    act = jnp.concatenate([batch["action"], next_a], axis=0)
    q, updated = nets.critic_train.apply(_vars(params, stats), obs, act, mutable=["batch_stats"])
    q_now, q_next = jnp.split(q, 2, axis=1)
    return q_now, q_next, updated["batch_stats"]


def critic_loss(
    nets: Nets,
    params: Any,
    stats: Any,
    batch: dict[str, jax.Array],
    next_a: jax.Array,
    next_logp: jax.Array,
    alpha: jax.Array,
    gamma: float,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, Any]]:
    """J_Q = sum_j 1/2 mean (Q_j(s,a) - y)^2 with y = r + gamma (1 - terminated) (min_j
    Q_j(s', a') - alpha log pi(a'|s')) from the same joint pass (Haarnoja et al. 2018b, eq. 5;
    no target network, CrossQ Section 3). y is a constant (stop-gradient): the gradient reaches
    the parameters through Q_j(s, a) and the shared batch statistics only.

    Returns the loss and (Q_j(s, a) (2, B), y (B,), the new running statistics).
    """
    q_now, q_next, new_stats = joint_critic_pass(nets, params, stats, batch, next_a)
    soft_next = jnp.min(q_next, axis=0) - alpha * next_logp
    y = jax.lax.stop_gradient(batch["reward"] + gamma * (1.0 - batch["terminated"]) * soft_next)
    loss = 0.5 * jnp.sum(jnp.mean((q_now - y) ** 2, axis=1))
    return loss, (q_now, y, new_stats)


def actor_loss(
    params: Any,
    nets: Nets,
    stats: Any,
    critic_vars: Any,
    obs: jax.Array,
    key: jax.Array,
    alpha: jax.Array,
) -> tuple[jax.Array, tuple[jax.Array, Any]]:
    """J_pi = mean(alpha log pi(a~|s) - min_j Q_j(s, a~)), a~ = tanh(mu + sigma eps) drawn with
    `key` (Haarnoja et al. 2018b, eq. 7, reparameterised). The actor runs in train mode (its BRN
    statistics move; reference code), the critics in eval mode with `critic_vars`.

    Returns the loss and (log pi(a~|s) (B,), the actor's new running statistics).
    """
    out, upd = nets.actor_train.apply(_vars(params, stats), obs, mutable=["batch_stats"])
    a, logp = sample_tanh_gaussian(key, *out)
    q_pi = nets.critic_eval.apply(critic_vars, obs, a)
    return jnp.mean(alpha * logp - jnp.min(q_pi, axis=0)), (logp, upd.get("batch_stats", {}))


def temperature_loss(log_alpha: jax.Array, entropy_gap: jax.Array) -> jax.Array:
    """J(alpha) = alpha (H - H_target) with alpha = exp(log alpha), entropy_gap = H - H_target
    (Haarnoja et al. 2018b, eq. 18; the reference code's parameterisation)."""
    return jnp.exp(log_alpha) * entropy_gap


class CrossQ:
    """CrossQ's networks and pure functions for one (EnvSpec, CrossQConfig).

    `agent` is what the training loop uses; the methods are pure functions of a state (as in
    awmp.algos.sac.SAC and awmp.algos.sac_awmp.AWMP), so tests and tools can call them directly.
    """

    def __init__(self, spec: EnvSpec, cfg: CrossQConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.nets = make_nets(spec, cfg)
        self.opt = optax.adam(cfg.lr, b1=cfg.adam_b1, b2=cfg.adam_b2)
        # the reference code's temperature optimiser: Adam defaults
        self.alpha_opt_tx = optax.adam(cfg.lr)
        self.target_entropy = -float(spec.act_dim)

    def init(self, key: jax.Array) -> CrossQState:
        nets, opt = self.nets, self.opt
        actor_vars, critic_vars, key = init_actor_critic(
            key, self.spec, nets.actor_eval, nets.critic_eval
        )
        actor, actor_stats = _split(actor_vars)
        critic, critic_stats = _split(critic_vars)
        log_alpha = initial_log_alpha(self.cfg.alpha)
        return CrossQState(
            actor=actor,
            actor_stats=actor_stats,
            critic=critic,
            critic_stats=critic_stats,
            log_alpha=log_alpha,
            actor_opt=opt.init(actor),
            critic_opt=opt.init(critic),
            alpha_opt=self.alpha_opt_tx.init(log_alpha),
            key=key,
            step=jnp.zeros((), jnp.int32),
            last_pi_loss=jnp.zeros((), jnp.float32),
            last_entropy=jnp.zeros((), jnp.float32),
        )

    def alpha_of(self, log_alpha: jax.Array) -> jax.Array:
        cfg = self.cfg
        return jnp.exp(log_alpha) if cfg.learn_alpha else jnp.asarray(cfg.alpha, jnp.float32)

    def policy_eval(self, state: CrossQState, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.nets.actor_eval.apply(_vars(state.actor, state.actor_stats), obs)

    def act(self, state: CrossQState, obs: jax.Array) -> tuple[CrossQState, jax.Array, dict]:
        key, sub = jax.random.split(state.key)
        mean, log_std = self.policy_eval(state, obs)
        action, _ = sample_tanh_gaussian(sub, mean, log_std)
        return state.replace(key=key), action, {}

    def act_deterministic(self, state: CrossQState, obs: jax.Array) -> jax.Array:
        return jnp.tanh(self.policy_eval(state, obs)[0])

    def update(self, state: CrossQState, batch: dict) -> tuple[CrossQState, dict]:
        cfg, nets, opt, alpha_opt_tx = self.cfg, self.nets, self.opt, self.alpha_opt_tx
        target_entropy = self.target_entropy
        key, k_next, k_pi = jax.random.split(state.key, 3)
        alpha = self.alpha_of(state.log_alpha)

        # Next actions from the actor in eval mode (reference code: train=False).
        mean, log_std = self.policy_eval(state, batch["next_obs"])
        next_a, next_logp = sample_tanh_gaussian(k_next, mean, log_std)
        next_a, next_logp = jax.lax.stop_gradient((next_a, next_logp))

        def loss_fn(params):
            return critic_loss(
                nets, params, state.critic_stats, batch, next_a, next_logp, alpha, cfg.gamma
            )

        (q_loss, (q, _, critic_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.critic
        )
        updates, critic_opt = opt.update(grads, state.critic_opt)
        critic = optax.apply_updates(state.critic, updates)

        def delayed(_):
            critic_vars = _vars(critic, critic_stats)
            (pi_loss, (logp, actor_stats)), g = jax.value_and_grad(actor_loss, has_aux=True)(
                state.actor, nets, state.actor_stats, critic_vars, batch["obs"], k_pi, alpha
            )
            upd, actor_opt = opt.update(g, state.actor_opt)
            actor = optax.apply_updates(state.actor, upd)
            entropy = -jnp.mean(logp)
            log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
            if cfg.learn_alpha:  # Haarnoja et al. 2018b, eq. 18: J(alpha) = alpha (H - H_target)
                gap = jax.lax.stop_gradient(entropy - target_entropy)
                ga = jax.grad(temperature_loss)(state.log_alpha, gap)
                upd_a, alpha_opt = alpha_opt_tx.update(ga, state.alpha_opt)
                log_alpha = optax.apply_updates(state.log_alpha, upd_a)
            return actor, actor_stats, actor_opt, log_alpha, alpha_opt, pi_loss, entropy

        def skip(_):
            return (
                state.actor,
                state.actor_stats,
                state.actor_opt,
                state.log_alpha,
                state.alpha_opt,
                state.last_pi_loss,
                state.last_entropy,
            )

        step = state.step + 1
        actor, actor_stats, actor_opt, log_alpha, alpha_opt, pi_loss, entropy = jax.lax.cond(
            step % cfg.policy_delay == 0, delayed, skip, None
        )
        new_state = state.replace(
            actor=actor,
            actor_stats=actor_stats,
            critic=critic,
            critic_stats=critic_stats,
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            key=key,
            step=step,
            last_pi_loss=pi_loss,
            last_entropy=entropy,
        )
        metrics = {
            "q_loss": q_loss,
            "pi_loss": pi_loss,
            "q_mean": jnp.mean(q),
            "entropy": entropy,
            "alpha": alpha,
        }
        return new_state, metrics

    @functools.cached_property
    def agent(self) -> Agent:
        # act: actor, its BRN statistics (eval mode; {} without actor_brn) and key;
        # act_deterministic: actor and statistics. The critics and alpha are not read.
        return Agent.of(self, "crossq", acting_fields=("actor", "actor_stats", "key"))


def build(spec: EnvSpec, cfg: CrossQConfig) -> CrossQ:
    """CrossQ's networks and pure functions (the Agent is `build(...).agent`)."""
    return CrossQ(spec, cfg)


def make_agent(spec: EnvSpec, cfg: CrossQConfig) -> Agent:
    """The CrossQ Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="crossq",
    label="CrossQ",
    section="crossq",
    config=CrossQConfig,
    make_agent=make_agent,
    check=check,
)
