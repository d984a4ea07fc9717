"""SAC-GMM (He et al. 2026): the mixture density against SciPy in float64, O = 1 against SAC,
the MRP and LR gradients against the exact gradient by quadrature, and runs from the CLI."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from awmp.algos import sac, sac_gmm
from awmp.algos.sac import SACConfig
from awmp.algos.sac_gmm import SACGMMConfig
from awmp.cli import main as cli_main
from awmp.envs import EnvSpec


def _mixture_logpdf_f64(a, w, mean, std):
    """log pi(a) of sum_j w_j tanh-N(mean_j, std_j^2) for one action a (d,), written out with
    SciPy in float64: the change of variables u = atanh(a), |da/du| = prod (1 - a^2)."""
    u = np.arctanh(a)
    comp = np.sum(norm.logpdf(u[None], mean, std), axis=-1)  # (O,)
    return logsumexp(np.log(w) + comp) - np.sum(np.log1p(-(a**2)))


def test_mixture_log_density_matches_scipy_float64():
    rng = np.random.default_rng(0)
    o, b, d = 3, 6, 2
    logits = rng.normal(size=(b, o))
    mean = rng.normal(scale=0.8, size=(o, b, d))
    log_std = rng.uniform(-1.5, 0.3, size=(o, b, d))
    u = rng.normal(scale=0.9, size=(4, b, d))  # K = 4 points per row
    log_w = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    got = np.asarray(
        sac_gmm.mixture_log_prob_at(
            jnp.asarray(u, jnp.float32),
            log_w,
            jnp.asarray(mean, jnp.float32),
            jnp.asarray(log_std, jnp.float32),
        )
    )
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    for k in range(4):
        for row in range(b):
            expected = _mixture_logpdf_f64(
                np.tanh(u[k, row]), w[row], mean[:, row], np.exp(log_std[:, row])
            )
            assert got[k, row] == pytest.approx(expected, abs=2e-4, rel=1e-5)


def test_mixture_sample_density_and_responsibilities():
    """sample_mixture draws component argmax(log w + Gumbel) and returns its tanh sample with the
    SciPy mixture density at the sample's own u (float64 by hand from the same noise); `weights`
    returns w and the responsibilities w_i pi_i(a) / pi(a) at an action."""
    spec, cfg = EnvSpec(3, 2), SACGMMConfig(hidden=(16,), num_components=3)
    algo = sac_gmm.build(spec, cfg)
    state = algo.init(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
    out = algo.policy_net.apply(state.policy, obs)
    logits, mean, log_std = (np.asarray(x, np.float64) for x in out)
    eps, gumbel = algo.noise(jax.random.PRNGKey(3), 5)
    a, logp = (np.asarray(x, np.float64) for x in sac_gmm.sample_mixture(*out, eps, gumbel))
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    std = np.exp(log_std)
    u = mean + std * np.asarray(eps, np.float64)  # (O, B, d)
    g = np.argmax(np.log(w) + np.asarray(gumbel, np.float64), axis=1)
    for row in range(5):
        u_row = u[g[row], row]
        np.testing.assert_allclose(a[row], np.tanh(u_row), atol=1e-6)
        comp = np.sum(norm.logpdf(u_row[None], mean[:, row], std[:, row]), axis=-1)
        expected = logsumexp(np.log(w[row]) + comp) - np.sum(np.log1p(-(np.tanh(u_row) ** 2)))
        assert logp[row] == pytest.approx(expected, abs=2e-4, rel=1e-5)
    action = np.random.default_rng(4).uniform(-0.9, 0.9, size=(5, 2))
    w_got, r_got = (np.asarray(x) for x in algo.weights(state, obs, jnp.asarray(action)))
    np.testing.assert_allclose(w_got, w, rtol=1e-5)
    for row in range(5):
        uu = np.arctanh(action[row])
        comp = np.log(w[row]) + np.sum(norm.logpdf(uu[None], mean[:, row], std[:, row]), -1)
        np.testing.assert_allclose(r_got[row], np.exp(comp - logsumexp(comp)), atol=1e-4)


def _batch(rng, spec, b=8):
    return {
        "obs": rng.normal(size=(b, spec.obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(b, spec.act_dim)).astype(np.float32),
        "reward": rng.normal(size=b).astype(np.float32),
        "next_obs": rng.normal(size=(b, spec.obs_dim)).astype(np.float32),
        "terminated": (rng.uniform(size=b) < 0.2).astype(np.float32),
    }


@pytest.mark.parametrize("estimator", ["mrp", "lr"])
def test_one_component_is_sac(estimator):
    """O = 1: from the same parameters and key, SAC-GMM takes SAC's steps: the same losses,
    entropy and alpha at every update, the same critic, actor and log alpha after N updates,
    and the same stochastic and deterministic actions."""
    spec = EnvSpec(obs_dim=3, act_dim=2)
    common = dict(hidden=(16, 16), gamma=0.97, alpha=0.3, learn_alpha=True, lr=1e-3)
    s_algo = sac.build(spec, SACConfig(**common))
    g_algo = sac_gmm.build(spec, SACGMMConfig(**common, num_components=1, estimator=estimator))
    s_state = s_algo.init(jax.random.PRNGKey(7))
    g_state = g_algo.init(jax.random.PRNGKey(7))
    # The component takes SAC's actor parameters (a leading axis of length 1); the weight head
    # keeps its own (with O = 1 its softmax is 1 whatever they are).
    comp = jax.tree.map(lambda x: x[None], s_state.actor["params"]["_GaussianHead_0"])
    policy = {"params": {**g_state.policy["params"]}}
    policy["params"]["StackedGaussianPolicy_0"] = {"Vmap_GaussianHead_0": comp}
    g_state = g_state.replace(
        policy=policy,
        policy_opt=g_algo.opt.init(policy),
        critic=s_state.critic,
        target_critic=s_state.target_critic,
        critic_opt=s_state.critic_opt,
        key=s_state.key,
    )
    head = g_state.policy["params"]["MLP_0"]
    s_update, g_update = jax.jit(s_algo.update), jax.jit(g_algo.update)
    rng = np.random.default_rng(0)
    for _ in range(6):
        batch = _batch(rng, spec)
        s_state, s_m = s_update(s_state, batch)
        g_state, g_m = g_update(g_state, batch)
        for k in ("q_loss", "pi_loss", "entropy", "alpha", "q_mean"):
            assert float(g_m[k]) == pytest.approx(float(s_m[k]), rel=1e-5, abs=1e-6), k
        assert float(g_m["w_0"]) == 1.0
    comp_after = g_state.policy["params"]["StackedGaussianPolicy_0"]["Vmap_GaussianHead_0"]
    for x, y in zip(
        jax.tree.leaves(comp_after), jax.tree.leaves(s_state.actor["params"]["_GaussianHead_0"])
    ):
        np.testing.assert_allclose(np.asarray(x)[0], np.asarray(y), rtol=1e-5, atol=1e-6)
    for x, y in zip(jax.tree.leaves(g_state.critic), jax.tree.leaves(s_state.critic)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert float(g_state.log_alpha) == pytest.approx(float(s_state.log_alpha), abs=1e-6)
    # The weight head gets a zero gradient (softmax of one logit), so Adam leaves it unchanged.
    for x, y in zip(jax.tree.leaves(g_state.policy["params"]["MLP_0"]), jax.tree.leaves(head)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    obs = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    _, a_s, _ = s_algo.act(s_state, obs)
    _, a_g, _ = g_algo.act(g_state, obs)
    np.testing.assert_allclose(np.asarray(a_g), np.asarray(a_s), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(g_algo.act_deterministic(g_state, obs)),
        np.asarray(s_algo.act_deterministic(s_state, obs)),
        rtol=1e-5,
        atol=1e-6,
    )


# -- the estimators on a 1-D problem with a known objective --------------------------------------

ALPHA = 0.3
THETA = np.array([0.4, -0.3, -0.7, 0.5, np.log(0.4), np.log(0.6)])  # logits(2), means(2), log_stds


def _q(a):
    """A known critic with two bumps (a multimodal objective)."""
    return np.exp(-((a - 0.5) ** 2) / 0.08) + 0.8 * np.exp(-((a + 0.6) ** 2) / 0.05)


def _exact_objective(theta: np.ndarray) -> float:
    """J = E_{a~pi}[alpha log pi(a) - Q(a)] by quadrature in u = atanh(a), float64 NumPy."""
    logits, means, log_stds = theta[:2], theta[2:4], theta[4:6]
    w = np.exp(logits - logsumexp(logits))
    u = np.linspace(-9.0, 9.0, 36001)
    p_u = sum(w[i] * norm.pdf(u, means[i], np.exp(log_stds[i])) for i in range(2))
    log_pi_a = np.log(p_u) - np.log1p(-(np.tanh(u) ** 2))
    return float(np.trapezoid(p_u * (ALPHA * log_pi_a - _q(np.tanh(u))), u))


def _exact_gradient() -> np.ndarray:
    h = 1e-5
    return np.array(
        [
            (_exact_objective(THETA + h * e) - _exact_objective(THETA - h * e)) / (2 * h)
            for e in np.eye(6)
        ]
    )


def _per_draw_gradients(estimator: str, n: int, seed: int) -> np.ndarray:
    """n independent one-draw gradient estimates (n, 6) of J at THETA."""

    def q_fn(a):  # (O, B, 1) -> (O, B), the same bumps in JAX
        a = a[..., 0]
        return jnp.exp(-((a - 0.5) ** 2) / 0.08) + 0.8 * jnp.exp(-((a + 0.6) ** 2) / 0.05)

    def surrogate(theta, eps, gumbel):
        logits, mean, log_std = theta[None, :2], theta[2:4, None, None], theta[4:6, None, None]
        out, _ = sac_gmm.actor_objective(estimator, logits, mean, log_std, eps, gumbel, q_fn, ALPHA)
        return out[0]

    k_eps, k_g = jax.random.split(jax.random.PRNGKey(seed))
    eps = jax.random.normal(k_eps, (n, 2, 1, 1))
    gumbel = jax.random.gumbel(k_g, (n, 1, 2))
    grad = jax.vmap(jax.grad(surrogate), in_axes=(None, 0, 0))
    return np.asarray(grad(jnp.asarray(THETA, jnp.float32), eps, gumbel), np.float64)


def test_mrp_and_lr_gradients_match_quadrature_and_mrp_has_lower_variance():
    exact = _exact_gradient()
    n = 40_000
    variances = {}
    for estimator in ("mrp", "lr"):
        g = _per_draw_gradients(estimator, n, seed=11)
        mean, se = g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(n)
        # Unbiased: within 4.5 standard errors of the quadrature gradient, coordinate by
        # coordinate (plus float32 rounding of the per-draw gradients).
        assert np.all(np.abs(mean - exact) < 4.5 * se + 1e-4), (estimator, mean, exact, se)
        variances[estimator] = g.var(axis=0, ddof=1)
    # He et al.'s claim: MRP's variance is below LR's, here on the weights' logits and in total.
    assert variances["mrp"][:2].sum() < variances["lr"][:2].sum()
    assert variances["mrp"].sum() < variances["lr"].sum()
    # The test has power: the exact gradient is far from zero in the weights and the means.
    assert np.abs(exact[:4]).max() > 0.05


def test_objective_value_matches_quadrature():
    """The MRP surrogate's value is itself an unbiased estimate of J (LR's too)."""
    exact = _exact_objective(THETA)

    def q_fn(a):
        a = a[..., 0]
        return jnp.exp(-((a - 0.5) ** 2) / 0.08) + 0.8 * jnp.exp(-((a + 0.6) ** 2) / 0.05)

    n = 40_000
    k_eps, k_g = jax.random.split(jax.random.PRNGKey(5))
    eps = jax.random.normal(k_eps, (2, n, 1))
    gumbel = jax.random.gumbel(k_g, (n, 2))
    theta = jnp.asarray(THETA, jnp.float32)
    logits = jnp.broadcast_to(theta[:2], (n, 2))
    mean = jnp.broadcast_to(theta[2:4, None, None], (2, n, 1))
    log_std = jnp.broadcast_to(theta[4:6, None, None], (2, n, 1))
    for estimator in ("mrp", "lr"):
        vals, _ = sac_gmm.actor_objective(
            estimator, logits, mean, log_std, eps, gumbel, q_fn, ALPHA
        )
        vals = np.asarray(vals, np.float64)
        assert vals.mean() == pytest.approx(exact, abs=4.5 * vals.std() / np.sqrt(n) + 1e-4)


# -- from the CLI --------------------------------------------------------------------------------


def test_cli_trains_lr_estimator(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "train", "--algo", "sac-gmm", "--env", "awmp/Fork-v0", "--total-steps", "150",
        "--warmup-steps", "100", "--eval-interval", "150", "--eval-episodes", "1",
        "--log-interval", "50", "--no-progress", "--run-dir", str(run_dir),
        "--sac-gmm.estimator", "lr", "--sac-gmm.num-components", "3",
        "--sac-gmm.hidden", "16", "16", "--sac-gmm.batch-size", "8",
    ]  # fmt: skip
    assert cli_main(args) == 0
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["algo"] == "sac-gmm"
    assert config["sac_gmm"]["estimator"] == "lr"
    header = (run_dir / "train.csv").read_text().splitlines()[0].split(",")
    assert {"w_0", "w_1", "w_2", "pi_loss", "entropy"} <= set(header)


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--sac-gmm.num-components", "0", "sac_gmm.num_components)=0: must be in [1, 64]"),
        ("--sac-gmm.tau", "0", "sac_gmm.tau)=0.0: must be in (0, 1]"),
    ],
)
def test_cli_refuses_bad_values(flag, value, message, tmp_path, capsys):
    args = ["train", "--algo", "sac-gmm", "--run-dir", str(tmp_path / "r"), flag, value]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# -- awmp inspect on a SAC-GMM run of awmp/Peaks-v0 ----------------------------------------------


def test_inspect_shows_where_each_component_acts(tmp_path):
    """A tiny SAC-GMM run on awmp/Peaks-v0: `awmp inspect` records, per step, w(s) as rho, the
    responsibilities as h, and each component's action tanh(mu_g(s)), recomputed here from the
    loaded parameters with the network applied directly; the executed (evaluation) action is
    the component of largest weight."""
    import csv

    import awmp
    from awmp.algos.sac_gmm import SACGMM

    cfg = awmp.preset("paper")
    cfg.algo, cfg.env, cfg.seed = "sac-gmm", "awmp/Peaks-v0", 0
    cfg.total_steps, cfg.warmup_steps = 150, 100
    cfg.eval_interval, cfg.eval_episodes, cfg.log_interval, cfg.progress = 150, 1, 50, False
    cfg.sac_gmm.num_components, cfg.sac_gmm.hidden, cfg.sac_gmm.batch_size = 3, (16, 16), 8
    cfg.run_dir = str(tmp_path / "run")
    run_dir, _ = awmp.train(cfg)
    out = tmp_path / "inspect"
    assert cli_main(["inspect", str(run_dir), "--episodes", "1", "--out", str(out)]) == 0
    assert (out / "component_actions.png").stat().st_size > 5000
    with open(out / "weights.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50
    policy = awmp.load(run_dir)
    algo = SACGMM(policy.spec, policy.config.sac_gmm)
    obs = np.array([[float(r["obs0"]), float(r["obs1"])] for r in rows], np.float32)
    logits, mean, _ = (np.asarray(x, np.float64) for x in algo.policy_net.apply(
        policy.state.policy, jnp.asarray(obs)))  # fmt: skip
    w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    comp = np.array([[[float(r[f"comp{g}_action{i}"]) for i in range(2)] for g in range(3)]
                     for r in rows])  # fmt: skip
    np.testing.assert_allclose(comp, np.tanh(mean).transpose(1, 0, 2), atol=1e-5)
    rho = np.array([[float(r[f"rho{g}"]) for g in range(3)] for r in rows])
    np.testing.assert_allclose(rho, w, atol=1e-5)
    h = np.array([[float(r[f"h{g}"]) for g in range(3)] for r in rows])
    np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-5)
    action = np.array([[float(r[f"action{i}"]) for i in range(2)] for r in rows])
    np.testing.assert_allclose(action, comp[np.arange(50), w.argmax(axis=1)], atol=1e-5)
    summary = json.loads((out / "inspect.json").read_text())["components"]
    assert sum(c["active_fraction"] for c in summary) == pytest.approx(1.0)
    for g, c in enumerate(summary):
        np.testing.assert_allclose(c["mean_action"], comp[:, g].mean(axis=0), atol=1e-5)
        assert c["mean_weight"] == pytest.approx(w[:, g].mean(), abs=1e-5)
