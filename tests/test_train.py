"""The training loop end to end: smoke, evaluation purity, determinism, run dir, API."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest
from conftest import final_state, final_state_bytes

import awmp
from awmp.algos import sac
from awmp.envs import make_env
from awmp.evaluate import PARAMS_FILE, run_episodes


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_updates_and_writes_run_dir(tiny_cfg):
    cfg = tiny_cfg()
    run_dir, summary = awmp.train(cfg)
    for name in ("config.json", "eval.csv", "train.csv", "summary.json", PARAMS_FILE):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["total_steps"] == 300 and meta["jax_version"] == jax.__version__
    assert {"awmp_version", "git_commit", "host"} <= meta.keys()
    state = final_state(run_dir)  # the whole state (final_params: the acting fields)
    # one update after every env step from the one that completes the warm-up (100) to 300
    assert int(state.step) == 300 - 100 + 1
    init = sac.make_agent(make_env(cfg.env)[1], cfg.sac).init(jax.random.PRNGKey(cfg.seed))
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(init.actor), jax.tree.leaves(state.actor))
    ]
    assert all(changed)
    evals = _rows(run_dir / "eval.csv")
    assert [int(r["step"]) for r in evals] == [150, 300]
    train_rows = _rows(run_dir / "train.csv")
    assert [int(r["step"]) for r in train_rows] == [100, 200, 300]
    assert all(np.isfinite(float(r["q_loss"])) for r in train_rows)  # first update at step 100
    assert np.isfinite(float(train_rows[-1]["q_loss"]))
    assert summary["final_eval_return"] == pytest.approx(float(evals[-1]["return_mean"]))
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 300


def test_awmp_train_is_the_module_and_callable(tiny_cfg):
    """`awmp.train` is not shadowed by the function: the README's `awmp.train(cfg)`,
    `awmp.train.resume(run_dir)` and `import awmp.train` all name one object."""
    import importlib

    from awmp.config import ConfigError
    from awmp.train import resume, train

    assert importlib.import_module("awmp.train") is awmp.train
    assert awmp.train.resume is resume is awmp.resume and awmp.train.train is train
    with pytest.raises(ConfigError, match="total_steps"):  # the call goes to train()
        awmp.train(tiny_cfg(total_steps=0))
    run_dir, _ = awmp.train(tiny_cfg(total_steps=20, warmup_steps=10, eval_interval=20))
    run = awmp.train.resume(run_dir)  # finished: returns the saved summary
    assert run.run_dir == run_dir and run.summary["steps_done"] == 20
    # One run per call; a seed group is its own function, and says so.
    with pytest.raises(ConfigError, match=r"cfg.seeds=\(0, 1\) .*awmp.train_seeds\(cfg\)"):
        awmp.train(tiny_cfg(seeds=(0, 1)))
    with pytest.raises(ConfigError, match="train_seeds\\(cfg\\) needs cfg.seeds"):
        awmp.train_seeds(tiny_cfg())
    with pytest.raises(awmp.train.RunDirError, match=r"awmp.resume_seeds\(run_dirs\)"):
        awmp.resume([run_dir, run_dir])
    assert awmp.train_seeds is awmp.train.train_seeds
    assert awmp.resume_seeds is awmp.train.resume_seeds


def test_evaluation_does_not_change_params(tiny_cfg):
    run_dir, _ = awmp.train(tiny_cfg())
    policy = awmp.load(run_dir)
    before = jax.tree.map(np.array, policy.state)
    env, _ = make_env("Pendulum-v1", seed=3)
    run_episodes(lambda o: policy.act_normalized(o, True), env, 2)
    after = jax.tree.map(np.array, policy.state)
    assert all(  # the fields acting does not read are NaN placeholders (awmp.load)
        np.array_equal(a, b, equal_nan=True)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
    )


def test_same_seed_same_results(tmp_path):
    from conftest import small_config

    outs = []
    for name in ("a", "b"):
        run_dir, summary = awmp.train(small_config(run_dir=str(tmp_path / name)))
        outs.append((run_dir, summary))
    (d1, s1), (d2, s2) = outs
    assert [r["return_mean"] for r in _rows(d1 / "eval.csv")] == [
        r["return_mean"] for r in _rows(d2 / "eval.csv")
    ]
    assert (d1 / PARAMS_FILE).read_bytes() == (d2 / PARAMS_FILE).read_bytes()
    assert final_state_bytes(d1) == final_state_bytes(d2)
    # a different seed gives different parameters
    d3, _ = awmp.train(small_config(run_dir=str(tmp_path / "c"), seed=1))
    assert (d1 / PARAMS_FILE).read_bytes() != (d3 / PARAMS_FILE).read_bytes()


def test_load_act_reproduces_training_evaluation(tiny_cfg):
    """awmp.load(run_dir).act gives the deterministic actions the in-training evaluation used."""
    cfg = tiny_cfg(eval_interval=300, eval_episodes=2)
    run_dir, summary = awmp.train(cfg)
    policy = awmp.load(run_dir)
    from awmp.train import EVAL_SEED_OFFSET

    env, _ = make_env(cfg.env)
    env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)  # the evaluation env's stream, as in training
    returns, _ = run_episodes(lambda o: policy.act_normalized(o, True), env, 2)
    assert np.mean(returns) == pytest.approx(summary["final_eval_return"], rel=1e-6)

    # act() in env units on one observation and on a batch agree with the [-1, 1] actions
    obs = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    batch = policy.act(obs)
    assert batch.shape == (4, 1) and np.all(np.abs(batch) <= 2.0)  # Pendulum torque in [-2, 2]
    # One observation goes through the same (1, obs_dim) batch as a one-row batch: bitwise equal.
    np.testing.assert_array_equal(policy.act(obs[0]), policy.act(obs[:1])[0])
    # One row and a batch of four go through float32 matmuls of different shapes, whose sums
    # may round differently (4.5e-8 apart on an action of -0.02 once, CI 2026-12-02): an
    # absolute float32-rounding tolerance on torques of size 2, not a relative one near 0.
    np.testing.assert_allclose(policy.act(obs[0]), batch[0], rtol=1e-6, atol=1e-6)
    # low + (a + 1) (high - low) / 2 in float64 vs 2a: equal up to rounding near a = 0
    np.testing.assert_allclose(batch, 2.0 * policy.act_normalized(obs), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected an observation of shape \(3,\)"):
        policy.act(np.zeros(5))


def test_existing_run_dir_is_refused(tiny_cfg, tmp_path):
    from awmp.train import RunDirError

    (tmp_path / "run").mkdir()
    with pytest.raises(RunDirError, match="already exists"):
        awmp.train(tiny_cfg())


def test_load_refuses_non_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not an awmp run directory \(no config.json\)"):
        awmp.load(tmp_path)
