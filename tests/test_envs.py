"""Environment checks: refusals with clear messages, and rescaling to the env's own bounds."""

from __future__ import annotations

import numpy as np
import pytest

from awmp.envs import EnvError, make_env


def test_refuses_discrete_actions():
    with pytest.raises(EnvError, match=r"only Box .*action spaces.*got Discrete\(2\)"):
        make_env("CartPole-v1")


def test_refuses_unbounded_actions():
    with pytest.raises(EnvError, match="only bounded Box action spaces"):
        make_env("test/Unbounded-v0")


def test_refuses_non_box_observations():
    with pytest.raises(EnvError, match="only Box observation spaces.*got Dict"):
        make_env("test/DictObs-v0")


def test_unknown_env_suggests_close_match():
    with pytest.raises(EnvError, match=r"unknown environment 'Hoper-v5'.*did you mean Hopper-v5"):
        make_env("Hoper-v5")


def test_asymmetric_bounds_are_rescaled():
    env, spec = make_env("test/Asym-v0", seed=0)
    assert spec.act_dim == 2
    inner = env.unwrapped
    for a, expected in [
        ((-1, -1), (0, -3)),
        ((1, 1), (10, 1)),
        ((0, 0), (5, -1)),
        ((5, -7), (10, -3)),
    ]:  # out-of-box actions are clipped first
        env.step(np.asarray(a, np.float64))
        np.testing.assert_allclose(inner.last_action, expected, rtol=1e-6, atol=1e-6)


def test_mujoco_spec():
    env, spec = make_env("Hopper-v5", seed=0)
    assert (spec.obs_dim, spec.act_dim) == (11, 3)
    env.close()
