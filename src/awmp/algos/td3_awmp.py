"""TD3-AWMP: TD3 (Fujimoto et al. 2018) with an advantage-weighted mixture of O deterministic
actors, gated and trained as in SAC-AWMP (derivation in docs/ALGORITHM.md
"TD3-AWMP"). "TD3 eq. n" is the TD3 paper's equation n, "eq. n" the SAC-AWMP paper's.

- O deterministic components mu_g(s) (`StackedDeterministicPolicy`), twin critics Q_1, Q_2,
  target actors and critics with one Polyak rate tau (TD3 Sec. 6.1).
- Gating rho(g|s) = softmax_g(Qbar_1(s, mu_g(s)) / T): eq. 16-17 with alpha_pi = 0 (no entropy
  term), Qbar the target critic, one (deterministic) action per component, so rho is a
  function of s.
- Acting: g ~ rho, a = clip(mu_g(s) + eps, -1, 1), eps ~ N(0, sigma^2 I) (TD3 Algorithm 1's
  exploration noise); the stored behaviour density is that of the noisy mixture before the clip,
  log mu(a|s) = log sum_g rho_g N(a; mu_g(s), sigma^2 I) (eq. 15 for these components).
- Target value Vbar(s) = sum_g rhobar_g(s) min_j Qbar_j(s, a_g), a_g = mubar_g(s) smoothed by
  TD3 eq. 14-15 in the critic target; rhobar the gating of the target actors. Critic target
  y = r + gamma (1 - terminated) Vbar(s') (TD3 eq. 10 with the mixture's expectation over g,
  the analogue of eq. 18/21 and 23); critic loss sum_j E[(Q_j - y)^2] (TD3 Algorithm 1).
- Actor, every `policy_delay` steps (TD3 Sec. 5.2): J = E_s[sum_g h_g (-Q_1(s, mu_g(s)))], h =
  P(.|s, a~) of the prior held fixed (the analogue of eq. 24-27 without entropy terms).
- Prior network: exactly SAC-AWMP's (awmp.algos.prior, eq. 5-14) with the advantage of eq. 19
  taken as A(s, a) = min_j Qbar_j(s, a) - Vbar(s), Vbar without smoothing noise.

With O = 1, rho = h = 1 and every line reduces to TD3's update (tested bit for bit).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import optax

from awmp.algos import Agent, Algorithm, init_actor_critic, mixture, prior, td3
from awmp.algos.mixture import pick  # noqa: F401 - public here as before
from awmp.algos.td3 import smoothed_target_action
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import StackedDeterministicPolicy, TwinCritic
from awmp.strict import StrictFields

sg = jax.lax.stop_gradient

NET_NAMES = ("actor", "critic", "target_actor", "target_critic", "prior")


@dataclass
class TD3AWMPConfig(StrictFields):
    """TD3-AWMP: TD3's parts at TD3's values (Fujimoto et al. 2018, Sec. 6.1), the mixture and
    prior parts at SAC-AWMP's (paper Tables 2-3); docs/ALGORITHM.md "TD3-AWMP"."""

    num_components: int = 4
    """O, the number of deterministic components (SAC-AWMP paper: 4)."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden sizes of each component and each critic (TD3 paper, Section 6.1: (400, 300))."""
    batch_size: int = 100
    """Off-policy mini-batch size (TD3 paper, Section 6.1: 100; SAC-AWMP Table 3 B_off: 100)."""
    lr: float = 1e-3
    """Adam learning rate of the actors and critics (TD3 paper, Section 6.1: 1e-3)."""
    tau: float = 0.005
    """Polyak coefficient of the target actors and critics (TD3 paper, Section 6.1: 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (TD3 paper, Section 6.1: 0.99)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise on the [-1, 1] box (TD3 paper, Sec. 6.1: 0.2)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (TD3 paper, Section 6.1: 0.5)."""
    policy_delay: int = 2
    """Critic updates per actor and target update, d (TD3 paper, Section 5.2: 2)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, > 0: the behaviour density needs it (TD3 paper,
    Section 6.1: 0.1)."""
    gating_temperature: float = 1.0
    """Softmax temperature T of rho(g|s) = softmax_g(Qbar_1(s, mu_g(s)) / T) (eq. 16: 1.0)."""
    prior_action: Literal["policy", "buffer"] = "policy"
    """Action fed to the prior for h: the current noisy mixture's (SAC-AWMP Alg. 1 l.15) or the
    stored one."""
    prior_lr: float = 3e-4
    """Adam learning rate of the prior network (SAC-AWMP paper Table 3: 3e-4)."""
    prior_hidden: tuple[int, ...] = (400, 300)
    """Hidden sizes of the prior network P(h|s,a) (SAC-AWMP paper Section 3.1)."""
    prior_interval: int = 5000
    """M: environment steps between prior bursts; also the recent window (SAC-AWMP Table 3)."""
    prior_steps: int = 5000
    """Gradient steps of one prior burst (SAC-AWMP Table 3: 5000)."""
    prior_batch_size: int = 50
    """B_on, the prior's mini-batch from the most recent M transitions (SAC-AWMP Table 3: 50)."""
    sigma: float = 0.04
    """Perturbation scale of the prior's regulariser (SAC-AWMP Table 3: 0.04)."""
    zeta: float = 0.1
    """Coefficient zeta of the MI in eq. 5 (SAC-AWMP Table 3: 0.1)."""
    c_marg: float = 1.0
    """Weight of the marginal entropy in the MI, eq. 6 (1.0, as SAC-AWMP's default)."""
    recon_coef: float = 0.0
    """Weight of the SAC-AWMP reference code's decoder (L1) term; 0 disables it."""
    is_weights: Literal["eq11", "truncated", "tempered", "on-policy"] = "eq11"
    """Importance weights of the prior's batch (as SAC-AWMP's `is_weights`; eq. 11 default)."""
    is_lambda: float = 0.5
    """lambda in [0, 1], the power of 1/mu in the `tempered` importance weights."""
    adv_temperature: float = 1.0
    """T, the advantage temperature of the importance weights exp(A/T) (eq. 10 has none: 1)."""
    prior_reduction: Literal["mean", "reference-sum"] = "mean"
    """Reduction of eq. 5 over the B_on batch (as SAC-AWMP's `prior_reduction`; eq. 12-14)."""
    prior_batch_reuse: int = 1
    """Prior gradient steps on each drawn B_on batch; divides prior_steps (SAC-AWMP's: 1)."""
    prior_kl_grad: Literal["noisy", "both"] = "noisy"
    """Gradient of the regulariser KL(P(x) || P(x~)): through P(x~) only (noisy) or both."""


def check(cfg: TD3AWMPConfig, train) -> None:
    """TD3-AWMP's own checks (awmp.config.validate does the common ones)."""
    s = "td3_awmp"
    require(1 <= cfg.num_components <= 64, f"{s}.num_components", cfg.num_components, "in [1, 64]")
    td3.check_td3_fields(cfg, s)
    require(
        cfg.exploration_noise > 0,
        f"{s}.exploration_noise",
        cfg.exploration_noise,
        "> 0 (the behaviour density of eq. 10-11 needs it)",
    )
    require(cfg.prior_lr > 0, f"{s}.prior_lr", cfg.prior_lr, "> 0")
    require(cfg.gating_temperature > 0, f"{s}.gating_temperature", cfg.gating_temperature, "> 0")
    require(
        cfg.prior_action in ("policy", "buffer"),
        f"{s}.prior_action",
        cfg.prior_action,
        "policy|buffer",
    )
    prior.check_prior(cfg, train, s)


@flax.struct.dataclass
class TD3AWMPState:
    """Everything TD3-AWMP needs between calls (a pytree: checkpoint it as is)."""

    actor: Any  # O stacked deterministic components
    critic: Any  # Q_1, Q_2
    target_actor: Any
    target_critic: Any  # Qbar: TD target, gating and the prior's advantages
    prior: Any  # P(h|s,a; eta)
    actor_opt: Any
    critic_opt: Any
    prior_opt: Any
    key: jax.Array
    step: jax.Array  # critic updates done; the actors update when (step + 1) % delay == 0
    prior_step: jax.Array  # prior-network gradient steps done (all bursts together)
    last_pi_loss: jax.Array  # the most recent actor loss, so every update reports one


# ---------------------------------------------------------------------------------------------
# Small pure functions (no networks), public for tests.
# ---------------------------------------------------------------------------------------------


def gating_log_weights(q_bar: jax.Array, temperature: float = 1.0) -> jax.Array:
    """log rho(g|s) = log_softmax_g(Qbar_1(s, mu_g(s)) / T): eq. 16-17 with alpha_pi = 0.

    q_bar: (..., O), the target critic at each component's (deterministic) action.
    """
    return mixture.gating_log_weights(q_bar, temperature)


def behaviour_log_density(
    pre_clip: jax.Array, log_rho: jax.Array, means: jax.Array, sigma: float
) -> jax.Array:
    """log mu(a|s) = log sum_g rho_g N(a; mu_g(s), sigma^2 I) of the noisy mixture (B,).

    pre_clip: (B, d), the action before the clip to [-1, 1]; log_rho: (B, O); means: (O, B, d).
    Evaluated before the clip: inside the box it is the executed action's density; at the edge
    the clip puts mass on the boundary, and the stored value is the density of the unclipped
    draw (docs/ALGORITHM.md "TD3-AWMP", behaviour density).
    """
    d = pre_clip.shape[-1]
    sq = jnp.sum((pre_clip[None] - means) ** 2, axis=-1)  # (O, B)
    log_n = -0.5 * sq / sigma**2 - d * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    return jax.nn.logsumexp(log_rho + log_n.T, axis=-1)


def mixture_value(q: jax.Array, log_rho: jax.Array) -> jax.Array:
    """sum_g rho_g q_g (B,) from q (O, B) and log rho (B, O): the Vbar of eq. 18/21 at alpha = 0."""
    return jnp.sum(jnp.exp(log_rho) * q.T, axis=-1)


# ---------------------------------------------------------------------------------------------
# The algorithm, closed over its networks and config.
# ---------------------------------------------------------------------------------------------


class TD3AWMP(mixture.PriorMethods):
    """TD3-AWMP's networks and pure functions for one (EnvSpec, TD3AWMPConfig); `agent` is what
    the training loop uses, the other methods are public for tests and tools. TD3's parts are
    awmp.algos.td3's; the prior network's methods (`advantage`, `prior_objective`,
    `prior_burst`, the hook's host side) are SAC-AWMP's (awmp.algos.mixture.PriorMethods)."""

    def __init__(self, spec: EnvSpec, cfg: TD3AWMPConfig) -> None:
        self.spec, self.cfg = spec, cfg
        o = cfg.num_components
        self.actor_net = StackedDeterministicPolicy(tuple(cfg.hidden), spec.act_dim, o)
        self.critic_net = TwinCritic(tuple(cfg.hidden))
        self.prior_net = prior.make_prior_net(cfg, o, spec.obs_dim, spec.act_dim)
        self.opt = optax.adam(cfg.lr)
        self.prior_opt = optax.adam(cfg.prior_lr)

    def init(self, key: jax.Array) -> TD3AWMPState:
        """TD3's initial state (`td3.init_fields`) with the stacked actors, and the prior."""
        actor, critic, prior_params, key = init_actor_critic(
            key, self.spec, self.actor_net, self.critic_net, self.prior_net
        )
        return TD3AWMPState(
            **td3.init_fields(actor, critic, self.opt, key),
            prior=prior_params,
            prior_opt=self.prior_opt.init(prior_params),
            prior_step=jnp.zeros((), jnp.int32),
        )

    @staticmethod
    def nets(state: TD3AWMPState) -> dict[str, Any]:
        """The parameters of every network, by name (NET_NAMES)."""
        return {name: getattr(state, name) for name in NET_NAMES}

    # -- gating, acting ---------------------------------------------------------------------

    def gating(self, target_critic: Any, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """log rho(.|s) (B, O) from Qbar_1 at each component's action (O, B, d); eq. 16-17 with
        alpha_pi = 0. No gradient reaches any parameter."""
        q_bar1 = mixture.gating_q(self.critic_net, target_critic, obs, actions)  # (O, B)
        return gating_log_weights(q_bar1.T, self.cfg.gating_temperature)

    def noisy_mixture(
        self, key: jax.Array, mu: jax.Array, log_rho: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(executed action clip(mu_g + eps, -1, 1), the action before the clip), each (B, d),
        g ~ rho by the Gumbel-max trick. eps = sigma N(0, I) from `key` itself (so with O = 1
        this is TD3's exploration noise draw); the Gumbel noise from fold_in(key, 1)."""
        noise = self.cfg.exploration_noise * jax.random.normal(key, mu.shape[1:], mu.dtype)
        g = mixture.gumbel_max(
            log_rho, jax.random.gumbel(jax.random.fold_in(key, 1), log_rho.shape)
        )
        pre = pick(mu, g) + noise
        return jnp.clip(pre, -1.0, 1.0), pre

    def act(self, state: TD3AWMPState, obs: jax.Array) -> tuple[TD3AWMPState, jax.Array, dict]:
        """Stochastic action for obs (B, s) and its behaviour log-density log mu(a|s) (B,)."""
        key, sub = jax.random.split(state.key)  # as TD3's act
        mu = self.actor_net.apply(state.actor, obs)  # (O, B, d)
        log_rho = self.gating(state.target_critic, obs, mu)
        action, pre = self.noisy_mixture(sub, mu, log_rho)
        log_mu = behaviour_log_density(pre, log_rho, mu, self.cfg.exploration_noise)
        return state.replace(key=key), action, {"log_mu": log_mu}

    def act_deterministic(self, state: TD3AWMPState, obs: jax.Array) -> jax.Array:
        """mu_g(s) of the most probable component, g = argmax_g rho(g|s) (evaluation)."""
        mu = self.actor_net.apply(state.actor, obs)
        return mixture.argmax_pick(mu, self.gating(state.target_critic, obs, mu))

    def weights(
        self, state: TD3AWMPState, obs: jax.Array, action: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """(rho, h), each (B, O): the gating, and the prior at `action` (default: the
        deterministic action)."""
        mu = self.actor_net.apply(state.actor, obs)
        log_rho = self.gating(state.target_critic, obs, mu)
        if action is None:
            action = mixture.argmax_pick(mu, log_rho)
        return jnp.exp(log_rho), self.prior_weights_at(state, obs, action)

    # -- value, losses, update --------------------------------------------------------------

    def target_value(self, params: dict, obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Vbar(s) = sum_g rhobar_g(s) min_j Qbar_j(s, a_g) (B,), a_g = mubar_g(s), smoothed by
        TD3 eq. 14-15 when `key` is given (the critic target); rhobar is the gating of the
        target actors (unsmoothed). No gradient."""
        cfg = self.cfg
        mu_bar = self.actor_net.apply(sg(params["target_actor"]), obs)  # (O, B, d)
        a = mu_bar
        if key is not None:
            a = smoothed_target_action(key, mu_bar, cfg.policy_noise, cfg.noise_clip)
        q = jnp.min(mixture.critic_at(self.critic_net, sg(params["target_critic"]), obs, a), axis=0)
        log_rho = self.gating(params["target_critic"], obs, mu_bar)
        return sg(mixture_value(q, log_rho))

    def td_target(self, params: dict, batch: dict, key: jax.Array) -> jax.Array:
        """y = r + gamma (1 - terminated) Vbar(s') (TD3 eq. 10 with the mixture's expectation
        over g; eq. 23's form); bootstraps through time-limit truncation."""
        v_next = self.target_value(params, batch["next_obs"], key)
        return sg(batch["reward"] + self.cfg.gamma * (1.0 - batch["terminated"]) * v_next)

    def critic_loss(self, params: dict, batch: dict, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        """J_Q = sum_j E[(Q_j(s,a) - y)^2] (TD3 Algorithm 1) and Q (2, B): TD3's."""
        return td3.critic_loss(self.critic_net, params["critic"], batch, y)

    def prior_h(self, params: dict, batch: dict, key: jax.Array) -> jax.Array:
        """h = P(.|s, a~) (B, O), held fixed: a~ drawn from the current noisy mixture
        (`prior_action=policy`, SAC-AWMP Alg. 1 l.15) or the stored action (`buffer`)."""
        obs = batch["obs"]

        def policy_action() -> jax.Array:
            mu = self.actor_net.apply(sg(params["actor"]), obs)
            return self.noisy_mixture(key, mu, self.gating(params["target_critic"], obs, mu))[0]

        return sg(jax.nn.softmax(self.prior_logits(params, batch, policy_action), axis=-1))

    def actor_loss(self, params: dict, batch: dict, h: jax.Array) -> jax.Array:
        """J_mu = E_s[sum_g h_g (-Q_1(s, mu_g(s)))]: TD3's deterministic policy gradient through
        Q_1 per component, weighted by the fixed prior h (the analogue of eq. 24-27). Only the
        actors' parameters get a gradient (the critic is frozen)."""
        obs = batch["obs"]
        mu = self.actor_net.apply(params["actor"], obs)  # (O, B, d)
        q1 = mixture.critic_at(self.critic_net, sg(params["critic"]), obs, mu)[0]  # (O, B)
        return jnp.mean(jnp.sum(sg(h) * -q1.T, axis=-1))

    def update(self, state: TD3AWMPState, batch: dict) -> tuple[TD3AWMPState, dict]:
        """One gradient step: critics every step, then every `policy_delay` steps the actors
        (at the updated critics, as TD3) and both targets (TD3 Algorithm 1, Sec. 5.2)."""
        cfg = self.cfg
        key, k_noise = jax.random.split(state.key)  # as TD3's update
        params = self.nets(state)
        y = self.td_target(params, batch, k_noise)

        (q_loss, q), critic, critic_opt = td3.critic_step(
            self.critic_net, self.opt, state, batch, y
        )

        # h at the pre-update actors, from noise independent of the smoothing noise.
        h = self.prior_h(params, batch, jax.random.fold_in(k_noise, 1))

        def aloss(a):
            return self.actor_loss({**params, "actor": a, "critic": critic}, batch, h)

        new, pi_loss = td3.next_state(state, key, critic, critic_opt, aloss, self.opt, cfg)
        metrics = {"q_loss": q_loss, "pi_loss": pi_loss, "q_mean": jnp.mean(q)}
        mu = self.actor_net.apply(state.actor, batch["obs"])
        rho_mean = jnp.mean(jnp.exp(self.gating(state.target_critic, batch["obs"], mu)), 0)
        h_mean = jnp.mean(h, 0)
        for g in range(cfg.num_components):
            metrics[f"rho_{g}"] = rho_mean[g]
            metrics[f"h_{g}"] = h_mean[g]
        return new, metrics

    @functools.cached_property
    def agent(self) -> Agent:
        # act, act_deterministic: the actors and the gating's target critic Qbar_1 (act also
        # the key); `weights` (awmp inspect) also the prior network.
        return self.mixture_agent("td3-awmp", ("actor", "target_critic", "prior", "key"))


def build(spec: EnvSpec, cfg: TD3AWMPConfig) -> TD3AWMP:
    """TD3-AWMP's networks and pure functions (the Agent is `build(...).agent`)."""
    return TD3AWMP(spec, cfg)


def make_agent(spec: EnvSpec, cfg: TD3AWMPConfig) -> Agent:
    """The TD3-AWMP Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="td3-awmp",
    label="TD3-AWMP",
    section="td3_awmp",
    config=TD3AWMPConfig,
    make_agent=make_agent,
    check=check,
)
