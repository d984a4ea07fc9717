"""Shared test helpers: tiny custom envs and a fast config builder."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from awmp.config import TrainConfig, preset


class BoxEnv(gym.Env):
    """A 1-step-per-call toy env with configurable spaces, for space checks and rescaling."""

    def __init__(self, low=(-1.0,), high=(1.0,), obs_space=None, horizon=5, terminate_at=None):
        self.action_space = gym.spaces.Box(
            np.asarray(low, np.float32), np.asarray(high, np.float32)
        )
        self.observation_space = obs_space or gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.horizon = horizon
        self.terminate_at = terminate_at
        self.last_action = None
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.last_action = np.asarray(action)
        self.t += 1
        obs = np.full(2, self.t, np.float32)
        return obs, 1.0, self.t == self.terminate_at, False, {}


def _register(env_id: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=BoxEnv, kwargs=kwargs, max_episode_steps=5)


_register("test/Asym-v0", low=(0.0, -3.0), high=(10.0, 1.0))
_register("test/Terminate-v0", terminate_at=3)  # terminates at t=3, else truncated at t=5
_register("test/Unbounded-v0", low=(-np.inf,), high=(np.inf,))
_register(
    "test/DictObs-v0",
    obs_space=gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32)}),
)


def small_config(algo: str = "sac", env: str = "Pendulum-v1", **overrides) -> TrainConfig:
    """A config that trains a tiny agent for a few hundred steps (seconds)."""
    cfg = preset("paper")
    cfg.algo = algo
    cfg.env = env
    cfg.total_steps = 300
    cfg.warmup_steps = 100
    cfg.eval_interval = 150
    cfg.eval_episodes = 1
    cfg.log_interval = 100
    cfg.progress = False
    for section in (cfg.sac, cfg.td3, cfg.crossq, cfg.sac_gmm):
        section.hidden = (32, 32)
        section.batch_size = 16
    cfg.crossq.policy_hidden = (32, 32)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def final_state_bytes(run_dir) -> bytes:
    """The whole final agent state of a finished run, as bytes to compare runs bit for bit:
    every parameter, optimiser moment, target network, key and counter, from the run's newest
    checkpoint (a finished run's is the final step's). final_params.msgpack holds only the
    fields acting reads."""
    import flax.serialization

    from awmp import checkpoint

    found = checkpoint.list_checkpoints(run_dir)
    assert found, f"{run_dir} has no checkpoint"
    return flax.serialization.msgpack_serialize(checkpoint.load(found[-1][1]).agent)


def final_state(run_dir):
    """The whole final agent state of a finished run (its newest checkpoint's), as a pytree."""
    import awmp

    return awmp.load(run_dir, which="checkpoint").state


def np_mlp(layers, x, member: int | None = None):
    """Dense-ReLU-...-Dense in float64 from a flax MLP's {'Dense_i': {'kernel', 'bias'}} dict:
    the tests' independent forward pass of awmp.networks.MLP; `member` picks one slice of a
    stacked (vmapped) ensemble."""
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(names):
        w = np.asarray(layers[name]["kernel"], np.float64)
        b = np.asarray(layers[name]["bias"], np.float64)
        if member is not None:
            w, b = w[member], b[member]
        x = x @ w + b
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return x


def assert_first_adam_step(adam, old: float, new: float, grad: float, lr: float) -> None:
    """optax Adam's first step (b1 0.9, b2 0.999, eps 1e-8) on a scalar with gradient `grad`:
    its moments m_1 = (1 - b1) g and v_1 = (1 - b2) g^2, and the parameter moves by
    -lr g / (|g| + eps) (bias-corrected moments of one step)."""
    assert int(adam.count) == 1
    assert float(adam.mu) == pytest.approx(0.1 * grad, rel=1e-4, abs=1e-6)
    assert float(adam.nu) == pytest.approx(1e-3 * grad**2, rel=1e-4)
    assert new - old == pytest.approx(-lr * grad / (abs(grad) + 1e-8), rel=1e-3)


def load_script(name: str):
    """experiments/<name>.py as a module (the study scripts are not part of the package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(**overrides):
        overrides.setdefault("run_dir", str(tmp_path / "run"))
        return small_config(**overrides)

    return make


@pytest.fixture(scope="session", autouse=True)
def _session_compile_cache(tmp_path_factory):
    """The persistent XLA compile cache (tests/reliability.py) for the whole session.

    Many tests train the same tiny configurations; reusing the identical executables cuts the
    suite's compile time and changes no number.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache
    from reliability import _OPTIONS, cache_dir

    old = {k: getattr(jax.config, k) for k in _OPTIONS}
    for k, v in {**_OPTIONS, "jax_compilation_cache_dir": cache_dir(tmp_path_factory)}.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()
    yield
    for k, v in old.items():
        jax.config.update(k, v)
