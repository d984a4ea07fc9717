"""Environment creation: space checks, action rescaling to [-1, 1]^d, clear refusals."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
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
    return prepare_env(env_id, env, seed)


def prepare_env(env_id: str, env: gym.Env, seed: int | None = None) -> tuple[gym.Env, EnvSpec]:
    """`make_env`'s work on an env already made (`env_id` names it in messages): check its
    spaces, rescale its actions to [-1, 1]^d, and seed it."""
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


# An env factory: called with no arguments, returns a new Gymnasium env (wrappers and all).
EnvFactory = Callable[[], gym.Env]


def factory_name(factory: EnvFactory) -> str:
    """`module.qualname` of an env factory, as config.json's "env_factory" records it."""
    module = getattr(factory, "__module__", None) or ""
    qualname = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{module}.{qualname}" if module else qualname


def factory_label(factory: EnvFactory) -> str:
    """The run's `env` when it is made by `factory`: its name without the module, in the
    characters a directory name takes (the default run directory is runs/<env>/...)."""
    name = factory_name(factory).rsplit(".", 1)[-1]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_") or "env"


def make_env_from(
    factory: EnvFactory, seed: int | None = None, **kwargs
) -> tuple[gym.Env, EnvSpec]:
    """`make_env` for an env factory: call it, check the env it returns and rescale it exactly
    as `make_env` does a registered id. `kwargs` (env_kwargs) are refused: pass them inside the
    factory."""
    name = factory_name(factory)
    if kwargs:
        raise EnvError(
            f"env_kwargs {sorted(kwargs)} apply to registered ids; with the env factory {name}, "
            "pass them inside it"
        )
    try:
        env = factory()
    except Exception as e:  # noqa: BLE001 - a user factory failing is bad input
        raise EnvError(f"the env factory {name} raised {type(e).__name__}: {e}") from None
    if not isinstance(env, gym.Env):
        raise EnvError(f"the env factory {name} returned {type(env).__name__}, not a Gymnasium env")
    return prepare_env(name, env, seed)


def check_factory(recorded: dict | None, factory: EnvFactory | None, where: str, how: str) -> None:
    """Refuse a run continued or loaded (`how`, e.g. "awmp.resume(run_dir, env=...)") with
    another env than it was trained with: `recorded` is config.json's "env_factory" (None: a
    registered id), `factory` the env factory given now (None: none)."""
    if recorded is None and factory is None:
        return
    if recorded is None:
        raise EnvError(
            f"{where} was trained on a registered env id, not an env factory: {how} without env="
        )
    if factory is None:
        raise EnvError(
            f"{where} was trained with the env factory {recorded['name']}; pass the same one: "
            f"{how} (the awmp command cannot make its env)"
        )
    if factory_name(factory) != recorded["name"]:
        raise EnvError(
            f"{where} was trained with the env factory {recorded['name']}, not "
            f"{factory_name(factory)}: pass the same one"
        )


def recorded_factory(run_dir) -> dict | None:
    """config.json's "env_factory" of a run directory: {"name", "env_id"} when the run was
    trained with an env factory; None for a registered id (or a config.json it cannot read:
    reading it properly is left to the caller)."""
    import json
    from pathlib import Path

    try:
        found = json.loads((Path(run_dir) / "config.json").read_text()).get("env_factory")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("name"), str) else None
