"""The one training loop, for every algorithm and any number of seeds.

Per environment step: act -> env.step -> store -> algorithm hook (SAC-AWMP's prior burst) ->
one jitted call that runs `updates_per_step` gradient steps and then acts on the new
observation. Evaluation, logging, the divergence check and checkpoints happen at their
intervals, outside the hot path.

Many seeds (`seeds`): N agents, each with its own env, evaluation env, replay buffer, NumPy
generator and PRNGKey(seed), exactly as N single-seed runs would have them. Their states are
stacked on a leading seed axis and every device call (act, train step, hook burst) is one
`vmap`ped call for all seeds; warm-up actions, replay sampling, hook draws and episode
bookkeeping stay per seed on the host. Each seed writes a normal run directory and checkpoints
at the same steps; `--resume DIR1,DIR2` continues the group together, `--resume DIR` one seed
alone. With one seed nothing is vmapped: the numbers are those of the plain loop.

Long runs (README "Long runs"): a checkpoint (awmp.checkpoint) every `checkpoint_interval`
steps, at the end, and on SIGINT/SIGTERM; `resume` continues a run from its newest checkpoint
bit for bit on the same machine and versions. Divergence guard: the fused train step also
returns a sticky per-metric "finite" flag and the step it first failed, computed on device at
no sync cost; the host reads it (with a NaN scan of the whole agent state) only at log steps
and before every checkpoint, so a divergence is reported at most `log_interval` steps late, and
a checkpoint is never written from a non-finite state.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from awmp import __version__, algos, checkpoint
from awmp.buffer import ReplayBuffer
from awmp.checkpoint import CheckpointError, LoopState
from awmp.config import ConfigError, TrainConfig, from_dict, to_dict, validate
from awmp.envs import EnvError, make_env
from awmp.evaluate import PARAMS_FILE, run_episodes
from awmp.logger import LogResumeError, RunLogger

EVAL_SEED_OFFSET = 1_000_003  # the evaluation env's seed is seed + this: never the training seed
DIAGNOSTIC_FILE = "diagnostic.json"
# Fields a resumed run may change: they do not alter a single number of the experiment.
RESUME_FREE_FIELDS = ("resume", "run_dir", "progress", "checkpoint_interval", "keep_checkpoints")
# Test hook (not a user option): "STEP[:signal|crash|kill]" stops the run after that step as a
# SIGINT would (signal), by raising SimulatedCrash without a checkpoint (crash), or by SIGKILL.
_STOP_AT_ENV = "AWMP_TEST_STOP_AT"


class RunDirError(ValueError):
    """The run directory cannot be used (it exists, cannot be written, or cannot be resumed)."""


class DivergenceError(RuntimeError):
    """Training produced non-finite losses or parameters; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after a step; `checkpoint` is None if none was written.

    `run_dir`: the run directory, or the list of them for a multi-seed run (`seeds`).
    """

    def __init__(self, run_dir: Path, step: int, signum: int, ckpt: Path | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.step, self.signum, self.checkpoint = run_dir, step, signum, ckpt


class SimulatedCrash(BaseException):
    """Raised by the AWMP_TEST_STOP_AT=STEP:crash test hook: a crash with no last checkpoint."""


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def default_run_dir(cfg: TrainConfig, stamp: str | None = None) -> Path:
    """runs/<env>/<algo>/seed<seed>-<stamp>; the seeds of one multi-seed run share `stamp`."""
    stamp = stamp or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / cfg.env.replace("/", "_") / cfg.algo / f"seed{cfg.seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def create_run_dir(cfg: TrainConfig) -> Path:
    """Create a fresh run directory; refuse an existing one (runs are never overwritten)."""
    path = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if path.exists():
        raise RunDirError(
            f"run directory {path} already exists; choose another --run-dir, or continue that "
            f"run with: awmp train --resume {path} (runs are never overwritten)"
        )
    try:
        path.mkdir(parents=True)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {path}: {e.strerror or e}") from None
    return path


def run_metadata(cfg: TrainConfig) -> dict:
    config = to_dict(cfg)
    if not config["seeds"]:  # a seed's own run directory: the same config.json as ever
        del config["seeds"]
    return {
        "config": config,
        "awmp_version": __version__,
        "git_commit": _git_commit(),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def checkpoint_interval(cfg: TrainConfig) -> int:
    """Steps between checkpoints: the configured value, or 5% of the run when it is 0 (auto)."""
    return cfg.checkpoint_interval or max(1, cfg.total_steps // 20)


# ----------------------------------------------------------------------------- resume


def _resume_dirs(resume: str | Path) -> list[Path]:
    """The run directories of `--resume`: one, or a comma-separated group resumed together."""
    text = str(resume)
    if "," in text and not Path(text).exists():
        return [Path(p) for p in text.split(",") if p]
    return [Path(text)]


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was started with (its config.json), for `--resume`.

    For a comma-separated group of run directories (`--resume DIR1,DIR2`): their common config
    with `seeds` set to their seeds, in the given order.
    """
    dirs = _resume_dirs(run_dir)
    if len(dirs) > 1:
        return _group_config(dirs)
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"cannot resume {run_dir}: not an awmp run directory (no config.json)")
    try:
        return from_dict(json.loads(path.read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"cannot resume {run_dir}: unreadable {path} ({e})") from None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def _experiment(cfg: TrainConfig) -> dict:
    """The config fields that define the experiment (all but RESUME_FREE_FIELDS), flattened."""
    return {k: v for k, v in _flat(to_dict(cfg)).items() if k not in RESUME_FREE_FIELDS}


def _diff(ours: dict, saved: dict) -> list[str]:
    return [
        f"{k}={ours.get(k)!r} (saved {saved.get(k)!r})"
        for k in sorted(saved.keys() | ours.keys())
        if saved.get(k) != ours.get(k)
    ]


def _group_config(dirs: list[Path]) -> TrainConfig:
    """The config of run directories resumed together: equal but for the seed."""
    cfgs = [load_run_config(d) for d in dirs]
    seeds = tuple(c.seed for c in cfgs)
    group = ",".join(map(str, dirs))
    if len(set(seeds)) != len(seeds):
        raise RunDirError(f"cannot resume {group} together: seeds {seeds} repeat a seed")
    first = _experiment(dataclasses.replace(cfgs[0], seed=0))
    for d, c in zip(dirs[1:], cfgs[1:], strict=True):
        diff = _diff(_experiment(dataclasses.replace(c, seed=0)), first)
        if diff:
            raise RunDirError(
                f"cannot resume {group} together: the config of {d} differs from that of "
                f"{dirs[0]} in more than the seed: {', '.join(diff)}; resume them one by one"
            )
    return dataclasses.replace(cfgs[0], seeds=seeds, run_dir=None, resume=None)


def _check_resume(cfg: TrainConfig) -> Path:
    run_dir = Path(cfg.resume)
    diff = _diff(_experiment(cfg), _experiment(load_run_config(run_dir)))
    if diff:
        raise RunDirError(
            f"cannot resume {run_dir}: the config differs from the saved run: {', '.join(diff)}; "
            "omit these flags to continue the saved experiment"
        )
    try:  # fail now, not at the first checkpoint, when the directory is read-only
        probe = run_dir / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot resume {run_dir}: not writable ({e.strerror or e})") from None
    return run_dir


def _finished_summaries(dirs: list[Path], total_steps: int) -> list[dict] | None:
    """The saved summaries when every run directory finished its `total_steps` (summary.json,
    written last, says so, and the final parameters are there); else None."""
    summaries = []
    for d in dirs:
        try:
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(summary, dict)
            or summary.get("interrupted") is not False
            or summary.get("steps_done") != total_steps
            or not (d / PARAMS_FILE).is_file()
        ):
            return None
        summaries.append(summary)
    return summaries


def resume(run_dir, **free_fields):
    """Continue the run in `run_dir` from its newest checkpoint (Python form of `--resume`).

    `run_dir` may be a list (or comma-separated string) of run directories of one multi-seed
    run: they continue together, and lists come back as from `train` with `seeds`.
    Only RESUME_FREE_FIELDS may be given (e.g. progress=False, checkpoint_interval=...).
    """
    if isinstance(run_dir, (list, tuple)):
        run_dir = ",".join(map(str, run_dir))
    cfg = load_run_config(run_dir)
    bad = set(free_fields) - set(RESUME_FREE_FIELDS)
    if bad:
        raise RunDirError(f"resume() cannot change {sorted(bad)}: it would be another experiment")
    for k, v in free_fields.items():
        setattr(cfg, k, v)
    cfg.resume = str(run_dir)
    return train(cfg)


# ----------------------------------------------------------------------------- checks


def _check_obs(obs, obs_dim: int, step: int) -> np.ndarray:
    try:
        arr = np.asarray(obs)
    except (ValueError, TypeError) as e:
        raise EnvError(f"observation at step {step} is not an array ({e})") from None
    if arr.dtype.kind not in "fiu":
        raise EnvError(f"observation at step {step} has dtype {arr.dtype}, expected real numbers")
    if arr.shape != (obs_dim,):
        raise EnvError(f"observation at step {step} has shape {arr.shape}, expected ({obs_dim},)")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))
        raise EnvError(
            f"observation at step {step} is not finite: {arr[bad].tolist()} at indices "
            f"{bad.tolist()}"
        )
    return arr


def _guard_update(guard: dict, metrics: dict, names: tuple[str, ...], step) -> dict:
    """Sticky per-metric finite flags and the env step each first failed (-1: never)."""
    now = jnp.stack([jnp.all(jnp.isfinite(metrics[k])) for k in names])
    first_bad = jnp.where(guard["finite"] & ~now, step, guard["first_bad"])
    return {"finite": guard["finite"] & now, "first_bad": first_bad}


def _nan_report(state) -> dict:
    """{top-level state field: any NaN}. Infinities are allowed here: SAC keeps log(alpha) =
    -inf for alpha = 0; a parameter that overflows makes the losses non-finite instead."""
    groups: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        name = jax.tree_util.keystr(path[:1]).strip(".[]'\"")
        groups.setdefault(name, []).append(jnp.any(jnp.isnan(leaf)))
    return {k: jnp.any(jnp.stack(v)) for k, v in groups.items()}


class _Signals:
    """Turns the first SIGINT/SIGTERM into a flag the loop reads after each step."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # a second signal: stop now, the last checkpoint is kept
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _stop_hook() -> tuple[int | None, str]:
    spec = os.environ.get(_STOP_AT_ENV)
    if not spec:
        return None, ""
    step, _, mode = spec.partition(":")
    return int(step), mode or "signal"


def _say(msg: str) -> None:
    print(f"awmp: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the loop


def _members(cfg: TrainConfig) -> list[TrainConfig]:
    """One config per seed, each exactly what a single-seed run of that seed would have.

    Without `seeds`: [cfg]. With `seeds`: cfg with seed=s, seeds=() and the seed's own run
    directory (<run_dir>/seed<s>, or the default with a shared timestamp) or resumed directory.
    """
    if cfg.resume:
        dirs = _resume_dirs(cfg.resume)
        if len(dirs) == 1 and not cfg.seeds:
            return [cfg]
        seeds = tuple(load_run_config(d).seed for d in dirs)
        if tuple(cfg.seeds) != seeds:
            raise RunDirError(
                f"cannot resume {cfg.resume}: seeds={tuple(cfg.seeds)} differs from the seeds "
                f"{seeds} of these run directories; omit --seeds when resuming"
            )
        return [
            dataclasses.replace(cfg, seed=s, seeds=(), resume=str(d), run_dir=str(d))
            for s, d in zip(seeds, dirs, strict=True)
        ]
    if not cfg.seeds:
        return [cfg]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    members = []
    for s in cfg.seeds:
        one = dataclasses.replace(cfg, seed=s, seeds=())
        one.run_dir = str(
            Path(cfg.run_dir) / f"seed{s}" if cfg.run_dir else default_run_dir(one, stamp)
        )
        members.append(one)
    return members


def _group_checkpoints(dirs: list[Path]) -> list[checkpoint.Checkpoint | None]:
    """Each directory's checkpoint to resume from: the newest one; for a group, the newest step
    that every directory has (a kill between the seeds' checkpoint writes leaves some a step
    ahead), or none at all when none has one yet."""
    if len(dirs) == 1:
        return [checkpoint.load_latest(dirs[0])]
    found = [dict(checkpoint.list_checkpoints(d)) for d in dirs]
    if not any(found):
        return [None] * len(dirs)
    common = set.intersection(*(set(f) for f in found))
    if not common:
        steps = ", ".join(f"{d}: {sorted(f) or 'none'}" for d, f in zip(dirs, found, strict=True))
        raise RunDirError(
            f"cannot resume {','.join(map(str, dirs))} together: they have no checkpoint step in "
            f"common ({steps}); resume each alone with --resume DIR"
        )
    step = max(common)
    if any(max(f) != step for f in found):
        _say(f"resuming the group from step {step}, the newest checkpoint every seed has")
    return [checkpoint.load(f[step]) for f in found]


def train(cfg: TrainConfig):
    """Train as `cfg` says; return (run directory, summary dict).

    With `cfg.seeds`, train those seeds together (one vmapped update per step) and return
    ([run directory per seed], [summary per seed]) in the order of `seeds`.
    With `cfg.resume` set, continue that run directory (or comma-separated group) from its
    newest checkpoint instead; every experiment field of `cfg` must equal the saved config
    (see `resume`).
    """
    validate(cfg)
    if cfg.run_dir is not None and not str(cfg.run_dir).strip():
        raise ConfigError("invalid run_dir='': must be a directory, or None for the default")
    members = _members(cfg)
    ckpts: list = [None] * len(members)
    if cfg.resume:
        dirs = [_check_resume(m) for m in members]
        done = _finished_summaries(dirs, cfg.total_steps)
        if done is not None:
            where = ",".join(map(str, dirs))
            _say(
                f"{where}: already finished ({cfg.total_steps} of {cfg.total_steps} steps); "
                "nothing to do"
            )
            return (dirs[0], done[0]) if not cfg.seeds else (dirs, done)
        ckpts = _group_checkpoints(dirs)
        for m, ckpt in zip(members, ckpts, strict=True):
            if ckpt is not None and _experiment(from_dict(ckpt.meta["config"])) != _experiment(m):
                raise CheckpointError(
                    f"checkpoint {ckpt.path} was written by another config than "
                    f"{m.resume}/config.json"
                )
    elif len(members) > 1:  # refuse before creating any of the seeds' directories
        for m in members:
            if Path(m.run_dir).exists():
                create_run_dir(m)  # raises the usual "already exists" error
    envs: list = []
    try:
        for m in members:
            env, spec = make_env(m.env)
            envs.append(env)
            envs.append(make_env(m.env)[0])
        if cfg.resume:
            run_dirs = dirs
        else:
            run_dirs = []
            for m in members:
                run_dir = create_run_dir(m)
                run_dirs.append(run_dir)
                meta = run_metadata(m)
                if cfg.seeds:  # the siblings trained in the same process (resume them together)
                    meta["seed_group"] = {
                        "seeds": list(cfg.seeds),
                        "run_dirs": [x.run_dir for x in members],
                    }
                try:
                    _write_json(run_dir / "config.json", meta)
                except OSError as e:
                    raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None
        results = _run(members, run_dirs, envs[0::2], envs[1::2], spec, ckpts)
    finally:
        for e in envs:
            e.close()
    if not cfg.seeds:
        return results[0]
    return [d for d, _ in results], [s for _, s in results]


def _over_seeds(fn, n: int, in_axes: tuple):
    """`fn` over the leading seed axis of the arguments whose in_axes entry is 0: jax.vmap for
    n > 1; `fn` itself for n = 1, whose arguments and outputs then carry no seed axis, so a
    single-seed run computes exactly what it always did (a vmap of one would also turn
    lax.cond into a select that runs both branches)."""
    return jax.vmap(fn, in_axes=in_axes) if n > 1 else fn


def _stack(trees: list):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


class _Seed:
    """One seed's host side: config, run directory, envs, generator, buffer, logs, episode."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, env, eval_env) -> None:
        self.cfg, self.run_dir, self.env, self.eval_env = cfg, run_dir, env, eval_env
        self.rng = np.random.default_rng(cfg.seed)  # replay sampling, warm-up actions, hooks
        self.buffer: ReplayBuffer | None = None
        self.logger: RunLogger | None = None
        self.obs = np.zeros(0, np.float32)
        self.ep_ret, self.ep_len = 0.0, 0
        self.finished: list[tuple] = []  # episodes finished since the last train.csv row
        self.evals: list[dict] = []
        self.last_hook_metrics: dict = {}
        self.last_ckpt: Path | None = None


def _run(members: list[TrainConfig], run_dirs: list[Path], envs, eval_envs, spec, ckpts):
    """The loop over N seeds (N >= 1): host work per seed, one device call per step for all."""
    cfg = members[0]  # every field but seed, run_dir and resume is the same for all members
    n = len(members)
    agent = algos.get(cfg.algo).make_agent(spec, cfg.algo_config())
    acfg = cfg.algo_config()
    seeds = [
        _Seed(m, d, e, ev) for m, d, e, ev in zip(members, run_dirs, envs, eval_envs, strict=True)
    ]
    init = jax.jit(agent.init)
    # Each seed's initial state exactly as a single-seed run makes it, stacked on a seed axis.
    init_states = [init(jax.random.PRNGKey(m.seed)) for m in members]
    for s in seeds:
        s.buffer = ReplayBuffer(
            min(cfg.buffer_size, cfg.total_steps), spec.obs_dim, spec.act_dim, agent.extra_fields
        )
    act_det = jax.jit(agent.act_deterministic)
    fused_step = algos.make_train_step(agent)
    update_burst = algos.make_update_burst(agent)
    updates = cfg.updates_per_step
    batch_size = acfg.batch_size
    ckpt_every = checkpoint_interval(cfg)

    # Fixed train.csv columns: update metrics (found by abstract evaluation) and hook metrics.
    example = {k: jnp.asarray(v[:1]) for k, v in seeds[0].buffer.data.items()}
    names = algos.metric_names(agent, init_states[0], example)

    def one_train_step(state, batches, obs, guard, step):
        state, a, ex, metrics = fused_step(state, batches, obs)
        return state, a, ex, metrics, _guard_update(guard, metrics, names, step)

    def one_update_only(state, batches, guard, step):
        state, metrics = update_burst(state, batches)
        return state, metrics, _guard_update(guard, metrics, names, step)

    # Every device call takes and returns all seeds at once (leading axis n). The agent state
    # and the guard are donated: the step updates them in place instead of allocating anew.
    train_step = jax.jit(_over_seeds(one_train_step, n, (0, 0, 0, 0, None)), donate_argnums=(0, 3))
    update_only = jax.jit(_over_seeds(one_update_only, n, (0, 0, 0, None)), donate_argnums=(0, 2))
    act = jax.jit(_over_seeds(agent.act, n, (0, 0)), donate_argnums=0)
    nan_report = jax.jit(_over_seeds(_nan_report, n, (0,)))
    hook_apply = (
        jax.jit(_over_seeds(agent.hook_apply, n, (0, 0)), donate_argnums=0)
        if agent.hook_apply is not None
        else None
    )

    def dev(tree):  # host arrays with a leading seed axis -> what the device functions take
        return tree if n > 1 else jax.tree.map(lambda x: x[0], tree)

    def host(tree):  # device outputs -> NumPy with a leading seed axis
        tree = jax.device_get(tree)
        return tree if n > 1 else jax.tree.map(lambda x: np.asarray(x)[None], tree)

    guard = dev(
        {
            "finite": jnp.ones((n, len(names)), bool),
            "first_bad": jnp.full((n, len(names)), -1, jnp.int32),
        }
    )

    for s in seeds:
        obs, _ = s.env.reset(seed=s.cfg.seed)
        s.env.action_space.seed(s.cfg.seed)
        s.eval_env.reset(seed=s.cfg.seed + EVAL_SEED_OFFSET)
        s.obs = _check_obs(obs, spec.obs_dim, 0)
    step = 0
    wall_s = 0.0
    pending = None  # (actions (n, 1, d), extras) computed by the fused step for the current obs
    states = init_states
    if ckpts[0] is not None:
        states = []
        for s, ckpt, template in zip(seeds, ckpts, init_states, strict=True):
            where = f"checkpoint {ckpt.path}"
            states.append(checkpoint.restore_agent(template, ckpt.agent, where))
            s.rng = checkpoint.restore_rng(ckpt.meta["rng"])
            checkpoint.restore_buffer(s.buffer, ckpt.buffer, where)
            for name, e in (("train", s.env), ("eval", s.eval_env)):
                for warning in checkpoint.restore_env(e, ckpt.envs[name], where):
                    _say(f"warning: {warning}")
            loop = ckpt.loop
            s.obs, s.ep_ret, s.ep_len = loop.obs, loop.ep_ret, loop.ep_len
            s.finished = [tuple(x) for x in loop.finished]
            s.evals = list(loop.evals)
            s.last_hook_metrics = dict(loop.last_hook_metrics)
            s.last_ckpt = ckpt.path
        ckpt = ckpts[0]
        for key, ours in (("awmp_version", __version__), ("jax_version", jax.__version__)):
            if ckpt.meta.get(key) != ours:
                _say(
                    f"warning: the checkpoint was written with {key} {ckpt.meta.get(key)}, this "
                    f"is {ours}: the continuation may differ in the last bits"
                )
        step, wall_s = ckpt.loop.step, ckpt.loop.wall_s
        if ckpt.loop.pending is not None:
            pends = [c.loop.pending for c in ckpts]
            stacked = (
                np.stack([p["action"] for p in pends]),
                {k: np.stack([p["extras"][k] for p in pends]) for k in pends[0]["extras"]},
            )
            pending = jax.tree.map(jnp.asarray, dev(stacked))
        where = run_dirs[0] if n == 1 else ",".join(map(str, run_dirs))
        _say(f"resuming {where} from step {step} ({ckpt.path.name})")
    elif cfg.resume:
        where = run_dirs[0] if n == 1 else ",".join(map(str, run_dirs))
        _say(f"resuming {where}: no checkpoint yet, restarting from step 0")
    state = _stack(states) if n > 1 else states[0]

    try:
        for s in seeds:
            s.logger = RunLogger(
                s.run_dir,
                (*names, *agent.hook_metric_names),
                resume_step=step if cfg.resume else None,
            )
    except LogResumeError as e:
        raise RunDirError(f"cannot resume {s.run_dir}: {e}") from None
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {s.run_dir}: {e}") from None

    resume_target = str(run_dirs[0]) if n == 1 else ",".join(map(str, run_dirs))
    start = step
    last_metrics = None
    t0 = time.perf_counter() - wall_s
    last_log_t, last_log_step = time.perf_counter(), step
    verified_step = -1
    stop_at, stop_mode = _stop_hook()
    interrupted_by: int | None = None

    def sample_batches() -> dict:
        per_seed = []
        for s in seeds:
            batch = s.buffer.sample(s.rng, updates * batch_size)
            per_seed.append(
                {k: v.reshape(updates, batch_size, *v.shape[1:]) for k, v in batch.items()}
            )
        if n == 1:  # no seed axis: the batch goes to the device as sampled, unstacked
            return per_seed[0]
        return {k: np.stack([b[k] for b in per_seed]) for k in per_seed[0]}

    def seed_state(i: int):
        return state if n == 1 else jax.tree.map(lambda x: x[i], state)

    def label(s: _Seed) -> str:  # prefixes messages about one seed of a multi-seed run
        return "" if n == 1 else f"seed {s.cfg.seed} ({s.run_dir}): "

    def evaluate(i: int, step: int) -> dict:
        s = seeds[i]
        one = seed_state(i)

        def policy(o):
            return np.asarray(act_det(one, o))

        try:
            returns, _ = run_episodes(policy, s.eval_env, cfg.eval_episodes)
        except EnvError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of a user env is reported as such
            raise EnvError(
                f"{label(s)}evaluation environment {cfg.env} raised {type(e).__name__} at step "
                f"{step}: {e}{resume_hint()}"
            ) from e
        row = {
            "step": step,
            "seed": s.cfg.seed,
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "episodes": len(returns),
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        s.logger.log_eval(row)
        return row

    def resume_hint() -> str:
        last = seeds[0].last_ckpt
        if last is None:  # --resume would only start over from step 0: do not suggest it
            return "; no checkpoint was written yet, so there is nothing to resume"
        if n == 1:
            kept = f"the last checkpoint {last} is kept; "
        else:
            kept = f"the last checkpoints ({last.name} in each run directory) are kept; "
        return f"; {kept}resume with: awmp train --resume {resume_target}"

    def diagnose(s: _Seed, kind: str, message: str, **details) -> str:
        """Write the seed's diagnostic.json (what went wrong, where, last metrics); the line."""
        diag = {
            "kind": kind,
            "message": message,
            "step": step,
            "last_good_checkpoint": str(s.last_ckpt) if s.last_ckpt else None,
            "episode_step": s.ep_len,
            **details,
        }
        try:
            _write_json(s.run_dir / DIAGNOSTIC_FILE, diag)
        except OSError:
            pass
        return f"{label(s)}{message}{resume_hint()} (details in {s.run_dir / DIAGNOSTIC_FILE})"

    def verify(step: int) -> None:
        """The divergence check: sticky metric flags and a NaN scan of every seed's state."""
        nonlocal verified_step
        if verified_step == step:
            return
        g = host(guard)
        nans = host(nan_report(state))
        last = host(last_metrics) if last_metrics is not None else {}
        lines = []
        for i, s in enumerate(seeds):
            bad = [
                (int(first), name)
                for name, ok, first in zip(names, g["finite"][i], g["first_bad"][i], strict=True)
                if not ok
            ]
            nan_fields = sorted(k for k, v in nans.items() if v[i])
            if not bad and not nan_fields:
                continue
            if bad:
                first = min(x for x, _ in bad)
                what = ", ".join(name for x, name in bad if x == first)
                msg = (
                    f"training diverged: non-finite {what} at step {first} "
                    f"(detected at step {step})"
                )
            else:
                msg = (
                    f"training diverged: NaN in the agent state ({', '.join(nan_fields)}) "
                    f"at step {step}"
                )
            lines.append(
                diagnose(
                    s,
                    "divergence",
                    msg,
                    nonfinite_metrics={name: x for x, name in bad},
                    nan_state_fields=nan_fields,
                    last_metrics={k: float(v[i]) for k, v in last.items()},
                    detected_at_step=step,
                )
            )
        if lines:
            raise DivergenceError("; ".join(lines))
        verified_step = step

    def save_checkpoint(step: int) -> None:
        verify(step)
        host_pending = host(pending) if pending is not None else None
        meta_common = {
            "awmp_version": __version__,
            "jax_version": jax.__version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        wall = time.perf_counter() - t0
        for i, s in enumerate(seeds):
            loop_state = LoopState(
                step=step,
                obs=s.obs,
                pending=None
                if host_pending is None
                else {
                    "action": np.asarray(host_pending[0][i]),
                    "extras": {k: np.asarray(v[i]) for k, v in host_pending[1].items()},
                },
                ep_ret=s.ep_ret,
                ep_len=s.ep_len,
                finished=[list(x) for x in s.finished],
                evals=s.evals,
                last_hook_metrics={k: float(v) for k, v in s.last_hook_metrics.items()},
                wall_s=wall,
            )
            s.last_ckpt = checkpoint.save(
                s.run_dir,
                meta={"config": to_dict(s.cfg), **meta_common},
                agent_state=seed_state(i),
                rng=s.rng,
                buffer=s.buffer,
                envs={"train": s.env, "eval": s.eval_env},
                loop=loop_state,
                keep=cfg.keep_checkpoints,
            )

    def env_step(s: _Seed, action: np.ndarray, t: int):
        try:
            return s.env.step(action.astype(np.float64))
        except Exception as e:  # noqa: BLE001 - a user env failing is bad input, not a crash
            raise EnvError(
                f"{label(s)}environment {cfg.env} raised {type(e).__name__} at step {t + 1}: {e}"
                f"{resume_hint()}"
            ) from e

    def env_reset(s: _Seed, t: int):
        try:
            return s.env.reset()[0]
        except Exception as e:  # noqa: BLE001
            raise EnvError(
                f"{label(s)}environment {cfg.env} raised {type(e).__name__} in reset at step "
                f"{t + 1}: {e}{resume_hint()}"
            ) from e

    def observe(s: _Seed, action: np.ndarray, extras: dict, t: int) -> None:
        """One environment step of one seed: step, check, store, episode bookkeeping."""
        next_obs, reward, terminated, truncated, _ = env_step(s, action, t)
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            raise EnvError(
                f"{label(s)}reward at step {t + 1} is not a number: {reward!r}{resume_hint()}"
            ) from None
        if not math.isfinite(reward):
            raise EnvError(
                diagnose(
                    s,
                    "environment",
                    f"reward at step {t + 1} is not finite: {reward}",
                    reward=str(reward),
                    step=t + 1,
                )
            )
        try:
            next_obs = _check_obs(next_obs, spec.obs_dim, t + 1)
        except EnvError as e:
            raise EnvError(diagnose(s, "environment", str(e), step=t + 1)) from None
        s.buffer.add(
            obs=s.obs,
            action=action,
            reward=reward,
            next_obs=next_obs,  # the true s' even at a time limit: bootstrap through it
            terminated=float(terminated),
            **extras,
        )
        s.ep_ret += reward
        s.ep_len += 1
        if terminated or truncated:
            s.finished.append((s.ep_ret, s.ep_len))
            s.ep_ret, s.ep_len = 0.0, 0
            try:
                s.obs = _check_obs(env_reset(s, t), spec.obs_dim, t + 1)
            except EnvError as e:
                raise EnvError(diagnose(s, "environment", str(e), step=t + 1)) from None
        else:
            s.obs = next_obs

    def obs_batch() -> np.ndarray:  # (n, 1, obs_dim); NumPy: jit transfers it, no eager op
        return dev(np.stack([s.obs for s in seeds])[:, None])

    from awmp.progress import TrainProgress

    progress = TrainProgress(
        cfg.total_steps, enabled=cfg.progress, start=start, log_interval=cfg.log_interval
    )
    try:
        with _Signals() as signals, progress:
            for t in range(start, cfg.total_steps):
                if t < cfg.warmup_steps:
                    for s in seeds:
                        action = s.rng.uniform(-1.0, 1.0, spec.act_dim).astype(np.float32)
                        observe(s, action, agent.warmup_extras(action), t)
                else:
                    if pending is None:
                        state, a, ex = act(state, obs_batch())
                        pending = (a, ex)
                    actions, extras = host(pending)  # one transfer for all seeds
                    pending = None
                    for i, s in enumerate(seeds):
                        observe(s, actions[i, 0], {k: v[i, 0] for k, v in extras.items()}, t)
                step = t + 1

                if agent.hook_draw is not None:
                    # Gradient steps so far: one burst of `updates` at every step from the one
                    # that completes the warm-up (and >= 1), before this step's.
                    grad_steps = max(0, step - max(cfg.warmup_steps, 1)) * updates
                    drawn = [agent.hook_draw(step, s.buffer, s.rng, grad_steps) for s in seeds]
                    if drawn[0] is not None:  # due for every seed at once: same step and sizes
                        data = {k: np.stack([d[k] for d in drawn]) for k in drawn[0]}
                        state, hook_metrics = hook_apply(state, dev(data))
                        hook_metrics = host(hook_metrics)
                        for i, s in enumerate(seeds):
                            s.last_hook_metrics = {k: float(v[i]) for k, v in hook_metrics.items()}

                if step >= cfg.warmup_steps and step < cfg.total_steps:
                    state, a, ex, last_metrics, guard = train_step(
                        state, sample_batches(), obs_batch(), guard, step
                    )
                    pending = (a, ex)
                elif step >= cfg.warmup_steps:  # last step: update, no action needed
                    state, last_metrics, guard = update_only(state, sample_batches(), guard, step)

                if step % cfg.log_interval == 0 or step == cfg.total_steps:
                    now = time.perf_counter()
                    metrics = host(last_metrics) if last_metrics is not None else {}
                    for i, s in enumerate(seeds):
                        row = {
                            "step": step,
                            "seed": s.cfg.seed,
                            "episodes": len(s.finished),
                            "wall_s": round(now - t0, 3),
                            "steps_per_s": round(
                                (step - last_log_step) / max(now - last_log_t, 1e-9)
                            ),
                        }
                        if s.finished:
                            row["episode_return"] = float(np.mean([r for r, _ in s.finished]))
                            row["episode_length"] = float(np.mean([x for _, x in s.finished]))
                        row.update({k: float(v[i]) for k, v in metrics.items()})
                        row.update({k: float(v) for k, v in s.last_hook_metrics.items()})
                        s.logger.log_train(row)
                        s.finished.clear()
                    last_log_t, last_log_step = now, step
                    progress.set_losses({k: float(np.mean(v)) for k, v in metrics.items()})
                    verify(step)

                if step % cfg.eval_interval == 0 or step == cfg.total_steps:
                    verify(step)
                    for i, s in enumerate(seeds):
                        s.evals.append(evaluate(i, step))
                    progress.set_eval(float(np.mean([s.evals[-1]["return_mean"] for s in seeds])))
                progress.advance(step)

                if stop_at == step and stop_mode != "signal":
                    if stop_mode == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    raise SimulatedCrash(f"simulated crash after step {step}")
                if stop_at == step:
                    signals.received = signal.SIGINT
                if signals.received is not None and step < cfg.total_steps:
                    interrupted_by = signals.received
                    save_checkpoint(step)
                    break
                if step % ckpt_every == 0 or step == cfg.total_steps:
                    save_checkpoint(step)
    except KeyboardInterrupt:  # a second signal: stopped without a new checkpoint
        _say(f"stopped at step {step}{resume_hint()}")
        raise TrainingInterrupted(
            run_dirs[0] if n == 1 else run_dirs, step, signal.SIGINT, None
        ) from None
    except OSError as e:  # a log write failed (e.g. a full disk); checkpoints are intact
        raise RunDirError(
            f"cannot write to run directory {resume_target}: {e.strerror or e}{resume_hint()}"
        ) from None
    finally:
        for s in seeds:
            if s.logger is not None:
                s.logger.close()

    wall = time.perf_counter() - t0
    results = []
    for i, s in enumerate(seeds):
        try:
            (s.run_dir / PARAMS_FILE).write_bytes(
                flax.serialization.to_bytes(jax.device_get(seed_state(i)))
            )
        except OSError as e:
            raise RunDirError(
                f"cannot write {s.run_dir / PARAMS_FILE}: {e.strerror or e}{resume_hint()}"
            ) from None
        evals = s.evals
        best = max(evals, key=lambda r: r["return_mean"]) if evals else None
        summary = {
            "run_dir": str(s.run_dir),
            "algo": cfg.algo,
            "env": cfg.env,
            "seed": s.cfg.seed,
            "total_steps": cfg.total_steps,
            "steps_done": step,
            "interrupted": interrupted_by is not None,
            "final_eval_return": evals[-1]["return_mean"] if evals else None,
            "final_eval_step": evals[-1]["step"] if evals else None,
            "best_eval_return": best["return_mean"] if best else None,
            "best_eval_step": best["step"] if best else None,
            "last_checkpoint": str(s.last_ckpt) if s.last_ckpt else None,
            "wall_s": round(wall, 3),
            "steps_per_s": round(step / wall, 2) if wall > 0 else None,
        }
        if n > 1:
            summary["seeds_in_process"] = n  # steps_per_s is per seed; the process did n times
        try:
            _write_json(s.run_dir / "summary.json", summary)
        except OSError as e:
            raise RunDirError(
                f"cannot write {s.run_dir / 'summary.json'}: {e.strerror or e}"
            ) from None
        results.append((s.run_dir, summary))
    if interrupted_by is not None:
        name = signal.Signals(interrupted_by).name
        if n == 1:
            written = f"checkpoint {seeds[0].last_ckpt} written"
        else:
            written = f"checkpoints {seeds[0].last_ckpt.name} written in each run directory"
        _say(
            f"{name}: stopped after step {step}, {written}; "
            f"resume with: awmp train --resume {resume_target}"
        )
        raise TrainingInterrupted(
            run_dirs[0] if n == 1 else run_dirs, step, interrupted_by, seeds[0].last_ckpt
        )
    return results
