"""Algorithm registry and the small interface every algorithm module implements.

An algorithm module exposes `make_agent(spec, cfg) -> Agent`. The `Agent` holds pure functions
over a pytree state; the training loop (awmp.train) is the same for every algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

State = Any
Batch = dict[str, jax.Array]


@dataclass(frozen=True)
class Agent:
    """Pure functions of one algorithm, closed over its (static) config.

    init(key) -> state
    act(state, obs) -> (state, action, extras): stochastic; obs (B, obs_dim); the state's key
        is split inside, extras are stored in the buffer with the transition (e.g. log_mu).
    act_deterministic(state, obs) -> action: evaluation.
    update(state, batch) -> (state, metrics): one gradient step.
    hook_draw(env_step, buffer, rng, grad_steps) -> data | None: the host side of an algorithm
        hook (SAC-AWMP's prior burst), called by the loop after every environment step, once per
        seed with that seed's buffer and NumPy generator; None when there is nothing to do.
        grad_steps: gradient steps taken so far (the loop's count, so the host never waits on
        the device).
    hook_apply(state, data) -> (state, metrics): the hook's pure, jittable part; the loop vmaps
        it over seeds (data stacked on a leading seed axis).
    hook(state, env_step, buffer, rng) -> (state, metrics | None): draw + jitted apply on one
        unstacked state, metrics as floats (for tools and tests).
    """

    name: str
    init: Callable[[jax.Array], State]
    act: Callable[[State, jax.Array], tuple[State, jax.Array, dict]]
    act_deterministic: Callable[[State, jax.Array], jax.Array]
    update: Callable[[State, Batch], tuple[State, dict]]
    extra_fields: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warmup_extras: Callable[[np.ndarray], dict] = lambda action: {}
    hook_draw: Callable[..., Any] | None = None
    hook_apply: Callable[[State, Any], tuple[State, dict]] | None = None
    hook: Callable[..., tuple[State, dict | None]] | None = None
    hook_metric_names: tuple[str, ...] = ()


def polyak(target: Any, online: Any, tau: float) -> Any:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


def make_update_burst(agent: Agent) -> Callable:
    """(state, batches) -> (state, last metrics): `lax.scan` of `update` over the leading axis."""

    def burst(state: State, batches: Batch):
        state, metrics = jax.lax.scan(agent.update, state, batches)
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return burst


def make_train_step(agent: Agent) -> Callable:
    """One jitted call per environment step: `updates` gradient steps, then act on the new obs.

    Updating first and then acting with the updated state is exactly the order of the plain
    loop (act -> env.step -> store -> update -> act on the next obs), so fusing changes no number.
    batches: every field with a leading axis of length updates_per_step.
    """

    burst = make_update_burst(agent)

    def train_step(state: State, batches: Batch, obs: jax.Array):
        state, metrics = burst(state, batches)
        state, action, extras = agent.act(state, obs)
        return state, action, extras, metrics

    return jax.jit(train_step)


# algorithm name -> module in awmp.algos
REGISTRY = {"sac": "sac", "sac-awmp": "sac_awmp", "td3": "td3"}


def get(name: str):
    """The algorithm module registered under `name`."""
    import importlib

    if name not in REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; supported: {', '.join(REGISTRY)}")
    return importlib.import_module(f"awmp.algos.{REGISTRY[name]}")


def metric_names(agent: Agent, state: State, batch: Batch) -> tuple[str, ...]:
    """The metric keys `update` returns, found without running it."""
    _, metrics = jax.eval_shape(agent.update, state, batch)
    return tuple(sorted(metrics))


def to_jnp(batch: dict[str, np.ndarray]) -> Batch:
    return {k: jnp.asarray(v) for k, v in batch.items()}
