"""SAC-GMM: SAC with a Gaussian-mixture policy, trained by the MRP or the LR estimator.

He, Neumann, Mei, White and White (2026), "Revisiting Mixture Policies in Entropy-Regularized
Actor-Critic" (arXiv 2605.09157). Everything but the policy is `awmp.algos.sac`'s: twin critics
with a Polyak target, a fixed or learned temperature. Equation numbers (G1-G6) are those of
docs/ALGORITHM.md, "SAC-GMM", which says what comes from He et al. and what is this library's.

- Policy (G1): pi(a|s) = sum_i w_i(s) pi_i(a|s), O tanh-Gaussian components (eq. 28 of the
  SAC-AWMP paper) and w = softmax of a weight head.
- Exact log-density (G2): log pi(a|s) = logsumexp_j (log w_j + log N(u; mu_j, sigma_j)) -
  sum log(1 - tanh(u)^2), u = atanh(a), taken at the sample's own u (no atanh).
- Critic (G3): SAC's, with a' ~ pi(.|s') drawn from the mixture and log pi(a'|s') exact.
- Actor objective (G4): J_pi = E_s E_{a~pi}[alpha log pi(a|s) - min_j Q_j(s, a)].
  MRP (G5): one reparameterised sample a_i per component, sum_i w_i(s) (alpha log pi(a_i|s) -
  min_j Q_j(s, a_i)): the component index is summed out, so gradients reach w through the
  weights (and the density) and the components through their samples.
  LR (G6): draw i ~ w(s), then a_i; the surrogate f(a_i) + stop_gradient(f(a_i)) log w_i(s)
  passes the gradient to w by the score function (its value is kept at f(a_i), so `pi_loss`
  estimates J_pi under either estimator).
- Temperature: SAC's eq. 18 with the same estimate of E[log pi] the actor uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp

from awmp.algos import Agent, Algorithm, gradient_step, mixture, sac
from awmp.algos.mixture import argmax_pick, gumbel_max, pick
from awmp.distributions import tanh_gaussian_log_prob, tanh_mixture_log_prob
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import MixturePolicy
from awmp.strict import StrictFields

sg = jax.lax.stop_gradient

ESTIMATORS = ("mrp", "lr")


@dataclass
class SACGMMConfig(StrictFields):
    """SAC-GMM (He et al. 2026): SAC with an O-component Gaussian-mixture policy."""

    num_components: int = 4
    """O, the number of tanh-Gaussian components (4, as SAC-AWMP's paper default, so the two
    mixtures compare at equal O; 1 is exactly SAC)."""
    estimator: Literal["mrp", "lr"] = "mrp"
    """Actor gradient: marginalized reparameterization (mrp, He et al. 2026) or likelihood
    ratio for the weights (lr); docs/ALGORITHM.md "SAC-GMM"."""
    hidden: tuple[int, ...] = (400, 400)
    """Hidden sizes of each critic, each component and the weight head (as `sac`: the SAC-AWMP
    paper's Table 2, (400, 400))."""
    batch_size: int = 100
    """Off-policy mini-batch size (as `sac`: paper Table 2, 100)."""
    lr: float = 3e-4
    """Adam learning rate of every network (as `sac`: paper Table 2, 3e-4)."""
    tau: float = 0.005
    """Polyak coefficient of the target critics (as `sac`: paper Table 2, 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (as `sac`: paper Table 2, 0.99)."""
    alpha: float = 0.2
    """Entropy temperature; the initial value with `learn_alpha` (as `sac`: paper Table 1)."""
    learn_alpha: bool = False
    """Learn alpha towards a target entropy of -act_dim for the mixture (Haarnoja et al. 2018b)."""


def check(cfg: SACGMMConfig, _train) -> None:
    """SAC-GMM's own checks (awmp.config.validate does the common ones)."""
    require(
        1 <= cfg.num_components <= 64, "sac_gmm.num_components", cfg.num_components, "in [1, 64]"
    )
    require(cfg.estimator in ESTIMATORS, "sac_gmm.estimator", cfg.estimator, "mrp|lr")
    require(0 < cfg.tau <= 1, "sac_gmm.tau", cfg.tau, "in (0, 1]")
    sac.check_temperature(cfg, "sac_gmm")


@flax.struct.dataclass
class SACGMMState:
    policy: Any  # MixturePolicy: stacked components and the weight head
    critic: Any
    target_critic: Any
    log_alpha: jax.Array
    policy_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array
    step: jax.Array


# ---------------------------------------------------------------------------------------------
# The estimators' math on arrays (no networks): public for tests and tools.
# ---------------------------------------------------------------------------------------------


def sample_components(
    mean: jax.Array, log_std: jax.Array, eps: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One reparameterised pre-tanh sample per component, u_i = mu_i + sigma_i eps_i (O, B, d),
    and its tanh, the action a_i."""
    u = mean + jnp.exp(log_std) * eps
    return u, jnp.tanh(u)


def mixture_log_prob_at(
    u: jax.Array, log_w: jax.Array, mean: jax.Array, log_std: jax.Array
) -> jax.Array:
    """Eq. G2: log pi(tanh(u_k)|s) (K, B) of the whole mixture at K pre-tanh points u (K, B, d).

    log_w: (B, O); mean, log_std: (O, B, d) as `MixturePolicy` returns them.
    """
    return tanh_mixture_log_prob(
        u, log_w[None], jnp.swapaxes(mean, 0, 1)[None], jnp.swapaxes(log_std, 0, 1)[None]
    )


def sample_mixture(
    logits: jax.Array, mean: jax.Array, log_std: jax.Array, eps: jax.Array, gumbel: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """a ~ pi(.|s) (B, d): i ~ w by the Gumbel-max trick, then a_i; and log pi(a|s) (B,) exact
    (eq. G2). eps: (O, B, d) standard normals; gumbel: (B, O) standard Gumbels."""
    u, _ = sample_components(mean, log_std, eps)
    log_w = jax.nn.log_softmax(logits, axis=-1)
    u_sel = pick(u, gumbel_max(log_w, gumbel))  # (B, d)
    return jnp.tanh(u_sel), mixture_log_prob_at(u_sel[None], log_w, mean, log_std)[0]


def actor_objective(
    estimator: str,
    logits: jax.Array,
    mean: jax.Array,
    log_std: jax.Array,
    eps: jax.Array,
    gumbel: jax.Array,
    q_fn,
    alpha: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """The per-state actor surrogate (B,) whose gradient is the estimator's (eq. G5 or G6), and
    the estimate of log pi used for the temperature and the entropy metric (B,).

    Both the surrogate's value and its gradient are unbiased for eq. G4,
    E_{a~pi}[alpha log pi(a|s) - Q(s, a)], and for its gradient.
    q_fn(a (O, B, d)) -> (O, B): the critic's value at each component's sample.
    """
    log_w = jax.nn.log_softmax(logits, axis=-1)  # (B, O)
    u, a = sample_components(mean, log_std, eps)  # (O, B, d)
    logp = mixture_log_prob_at(u, log_w, mean, log_std)  # (O, B): the *mixture* density
    f = alpha * logp - q_fn(a)  # (O, B)
    if estimator == "mrp":  # eq. G5: the component index summed out with its weight
        w = jnp.exp(log_w).T  # (O, B)
        return jnp.sum(w * f, axis=0), jnp.sum(w * logp, axis=0)
    if estimator == "lr":  # eq. G6: i ~ w, a_i reparameterised, score function for w
        g = gumbel_max(log_w, gumbel)  # (B,)
        f_i = pick(f, g)
        log_w_i = pick(log_w.T, g)
        score = sg(f_i) * log_w_i  # its gradient is f_i grad log w_i; its value is removed
        return f_i + (score - sg(score)), pick(logp, g)
    raise ValueError(f"unknown estimator {estimator!r}")


# ---------------------------------------------------------------------------------------------
# The algorithm.
# ---------------------------------------------------------------------------------------------


class SACGMM(sac.SoftActorCritic):
    """SAC-GMM's networks and pure functions for one (EnvSpec, SACGMMConfig): the mixture policy
    here, the critics and alpha SAC's (awmp.algos.sac.SoftActorCritic).

    `agent` is what the training loop uses; the methods are pure functions of a state, so
    tests and tools (`awmp inspect`: `weights`, `component_actions`) can call them directly.
    """

    def __init__(self, spec: EnvSpec, cfg: SACGMMConfig) -> None:
        super().__init__(spec, cfg)
        self.policy_net = MixturePolicy(tuple(cfg.hidden), spec.act_dim, cfg.num_components)

    def init(self, key: jax.Array) -> SACGMMState:
        """SAC's initial state with the mixture policy under the name `policy`."""
        return SACGMMState(**self.init_fields(key, self.policy_net, "policy"))

    def noise(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """eps (O, B, d) from `key` itself and Gumbels (B, O) from fold_in(key, 1): with O = 1
        eps is exactly the draw SAC makes from the same key."""
        o, d = self.cfg.num_components, self.spec.act_dim
        eps = jax.random.normal(key, (o, batch_size, d))
        return eps, jax.random.gumbel(jax.random.fold_in(key, 1), (batch_size, o))

    def act(self, state: SACGMMState, obs: jax.Array) -> tuple[SACGMMState, jax.Array, dict]:
        """a ~ pi(.|s): a component i ~ w(s), then its tanh-Gaussian sample; the key advances."""
        key, sub = jax.random.split(state.key)
        logits, mean, log_std = self.policy_net.apply(state.policy, obs)
        eps, gumbel = self.noise(sub, obs.shape[0])
        action, _ = sample_mixture(logits, mean, log_std, eps, gumbel)
        return state.replace(key=key), action, {}

    def act_deterministic(self, state: SACGMMState, obs: jax.Array) -> jax.Array:
        """tanh(mu_i*) of the most probable component i* = argmax_i w_i(s) (evaluation)."""
        logits, mean, _ = self.policy_net.apply(state.policy, obs)
        return argmax_pick(jnp.tanh(mean), logits)

    def component_actions(self, state: SACGMMState, obs: jax.Array) -> jax.Array:
        """Where each component acts: tanh(mu_i(s)) (O, B, d)."""
        _, mean, _ = self.policy_net.apply(state.policy, obs)
        return jnp.tanh(mean)

    def weights(
        self, state: SACGMMState, obs: jax.Array, action: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """(w, r), each (B, O), for `awmp inspect`: the mixture weights w(s) and each
        component's responsibility for `action` (by default the evaluation action),
        r_i = w_i pi_i(a|s) / pi(a|s)."""
        logits, mean, log_std = self.policy_net.apply(state.policy, obs)
        if action is None:
            action = argmax_pick(jnp.tanh(mean), logits)
        log_w = jax.nn.log_softmax(logits, axis=-1)
        comp = tanh_gaussian_log_prob(action[None], mean, log_std).T  # (B, O)
        return jnp.exp(log_w), jax.nn.softmax(log_w + comp, axis=-1)

    def update(self, state: SACGMMState, batch: dict) -> tuple[SACGMMState, dict]:
        """One gradient step: critics (eq. G3), policy (eq. G5 or G6), alpha (eq. 18), target."""
        cfg, opt, policy_net, critic_net = self.cfg, self.opt, self.policy_net, self.critic_net
        key, k_next, k_pi = jax.random.split(state.key, 3)
        alpha = self.alpha(state)
        b = batch["obs"].shape[0]

        # eq. G3: SAC's critics (eq. 22-23) at a' ~ pi(.|s') from the mixture, log pi exact.
        logits, mean, log_std = policy_net.apply(state.policy, batch["next_obs"])
        next_a, next_logp = sample_mixture(logits, mean, log_std, *self.noise(k_next, b))
        (q_loss, q), critic, critic_opt = self.critic_step(state, batch, next_a, next_logp, alpha)

        eps, gumbel = self.noise(k_pi, b)

        def q_fn(a):  # min_j Q_j(s, a_i) with the updated critic held fixed (as SAC)
            return jnp.min(mixture.critic_at(critic_net, critic, batch["obs"], a), axis=0)

        def actor_loss(params):  # eq. G4 by the estimator of eq. G5 (mrp) or G6 (lr)
            logits, mean, log_std = policy_net.apply(params, batch["obs"])
            surrogate, logp = actor_objective(
                cfg.estimator, logits, mean, log_std, eps, gumbel, q_fn, alpha
            )
            return jnp.mean(surrogate), (logp, jnp.exp(jax.nn.log_softmax(logits, axis=-1)))

        (pi_loss, (logp, w)), policy, policy_opt = gradient_step(
            actor_loss, state.policy, state.policy_opt, opt, has_aux=True
        )
        # SAC's alpha step (eq. 18) with the actor's log pi estimate, and the target critics
        new_state = self.next_state(
            state, key, critic, critic_opt, logp, policy=policy, policy_opt=policy_opt
        )
        metrics = sac.step_metrics(q_loss, pi_loss, q, logp, alpha)
        w_mean = jnp.mean(w, axis=0)
        for i in range(cfg.num_components):
            metrics[f"w_{i}"] = w_mean[i]
        return new_state, metrics

    @functools.cached_property
    def agent(self) -> Agent:
        """The Agent the training loop uses (awmp.algos interface)."""
        # act: policy and key (split); act_deterministic, weights: policy.
        return Agent.of(self, "sac-gmm", acting_fields=("policy", "key"))


def build(spec: EnvSpec, cfg: SACGMMConfig) -> SACGMM:
    """SAC-GMM's networks and pure functions (the Agent is `build(...).agent`)."""
    return SACGMM(spec, cfg)


def make_agent(spec: EnvSpec, cfg: SACGMMConfig) -> Agent:
    """The SAC-GMM Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="sac-gmm",
    label="SAC-GMM",
    section="sac_gmm",
    config=SACGMMConfig,
    make_agent=make_agent,
    check=check,
)
