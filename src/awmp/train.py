"""The one training loop, for every algorithm.

Per environment step: act -> env.step -> store -> algorithm hook (SAC-AWMP's prior burst) ->
one jitted call that runs `updates_per_step` gradient steps and then acts on the new
observation. Evaluation, logging, the divergence check and checkpoints happen at their
intervals, outside the hot path.

Long runs (README "Long runs"): a checkpoint (awmp.checkpoint) every `checkpoint_interval`
steps, at the end, and on SIGINT/SIGTERM; `resume` continues a run from its newest checkpoint
bit for bit on the same machine and versions. Divergence guard: the fused train step also
returns a sticky per-metric "finite" flag and the step it first failed, computed on device at
no sync cost; the host reads it (with a NaN scan of the whole agent state) only at log steps
and before every checkpoint, so a divergence is reported at most `log_interval` steps late, and
a checkpoint is never written from a non-finite state.
"""

from __future__ import annotations

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
from awmp.config import TrainConfig, from_dict, to_dict, validate
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
    """SIGINT/SIGTERM stopped the run after a step; `checkpoint` is None if none was written."""

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


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
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
    return {
        "config": to_dict(cfg),
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


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was started with (its config.json), for `--resume`."""
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


def _check_resume(cfg: TrainConfig) -> Path:
    run_dir = Path(cfg.resume)
    saved = _experiment(load_run_config(run_dir))
    ours = _experiment(cfg)
    diff = [
        f"{k}={ours.get(k)!r} (saved {saved.get(k)!r})"
        for k in sorted(saved.keys() | ours.keys())
        if saved.get(k) != ours.get(k)
    ]
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


def resume(run_dir: str | Path, **free_fields) -> tuple[Path, dict]:
    """Continue the run in `run_dir` from its newest checkpoint (Python form of `--resume`).

    Only RESUME_FREE_FIELDS may be given (e.g. progress=False, checkpoint_interval=...).
    """
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


def train(cfg: TrainConfig) -> tuple[Path, dict]:
    """Train one agent as `cfg` says; return (run directory, summary dict).

    With `cfg.resume` set, continue that run directory from its newest checkpoint instead;
    every experiment field of `cfg` must equal the saved config (see `resume`).
    """
    validate(cfg)
    ckpt = None
    if cfg.resume:
        run_dir = _check_resume(cfg)
        ckpt = checkpoint.load_latest(run_dir)
        if ckpt is not None and _experiment(from_dict(ckpt.meta["config"])) != _experiment(cfg):
            raise CheckpointError(
                f"checkpoint {ckpt.path} was written by another config than {run_dir}/config.json"
            )
    env, spec = make_env(cfg.env)
    try:
        eval_env, _ = make_env(cfg.env)
    except BaseException:
        env.close()
        raise
    try:
        if not cfg.resume:
            run_dir = create_run_dir(cfg)
            try:
                _write_json(run_dir / "config.json", run_metadata(cfg))
            except OSError as e:
                raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None
        return _run(cfg, run_dir, env, eval_env, spec, ckpt)
    finally:
        env.close()
        eval_env.close()


def _run(cfg: TrainConfig, run_dir: Path, env, eval_env, spec, ckpt) -> tuple[Path, dict]:
    agent = algos.get(cfg.algo).make_agent(spec, cfg.algo_config())
    acfg = cfg.algo_config()
    state = jax.jit(agent.init)(jax.random.PRNGKey(cfg.seed))
    rng = np.random.default_rng(cfg.seed)  # replay sampling, warm-up actions, hook draws
    buffer = ReplayBuffer(
        min(cfg.buffer_size, cfg.total_steps), spec.obs_dim, spec.act_dim, agent.extra_fields
    )
    act = jax.jit(agent.act)
    act_det = jax.jit(agent.act_deterministic)
    fused_step = algos.make_train_step(agent)
    update_burst = algos.make_update_burst(agent)
    updates = cfg.updates_per_step
    batch_size = acfg.batch_size
    ckpt_every = checkpoint_interval(cfg)

    # Fixed train.csv columns: update metrics (found by abstract evaluation) and hook metrics.
    example = {k: jnp.asarray(v[:1]) for k, v in buffer.data.items()}
    names = algos.metric_names(agent, state, example)

    @jax.jit
    def train_step(state, batches, obs, guard, step):
        state, a, ex, metrics = fused_step(state, batches, obs)
        return state, a, ex, metrics, _guard_update(guard, metrics, names, step)

    @jax.jit
    def update_only(state, batches, guard, step):
        state, metrics = update_burst(state, batches)
        return state, metrics, _guard_update(guard, metrics, names, step)

    nan_report = jax.jit(_nan_report)
    fresh_guard = {
        "finite": jnp.ones(len(names), bool),
        "first_bad": jnp.full(len(names), -1, jnp.int32),
    }
    guard = fresh_guard

    obs, _ = env.reset(seed=cfg.seed)
    env.action_space.seed(cfg.seed)
    eval_env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)
    loop = LoopState(
        step=0, obs=_check_obs(obs, spec.obs_dim, 0), pending=None, ep_ret=0.0, ep_len=0
    )
    pending = None  # (action, extras) computed by the fused train step for the current obs
    if ckpt is not None:
        where = f"checkpoint {ckpt.path}"
        state = checkpoint.restore_agent(state, ckpt.agent, where)
        rng = checkpoint.restore_rng(ckpt.meta["rng"])
        checkpoint.restore_buffer(buffer, ckpt.buffer, where)
        for name, e in (("train", env), ("eval", eval_env)):
            for warning in checkpoint.restore_env(e, ckpt.envs[name], where):
                _say(f"warning: {warning}")
        for key, ours in (("awmp_version", __version__), ("jax_version", jax.__version__)):
            if ckpt.meta.get(key) != ours:
                _say(
                    f"warning: the checkpoint was written with {key} {ckpt.meta.get(key)}, this "
                    f"is {ours}: the continuation may differ in the last bits"
                )
        loop = ckpt.loop
        if loop.pending is not None:
            pending = (
                jnp.asarray(loop.pending["action"]),
                {k: jnp.asarray(v) for k, v in loop.pending["extras"].items()},
            )
        _say(f"resuming {run_dir} from step {loop.step} ({ckpt.path.name})")
    elif cfg.resume:
        _say(f"resuming {run_dir}: no checkpoint yet, restarting from step 0")

    try:
        logger = RunLogger(
            run_dir,
            (*names, *agent.hook_metric_names),
            resume_step=loop.step if cfg.resume else None,
        )
    except LogResumeError as e:
        raise RunDirError(f"cannot resume {run_dir}: {e}") from None
    except OSError as e:
        raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None

    obs = loop.obs
    ep_ret, ep_len = loop.ep_ret, loop.ep_len
    finished = [tuple(x) for x in loop.finished]  # episodes finished since the last train.csv row
    evals = list(loop.evals)
    last_hook_metrics = dict(loop.last_hook_metrics)
    last_metrics = None
    step = loop.step
    t0 = time.perf_counter() - loop.wall_s
    last_log_t, last_log_step = time.perf_counter(), step
    verified_step = -1
    last_ckpt = ckpt.path if ckpt is not None else None
    stop_at, stop_mode = _stop_hook()
    interrupted_by: int | None = None

    def sample_batches() -> dict:
        batch = buffer.sample(rng, updates * batch_size)
        return {k: v.reshape(updates, batch_size, *v.shape[1:]) for k, v in batch.items()}

    def evaluate(step: int) -> dict:
        def policy(o):
            return np.asarray(act_det(state, o))

        try:
            returns, _ = run_episodes(policy, eval_env, cfg.eval_episodes)
        except EnvError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of a user env is reported as such
            raise EnvError(
                f"evaluation environment {cfg.env} raised {type(e).__name__} at step {step}: "
                f"{e}{resume_hint()}"
            ) from e
        row = {
            "step": step,
            "seed": cfg.seed,
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "episodes": len(returns),
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        logger.log_eval(row)
        return row

    def resume_hint() -> str:
        kept = f"the last checkpoint {last_ckpt} is kept; " if last_ckpt else ""
        return f"; {kept}resume with: awmp train --resume {run_dir}"

    def diagnose(kind: str, message: str, **details) -> str:
        """Write diagnostic.json (what went wrong, where, last metrics) and return the line."""
        diag = {
            "kind": kind,
            "message": message,
            "step": step,
            "last_good_checkpoint": str(last_ckpt) if last_ckpt else None,
            "episode_step": ep_len,
            **details,
        }
        try:
            _write_json(run_dir / DIAGNOSTIC_FILE, diag)
        except OSError:
            pass
        return f"{message}{resume_hint()} (details in {run_dir / DIAGNOSTIC_FILE})"

    def verify(step: int) -> None:
        """The divergence check: sticky metric flags and a NaN scan of the agent state."""
        nonlocal verified_step
        if verified_step == step:
            return
        g = jax.device_get(guard)
        bad = [
            (int(first), name)
            for name, ok, first in zip(names, g["finite"], g["first_bad"], strict=True)
            if not ok
        ]
        nan_fields = sorted(k for k, v in jax.device_get(nan_report(state)).items() if v)
        if bad or nan_fields:
            last = (
                {k: float(v) for k, v in jax.device_get(last_metrics).items()}
                if last_metrics is not None
                else {}
            )
            if bad:
                first = min(s for s, _ in bad)
                what = ", ".join(n for s, n in bad if s == first)
                msg = (
                    f"training diverged: non-finite {what} at step {first} "
                    f"(detected at step {step})"
                )
            else:
                msg = (
                    f"training diverged: NaN in the agent state ({', '.join(nan_fields)}) "
                    f"at step {step}"
                )
            raise DivergenceError(
                diagnose(
                    "divergence",
                    msg,
                    nonfinite_metrics={n: s for s, n in bad},
                    nan_state_fields=nan_fields,
                    last_metrics=last,
                    detected_at_step=step,
                )
            )
        verified_step = step

    def save_checkpoint(step: int) -> Path:
        nonlocal last_ckpt
        verify(step)
        loop_state = LoopState(
            step=step,
            obs=obs,
            pending=None
            if pending is None
            else {
                "action": np.asarray(pending[0]),
                "extras": {k: np.asarray(v) for k, v in pending[1].items()},
            },
            ep_ret=ep_ret,
            ep_len=ep_len,
            finished=[list(x) for x in finished],
            evals=evals,
            last_hook_metrics={k: float(v) for k, v in last_hook_metrics.items()},
            wall_s=time.perf_counter() - t0,
        )
        last_ckpt = checkpoint.save(
            run_dir,
            meta={
                "config": to_dict(cfg),
                "awmp_version": __version__,
                "jax_version": jax.__version__,
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
            },
            agent_state=state,
            rng=rng,
            buffer=buffer,
            envs={"train": env, "eval": eval_env},
            loop=loop_state,
            keep=cfg.keep_checkpoints,
        )
        return last_ckpt

    def env_step(action: np.ndarray, t: int):
        try:
            return env.step(action.astype(np.float64))
        except Exception as e:  # noqa: BLE001 - a user env failing is bad input, not a crash
            raise EnvError(
                f"environment {cfg.env} raised {type(e).__name__} at step {t + 1}: {e}"
                f"{resume_hint()}"
            ) from e

    def env_reset(t: int):
        try:
            return env.reset()[0]
        except Exception as e:  # noqa: BLE001
            raise EnvError(
                f"environment {cfg.env} raised {type(e).__name__} in reset at step {t + 1}: {e}"
                f"{resume_hint()}"
            ) from e

    from awmp.progress import TrainProgress

    progress = TrainProgress(cfg.total_steps, enabled=cfg.progress)
    try:
        with _Signals() as signals, progress:
            for t in range(loop.step, cfg.total_steps):
                if t < cfg.warmup_steps:
                    action = rng.uniform(-1.0, 1.0, spec.act_dim).astype(np.float32)
                    extras = agent.warmup_extras(action)
                else:
                    if pending is None:
                        state, a, ex = act(state, jnp.asarray(obs[None]))
                        pending = (a, ex)
                    action = np.asarray(pending[0])[0]
                    extras = {k: np.asarray(v)[0] for k, v in pending[1].items()}
                    pending = None

                next_obs, reward, terminated, truncated, _ = env_step(action, t)
                try:
                    reward = float(reward)
                except (TypeError, ValueError):
                    raise EnvError(
                        f"reward at step {t + 1} is not a number: {reward!r}{resume_hint()}"
                    ) from None
                if not math.isfinite(reward):
                    raise EnvError(
                        diagnose(
                            "environment",
                            f"reward at step {t + 1} is not finite: {reward}",
                            reward=str(reward),
                            step=t + 1,
                        )
                    )
                try:
                    next_obs = _check_obs(next_obs, spec.obs_dim, t + 1)
                except EnvError as e:
                    raise EnvError(diagnose("environment", str(e), step=t + 1)) from None
                buffer.add(
                    obs=obs,
                    action=action,
                    reward=reward,
                    next_obs=next_obs,  # the true s' even at a time limit: bootstrap through it
                    terminated=float(terminated),
                    **extras,
                )
                ep_ret += reward
                ep_len += 1
                if terminated or truncated:
                    finished.append((ep_ret, ep_len))
                    ep_ret, ep_len = 0.0, 0
                    try:
                        obs = _check_obs(env_reset(t), spec.obs_dim, t + 1)
                    except EnvError as e:
                        raise EnvError(diagnose("environment", str(e), step=t + 1)) from None
                else:
                    obs = next_obs
                step = t + 1

                if agent.hook is not None:
                    state, hook_metrics = agent.hook(state, step, buffer, rng)
                    if hook_metrics is not None:
                        last_hook_metrics = hook_metrics

                if step >= cfg.warmup_steps and step < cfg.total_steps:
                    state, a, ex, last_metrics, guard = train_step(
                        state, sample_batches(), jnp.asarray(obs[None]), guard, step
                    )
                    pending = (a, ex)
                elif step >= cfg.warmup_steps:  # last step: update, no action needed
                    state, last_metrics, guard = update_only(state, sample_batches(), guard, step)

                if step % cfg.log_interval == 0 or step == cfg.total_steps:
                    now = time.perf_counter()
                    row = {
                        "step": step,
                        "seed": cfg.seed,
                        "episodes": len(finished),
                        "wall_s": round(now - t0, 3),
                        "steps_per_s": round((step - last_log_step) / max(now - last_log_t, 1e-9)),
                    }
                    if finished:
                        row["episode_return"] = float(np.mean([r for r, _ in finished]))
                        row["episode_length"] = float(np.mean([n for _, n in finished]))
                    if last_metrics is not None:
                        row.update({k: float(v) for k, v in jax.device_get(last_metrics).items()})
                    row.update({k: float(v) for k, v in last_hook_metrics.items()})
                    logger.log_train(row)
                    finished.clear()
                    last_log_t, last_log_step = now, step
                    verify(step)

                if step % cfg.eval_interval == 0 or step == cfg.total_steps:
                    verify(step)
                    evals.append(evaluate(step))
                    progress.set_eval(evals[-1]["return_mean"])
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
        kept = f"the last checkpoint {last_ckpt} is kept; " if last_ckpt else ""
        _say(f"stopped at step {step}; {kept}resume with: awmp train --resume {run_dir}")
        raise TrainingInterrupted(run_dir, step, signal.SIGINT, None) from None
    except OSError as e:  # a log write failed (e.g. a full disk); checkpoints are intact
        raise RunDirError(
            f"cannot write to run directory {run_dir}: {e.strerror or e}{resume_hint()}"
        ) from None
    finally:
        logger.close()

    wall = time.perf_counter() - t0
    try:
        (run_dir / PARAMS_FILE).write_bytes(flax.serialization.to_bytes(jax.device_get(state)))
    except OSError as e:
        raise RunDirError(
            f"cannot write {run_dir / PARAMS_FILE}: {e.strerror or e}{resume_hint()}"
        ) from None
    best = max(evals, key=lambda r: r["return_mean"]) if evals else None
    summary = {
        "run_dir": str(run_dir),
        "algo": cfg.algo,
        "env": cfg.env,
        "seed": cfg.seed,
        "total_steps": cfg.total_steps,
        "steps_done": step,
        "interrupted": interrupted_by is not None,
        "final_eval_return": evals[-1]["return_mean"] if evals else None,
        "final_eval_step": evals[-1]["step"] if evals else None,
        "best_eval_return": best["return_mean"] if best else None,
        "best_eval_step": best["step"] if best else None,
        "last_checkpoint": str(last_ckpt) if last_ckpt else None,
        "wall_s": round(wall, 3),
        "steps_per_s": round(step / wall, 2) if wall > 0 else None,
    }
    try:
        _write_json(run_dir / "summary.json", summary)
    except OSError as e:
        raise RunDirError(f"cannot write {run_dir / 'summary.json'}: {e.strerror or e}") from None
    if interrupted_by is not None:
        name = signal.Signals(interrupted_by).name
        _say(
            f"{name}: stopped after step {step}, checkpoint {last_ckpt} written; "
            f"resume with: awmp train --resume {run_dir}"
        )
        raise TrainingInterrupted(run_dir, step, interrupted_by, last_ckpt)
    return run_dir, summary
