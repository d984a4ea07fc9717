"""TD3: target against a hand-written NumPy formula, noise clipping, delayed updates, smoke,
determinism and a calibrated Pendulum learning threshold."""

from __future__ import annotations

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_mlp, small_config

from awmp.algos import td3
from awmp.algos.td3 import TD3Config
from awmp.config import ConfigError, preset, validate
from awmp.envs import EnvSpec
from awmp.networks import DeterministicPolicy, TwinCritic
from awmp.train import train

OBS, ACT, B = 3, 2, 64


def _hand_batch(rng: np.random.Generator) -> dict:
    return {
        "obs": rng.normal(size=(B, OBS)).astype(np.float32),
        "action": rng.uniform(-1, 1, (B, ACT)).astype(np.float32),
        "reward": rng.normal(size=B).astype(np.float32),
        "next_obs": rng.normal(size=(B, OBS)).astype(np.float32),
        "terminated": (rng.uniform(size=B) < 0.3).astype(np.float32),
    }


def _jit_target(actor_net, critic_net, cfg):
    """td3.td_target compiled once (eager dispatch of every small op is slower)."""
    return jax.jit(lambda a, c, b, k: td3.td_target(actor_net, critic_net, a, c, b, k, cfg))


def _nets_and_params(seed: int, hidden=(16, 12)):
    actor_net, critic_net = DeterministicPolicy(hidden, ACT), TwinCritic(hidden)
    ka, kc = jax.random.split(jax.random.PRNGKey(seed))
    actor = actor_net.init(ka, jnp.zeros((1, OBS)))
    critic = critic_net.init(kc, jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    return actor_net, critic_net, actor, critic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_td_target_matches_hand_formula(seed):
    rng = np.random.default_rng(seed)
    batch = _hand_batch(rng)
    actor_net, critic_net, actor, critic = _nets_and_params(seed)
    cfg = TD3Config(gamma=0.97, policy_noise=0.2, noise_clip=0.5)
    y, next_a = _jit_target(actor_net, critic_net, cfg)(
        actor, critic, {k: jnp.asarray(v) for k, v in batch.items()}, jax.random.PRNGKey(seed + 10)
    )
    y, next_a = np.asarray(y, np.float64), np.asarray(next_a, np.float64)

    # Hand computation: mu_bar(s') = tanh(MLP(s')); |a' - mu_bar| <= c, a' in [-1, 1].
    mu = np.tanh(np_mlp(actor["params"]["MLP_0"], batch["next_obs"].astype(np.float64)))
    assert np.all(np.abs(next_a) <= 1.0)
    assert np.all(np.abs(next_a - mu) <= 0.5 + 1e-5)
    assert np.std(next_a - mu) > 0.05  # noise is really there
    # y = r + gamma (1 - d) min_j Qbar_j(s', a'), the Q's written out in NumPy.
    q_layers = critic["params"]["Vmap_QNet_0"]["MLP_0"]
    x = np.concatenate([batch["next_obs"].astype(np.float64), next_a], axis=1)
    q = np.stack([np_mlp(q_layers, x, member=j)[:, 0] for j in range(2)])
    expected = batch["reward"] + 0.97 * (1 - batch["terminated"]) * q.min(axis=0)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # Terminal rows are exactly the reward.
    term = batch["terminated"] == 1
    np.testing.assert_allclose(y[term], batch["reward"][term], rtol=1e-6)


def test_td_target_without_noise_uses_target_actor_action():
    rng = np.random.default_rng(5)
    batch = _hand_batch(rng)
    actor_net, critic_net, actor, critic = _nets_and_params(5)
    cfg = TD3Config(policy_noise=0.0)
    _, next_a = _jit_target(actor_net, critic_net, cfg)(
        actor, critic, {k: jnp.asarray(v) for k, v in batch.items()}, jax.random.PRNGKey(0)
    )
    mu = np.tanh(np_mlp(actor["params"]["MLP_0"], batch["next_obs"].astype(np.float64)))
    np.testing.assert_allclose(np.asarray(next_a), mu, atol=1e-5)


def test_smoothing_noise_is_clipped_gaussian():
    n = 200_000
    mu = jnp.zeros((n, 1))
    # sigma = 1, c = 0.5: P(|eps| >= c) = 2 (1 - Phi(0.5)) = erfc(0.5 / sqrt 2).
    a = np.asarray(td3.smoothed_target_action(jax.random.PRNGKey(0), mu, 1.0, 0.5))[:, 0]
    assert np.max(np.abs(a)) <= 0.5 + 1e-7
    frac_clipped = np.mean(np.abs(a) >= 0.5 - 1e-7)
    assert abs(frac_clipped - math.erfc(0.5 / math.sqrt(2))) < 0.005
    # sigma = 0.2, c = 0.5 (the paper's values): clipping at 2.5 sigma barely changes the std.
    a = np.asarray(td3.smoothed_target_action(jax.random.PRNGKey(1), mu, 0.2, 0.5))[:, 0]
    assert abs(np.std(a) - 0.2) < 0.01
    # The action box is respected: mu near the edge.
    a = np.asarray(td3.smoothed_target_action(jax.random.PRNGKey(2), mu + 0.9, 0.2, 0.5))
    assert np.max(a) <= 1.0 and np.mean(a == 1.0) > 0.2


def _tree_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b)))


def test_actor_and_targets_update_every_policy_delay_steps():
    cfg = TD3Config(hidden=(16, 16), batch_size=B, policy_delay=3)
    agent = td3.make_agent(EnvSpec(OBS, ACT), cfg)
    state0 = agent.init(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    batch = {k: jnp.asarray(v) for k, v in _hand_batch(np.random.default_rng(0)).items()}
    states = [state0]
    for _ in range(6):
        states.append(update(states[-1], batch)[0])
    for t in range(1, 7):
        prev, cur = states[t - 1], states[t]
        assert not _tree_equal(prev.critic, cur.critic), t  # the critic moves every step
        moved = t % 3 == 0
        assert _tree_equal(prev.actor, cur.actor) != moved, t
        assert _tree_equal(prev.target_actor, cur.target_actor) != moved, t
        assert _tree_equal(prev.target_critic, cur.target_critic) != moved, t
    assert int(states[-1].step) == 6


def test_act_explores_and_act_deterministic_is_mean():
    cfg = TD3Config(hidden=(16, 16), exploration_noise=0.1)
    agent = td3.make_agent(EnvSpec(OBS, ACT), cfg)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((1000, OBS))
    det = np.asarray(agent.act_deterministic(state, obs))
    new_state, action, extras = agent.act(state, obs)
    noise = np.asarray(action) - det
    assert extras == {}
    assert np.all(np.abs(np.asarray(action)) <= 1.0)
    assert abs(np.std(noise) - 0.1) < 0.01  # det is far from the box edge at init
    assert not np.array_equal(np.asarray(new_state.key), np.asarray(state.key))


def test_td3_config_validation():
    cfg = preset("paper")
    cfg.algo = "td3"
    assert validate(cfg).td3.hidden == (400, 300)
    cfg.td3.policy_delay = 0
    with pytest.raises(ConfigError, match=r"td3.policy_delay=0: must be >= 1"):
        validate(cfg)
    cfg.td3.policy_delay = 2
    cfg.td3.tau = 1.5
    with pytest.raises(ConfigError, match=r"td3.tau=1.5"):
        validate(cfg)


def _td3_config(tmp_path, name: str, **overrides):
    return small_config(algo="td3", run_dir=str(tmp_path / name), **overrides)


def _load_state(run_dir):
    import awmp

    return awmp.load(run_dir, which="checkpoint").state  # the whole final state


@pytest.fixture(scope="module")
def td3_run(tmp_path_factory):
    return train(_td3_config(tmp_path_factory.mktemp("td3"), "a"))


def test_td3_smoke(td3_run, tmp_path):
    run_a, summary = td3_run
    assert summary["steps_done"] == 300 and math.isfinite(summary["final_eval_return"])
    assert json.loads((run_a / "config.json").read_text())["config"]["algo"] == "td3"
    # Parameters moved away from their initial values.
    agent = td3.make_agent(EnvSpec(3, 1), _td3_config(tmp_path, "x").td3)
    init = agent.init(jax.random.PRNGKey(0))
    trained = _load_state(run_a)
    assert not _tree_equal(init.actor, trained.actor)
    assert not _tree_equal(init.critic, trained.critic)
    assert int(trained.step) >= 300 - 100  # one update per step after warm-up


def test_td3_determinism(td3_run, tmp_path):
    run_a, _ = td3_run
    run_b, _ = train(_td3_config(tmp_path, "b"))
    assert (run_a / "eval.csv").read_text().split("\n")[1].split(",")[:3] == (
        run_b / "eval.csv"
    ).read_text().split("\n")[1].split(",")[:3]
    trained = _load_state(run_a)
    assert _tree_equal(trained.actor, _load_state(run_b).actor)
    assert _tree_equal(trained.critic, _load_state(run_b).critic)


# TD3 learns Pendulum-v1: the mean of the last three evaluations (steps 8,000-10,000) >= -500.
# Calibration (paper preset for TD3: (400, 300), lr 1e-3, batch 100, delay 2, noise 0.1/0.2;
# 1,000 warm-up steps; 10 evaluation episodes every 1,000 steps), mean of the last three
# evaluations by seed: 0: -145, 1: -162, 2: -390, 3: -291, 4: -251, 5: -179, 6: -281, 7: -168,
# 8: -307, 9: -167 (untrained: -1400 to -1600 at step 1,000). A single evaluation is too noisy
# to test: TD3's Pendulum curves dip (seed 8 ends at -627 after -115 and -180), so the test
# averages three. Worst seed -390: ~110 margin. CI runs seed 0 (~1.5 minutes on 2 cores).
PENDULUM_STEPS = 10_000
PENDULUM_THRESHOLD = -500.0


@pytest.mark.slow
def test_td3_learns_pendulum(tmp_path):
    cfg = preset("paper")
    cfg.algo, cfg.env, cfg.seed = "td3", "Pendulum-v1", 0
    cfg.total_steps = PENDULUM_STEPS
    cfg.warmup_steps = 1000
    cfg.eval_interval = 1000
    cfg.eval_episodes = 10
    cfg.progress = False
    cfg.run_dir = str(tmp_path / "pendulum")
    run_dir, summary = train(cfg)
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows[-3:]] == [8000, 9000, 10_000]
    last3 = np.mean([float(r["return_mean"]) for r in rows[-3:]])
    assert last3 >= PENDULUM_THRESHOLD, (last3, summary)
