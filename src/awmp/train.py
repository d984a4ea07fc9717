"""The one training loop, for every algorithm.

Per environment step: act -> env.step -> store -> algorithm hook (SAC-AWMP's prior burst) ->
one jitted call that runs `updates_per_step` gradient steps and then acts on the new
observation. Evaluation, logging and saving happen at their intervals, outside the hot path.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from awmp import __version__, algos
from awmp.buffer import ReplayBuffer
from awmp.config import TrainConfig, to_dict, validate
from awmp.envs import EnvError, make_env
from awmp.evaluate import PARAMS_FILE, run_episodes
from awmp.logger import RunLogger

EVAL_SEED_OFFSET = 1_000_003  # the evaluation env's seed is seed + this: never the training seed


class RunDirError(ValueError):
    """The run directory cannot be used (it exists, or cannot be written)."""


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
            f"run directory {path} already exists; choose another --run-dir "
            "(runs are never overwritten)"
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


def _check_obs(obs: np.ndarray, obs_dim: int, step: int) -> np.ndarray:
    obs = np.asarray(obs, np.float32)
    if obs.shape != (obs_dim,):
        raise EnvError(f"observation at step {step} has shape {obs.shape}, expected ({obs_dim},)")
    if not np.all(np.isfinite(obs)):
        raise EnvError(f"observation at step {step} is not finite: {obs}")
    return obs


def train(cfg: TrainConfig) -> tuple[Path, dict]:
    """Train one agent as `cfg` says; return (run directory, summary dict)."""
    validate(cfg)
    env, spec = make_env(cfg.env)
    eval_env, _ = make_env(cfg.env)
    run_dir = create_run_dir(cfg)
    _write_json(run_dir / "config.json", run_metadata(cfg))

    agent = algos.get(cfg.algo).make_agent(spec, cfg.algo_config())
    acfg = cfg.algo_config()
    state = jax.jit(agent.init)(jax.random.PRNGKey(cfg.seed))
    rng = np.random.default_rng(cfg.seed)  # replay sampling and warm-up actions
    buffer = ReplayBuffer(
        min(cfg.buffer_size, cfg.total_steps), spec.obs_dim, spec.act_dim, agent.extra_fields
    )
    act = jax.jit(agent.act)
    act_det = jax.jit(agent.act_deterministic)
    train_step = algos.make_train_step(agent)
    update_only = jax.jit(algos.make_update_burst(agent))
    updates = cfg.updates_per_step
    batch_size = acfg.batch_size

    # Fixed train.csv columns: update metrics (found by abstract evaluation) and hook metrics.
    example = {k: jnp.asarray(v[:1]) for k, v in buffer.data.items()}
    names = algos.metric_names(agent, state, example)
    logger = RunLogger(run_dir, (*names, *agent.hook_metric_names))

    def sample_batches() -> dict:
        batch = buffer.sample(rng, updates * batch_size)
        return {k: v.reshape(updates, batch_size, *v.shape[1:]) for k, v in batch.items()}

    def evaluate(step: int) -> dict:
        def policy(o):
            return np.asarray(act_det(state, o))

        returns, _ = run_episodes(policy, eval_env, cfg.eval_episodes)
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

    obs, _ = env.reset(seed=cfg.seed)
    env.action_space.seed(cfg.seed)
    eval_env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)
    obs = _check_obs(obs, spec.obs_dim, 0)

    t0 = time.perf_counter()
    pending = None  # (action, extras) computed by the fused train step for the current obs
    last_metrics = None
    last_hook_metrics: dict = {}
    ep_ret, ep_len = 0.0, 0
    finished: list[tuple[float, int]] = []  # episodes finished since the last train.csv row
    evals: list[dict] = []
    last_log_t, last_log_step = t0, 0
    interrupted = False
    step = 0

    from awmp.progress import TrainProgress

    progress = TrainProgress(cfg.total_steps, enabled=cfg.progress)
    try:
        with progress:
            for t in range(cfg.total_steps):
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

                next_obs, reward, terminated, truncated, _ = env.step(action.astype(np.float64))
                reward = float(reward)
                if not math.isfinite(reward):
                    raise EnvError(f"reward at step {t + 1} is not finite: {reward}")
                next_obs = _check_obs(next_obs, spec.obs_dim, t + 1)
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
                    obs = _check_obs(env.reset()[0], spec.obs_dim, t + 1)
                else:
                    obs = next_obs
                step = t + 1

                if agent.hook is not None:
                    state, hook_metrics = agent.hook(state, step, buffer, rng)
                    if hook_metrics is not None:
                        last_hook_metrics = hook_metrics

                if step >= cfg.warmup_steps and step < cfg.total_steps:
                    state, a, ex, last_metrics = train_step(
                        state, sample_batches(), jnp.asarray(obs[None])
                    )
                    pending = (a, ex)
                elif step >= cfg.warmup_steps:  # last step: update, no action needed
                    state, last_metrics = update_only(state, sample_batches())

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

                if step % cfg.eval_interval == 0 or step == cfg.total_steps:
                    evals.append(evaluate(step))
                    progress.set_eval(evals[-1]["return_mean"])
                progress.advance(step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        logger.close()
        env.close()
        eval_env.close()

    wall = time.perf_counter() - t0
    (run_dir / PARAMS_FILE).write_bytes(flax.serialization.to_bytes(jax.device_get(state)))
    best = max(evals, key=lambda r: r["return_mean"]) if evals else None
    summary = {
        "run_dir": str(run_dir),
        "algo": cfg.algo,
        "env": cfg.env,
        "seed": cfg.seed,
        "total_steps": cfg.total_steps,
        "steps_done": step,
        "interrupted": interrupted,
        "final_eval_return": evals[-1]["return_mean"] if evals else None,
        "final_eval_step": evals[-1]["step"] if evals else None,
        "best_eval_return": best["return_mean"] if best else None,
        "best_eval_step": best["step"] if best else None,
        "wall_s": round(wall, 3),
        "steps_per_s": round(step / wall, 2) if wall > 0 else None,
    }
    _write_json(run_dir / "summary.json", summary)
    if interrupted:
        raise KeyboardInterrupt(str(run_dir))
    return run_dir, summary
