"""The prior network's training (paper Section 3.1, eq. 5-14 and 19), shared by every AWMP
algorithm (SAC-AWMP, TD3-AWMP).

P(h|s,a; eta) is trained in bursts on the most recent M transitions:
J_eta = KL(P(.|x) || P(.|x~)) - zeta * (c_marg H(h) - H(h|s,a)), with advantage-weighted
importance weights w_i ~ exp(A_i / T) / mu_i in log space (eq. 5-6, 10-14). What differs between
the algorithms is only the advantage A(s, a) of eq. 19 (SAC-AWMP: min_j Qbar_j - Vbar; TD3-AWMP:
docs/ALGORITHM.md "TD3-AWMP"), which the caller passes as a function of the batch.

The functions read the prior's switches from a config object with these attributes (both
AWMPConfig and TD3AWMPConfig have them, with the same meaning and defaults): prior_interval,
prior_steps, prior_batch_size, prior_batch_reuse, sigma, zeta, c_marg, recon_coef, is_weights,
is_lambda, adv_temperature, prior_reduction, prior_kl_grad, prior_hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from awmp.buffer import ReplayBuffer
from awmp.errors import require
from awmp.networks import PriorNet

sg = jax.lax.stop_gradient

# ---------------------------------------------------------------------------------------------
# The math of each equation (no networks), public for tests and tools.
# ---------------------------------------------------------------------------------------------


def prior_weights(logits: jax.Array) -> jax.Array:
    """h = P(.|s,a; eta) (Section 3.1): the prior network's softmax output layer."""
    return jax.nn.softmax(logits, axis=-1)


def log_importance_weights(
    advantage: jax.Array,
    log_mu: jax.Array,
    method: str = "eq11",
    lam: float = 0.5,
    temperature: float = 1.0,
) -> jax.Array:
    """log w_i of the prior's batch (last axis), normalised: sum_i w_i = 1, in log space.

    `eq11` (eq. 10-11): w_i ~ exp(A_i / T) / mu_i; F(A) = exp(A) / Phi (Section 3.1), T = 1.
    eq. 11 has infinite variance for a ~ mu (E_mu[mu^-2] = int 1/mu da diverges), so
    docs/ALGORITHM.md "Importance weights" adds remedies from the importance-sampling literature:
    `truncated`: eq. 11's weights capped at mean(w) sqrt(N) and renormalised (Ionides 2008);
    `tempered`: w_i ~ exp(A_i / T) mu_i^-lam, lam in [0, 1]; `on-policy`: w_i ~ exp(A_i / T)
    (the recent window treated as drawn from the current policy).
    """
    if temperature != 1.0:
        advantage = advantage / temperature
    if method in ("eq11", "truncated"):
        log_w = jax.nn.log_softmax(advantage - log_mu, axis=-1)
        if method == "truncated":  # w <= mean(w) sqrt(N) = 1 / sqrt(N) for normalised w
            log_w = jnp.minimum(log_w, -0.5 * math.log(log_w.shape[-1]))
            log_w = jax.nn.log_softmax(log_w, axis=-1)
        return log_w
    if method == "tempered":
        return jax.nn.log_softmax(advantage - lam * log_mu, axis=-1)
    if method == "on-policy":
        return jax.nn.log_softmax(advantage, axis=-1)
    raise ValueError(f"unknown importance-weight method {method!r}")


def importance_weights(advantage: jax.Array, log_mu: jax.Array) -> jax.Array:
    """w_i, eq. 11: normalised advantage-weighted importance weights (sum to 1 over the batch)."""
    return jnp.exp(log_importance_weights(advantage, log_mu))


def effective_sample_size(w: jax.Array) -> jax.Array:
    """1 / sum_i w_i^2 of normalised weights: B when uniform, 1 when one sample takes all."""
    return 1.0 / jnp.sum(w**2, axis=-1)


def mutual_information(
    log_w: jax.Array, log_p: jax.Array, c_marg: float = 1.0
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(I, H(h), H(h|s,a)) of eq. 6 and 12-14 from log w (B,) and log P(h|s_i,a_i) (B, O).

    eq. 12: log pbar_k = logsumexp_i(log w_i + log P_ik); eq. 13: H(h) = -sum_k pbar_k log pbar_k;
    eq. 14: H(h|s,a) = -sum_i w_i sum_k P_ik log P_ik; eq. 6: I = c_marg H(h) - H(h|s,a).
    Log space throughout, so an empty component (pbar_k = 0) gives 0, not 0 * -inf.
    """
    log_pbar = jax.nn.logsumexp(log_w[:, None] + log_p, axis=0)  # eq. 12
    h_marg = -jnp.sum(jnp.exp(log_pbar) * log_pbar)  # eq. 13
    h_cond = -jnp.sum(jnp.exp(log_w) * jnp.sum(jnp.exp(log_p) * log_p, axis=-1))  # eq. 14
    return c_marg * h_marg - h_cond, h_marg, h_cond  # eq. 6


def perturbation_kl(logits: jax.Array, logits_perturbed: jax.Array) -> jax.Array:
    """KL(P(.|x) || P(.|x~)) per row (the regulariser l(eta) of eq. 5), from logits (..., O)."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_q = jax.nn.log_softmax(logits_perturbed, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def uniform_log_density(act_dim: int) -> float:
    """log of the uniform density on [-1, 1]^d: the behaviour density of warm-up actions."""
    return -act_dim * math.log(2.0)


# ---------------------------------------------------------------------------------------------
# The burst: objective, scan of Adam steps, the host-side draw and the hook's schedule.
# ---------------------------------------------------------------------------------------------


def make_prior_net(cfg: Any, num_components: int, obs_dim: int, act_dim: int) -> PriorNet:
    """P(h|s,a; eta) with O outputs (and the reference code's decoder when recon_coef > 0)."""
    recon_dim = obs_dim + act_dim if cfg.recon_coef > 0 else 0
    return PriorNet(tuple(cfg.prior_hidden), num_components, recon_dim)


def prior_objective(
    prior_net: PriorNet,
    cfg: Any,
    prior_params: Any,
    batch: dict,
    eps: jax.Array,
    advantage: Callable[[dict], jax.Array],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """J_eta (eq. 5) on one B_on batch (obs, action, log_mu) and its diagnostics.

    eps: (B, s + d) standard normals of the perturbation x~ = x + sigma |x| eps.
    advantage(batch) -> A (B,), eq. 19 of the calling algorithm, held fixed (stop-gradient).
    Only prior_params receive a gradient.
    """
    obs, action = batch["obs"], batch["action"]
    adv = sg(advantage(batch))
    log_w = log_importance_weights(  # eq. 10-11 or a remedy (cfg.is_weights)
        adv, batch["log_mu"], cfg.is_weights, cfg.is_lambda, cfg.adv_temperature
    )
    logits, recon = prior_net.apply(prior_params, obs, action)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    # The reference code sums the conditional entropy and the KL over the batch but averages
    # the marginal entropy and the L1 term: B_on x eq. 5 with c_marg / B_on, recon / B_on.
    b = obs.shape[0] if cfg.prior_reduction == "reference-sum" else 1
    c_marg = cfg.c_marg / b if b != 1 else cfg.c_marg
    mi, h_marg, h_cond = mutual_information(log_w, log_p, c_marg)  # eq. 6, 12-14

    # l(eta): KL(P(.|x) || P(.|x~)) with the clean prediction as the fixed target (as in
    # virtual adversarial training), so the term smooths P rather than flattening it.
    x = jnp.concatenate([obs, action], axis=-1)
    x_t = x + cfg.sigma * jnp.abs(x) * eps
    logits_t, _ = prior_net.apply(prior_params, x_t[:, : obs.shape[-1]], x_t[:, obs.shape[-1] :])
    target = logits if cfg.prior_kl_grad == "both" else sg(logits)
    reg = jnp.mean(perturbation_kl(target, logits_t))
    loss = reg - cfg.zeta * mi  # eq. 5
    if b != 1:
        loss = b * loss
    out = {
        "prior_mi": mi,
        "prior_h": h_marg,
        "prior_h_cond": h_cond,
        "prior_ess": effective_sample_size(jnp.exp(log_w)),
        "prior_reg": reg,
    }
    if recon is not None:  # the reference code's decoder term (L1), weight recon_coef
        out["prior_recon"] = jnp.mean(jnp.abs(recon - x))
        loss = loss + cfg.recon_coef * out["prior_recon"]
    out["prior_loss"] = loss
    return loss, out


def prior_burst(
    state: Any,
    data: dict,
    objective: Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]],
    opt: optax.GradientTransformation,
    x_dim: int,
) -> tuple[Any, dict]:
    """One burst of prior updates: `lax.scan` of Adam steps over data's leading axis (K steps).

    state: any pytree dataclass with fields prior, prior_opt, key and prior_step.
    data: obs (K, B, s), action (K, B, d), log_mu (K, B). objective(prior, batch, eps) ->
    (loss, diagnostics), eps (B, x_dim) with x_dim = s + d. Returns the new state and the
    diagnostics' burst mean (`prior_mi`, ...) plus `prior_mi_last`, `prior_ess_last` and
    `prior_ess_min`.
    """
    key, sub = jax.random.split(state.key)
    k, b = data["obs"].shape[:2]
    eps = jax.random.normal(sub, (k, b, x_dim))

    def step(carry, xs):
        prior, opt_state = carry
        batch, e = xs
        grad, out = jax.grad(lambda p: objective(p, batch, e), has_aux=True)(prior)
        upd, opt_state = opt.update(grad, opt_state)
        return (optax.apply_updates(prior, upd), opt_state), out

    (prior, prior_opt), trace = jax.lax.scan(step, (state.prior, state.prior_opt), (data, eps))
    metrics = {name: jnp.mean(v) for name, v in trace.items()}
    metrics["prior_mi_last"] = trace["prior_mi"][-1]
    metrics["prior_ess_last"] = trace["prior_ess"][-1]
    metrics["prior_ess_min"] = jnp.min(trace["prior_ess"])
    new = state.replace(prior=prior, prior_opt=prior_opt, key=key, prior_step=state.prior_step + k)
    return new, metrics


def hook_metric_names(cfg: Any) -> tuple[str, ...]:
    """The keys of `prior_burst`'s metrics (fixed train.csv columns)."""
    names = ["prior_mi", "prior_mi_last", "prior_h", "prior_h_cond", "prior_ess"]
    names += ["prior_ess_last", "prior_ess_min", "prior_reg", "prior_loss"]
    if cfg.recon_coef > 0:
        names.append("prior_recon")
    return tuple(names)


def burst_due(cfg: Any, env_step: int) -> bool:
    """Whether a prior burst may be due after `env_step` (every `prior_interval` steps).

    Never with one component (O = 1): the prior's h is then a softmax over one logit, 1 for
    every state, so nothing it could learn reaches the gating, the losses or the actions
    (tests/test_sac_awmp.py checks this); skipping its bursts saves their compute and leaves the
    prior's train.csv columns empty. O = 1 is the paper's SAC (Haarnoja et al. 2018a).
    """
    return cfg.prior_steps > 0 and cfg.num_components > 1 and env_step % cfg.prior_interval == 0


def draw_prior_data(
    cfg: Any, env_step: int, buffer: ReplayBuffer, rng: np.random.Generator, grad_steps: int
) -> dict[str, np.ndarray] | None:
    """The host side of the loop's hook: a prior burst's data every `prior_interval` steps.

    Returns obs (K, B_on, s), action (K, B_on, d), log_mu (K, B_on) drawn from the most
    recent M transitions with the loop's generator `rng`, or None when no burst is due.
    Bursts are skipped until the first gradient step has been taken (grad_steps == 0, i.e.
    during random warm-up): before that the target networks are their random initialisation, so
    the advantages of eq. 19 that weight eq. 10-11 would be noise. The recent window may
    still contain warm-up transitions, with their uniform log mu.
    """
    if not burst_due(cfg, env_step) or len(buffer) == 0:
        return None
    if grad_steps == 0:  # still in warm-up: no gradient step yet
        return None
    # All batches' B_on indices at once from the most recent M transitions; each batch is
    # used prior_batch_reuse times in a row (the reference code trains O times on a draw).
    reuse = cfg.prior_batch_reuse
    idx = buffer.recent_indices(
        rng, (cfg.prior_steps // reuse, cfg.prior_batch_size), cfg.prior_interval
    )
    if reuse > 1:
        idx = np.repeat(idx, reuse, axis=0)
    return {name: buffer.data[name][idx] for name in ("obs", "action", "log_mu")}


def check_prior(cfg: Any, train: Any, section: str) -> None:
    """The prior switches' checks, with `section` ('awmp', 'td3_awmp') in the messages."""
    s = section
    require(cfg.prior_interval >= 1, f"{s}.prior_interval", cfg.prior_interval, ">= 1")
    require(cfg.prior_steps >= 0, f"{s}.prior_steps", cfg.prior_steps, ">= 0")
    require(cfg.prior_batch_size >= 1, f"{s}.prior_batch_size", cfg.prior_batch_size, ">= 1")
    require(
        cfg.prior_batch_size <= min(cfg.prior_interval, train.buffer_size),
        f"{s}.prior_batch_size",
        cfg.prior_batch_size,
        "<= prior_interval and <= buffer_size",
    )
    require(cfg.sigma >= 0, f"{s}.sigma", cfg.sigma, ">= 0")
    require(cfg.c_marg >= 0, f"{s}.c_marg", cfg.c_marg, ">= 0")
    require(cfg.recon_coef >= 0, f"{s}.recon_coef", cfg.recon_coef, ">= 0")
    for name, allowed in (
        ("is_weights", ("eq11", "truncated", "tempered", "on-policy")),
        ("prior_reduction", ("mean", "reference-sum")),
        ("prior_kl_grad", ("noisy", "both")),
    ):
        value = getattr(cfg, name)
        require(value in allowed, f"{s}.{name}", value, "|".join(allowed))
    require(0 <= cfg.is_lambda <= 1, f"{s}.is_lambda", cfg.is_lambda, "in [0, 1]")
    require(cfg.adv_temperature > 0, f"{s}.adv_temperature", cfg.adv_temperature, "> 0")
    require(
        cfg.prior_batch_reuse >= 1 and cfg.prior_steps % cfg.prior_batch_reuse == 0,
        f"{s}.prior_batch_reuse",
        cfg.prior_batch_reuse,
        f">= 1 and a divisor of prior_steps ({cfg.prior_steps})",
    )
    require(
        len(cfg.prior_hidden) >= 1 and all(h >= 1 for h in cfg.prior_hidden),
        f"{s}.prior_hidden",
        cfg.prior_hidden,
        "one or more positive layer sizes",
    )
