"""SAC: the critic target and loss against a hand-written formula; terminal vs truncated; the
learned temperature's step against the sampled entropy."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import assert_first_adam_step, np_mlp

from awmp.algos import sac
from awmp.algos.sac import SACConfig
from awmp.buffer import ReplayBuffer
from awmp.envs import EnvSpec
from awmp.networks import GaussianPolicy, TwinCritic
from awmp.train import Components, train


def _hand_batch(rng, spec, terminated):
    b = len(terminated)
    return {
        "obs": rng.normal(size=(b, spec.obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(b, spec.act_dim)).astype(np.float32),
        "reward": rng.normal(size=b).astype(np.float32),
        "next_obs": rng.normal(size=(b, spec.obs_dim)).astype(np.float32),
        "terminated": np.asarray(terminated, np.float32),
    }


def _np_tanh_gauss_logp(eps, log_std, u):
    """log pi(tanh(u)|s) in float64 for u = mean + exp(log_std) eps, summed over dimensions."""
    # log(1 - tanh(u)^2) = -2 log cosh(u) = 2 log 2 - 2 logaddexp(u, -u): exact in float64 at
    # any |u|. log1p(-tanh(u)^2) is not: tanh rounds to 1 near |u| = 19 (-inf), and some 1e-4
    # is lost already at |u| = 15, enough to fail a test for an unlucky draw.
    log_det = 2 * np.log(2) - 2 * np.logaddexp(u, -u)
    return np.sum(-0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi) - log_det, -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("learn_alpha", [False, True])
def test_critic_target_and_loss_match_hand_formula(learn_alpha, seed):
    rng = np.random.default_rng(seed)
    spec = EnvSpec(obs_dim=3, act_dim=2)
    cfg = SACConfig(hidden=(16, 16), gamma=0.97, alpha=0.3, learn_alpha=learn_alpha)
    agent = sac.make_agent(spec, cfg)
    state = agent.init(jax.random.PRNGKey(int(rng.integers(2**31))))
    batch = _hand_batch(rng, spec, [0, 1, 0, 1, 0])

    # By hand, float64: y = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s'))
    _, k_next, _ = jax.random.split(state.key, 3)
    actor = GaussianPolicy(cfg.hidden, spec.act_dim)
    critic = TwinCritic(cfg.hidden)
    mean, log_std = (np.asarray(x, np.float64) for x in actor.apply(state.actor, batch["next_obs"]))
    eps = np.asarray(jax.random.normal(k_next, mean.shape), np.float64)
    u = mean + np.exp(log_std) * eps
    a_next = np.tanh(u)
    logp = _np_tanh_gauss_logp(eps, log_std, u)
    q_next = np.min(
        np.asarray(
            critic.apply(state.target_critic, batch["next_obs"], a_next.astype(np.float32)),
            np.float64,
        ),
        axis=0,
    )
    y = batch["reward"] + 0.97 * (1 - batch["terminated"]) * (q_next - 0.3 * logp)
    q = np.asarray(critic.apply(state.critic, batch["obs"], batch["action"]), np.float64)
    expected_q_loss = 0.5 * np.sum(np.mean((q - y) ** 2, axis=1))

    _, metrics = jax.jit(agent.update)(state, batch)
    assert float(metrics["q_loss"]) == pytest.approx(expected_q_loss, rel=1e-4)
    # terminal rows do not bootstrap: y = r exactly
    np.testing.assert_allclose(y[[1, 3]], batch["reward"][[1, 3]], rtol=0)


def test_update_changes_params_and_is_deterministic():
    spec = EnvSpec(obs_dim=3, act_dim=2)
    agent = sac.make_agent(spec, SACConfig(hidden=(8,)))
    state = agent.init(jax.random.PRNGKey(0))
    batch = _hand_batch(np.random.default_rng(0), spec, [0, 0, 1])
    s1, _ = jax.jit(agent.update)(state, batch)
    s2, _ = jax.jit(agent.update)(state, batch)
    leaves0, leaves1, leaves2 = (jax.tree.leaves(x.actor) for x in (state, s1, s2))
    assert any(not np.array_equal(a, b) for a, b in zip(leaves0, leaves1))
    assert all(np.array_equal(a, b) for a, b in zip(leaves1, leaves2))
    assert int(s1.step) == 1


class _RecordingBuffer(ReplayBuffer):
    records: list = []

    def add(self, **t):
        _RecordingBuffer.records.append({k: np.array(v) for k, v in t.items()})
        super().add(**t)


@pytest.mark.parametrize("env_id", ["test/Terminate-v0", "test/Asym-v0"])
def test_loop_stores_termination_not_truncation(env_id, tiny_cfg):
    """Only true termination is stored as terminal; at a time limit next_obs is the real s'."""
    _RecordingBuffer.records = []
    cfg = tiny_cfg(env=env_id, total_steps=12, warmup_steps=12, eval_interval=12)
    train(cfg, components=Components(make_buffer=_RecordingBuffer))
    recs = _RecordingBuffer.records
    assert len(recs) == 12
    t_in_episode = [int(r["next_obs"][0]) for r in recs]  # the toy env's obs is its step count
    if env_id == "test/Terminate-v0":
        assert t_in_episode[:6] == [1, 2, 3, 1, 2, 3]
        assert [float(r["terminated"]) for r in recs[:6]] == [0, 0, 1, 0, 0, 1]
    else:  # truncated by the 5-step TimeLimit: never terminal, and s' is the final state
        assert t_in_episode[:10] == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
        assert all(float(r["terminated"]) == 0 for r in recs)
        assert int(recs[5]["obs"][0]) == 0  # the next episode starts from the reset obs


@pytest.mark.parametrize(
    ("alpha", "log_std_shift", "side"), [(0.2, 0.0, 1), (0.05, -4.0, -1), (1.5, 2.0, -1)]
)
def test_update_takes_the_temperature_gradient_of_the_sampled_entropy(alpha, log_std_shift, side):
    """One SAC update with `learn_alpha` (Haarnoja et al. 2018b, eq. 18): the gradient Adam
    receives for log alpha (read back from its moments, m_1 = (1 - beta_1) g, v_1 = (1 - beta_2)
    g^2) is H - target with target = -|A| and H = -mean log pi(a~|s) of this step's actor
    samples, computed here in float64 NumPy from the actor's weights and the step's noise; log
    alpha moves by Adam's first step -lr g / |g|, against the sign of H - target; the losses of
    this step used the old alpha. Log-std heads shifted so that H lies on both sides of the
    target."""
    spec, b, lr = EnvSpec(obs_dim=3, act_dim=2), 64, 1e-3
    m = sac.build(spec, SACConfig(hidden=(16, 16), alpha=alpha, learn_alpha=True, lr=lr))
    state = m.init(jax.random.PRNGKey(11))
    dense = state.actor["params"]["_GaussianHead_0"]["MLP_0"]
    last = max(dense, key=lambda n: int(n.split("_")[1]))
    bias = dense[last]["bias"].at[spec.act_dim :].add(log_std_shift)
    dense = {**dense, last: {**dense[last], "bias": bias}}
    state = state.replace(actor={"params": {"_GaussianHead_0": {"MLP_0": dense}}})
    batch = _hand_batch(np.random.default_rng(11), spec, [0] * b)
    new, metrics = jax.jit(m.update)(state, batch)

    _, _, k_pi = jax.random.split(state.key, 3)  # the actor loss's sample
    out = np_mlp(dense, np.asarray(batch["obs"], np.float64))
    mean, log_std = out[:, : spec.act_dim], np.clip(out[:, spec.act_dim :], -20, 2)
    eps = np.asarray(jax.random.normal(k_pi, mean.shape), np.float64)
    u = mean + np.exp(log_std) * eps
    logp = _np_tanh_gauss_logp(eps, log_std, u)
    h, target = -np.mean(logp), -float(spec.act_dim)
    grad = h - target
    # H above the target (side 1: alpha falls) or below it (side -1: alpha rises; a wide
    # Gaussian squashed by tanh piles up at +-1, so its entropy is low too)
    assert side * grad > 0.1
    assert_first_adam_step(new.alpha_opt[0], float(state.log_alpha), float(new.log_alpha), grad, lr)
    assert float(metrics["alpha"]) == pytest.approx(alpha, rel=1e-6)
    assert float(metrics["entropy"]) == pytest.approx(h, rel=1e-4, abs=1e-5)
