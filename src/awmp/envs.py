"""Environment creation: space checks, action rescaling to [-1, 1]^d, clear refusals."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from awmp.errors import UserError


class EnvError(UserError):
    """An environment this project cannot train on; the message says what was found and why."""


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to know about an environment."""

    obs_dim: int
    act_dim: int


def _suggest(env_id: str) -> str:
    ids = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def check_spaces(env_id: str, env: gym.Env) -> EnvSpec:
    """Refuse spaces the algorithms cannot handle; return the flat dimensions."""
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, gym.spaces.Box):
        raise EnvError(f"{env_id}: only Box (continuous) action spaces are supported, got {act}")
    if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        raise EnvError(
            f"{env_id}: only bounded Box action spaces are supported, got low={act.low}, "
            f"high={act.high}"
        )
    if not isinstance(obs, gym.spaces.Box):
        raise EnvError(f"{env_id}: only Box observation spaces are supported, got {obs}")
    if len(act.shape) != 1 or len(obs.shape) != 1:
        raise EnvError(
            f"{env_id}: only flat (1-D) Box spaces are supported, got action shape {act.shape} "
            f"and observation shape {obs.shape}"
        )
    return EnvSpec(obs_dim=int(obs.shape[0]), act_dim=int(act.shape[0]))


def make_env(env_id: str, seed: int | None = None, **kwargs) -> tuple[gym.Env, EnvSpec]:
    """Make `env_id`, check its spaces and rescale its actions so the agent acts in [-1, 1]^d.

    The returned env accepts actions in [-1, 1]^d (clipped there first) and maps them affinely
    onto the env's own bounds, asymmetric ones included.
    """
    if ":" in env_id:  # "module:Env-v0": gym imports the module; say so when that fails
        module = env_id.split(":", 1)[0]
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any failure of a user module is bad input
            raise EnvError(
                f"cannot import module {module!r} for environment {env_id!r}: "
                f"{type(e).__name__}: {e}"
            ) from None
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:  # NameNotFound, VersionNotFound, NamespaceNotFound, ...
        raise EnvError(f"unknown environment {env_id!r} ({e}){_suggest(env_id)}") from None
    except ImportError as e:  # the registered entry point's module cannot be imported
        raise EnvError(f"cannot create environment {env_id!r}: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a user env failing in its constructor is bad input
        raise EnvError(
            f"environment {env_id!r} raised {type(e).__name__} when created: {e}"
        ) from None
    try:
        spec = check_spaces(env_id, env)
    except EnvError:
        env.close()
        raise
    # The new bounds in the env's own dtype: float32 ones given to a float64 Box make gymnasium
    # warn "overflow encountered in cast" while it checks them against float64's range.
    act_dtype = env.action_space.dtype
    ones = np.ones(spec.act_dim, act_dtype if np.issubdtype(act_dtype, np.floating) else np.float32)
    env = gym.wrappers.ClipAction(gym.wrappers.RescaleAction(env, -ones, ones))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env, spec
