"""experiments/soft_value.py, the Peaks-v0 statistic of docs/RESULTS.md section 6: its
entropy estimator against exact entropies, its soft value for policies whose value is known
independently, and the script end to end on tiny SAC runs.

Tolerances. At N = 8192 draws and k = 4 the Kozachenko-Leonenko estimate has a standard
deviation of about 0.009-0.015 nats per estimate and a bias of -0.011 to +0.013 nats on smooth
densities (2-D Gaussian, tanh-Gaussians, their mixtures, the uniform square), and about +0.03
on a tanh-Gaussian whose mass piles up at the box's edges (sigma 1.5): measured over 100
replicate draws of each case below. The entropy tests average 4 independent estimates (SD
about 0.007), so 0.04 is the largest bias plus 4 SD (0.06 for the edge case); a wrong ball
volume (log pi = 1.14), a wrong dimension factor or neighbour (1/k = 0.25) fails them. The
exact entropies come from 500,000 draws of the exact float64 log-density (Monte Carlo SE about
0.001). Soft values: per context, E r has an SD of about 0.003 over 8192 draws and alpha H about
0.003, so over 20 contexts the mean has an SE near 0.001 and the bias is alpha x 0.013 < 0.003:
0.01 is that bias plus 4 SE with margin.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, small_config
from scipy.special import logsumexp
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 0.2  # the paper preset's temperature
N, K, REPS = 8192, 4, 4


sv = load_script("soft_value")


# -- independent reference computations (float64 NumPy/SciPy) -----------------------------------


def _log1m_tanh2(u):
    """log(1 - tanh(u)^2) without cancellation: 2 (log 2 - |u| - log(1 + exp(-2|u|)))."""
    au = np.abs(u)
    return 2.0 * (np.log(2.0) - au - np.log1p(np.exp(-2.0 * au)))


def _mixture_u(w, mu, sig, n, rng):
    """Pre-tanh draws u (n, d) of the mixture sum_g w_g N(mu_g, diag sig_g^2)."""
    w, mu, sig = np.asarray(w, float), np.asarray(mu, float), np.asarray(sig, float)
    g = rng.choice(len(w), size=n, p=w)
    return mu[g] + sig[g] * rng.standard_normal((n, mu.shape[1]))


def _exact_mixture_entropy(w, mu, sig, n=500_000, seed=99):
    """H of a = tanh(u), u from the mixture: -E log p(a), p(a) = sum_g w_g N(u; g) /
    prod_i (1 - tanh(u_i)^2) at u = atanh(a), evaluated at the drawn u itself (no atanh), by
    Monte Carlo; returns (H, its standard error)."""
    w, mu, sig = np.asarray(w, float), np.asarray(mu, float), np.asarray(sig, float)
    u = _mixture_u(w, mu, sig, n, np.random.default_rng(seed))
    comp = np.log(w)[None] + norm.logpdf(u[:, None, :], mu[None], sig[None]).sum(-1)
    logp = logsumexp(comp, axis=1) - _log1m_tanh2(u).sum(-1)
    return float(-logp.mean()), float(logp.std() / math.sqrt(n))


def _mean_estimate(draw, seed):
    rng = np.random.default_rng(seed)
    return float(np.mean([sv.kl_entropy(draw(rng), K)[0] for _ in range(REPS)]))


# -- (1) the estimator against exact entropies ---------------------------------------------------


def test_entropy_of_a_2d_gaussian_closed_form():
    cov = np.array([[0.04, 0.01], [0.01, 0.02]])
    exact = 0.5 * math.log((2 * math.pi * math.e) ** 2 * np.linalg.det(cov))
    est = _mean_estimate(lambda rng: rng.multivariate_normal([0.1, -0.2], cov, N), 1)
    assert est == pytest.approx(exact, abs=0.04)


def test_entropy_of_the_uniform_square():
    est = _mean_estimate(lambda rng: rng.uniform(-1, 1, (N, 2)), 2)
    assert est == pytest.approx(math.log(4.0), abs=0.04)


ATANH = np.arctanh([0.55, 0.6])
TANH_CASES = {
    "diagonal": ([1.0], [[0.5, -0.3]], [[0.3, 0.6]], 0.04),
    "diagonal, mass at the edges": ([1.0], [[0.0, 0.2]], [[1.0, 1.5]], 0.06),
    "two components": ([0.3, 0.7], [[0.6, 0.6], [-0.6, -0.2]], [[0.1, 0.2], [0.2, 0.1]], 0.04),
    "four components on the peaks": (
        [0.25] * 4,
        [[s1 * ATANH[0], s2 * ATANH[1]] for s1 in (1, -1) for s2 in (1, -1)],
        [[0.07, 0.07]] * 4,
        0.04,
    ),
}


@pytest.mark.parametrize("case", TANH_CASES)
def test_entropy_of_tanh_gaussians_and_mixtures(case):
    w, mu, sig, tol = TANH_CASES[case]
    exact, se = _exact_mixture_entropy(w, mu, sig)
    assert se < 0.002
    est = _mean_estimate(lambda rng: np.tanh(_mixture_u(w, mu, sig, N, rng)), 3)
    assert est == pytest.approx(exact, abs=tol), (case, est, exact)


def test_tied_draws_are_floored_and_counted():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 0.1, (8000, 2)), np.full((192, 2), 0.3)])
    h, ties = sv.kl_entropy(x, K)
    assert ties == 192 and math.isfinite(h)
    assert sv.kl_entropy(x[:8000], K)[1] == 0
    with pytest.raises(ValueError):
        sv.kl_entropy(x[:4], K)


# -- (2) the soft value of policies whose value is known -----------------------------------------


def _g(x, m):
    """One coordinate's reward as PeaksEnv documents it: bumps of width 0.1 at +-m."""
    return np.exp(-((x - m) ** 2) / 0.02) + np.exp(-((x + m) ** 2) / 0.02)


def _modes(c):
    return 0.55 + 0.15 * np.asarray(c, float)


U = np.linspace(-9, 9, 36_001)  # quadrature in u = atanh(a)


def _exact_v_1d_mixture(centres, s, m):
    """E g(tanh u) + alpha H(tanh u) - J*_1(m) for u from an equal-weight mixture of
    N(centre, s^2), by quadrature in u; J*_1 by its own quadrature over [-1, 1]."""
    p_u = np.mean([norm.pdf(U, c, s) for c in centres], axis=0)
    a = np.tanh(U)
    log_pa = np.log(np.maximum(p_u, 1e-300)) - _log1m_tanh2(U)
    value = np.trapezoid(p_u * (_g(a, m) - ALPHA * log_pa), U)
    x = np.linspace(-1, 1, 200_001)
    j1 = 2.0 + ALPHA * np.log(np.trapezoid(np.exp((_g(x, m) - 2.0) / ALPHA), x))
    return value - j1


CONTEXTS = 20


def _contexts():
    return sv.make_contexts(CONTEXTS)


def test_the_optimal_policy_has_soft_value_zero():
    """pi* = exp(r/alpha)/Z, a product of two 1-D densities, drawn by inverse CDF on a fine
    grid: V = 0 up to the estimator's error, on every context; all four peaks covered."""
    rng = np.random.default_rng(5)
    x = np.linspace(-1, 1, 200_001)

    def sample(c, n):
        out = []
        for m in _modes(c):
            f = np.exp((_g(x, m) - 2.0) / ALPHA)
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
            out.append(np.interp(rng.uniform(size=n), cdf / cdf[-1], x))
        return np.stack(out, axis=1)

    pc = sv.per_context(sample, _contexts(), ALPHA, N, K)
    s = sv.summarise(pc)
    assert abs(s["soft_value"]) < 0.01, s
    assert np.all(np.abs(pc["v"]) < 0.03)
    assert s["mean_coverage"] == 4.0 and s["frac_above_bound"] == 1.0 and s["above_bound"]


@pytest.mark.parametrize("components", [1, 4])
def test_soft_value_of_tanh_gaussians_on_the_peaks(components):
    """A single diagonal tanh-Gaussian on the peak (+m_1, +m_2) (sigma 0.08 before the tanh,
    about the best width) stays below -0.26, as tasks.PeaksEnv proves for every one; four
    components, one per peak, come close to 0. Both against their exact values by 1-D
    quadrature (each factorises over the coordinates)."""
    rng = np.random.default_rng(6)
    s = 0.08

    def sample(c, n):
        centre = np.arctanh(_modes(c))
        signs = rng.choice([-1.0, 1.0], (n, 2)) if components == 4 else 1.0
        return np.tanh(signs * centre + s * rng.standard_normal((n, 2)))

    ctx = _contexts()
    pc = sv.per_context(sample, ctx, ALPHA, N, K)
    exact = np.array([
        sum(
            _exact_v_1d_mixture([u] if components == 1 else [u, -u], s, m)
            for u, m in zip(np.arctanh(_modes(c)), _modes(c))
        )
        for c in ctx
    ])  # fmt: skip
    summary = sv.summarise(pc)
    assert summary["soft_value"] == pytest.approx(exact.mean(), abs=0.01)
    if components == 1:
        assert exact.max() < -0.26 and summary["soft_value"] < -0.26
        assert summary["frac_above_bound"] == 0.0 and summary["mean_coverage"] == 1.0
    else:
        assert exact.min() > -0.05 and summary["soft_value"] > -0.05
        assert summary["frac_above_bound"] == 1.0 and summary["mean_coverage"] == 4.0


def test_contexts_are_the_documented_draw():
    c = np.random.default_rng(12345).uniform(-1.0, 1.0, (200, 2))
    np.testing.assert_array_equal(sv.make_contexts(200, 12345), c.astype(np.float32))
    assert sv.make_contexts(200).dtype == np.float64


# -- (3) end to end on tiny SAC runs -------------------------------------------------------------


@pytest.fixture(scope="module")
def sac_runs(tmp_path_factory):
    """Two tiny SAC runs of awmp/Peaks-v0 (seeds 0 and 1), checkpoints at 100, 200, 300."""
    import awmp

    root = tmp_path_factory.mktemp("peaks")
    runs = []
    for seed in (0, 1):
        cfg = small_config("sac", "awmp/Peaks-v0", seed=seed, run_dir=str(root / f"sac{seed}"))
        cfg.checkpoint_interval, cfg.keep_checkpoints = 100, 5
        runs.append(Path(awmp.train(cfg).run_dir))
    return runs


def _exact_sac_context(run_dir, c):
    """E r and H of a loaded SAC run's tanh-Gaussian at context c, by 1-D quadrature from the
    actor's mean and log-std (the actor network applied directly)."""
    import jax.numpy as jnp

    import awmp
    from awmp.algos import sac

    policy = awmp.load(run_dir)
    net = sac.build(policy.spec, policy.config.sac).actor_net
    mean, log_std = net.apply(policy.state.actor, jnp.asarray(np.float32(c))[None])
    mean, std = np.asarray(mean, float)[0], np.exp(np.asarray(log_std, float)[0])
    er = h = 0.0
    for mu, sd, m in zip(mean, std, _modes(c)):
        p_u = norm.pdf(U, mu, sd)
        er += np.trapezoid(p_u * _g(np.tanh(U), m), U)
        h += 0.5 * math.log(2 * math.pi * math.e * sd**2) + np.trapezoid(p_u * _log1m_tanh2(U), U)
    return er, h


def test_script_end_to_end(sac_runs, tmp_path, capsys):
    out = tmp_path / "soft.json"
    args = ["--contexts", "4", "--draws", "4096", "--out", str(out)]
    rows = sv.main([*map(str, sac_runs), *args])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("step 300: V " in x for x in lines)
    saved = json.loads(out.read_text())
    assert [r["seed"] for r in saved] == [0, 1] and saved == json.loads(json.dumps(rows))
    c = np.random.default_rng(12345).uniform(-1, 1, (4, 2)).astype(np.float32).astype(float)
    for r, run in zip(saved, sac_runs):
        assert r["algo"] == "sac" and r["step"] == 300 and r["run_dir"] == str(run)
        assert r["alpha"] == ALPHA and r["alpha_source"] == "sac.alpha"
        assert r["params"].endswith("final_params.msgpack")
        np.testing.assert_array_equal(r["per_context"]["context"], c)
        assert r["settings"]["draws"] == 4096 and r["settings"]["k"] == 4
        pc = {k: np.asarray(v) for k, v in r["per_context"].items()}
        assert r["soft_value"] == pytest.approx(pc["v"].mean(), rel=1e-12)
        assert r["soft_value_se"] == pytest.approx(pc["v"].std(ddof=1) / 2, rel=1e-12)
        np.testing.assert_allclose(pc["v"], pc["reward"] + ALPHA * pc["entropy"] - pc["j_star"])
        assert set(pc["coverage"]) <= {0, 1, 2, 3, 4}
        assert r["frac_above_bound"] == np.mean(pc["v"] > -0.26)
        # The draws are the run's tanh-Gaussian: E r and H against exact values per context
        # (at 4096 draws the estimator's SD is about 0.02, its edge bias up to 0.04).
        for i, ci in enumerate(c):
            er, h = _exact_sac_context(run, ci)
            assert pc["reward"][i] == pytest.approx(er, abs=0.03)
            assert pc["entropy"][i] == pytest.approx(h, abs=0.1)
        assert np.all(pc["entropy"] < math.log(4.0) + 0.1)  # no density on the box beats uniform
    # Same contexts for every run: same digest, same J*.
    assert saved[0]["settings"]["contexts_sha256"] == saved[1]["settings"]["contexts_sha256"]
    assert saved[0]["per_context"]["j_star"] == saved[1]["per_context"]["j_star"]
    # A checkpoint by step merges in; scoring it again replaces its row.
    for _ in range(2):
        (row,) = sv.main([str(sac_runs[0]), "--checkpoint", "200", *args])
    saved = json.loads(out.read_text())
    assert [(r["seed"], r["step"]) for r in saved] == [(0, 300), (1, 300), (0, 200)]
    assert row["params"].endswith("step_000000000200.ckpt")
    assert row["per_context"]["context"] == saved[0]["per_context"]["context"]


def _refusal(args) -> str:
    with pytest.raises(SystemExit) as e:
        sv.main(args)
    msg = str(e.value.code)
    assert msg.startswith("soft_value: ") and "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "change, message",
    [
        ({"algo": "td3"}, "no entropy temperature"),
        ({"sac": {"learn_alpha": True}}, "learns its temperature"),
        ({"env": "awmp/Fork-v0"}, "scores awmp/Peaks-v0 runs"),
    ],
)
def test_refuses_what_it_cannot_score(sac_runs, tmp_path, change, message):
    run = tmp_path / "run"
    shutil.copytree(sac_runs[0], run)
    meta = json.loads((run / "config.json").read_text())
    for k, v in change.items():
        if isinstance(v, dict):
            meta["config"][k].update(v)
        else:
            meta["config"][k] = v
    (run / "config.json").write_text(json.dumps(meta))
    assert message in _refusal([str(run)])
    if "algo" in change or "sac" in change:  # --alpha scores it at the given temperature
        assert sv.check_run(run, 0.2)[2:] == (0.2, "--alpha")


def test_refuses_a_missing_checkpoint(sac_runs):
    msg = _refusal([str(sac_runs[0]), "--checkpoint", "250"])
    assert "no checkpoint at step 250" in msg and "100, 200, 300" in msg
