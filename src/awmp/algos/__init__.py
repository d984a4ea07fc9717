"""The algorithm interface: what one algorithm module provides, and the pure `Agent` it builds.

An algorithm is one module in awmp.algos that defines `ALGORITHM = Algorithm(...)`: its name,
report label, config section (a dataclass with its own docstrings and checks), presets and
`make_agent(spec, cfg) -> Agent`. awmp.algos.registry lists the modules; config, CLI, report
and experiment read everything else from there. The `Agent` holds pure functions over a pytree
state; the training loop (awmp.trainer) is the same for every algorithm, and an algorithm with
host-side work between updates (SAC-AWMP's prior burst) gives its Agent a `Hook`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

State = Any
Batch = dict[str, jax.Array]


@dataclass(frozen=True)
class Hook:
    """Host-side work between updates, e.g. SAC-AWMP's prior burst (the loop's algorithm hook).

    due(env_step) -> bool: whether the hook may have work after this environment step (cheap,
        host only; the loop skips `draw` otherwise).
    draw(env_step, buffer, rng, grad_steps) -> data | None: the host side, called once per seed
        with that seed's buffer and NumPy generator when `due`; None when there is nothing to
        do after all. grad_steps: gradient steps taken so far (the loop's count, so the host
        never waits on the device).
    apply(state, data) -> (state, metrics): the pure, jittable part; the loop vmaps it over
        seeds (data stacked on a leading seed axis).
    metric_names: the keys of apply's metrics (fixed train.csv columns).
    Calling the hook, `hook(state, env_step, buffer, rng) -> (state, metrics | None)`, runs
    draw + jitted apply on one unstacked state with metrics as floats (for tools and tests).
    """

    due: Callable[[int], bool]
    draw: Callable[..., Any]
    apply: Callable[[Any, Any], tuple[Any, dict]]
    metric_names: tuple[str, ...] = ()

    def __call__(self, state: Any, env_step: int, buffer: Any, rng: np.random.Generator):
        if not self.due(env_step):
            return state, None  # nothing due: do not read state.step from the device
        data = self.draw(env_step, buffer, rng, int(state.step))
        if data is None:
            return state, None
        state, metrics = self._jitted_apply(state, data)
        return state, {k: float(v) for k, v in jax.device_get(metrics).items()}

    @functools.cached_property
    def _jitted_apply(self) -> Callable:
        return jax.jit(self.apply)


@dataclass(frozen=True)
class Agent:
    """Pure functions of one algorithm, closed over its (static) config.

    init(key) -> state
    act(state, obs) -> (state, action, extras): stochastic; obs (B, obs_dim); the state's key
        is split inside, extras are stored in the buffer with the transition (e.g. log_mu).
    act_deterministic(state, obs) -> action: evaluation.
    update(state, batch) -> (state, metrics): one gradient step.
    extra_fields / warmup_extras: the extras' buffer shapes and their values for warm-up actions.
    hook: host-side work between updates (`Hook`), or None.
    acting_fields: the state's fields that acting reads: `act`, `act_deterministic` and an
        inspection tool's (SAC-AWMP's and TD3-AWMP's `weights`), the key included since `act`
        splits it. final_params.msgpack and best_params.msgpack hold these fields only;
        `awmp.load` fills the others with NaN (integers: 0), so a field missing here shows up
        as NaN actions. None: the whole state (checkpoints always hold the whole state).
    """

    name: str
    init: Callable[[jax.Array], State]
    act: Callable[[State, jax.Array], tuple[State, jax.Array, dict]]
    act_deterministic: Callable[[State, jax.Array], jax.Array]
    update: Callable[[State, Batch], tuple[State, dict]]
    extra_fields: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warmup_extras: Callable[[np.ndarray], dict] = lambda action: {}
    hook: Hook | None = None
    acting_fields: tuple[str, ...] | None = None

    @classmethod
    def of(cls, algo: Any, name: str, **fields: Any) -> Agent:
        """The Agent of an algorithm object's pure methods `init`, `act`, `act_deterministic`
        and `update` (as every algorithm module's class has them), with the other `fields`."""
        return cls(
            name=name,
            init=algo.init,
            act=algo.act,
            act_deterministic=algo.act_deterministic,
            update=algo.update,
            **fields,
        )


@dataclass(frozen=True)
class Algorithm:
    """Everything awmp needs to know about one algorithm (its module's `ALGORITHM`).

    name: the `--algo` value. label: its name in reports and in published_returns.csv.
    section: its config section, the TrainConfig field and CLI prefix (`--<section>.hidden`).
    config: the section's dataclass; each field's docstring is its `--help` text and cites
        the paper or code it comes from. It derives from awmp.strict.StrictFields (setting a
        field it lacks raises; awmp.config makes any section that does not strict) and its
        annotations are checked (awmp.strict.check_types).
    make_agent(spec, section_config) -> Agent.
    check(section_config, cfg): raise awmp.errors.ConfigError (`require`) for invalid values
        beyond the checks every section gets (gamma, lr, batch_size, hidden, finite floats).
    presets: preset name -> function returning the section's values under that preset (the
        `paper` preset is the dataclass defaults; a preset an algorithm does not list is too).
    """

    name: str
    label: str
    section: str
    config: type
    make_agent: Callable[[Any, Any], Agent]
    check: Callable[[Any, Any], None] = lambda section, cfg: None
    presets: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)


def polyak(target: Any, online: Any, tau: float) -> Any:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


def init_actor_critic(key: jax.Array, spec: Any, actor_net: Any, *nets: Any) -> tuple:
    """(actor, *params, key): an actor's initial parameters (its input: obs (1, obs_dim)), each
    of `nets`' (inputs: obs and an action (1, act_dim); a critic first, then e.g. a prior
    network), each from its own key split off `key`, and the key that is left. SAC, SAC-GMM,
    TD3, TD3-AWMP and CrossQ initialise this way."""
    *keys, key = jax.random.split(key, 2 + len(nets))
    obs = jnp.zeros((1, spec.obs_dim))
    act = jnp.zeros((1, spec.act_dim))
    actor = actor_net.init(keys[0], obs)
    return actor, *(net.init(k, obs, act) for net, k in zip(nets, keys[1:])), key


def gradient_step(
    loss: Callable, params: Any, opt_state: Any, opt: Any, has_aux: bool = False
) -> tuple[Any, Any, Any]:
    """One optimiser step on `loss` at `params`: (loss(params) (with its aux when `has_aux`),
    the new params, the new optimiser state)."""
    out, grads = jax.value_and_grad(loss, has_aux=has_aux)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return out, optax.apply_updates(params, updates), opt_state


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


def get(name: str) -> Algorithm:
    """The algorithm registered under `name` (awmp.algos.registry)."""
    from awmp.algos.registry import ALGORITHMS
    from awmp.errors import ConfigError

    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; supported: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def metric_names(agent: Agent, state: State, batch: Batch) -> tuple[str, ...]:
    """The metric keys `update` returns, found without running it."""
    _, metrics = jax.eval_shape(agent.update, state, batch)
    return tuple(sorted(metrics))


def to_jnp(batch: dict[str, np.ndarray]) -> Batch:
    return {k: jnp.asarray(v) for k, v in batch.items()}
