"""SAC-AWMP: Soft Actor-Critic with an Advantage-Weighted Mixture Policy (the paper's Algorithm 1).

Equation numbers are the paper's; docs/ALGORITHM.md maps each one to the function here and lists
the ambiguity resolutions (the switches of `AWMPConfig`).

- O tanh-Gaussian components (eq. 28), one stacked parameter pytree (`StackedGaussianPolicy`).
- Gating rho(g|s) = softmax_g((Qbar_1(s, a_g) - alpha_pi log pi_g(a_g|s)) / T)   (eq. 16-17).
- Twin Q on Qhat = r + gamma (1 - terminated) Vbar(s')                                (eq. 22-23).
- V on Vhat = sum_g u_g [min_j Q_j(s, a_g) - alpha_pi log pi_g] - alpha_g sum_g u_g log u_g
  (eq. 20-21), u = rho (`value_weights=gating`) or h (`prior`).
- Policy, per component: sum_g h_g (alpha_pi log pi_g(a_g|s) - min_j Q_j(s, a_g))
  + alpha_g sum_g h_g log h_g, h = P(.|s, a) from the prior, held fixed          (eq. 24-27).
- Prior network P(h|s,a; eta), trained in bursts on the most recent M transitions:
  J_eta = KL(P(.|x) || P(.|x~)) - zeta * (c_marg H(h) - H(h|s,a)), advantage-weighted
  importance weights in log space                                          (eq. 5-6, 10-14, 19).

Update order: the Q, V and policy losses of one gradient step are all evaluated at the same
(pre-update) parameters and applied together, as in Haarnoja et al. (2018a)'s SAC-v1; each loss
only reaches its own parameters (stop-gradients everywhere else), which is tested.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import optax

from awmp.algos import Agent, Algorithm, mixture, polyak, prior
from awmp.algos.mixture import mixture_log_density  # noqa: F401 - public here as before
from awmp.algos.prior import (  # noqa: F401 - the prior's math, public here as before
    effective_sample_size,
    importance_weights,
    log_importance_weights,
    mutual_information,
    perturbation_kl,
    prior_weights,
    uniform_log_density,
)
from awmp.distributions import gaussian_log_prob, log_det_tanh_jacobian
from awmp.envs import EnvSpec
from awmp.errors import require
from awmp.networks import StackedGaussianPolicy, TwinCritic, ValueNet
from awmp.strict import StrictFields

sg = jax.lax.stop_gradient

# Names of the networks inside the state; `nets(state)` returns them as one dict so that every
# loss is a function of all parameters and gradient isolation can be checked directly.
NET_NAMES = ("policy", "critic", "target_critic", "value", "target_value", "prior")


@dataclass
class AWMPConfig(StrictFields):
    """SAC-AWMP (the paper's Algorithm 1); see docs/ALGORITHM.md for every switch."""

    num_components: int = 4
    """O, the number of policy components (paper: 4; Fig. 4 ablates 1, 2, 4, 8)."""
    hidden: tuple[int, ...] = (400, 400)
    """Hidden sizes of each critic and of V (paper Table 2: (400, 400))."""
    policy_hidden: tuple[int, ...] = (400, 400)
    """Hidden sizes of each policy component (Sec. 4.1: as SAC's policy, Table 2 (400, 400))."""
    prior_hidden: tuple[int, ...] = (400, 300)
    """Hidden sizes of the prior network P(h|s,a) (paper Section 3.1)."""
    batch_size: int = 100
    """B_off, the off-policy mini-batch size (paper Table 3: 100)."""
    lr: float = 3e-4
    """Adam learning rate of every network (paper Tables 2-3: 3e-4)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (paper Table 2)."""
    tau_v: float = 0.005
    """Polyak coefficient tau_V of the target value network (paper Table 2)."""
    tau_q: float = 0.001
    """Polyak coefficient tau_Q of the target critic used for gating (paper Table 3; Fig. 5)."""
    alpha_pi: float = 0.2
    """Entropy temperature of the policy components alpha_pi (paper Table 1)."""
    alpha_g: float = 0.001
    """Entropy temperature of the gating alpha_g (paper Table 3)."""
    gating_temperature: float = 1.0
    """Softmax temperature T of the gating rho(g|s) (eq. 16 has none: 1.0)."""
    acting: Literal["mixture", "weighted"] = "mixture"
    """How actions are executed: draw g ~ rho (mixture, eq. 15) or sum_g rho_g a_g (weighted)."""
    eval_action: Literal["blend", "argmax"] = "blend"
    """The deterministic (evaluation) action: sum_g rho_g tanh(mu_g) (blend, the design's
    reading) or tanh(mu_g*) of the most probable component g* = argmax_g rho_g (argmax, as
    TD3-AWMP evaluates); rho at the component means either way. Training is unchanged."""
    value_weights: Literal["gating", "prior"] = "gating"
    """Component weights u in the V target (eq. 21): gating rho (eq. 18) or prior h."""
    prior_action: Literal["policy", "buffer"] = "policy"
    """Action fed to the prior for h: the current policy's (Alg. 1 l.15) or the stored one."""
    prior_interval: int = 5000
    """M: environment steps between prior-network bursts; also the recent window (Table 3)."""
    prior_steps: int = 5000
    """Gradient steps of one prior burst (Table 3: 5000; reference-code preset: 5000 * O, O = 4)."""
    prior_batch_size: int = 50
    """B_on, the prior network's mini-batch from the most recent M transitions (Table 3: 50)."""
    sigma: float = 0.04
    """Perturbation scale of the prior's regulariser (Table 3: noise for MI regularisation)."""
    zeta: float = 0.1
    """Coefficient zeta of the MI in eq. 5 (Table 3: 0.1); < 0 reproduces the reference code."""
    c_marg: float = 1.0
    """Weight of the marginal entropy in the MI, eq. 6 (1.0; the reference code uses 4)."""
    recon_coef: float = 0.0
    """Weight of the reference code's decoder (L1 reconstruction) term; 0 disables it."""
    policy_delay: int = 1
    """Update the policy and targets every this many gradient steps (reference code: 2)."""
    gating_samples: Literal["shared", "independent", "mean"] = "shared"
    """Where rho (eq. 16-17) is evaluated: at the same component samples it weights (shared),
    at a second, independent set (independent) or at the component means (mean: rho is a
    function of s, so the V target's weights and the stored mixture density are exact)."""
    is_weights: Literal["eq11", "truncated", "tempered", "on-policy"] = "eq11"
    """Importance weights of the prior's batch: eq. 11 (exp(A/T)/mu), eq. 11 truncated at
    mean(w) sqrt(N) (Ionides 2008), tempered exp(A/T) mu^-lambda, or on-policy exp(A/T)."""
    is_lambda: float = 0.5
    """lambda in [0, 1], the power of 1/mu in the `tempered` importance weights."""
    adv_temperature: float = 1.0
    """T, the advantage temperature of the importance weights exp(A/T) (eq. 10 has none: 1)."""
    prior_reduction: Literal["mean", "reference-sum"] = "mean"
    """Reduction of eq. 5 over the B_on batch: `mean` (eq. 12-14) or the reference code's
    (conditional entropy and perturbation KL summed, marginal entropy and L1 averaged)."""
    prior_batch_reuse: int = 1
    """Prior gradient steps on each drawn B_on batch (reference code: O); divides prior_steps."""
    learn_alpha: bool = False
    """Learn alpha_pi (Haarnoja et al. 2018b) towards `target_entropy` per component, starting
    at alpha_pi; the paper fixes it (Table 1: 0.2). docs/ALGORITHM.md "Learned temperature"."""
    target_entropy: float | None = None
    """Target entropy of each component for `learn_alpha`; None: -act_dim."""
    prior_kl_grad: Literal["noisy", "both"] = "noisy"
    """Gradient of the regulariser KL(P(x) || P(x~)): through P(x~) only (noisy, as in virtual
    adversarial training) or through both sides (both: the reference code)."""


def check(cfg: AWMPConfig, train) -> None:
    """SAC-AWMP's own checks (awmp.config.validate does the common ones)."""
    require(1 <= cfg.num_components <= 64, "awmp.num_components", cfg.num_components, "in [1, 64]")
    require(0 < cfg.tau_v <= 1, "awmp.tau_v", cfg.tau_v, "in (0, 1]")
    require(0 < cfg.tau_q <= 1, "awmp.tau_q", cfg.tau_q, "in (0, 1]")
    require(cfg.alpha_pi >= 0, "awmp.alpha_pi", cfg.alpha_pi, ">= 0")
    require(cfg.alpha_g >= 0, "awmp.alpha_g", cfg.alpha_g, ">= 0")
    require(cfg.gating_temperature > 0, "awmp.gating_temperature", cfg.gating_temperature, "> 0")
    require(cfg.acting in ("mixture", "weighted"), "awmp.acting", cfg.acting, "mixture|weighted")
    require(
        cfg.eval_action in ("blend", "argmax"), "awmp.eval_action", cfg.eval_action, "blend|argmax"
    )
    require(
        cfg.value_weights in ("gating", "prior"),
        "awmp.value_weights",
        cfg.value_weights,
        "gating|prior",
    )
    require(
        cfg.prior_action in ("policy", "buffer"),
        "awmp.prior_action",
        cfg.prior_action,
        "policy|buffer",
    )
    require(cfg.policy_delay >= 1, "awmp.policy_delay", cfg.policy_delay, ">= 1")
    require(
        cfg.gating_samples in ("shared", "independent", "mean"),
        "awmp.gating_samples",
        cfg.gating_samples,
        "shared|independent|mean",
    )
    require(
        not (cfg.learn_alpha and cfg.alpha_pi <= 0), "awmp.alpha_pi", cfg.alpha_pi,
        "> 0 with learn_alpha (its initial value)",
    )  # fmt: skip
    require(
        len(cfg.policy_hidden) >= 1 and all(h >= 1 for h in cfg.policy_hidden),
        "awmp.policy_hidden",
        cfg.policy_hidden,
        "one or more positive layer sizes",
    )
    prior.check_prior(cfg, train, "awmp")


def reference_code_preset(cfg: AWMPConfig) -> AWMPConfig:
    """The `reference-code` preset: the authors' code's choices (docs/ALGORITHM.md "Presets")."""
    # hzm2016/SAC-AWMP, code/methods/SAC_AWMP.py (commit c976cebf) and code/utils/model.py;
    # docs/ALGORITHM.md "Presets" maps each value to its line of code.
    o = cfg.num_components
    return dataclasses.replace(
        cfg,
        acting="weighted",  # select_action: weighted_action=True, sum_g p_g a_g
        prior_action="buffer",  # calc_target_phi: self.option(state, action), stored a
        value_weights="prior",  # calc_target_phi: Q, log pi weighted by p_normalized (h)
        zeta=-0.1,  # train_option: + entropy_coeff (0.1) * critic_entropy (minimises MI)
        c_marg=4.0,  # train_option: c_ent = 4, times the *averaged* marginal entropy
        sigma=0.005,  # Option.forward: add_randn(xu, vat_noise=0.005)
        recon_coef=1.0,  # train_option: F.l1_loss(xu, decoded_xu), a mean, weight 1
        policy_hidden=(400, 300),  # GaussianPolicy1D components (ALGORITHM.md)
        policy_delay=2,  # train(): policy_freq = 2, targets with the actor
        # train(): every option_buffer_size (5000) iterations, 5000 draws x O reuses
        prior_steps=5000 * o,
        prior_batch_reuse=o,
        # weighted_entropy and kl are sums over the batch; weighted_mean, l1 are means
        prior_reduction="reference-sum",
        prior_kl_grad="both",  # kl(output_option, output_option_noise): no detach
    )


@flax.struct.dataclass
class AWMPState:
    """Everything SAC-AWMP needs between calls (a pytree: checkpoint it as is)."""

    policy: Any  # O stacked tanh-Gaussian components (theta)
    critic: Any  # Q_1, Q_2 (w)
    target_critic: Any  # Qbar (w-bar, tau_Q): gating and advantages only
    value: Any  # V (psi)
    target_value: Any  # Vbar (psi-bar, tau_V): the Q target
    prior: Any  # P(h|s,a; eta)
    policy_opt: Any
    critic_opt: Any
    value_opt: Any
    prior_opt: Any
    key: jax.Array
    step: jax.Array  # gradient steps done
    prior_step: jax.Array  # prior-network gradient steps done (all bursts together)


@flax.struct.dataclass
class AWMPStateLearnedAlpha(AWMPState):
    """AWMPState plus a learned alpha_pi (`learn_alpha`); the default state has no such leaves,
    so runs and checkpoints without it are unchanged."""

    log_alpha: jax.Array
    alpha_opt: Any


# ---------------------------------------------------------------------------------------------
# Small pure functions (no networks): the math of each equation, public for tests and tools.
# ---------------------------------------------------------------------------------------------


def gating_log_weights(
    q_bar: jax.Array, log_pi: jax.Array, alpha_pi: float, temperature: float = 1.0
) -> jax.Array:
    """log rho(g|s), eq. 16-17: log_softmax_g((Qbar(s,a_g) - alpha_pi log pi_g(a_g|s)) / T).

    q_bar, log_pi: (..., O), one sampled action per component (a one-sample estimate of eq. 17).
    """
    return mixture.gating_log_weights(q_bar, temperature, log_pi, alpha_pi)


def gating_weights(
    q_bar: jax.Array, log_pi: jax.Array, alpha_pi: float, temperature: float = 1.0
) -> jax.Array:
    """rho(g|s), eq. 16-17, a probability vector over the last axis (O)."""
    return jnp.exp(gating_log_weights(q_bar, log_pi, alpha_pi, temperature))


def squash(mean: jax.Array, log_std: jax.Array, eps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """a = tanh(mean + std * eps) and log pi(a) (eq. 27-28): a reparameterised component sample."""
    u = mean + jnp.exp(log_std) * eps
    return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - log_det_tanh_jacobian(u)


def squash_mean(mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """tanh(mean) and log pi at it, exactly: u = mean, so the Gaussian term is at its peak."""
    return jnp.tanh(mean), gaussian_log_prob(mean, mean, log_std) - log_det_tanh_jacobian(mean)


def gating_points(
    mode: str,
    mean: jax.Array,
    log_std: jax.Array,
    a: jax.Array,
    logp: jax.Array,
    eps_gating: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The actions (O, B, d) and log pi (O, B) at which rho (eq. 16-17) is evaluated.

    `shared`: the component samples a, logp that rho then weights (eq. 17 with one sample; the
    softmax of noisy values, biased upward in the V target of eq. 21). `independent`: a second
    sample per component (eps_gating), independent of a. `mean`: the component means, so rho is a
    function of s alone and the mixture density sum_g rho_g pi_g(a) of the executed action is
    exact (docs/ALGORITHM.md "Gating samples").
    """
    if mode == "shared":
        return a, logp
    if mode == "independent":
        return squash(mean, log_std, eps_gating)
    if mode == "mean":
        return squash_mean(mean, log_std)
    raise ValueError(f"unknown gating_samples {mode!r}")


def alpha_loss(log_alpha: jax.Array, logp: jax.Array, target_entropy: float) -> jax.Array:
    """J(alpha) = -log alpha (mean log pi_g(a_g|s) + target), the mean over the batch and the O
    components (Haarnoja et al. 2018b, eq. 18, with one alpha_pi shared by the components as in
    the paper's eq. 24; docs/ALGORITHM.md "Learned temperature"). logp: (O, B), held fixed."""
    return -log_alpha * (jnp.mean(sg(logp)) + target_entropy)


def value_target(soft_q: jax.Array, log_u: jax.Array, alpha_g: float) -> jax.Array:
    """V-hat of eq. 21 (B,): sum_g u_g soft_q_g - alpha_g sum_g u_g log u_g, from (B, O) inputs."""
    u = jnp.exp(log_u)
    return jnp.sum(u * soft_q, axis=-1) - alpha_g * jnp.sum(u * log_u, axis=-1)


# ---------------------------------------------------------------------------------------------
# The algorithm, closed over its networks and config.
# ---------------------------------------------------------------------------------------------


class AWMP(mixture.PriorMethods):
    """SAC-AWMP's networks and pure functions for one (EnvSpec, AWMPConfig).

    `agent` is what the training loop uses; the other attributes are the pieces it is made of,
    public so tests and tools (e.g. `awmp inspect`) can call them on a state. The prior
    network's methods (`advantage`, `prior_objective`, `prior_burst`, the hook's host side)
    are those TD3-AWMP shares (awmp.algos.mixture.PriorMethods).
    """

    def __init__(self, spec: EnvSpec, cfg: AWMPConfig) -> None:
        self.spec, self.cfg = spec, cfg
        o = cfg.num_components
        self.policy_net = StackedGaussianPolicy(tuple(cfg.policy_hidden), spec.act_dim, o)
        self.critic_net = TwinCritic(tuple(cfg.hidden))
        self.value_net = ValueNet(tuple(cfg.hidden))
        self.prior_net = prior.make_prior_net(cfg, o, spec.obs_dim, spec.act_dim)
        self.opt = optax.adam(cfg.lr)
        self.prior_opt = self.opt  # one Adam for every network (paper Tables 2-3)

    # -- state ------------------------------------------------------------------------------

    def init(self, key: jax.Array) -> AWMPState:
        k_pi, k_q, k_v, k_p, key = jax.random.split(key, 5)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        policy = self.policy_net.init(k_pi, obs)
        critic = self.critic_net.init(k_q, obs, act)
        value = self.value_net.init(k_v, obs)
        prior = self.prior_net.init(k_p, obs, act)
        fields = dict(
            policy=policy,
            critic=critic,
            target_critic=critic,
            value=value,
            target_value=value,
            prior=prior,
            policy_opt=self.opt.init(policy),
            critic_opt=self.opt.init(critic),
            value_opt=self.opt.init(value),
            prior_opt=self.opt.init(prior),
            key=key,
            step=jnp.zeros((), jnp.int32),
            prior_step=jnp.zeros((), jnp.int32),
        )
        if not self.cfg.learn_alpha:
            return AWMPState(**fields)
        log_alpha = jnp.asarray(math.log(self.cfg.alpha_pi), jnp.float32)
        return AWMPStateLearnedAlpha(
            **fields, log_alpha=log_alpha, alpha_opt=self.opt.init(log_alpha)
        )

    @property
    def target_entropy(self) -> float:
        """The learned temperature's target entropy per component (default -|A|)."""
        t = self.cfg.target_entropy
        return -float(self.spec.act_dim) if t is None else float(t)

    def alpha(self, params: dict) -> jax.Array | float:
        """alpha_pi: the configured constant, or exp(log_alpha) when learned (no gradient)."""
        if not self.cfg.learn_alpha:
            return self.cfg.alpha_pi
        return jnp.exp(sg(params["log_alpha"]))

    @staticmethod
    def nets(state: AWMPState) -> dict[str, Any]:
        """The parameters of every network, by name (NET_NAMES), and log_alpha when learned."""
        out = {name: getattr(state, name) for name in NET_NAMES}
        if isinstance(state, AWMPStateLearnedAlpha):
            out["log_alpha"] = state.log_alpha
        return out

    # -- acting -----------------------------------------------------------------------------

    def sample_noise(self, key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        """The randomness of one act/update: eps (O, B, d) for the components (eq. 27) and
        Gumbel noise (B, O) that draws g ~ rho by the Gumbel-max trick."""
        o, d = self.cfg.num_components, self.spec.act_dim
        if self.cfg.gating_samples == "independent":  # + a second sample set for rho
            k_eps, k_g, k_e2 = jax.random.split(key, 3)
            extra = {"eps_gating": jax.random.normal(k_e2, (o, batch_size, d))}
        else:
            (k_eps, k_g), extra = jax.random.split(key), {}
        return {
            "eps": jax.random.normal(k_eps, (o, batch_size, d)),
            "gumbel": jax.random.gumbel(k_g, (batch_size, o)),
            **extra,
        }

    def gating(self, params: dict, obs: jax.Array, a: jax.Array, logp: jax.Array) -> jax.Array:
        """log rho(.|s) (B, O) from the target critic Qbar_1 at one action per component.

        obs (B, s); a (O, B, d); logp (O, B). Eq. 16-17; no gradient reaches any parameter.
        """
        q_bar1 = mixture.gating_q(self.critic_net, params["target_critic"], obs, a)  # (O, B)
        return gating_log_weights(
            q_bar1.T, sg(logp).T, self.alpha(params), self.cfg.gating_temperature
        )

    def log_rho(
        self, params: dict, obs: jax.Array, mean, log_std, a, logp, noise: dict
    ) -> jax.Array:
        """log rho(.|s) (B, O) at the points `cfg.gating_samples` chooses (`gating_points`)."""
        points = gating_points(
            self.cfg.gating_samples, mean, log_std, a, logp, noise.get("eps_gating")
        )
        return self.gating(params, obs, *points)

    def executed_action(self, a: jax.Array, log_rho: jax.Array, gumbel: jax.Array) -> jax.Array:
        """The mixture's action (B, d): a_g with g ~ rho (`mixture`) or sum_g rho_g a_g."""
        if self.cfg.acting == "mixture":  # Algorithm 1 line 5, eq. 15
            return mixture.pick(a, mixture.gumbel_max(log_rho, gumbel))  # g ~ rho, a_g
        return jnp.einsum("bo,obd->bd", jnp.exp(log_rho), a)  # eq. 25 with rho (weighted)

    def act(self, state: AWMPState, obs: jax.Array) -> tuple[AWMPState, jax.Array, dict]:
        """Stochastic action for obs (B, s) and its behaviour log-density log mu(a|s) (B,)."""
        key, sub = jax.random.split(state.key)
        noise = self.sample_noise(sub, obs.shape[0])
        mean, log_std = self.policy_net.apply(state.policy, obs)  # (O, B, d)
        a, logp = squash(mean, log_std, noise["eps"])
        log_rho = self.log_rho(self.nets(state), obs, mean, log_std, a, logp, noise)
        action = self.executed_action(a, log_rho, noise["gumbel"])
        # log sum_g rho_g pi_g(a). Exact only for `mixture` acting with gating_samples="mean"
        # (rho a function of s). With `shared` samples rho depends on the very samples it
        # chooses between, so this treats a random rho as fixed (an approximation); with
        # `independent` it is one draw of an unbiased estimate of the density. For `weighted`
        # acting the density of a weighted sum is intractable and the same formula is stored
        # (docs/ALGORITHM.md "Gating samples").
        log_mu = mixture_log_density(action, log_rho, mean, log_std)
        return state.replace(key=key), action, {"log_mu": log_mu}

    def weights(
        self, state: AWMPState, obs: jax.Array, action: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """(rho, h), each (B, O), for inspection tools (`awmp inspect`).

        rho is the deterministic gating at the component means (as in evaluation); h is the
        prior's P(.|s, a) at `action`, by default the deterministic (evaluation) action.
        """
        a, log_rho = self.mean_actions(state, obs)
        rho = jnp.exp(log_rho)
        if action is None:
            action = jnp.einsum("bo,obd->bd", rho, a)
        return rho, self.prior_weights_at(state, obs, action)

    def mean_actions(self, state: AWMPState, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The components' deterministic actions tanh(mu_g) (O, B, d) and the gating log rho
        (B, O) at them: what evaluation, `weights` and the analysis scripts read."""
        mean, log_std = self.policy_net.apply(state.policy, obs)
        a, logp = squash_mean(mean, log_std)
        return a, self.gating(self.nets(state), obs, a, logp)

    def act_deterministic(self, state: AWMPState, obs: jax.Array) -> jax.Array:
        """sum_g rho_g tanh(mu_g) (`eval_action="blend"`, ALGORITHM.md of the design, Acting 4)
        or tanh(mu_g*), g* = argmax_g rho_g ("argmax"), with rho at the component means."""
        a, log_rho = self.mean_actions(state, obs)  # (O, B, d), (B, O)
        if self.cfg.eval_action == "argmax":
            return mixture.argmax_pick(a, log_rho)
        return jnp.einsum("bo,obd->bd", jnp.exp(log_rho), a)

    # -- one gradient step ------------------------------------------------------------------

    def losses(self, params: dict, batch: dict, noise: dict) -> dict[str, jax.Array]:
        """Q (eq. 22-23), V (eq. 20-21) and policy (eq. 24-27) losses plus diagnostics.

        params: `nets(state)`; batch: obs, action, reward, next_obs, terminated (B leading);
        noise: `sample_noise(key, B)`. Each loss reaches only its own network's parameters.
        """
        cfg = self.cfg
        obs = batch["obs"]
        o = cfg.num_components

        # eq. 23: Qhat = r + gamma (1 - terminated) Vbar(s'); bootstrap through truncation.
        v_next = self.target_value(params, batch["next_obs"])
        q_hat = sg(batch["reward"] + cfg.gamma * (1.0 - batch["terminated"]) * v_next)
        q = self.critic_net.apply(params["critic"], obs, batch["action"])  # (2, B)
        q_loss = 0.5 * jnp.sum(jnp.mean((q - q_hat) ** 2, axis=1))  # eq. 22, summed over j

        # One reparameterised sample per component (eq. 27-28), shared by V target and policy.
        mean, log_std = self.policy_net.apply(params["policy"], obs)  # (O, B, d)
        a, logp = squash(mean, log_std, noise["eps"])  # (O, B, d), (O, B)
        # min_j Q_j(s, a_g): Q's parameters are frozen here, the gradient flows through a_g only.
        q_pi = jnp.min(mixture.critic_at(self.critic_net, sg(params["critic"]), obs, a), axis=0)

        log_rho = self.log_rho(params, obs, mean, log_std, a, logp, noise)  # eq. 16-17, (B, O)
        # h = P(.|s, a~): a~ ~ pi(.|s), the mixture's action (Alg. 1 l.15-16), or the stored a
        logits = self.prior_logits(
            params, batch, lambda: self.executed_action(sg(a), log_rho, noise["gumbel"])
        )
        log_h = sg(jax.nn.log_softmax(logits, axis=-1))  # (B, O), held fixed
        h = jnp.exp(log_h)

        # eq. 21: Vhat = sum_g u_g [min_j Q_j(s,a_g) - alpha_pi log pi_g] - alpha_g sum u log u.
        log_u = log_rho if cfg.value_weights == "gating" else log_h
        alpha = self.alpha(params)
        soft_q = sg(q_pi - alpha * logp).T  # (B, O)
        v_hat = sg(value_target(soft_q, log_u, cfg.alpha_g))
        v = self.value_net.apply(params["value"], obs)
        v_loss = 0.5 * jnp.mean((v - v_hat) ** 2)  # eq. 20

        # eq. 24-27 per component: sum_g h_g (alpha_pi log pi_g - min_j Q_j) + alpha_g h log h.
        per_comp = (alpha * logp - q_pi).T  # (B, O)
        pi_loss = jnp.mean(
            jnp.sum(h * per_comp, axis=-1) + cfg.alpha_g * jnp.sum(h * log_h, axis=-1)
        )

        out = {
            "q_loss": q_loss,
            "v_loss": v_loss,
            "pi_loss": pi_loss,
            "q_mean": jnp.mean(q),
            "v_mean": jnp.mean(v),
        }
        rho_mean, h_mean, ent = jnp.mean(jnp.exp(log_rho), 0), jnp.mean(h, 0), -jnp.mean(logp, 1)
        for g in range(o):
            out[f"rho_{g}"] = rho_mean[g]
            out[f"h_{g}"] = h_mean[g]
            out[f"entropy_{g}"] = ent[g]
        if cfg.learn_alpha:
            out["alpha"] = alpha
            out["alpha_loss"] = alpha_loss(params["log_alpha"], logp, self.target_entropy)
        return out

    def update(self, state: AWMPState, batch: dict) -> tuple[AWMPState, dict]:
        """One gradient step (Algorithm 1 lines 14-22): V, Q, policy, then the targets."""
        cfg = self.cfg
        key, sub = jax.random.split(state.key)
        noise = self.sample_noise(sub, batch["obs"].shape[0])
        trained = ("policy", "critic", "value")

        def total(p: dict):
            out = self.losses({**self.nets(state), **p}, batch, noise)
            return out["q_loss"] + out["v_loss"] + out["pi_loss"], out

        params = {name: getattr(state, name) for name in trained}
        grads, metrics = jax.grad(total, has_aux=True)(params)
        step_q, critic_opt = self.opt.update(grads["critic"], state.critic_opt)
        critic = optax.apply_updates(state.critic, step_q)
        step_v, value_opt = self.opt.update(grads["value"], state.value_opt)
        value = optax.apply_updates(state.value, step_v)

        # Policy and targets (and a learned alpha) every `policy_delay` gradient steps
        # (reference code: 2); a `lax.cond`, as in TD3 (vmap over seeds makes it a select).
        def delayed(_) -> dict:
            step_pi, policy_opt = self.opt.update(grads["policy"], state.policy_opt)
            out = {
                "policy": optax.apply_updates(state.policy, step_pi),
                "policy_opt": policy_opt,
                "target_value": polyak(state.target_value, value, cfg.tau_v),
                "target_critic": polyak(state.target_critic, critic, cfg.tau_q),
            }
            if cfg.learn_alpha:
                out.update(self._alpha_step(state, metrics))
            return out

        def skip(_) -> dict:
            kept = ["policy", "policy_opt", "target_value", "target_critic"]
            kept += ["log_alpha", "alpha_opt"] if cfg.learn_alpha else []
            return {name: getattr(state, name) for name in kept}

        delayed_fields = jax.lax.cond(state.step % cfg.policy_delay == 0, delayed, skip, None)
        new = state.replace(
            critic=critic,
            value=value,
            critic_opt=critic_opt,
            value_opt=value_opt,
            key=key,
            step=state.step + 1,
            **delayed_fields,
        )
        return new, metrics

    def _alpha_step(self, state: AWMPStateLearnedAlpha, metrics: dict) -> dict:
        """One Adam step on log alpha (the gradient of `alpha_loss` is its factor, held fixed)."""
        o = self.cfg.num_components
        mean_logp = -jnp.mean(jnp.stack([metrics[f"entropy_{g}"] for g in range(o)]))
        grad = jax.grad(alpha_loss)(state.log_alpha, mean_logp, self.target_entropy)
        upd, alpha_opt = self.opt.update(grad, state.alpha_opt)
        return {"log_alpha": optax.apply_updates(state.log_alpha, upd), "alpha_opt": alpha_opt}

    # -- the prior network (awmp.algos.prior; the methods: mixture.PriorMethods) -------------

    def target_value(self, params: dict, obs: jax.Array) -> jax.Array:
        """Vbar(s) (B,), the target value network (psi-bar): the Q target's (eq. 23) and the
        advantage's (eq. 19). No gradient."""
        return self.value_net.apply(sg(params["target_value"]), obs)

    @functools.cached_property
    def agent(self) -> Agent:
        return self.mixture_agent("sac-awmp", self.acting_fields())

    def acting_fields(self) -> tuple[str, ...]:
        """The state fields act, act_deterministic and `weights` (awmp inspect) read: the
        components, the gating's target critic Qbar_1 (eq. 16-17), the key (act), the prior
        (weights' h) and, when learned, log alpha_pi (the gating's alpha_pi)."""
        fields = ("policy", "target_critic", "prior", "key")
        return (*fields, "log_alpha") if self.cfg.learn_alpha else fields


def build(spec: EnvSpec, cfg: AWMPConfig) -> AWMP:
    """SAC-AWMP's networks and pure functions (the Agent is `build(...).agent`)."""
    return AWMP(spec, cfg)


def make_agent(spec: EnvSpec, cfg: AWMPConfig) -> Agent:
    """The SAC-AWMP Agent for the training loop (awmp.algos interface)."""
    return build(spec, cfg).agent


ALGORITHM = Algorithm(
    name="sac-awmp",
    label="SAC-AWMP",
    section="awmp",
    config=AWMPConfig,
    make_agent=make_agent,
    check=check,
    presets={"reference-code": reference_code_preset},
)
