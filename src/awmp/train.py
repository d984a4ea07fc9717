"""Train: the public entry points `train(cfg)`, `train_seeds(cfg)`, `resume(run_dir)` and
`resume_seeds(run_dirs)`.

This module only wires the pieces together: check the config, find or create the run
directories (awmp.rundir), make the envs, and hand them to the loop (awmp.trainer.Trainer).

Many seeds (`seeds`): N agents, each with its own env, evaluation env, replay buffer, NumPy
generator and PRNGKey(seed), exactly as N single-seed runs would have them; their device
states share one leading seed axis (awmp.seedaxis). Each seed writes a normal run directory;
`--resume DIR1,DIR2` continues the group together, `--resume DIR` one seed alone. With one seed
nothing is vmapped: the numbers are those of the plain loop. `train` and `resume` return one
`Run` (run_dir, summary); `train_seeds` and `resume_seeds` a `SeedGroup` (run_dirs, summaries).

Long runs (docs/guide.md, "Long runs"): a checkpoint (awmp.checkpoint) every `checkpoint_interval`
steps, at the end, and on SIGINT/SIGTERM; `resume` continues a run from its newest checkpoint
bit for bit on the same machine and versions. The divergence guard (awmp.guard) never lets a
checkpoint be written from a non-finite state.

`awmp.train` is this module, and it is callable: `awmp.train(cfg)` is `awmp.train.train(cfg)`,
and `awmp.train.resume(run_dir)` is `resume` (the package does not shadow the module with the
function).
"""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path
from typing import NamedTuple

from awmp.callbacks import Callback, StepFunction
from awmp.config import ConfigError, TrainConfig, env_kwargs, validate
from awmp.envs import (
    EnvFactory,
    check_factory,
    factory_label,
    factory_name,
    make_env_from,
    recorded_factory,
)
from awmp.guard import DivergenceError
from awmp.rundir import (
    RESUME_FREE_FIELDS,
    RunDirError,
    check_resume,
    checkpoint_interval,
    create_run_dir,
    create_run_dirs,
    default_run_dir,
    extend,
    finished_summaries,
    load_run_config,
    members,
    refuse_existing,
    resume_checkpoints,
    run_metadata,
    say,
    write_json,
)
from awmp.runlock import RunLockError, RunLocks
from awmp.seedrun import DIAGNOSTIC_FILE, EVAL_SEED_OFFSET
from awmp.track import require as require_tracker
from awmp.trainer import Components, OnStep, Trainer, TrainingInterrupted

__all__ = [
    "DIAGNOSTIC_FILE",
    "EVAL_SEED_OFFSET",
    "RESUME_FREE_FIELDS",
    "Components",
    "DivergenceError",
    "RunDirError",
    "RunLockError",
    "TrainingInterrupted",
    "checkpoint_interval",
    "create_run_dir",
    "default_run_dir",
    "load_run_config",
    "Run",
    "SeedGroup",
    "resume",
    "resume_seeds",
    "run_metadata",
    "train",
    "train_seeds",
]


class Run(NamedTuple):
    """One run: its directory and its summary (summary.json as a dict). A pair, so
    `run_dir, summary = awmp.train(cfg)` unpacks it."""

    run_dir: Path
    summary: dict


class SeedGroup(NamedTuple):
    """The runs of a seed group, in the order of `seeds`: `run_dirs, summaries =
    awmp.train_seeds(cfg)`; `runs` pairs them up."""

    run_dirs: list[Path]
    summaries: list[dict]

    @property
    def runs(self) -> list[Run]:
        return [Run(d, s) for d, s in zip(self.run_dirs, self.summaries, strict=True)]


def train(
    cfg: TrainConfig,
    *,
    on_step: OnStep | None = None,
    callbacks: list[Callback] | tuple = (),
    components: Components | None = None,
    env: EnvFactory | None = None,
) -> Run:
    """Train one run as `cfg` says; return its (run directory, summary dict) as a `Run`.

    With `cfg.resume` set, continue that run directory from its newest checkpoint instead;
    every experiment field of `cfg` must equal the saved config (see `resume`).
    `on_step(step)` is called after every environment step; a true return value stops the run
    there with a checkpoint and returns it normally, its summary saying "stopped_by":
    "callback" (Ctrl-C raises TrainingInterrupted instead). `callbacks`: awmp.callbacks.
    Callback objects with hooks at step, log, evaluation and checkpoint, each able to stop it.
    `components` replaces parts of the loop (the replay buffer, the env maker, the signal
    handler), e.g. in tests. A config with `seeds` is a seed group: `train_seeds(cfg)`.

    `env`: an env factory instead of the registered id `cfg.env`: called with no arguments, it
    returns a new Gymnasium env (e.g. with wrappers); it is called twice per seed (the training
    and the evaluation env). The run records its name (config.json "env_factory") and takes
    the factory's own name as its `env`; `resume` needs the same factory again (`env=`), and
    `awmp.load` too; `cfg.env_kwargs` must be empty (pass them inside the factory).
    """
    if cfg.seeds:
        raise ConfigError(
            f"train(cfg) trains one run, and cfg.seeds={tuple(cfg.seeds)} asks for a seed group: "
            "call awmp.train_seeds(cfg)"
        )
    return _train(cfg, on_step, callbacks, components, env).runs[0]


def train_seeds(
    cfg: TrainConfig,
    *,
    on_step: OnStep | None = None,
    callbacks: list[Callback] | tuple = (),
    components: Components | None = None,
    env: EnvFactory | None = None,
) -> SeedGroup:
    """Train the seeds `cfg.seeds` together (one vmapped update per step; each seed exactly as
    its own run would be, up to vmap's last bits); return ([run directory per seed], [summary
    per seed]) in the order of `seeds`, as a `SeedGroup`. `cfg.resume` (a comma-separated
    group), `on_step`, `callbacks`, `components` and `env` as for `train`."""
    if not cfg.seeds:
        raise ConfigError("train_seeds(cfg) needs cfg.seeds, e.g. (0, 1, 2); one run: train(cfg)")
    return _train(cfg, on_step, callbacks, components, env)


def _train(
    cfg: TrainConfig,
    on_step: OnStep | None,
    callbacks: list[Callback] | tuple,
    components: Components | None,
    env: EnvFactory | None = None,
) -> SeedGroup:
    with RunLocks() as locks:  # one writer per run directory, for the whole run (awmp.runlock)
        return _train_locked(cfg, on_step, callbacks, components, locks, env)


def _train_locked(
    cfg: TrainConfig,
    on_step: OnStep | None,
    callbacks: list[Callback] | tuple,
    components: Components | None,
    locks: RunLocks,
    factory: EnvFactory | None = None,
) -> SeedGroup:
    validate(cfg)
    require_tracker(cfg.track)  # --track wandb without wandb installed: refused before any work
    if cfg.run_dir is not None and not str(cfg.run_dir).strip():
        raise ConfigError("invalid run_dir='': must be a directory, or None for the default")
    components = components or Components()
    if factory is not None:
        components, cfg = _with_factory(factory, components, cfg)
    group = members(cfg)
    ckpts: list = [None] * len(group)
    if cfg.resume:
        dirs = [locks.acquire(check_resume(m)) for m in group]
        how = "awmp.resume(run_dir, env=factory)"
        check_factory(recorded_factory(dirs[0]), factory, ",".join(map(str, dirs)), how)
        done = finished_summaries(dirs, cfg.total_steps)
        if done is not None:
            where = ",".join(map(str, dirs))
            say(
                f"{where}: already finished ({cfg.total_steps} of {cfg.total_steps} steps); "
                "nothing to do (a larger --total-steps extends it)"
            )
            return SeedGroup(dirs, done)
        ckpts = resume_checkpoints(cfg, group)
        extend(dirs, cfg)  # a larger total_steps: config.json says so from now on
    elif len(group) > 1:  # refuse before creating any of the seeds' directories
        refuse_existing(group)
    envs: list = []
    try:
        for m in group:
            env, spec = components.make_env(m.env, **env_kwargs(m))
            envs.append(env)
            envs.append(components.make_env(m.env, **env_kwargs(m))[0])
        run_dirs = dirs if cfg.resume else create_run_dirs(cfg, group, locks.acquire)
        if factory is not None and not cfg.resume:
            _record_factory(run_dirs, factory, envs[0])
        hooks = [*callbacks, *([StepFunction(on_step)] if on_step is not None else [])]
        hooks.append(locks.watch())  # stops the run if another process took the lock over
        trainer = Trainer(group, run_dirs, envs[0::2], envs[1::2], spec, ckpts, components, hooks)
        results = trainer.run()
    finally:
        for e in envs:
            e.close()
    return SeedGroup([d for d, _ in results], [s for _, s in results])


def _with_factory(
    factory: EnvFactory, components: Components, cfg: TrainConfig
) -> tuple[Components, TrainConfig]:
    """The loop's env maker calling `factory`; a new run's `env` is the factory's name."""
    if isinstance(factory, str) or not callable(factory):
        raise ConfigError(
            f"env={factory!r} must be an env factory (a callable returning a Gymnasium env); a "
            "registered id goes in cfg.env"
        )

    def make(env_id: str, **kwargs):
        return make_env_from(factory, **kwargs)

    components = dataclasses.replace(components, make_env=make)
    return components, (cfg if cfg.resume else dataclasses.replace(cfg, env=factory_label(factory)))


def _record_factory(run_dirs: list[Path], factory: EnvFactory, env) -> None:
    """config.json's "env_factory": what resume and awmp.load check the factory given against."""
    import json

    spec = getattr(env.unwrapped, "spec", None)
    entry = {"name": factory_name(factory), "env_id": getattr(spec, "id", None)}
    for d in run_dirs:
        path = Path(d) / "config.json"
        meta = json.loads(path.read_text())
        meta["env_factory"] = entry
        write_json(path, meta)


def _resume_config(run_dir, free_fields: dict) -> TrainConfig:
    if isinstance(run_dir, (list, tuple)):
        run_dir = ",".join(map(str, run_dir))
    cfg = load_run_config(run_dir)
    bad = set(free_fields) - set(RESUME_FREE_FIELDS)
    if bad:
        raise RunDirError(f"resume() cannot change {sorted(bad)}: it would be another experiment")
    for k, v in free_fields.items():
        setattr(cfg, k, v)
    cfg.resume = str(run_dir)
    return cfg


def resume(
    run_dir: str | Path,
    *,
    on_step: OnStep | None = None,
    callbacks: list[Callback] | tuple = (),
    env: EnvFactory | None = None,
    **free_fields,
) -> Run:
    """Continue the run in `run_dir` from its newest checkpoint (Python form of `--resume`);
    return it as `train` does. Only RESUME_FREE_FIELDS may be given (e.g. progress=False,
    checkpoint_interval=...); `on_step` and `callbacks` as for `train`. A run trained with an
    env factory needs the same one again as `env` (EnvError otherwise). The directories of a
    seed group, continued together: `resume_seeds`."""
    if isinstance(run_dir, (list, tuple)) or "," in str(run_dir):
        raise RunDirError(
            f"resume() continues one run directory, not {run_dir!r}: for a seed group, call "
            "awmp.resume_seeds(run_dirs)"
        )
    cfg = _resume_config(run_dir, free_fields)
    return train(cfg, on_step=on_step, callbacks=callbacks, env=env)


def resume_seeds(
    run_dirs: list | tuple | str,
    *,
    on_step: OnStep | None = None,
    callbacks: list[Callback] | tuple = (),
    env: EnvFactory | None = None,
    **free_fields,
) -> SeedGroup:
    """Continue the run directories of a seed group together (a list, or one comma-separated
    string; `--resume DIR1,DIR2`), from the newest step every seed has a checkpoint for; return
    lists as `train_seeds` does. Free fields, `on_step`, `callbacks` and `env` as for `resume`."""
    cfg = _resume_config(run_dirs, free_fields)
    if not cfg.seeds:  # one directory: a group of one
        cfg.seeds = (cfg.seed,)
    return train_seeds(cfg, on_step=on_step, callbacks=callbacks, env=env)


class _CallableModule(types.ModuleType):
    """This module's type: calling the module calls `train`, so `awmp.train(cfg)` (the documented
    call) and `awmp.train.resume(run_dir)` both work on the one object `awmp.train`."""

    def __call__(self, cfg: TrainConfig, **kwargs) -> Run:
        return train(cfg, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
