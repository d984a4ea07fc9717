"""One seed's host side: its envs, replay buffer, NumPy generator, logs and episode.

Everything here is per seed and on the host: warm-up actions, stepping and checking the
environment, storing transitions, replay sampling, episode bookkeeping, evaluation episodes,
what a checkpoint keeps of the loop, and the diagnostic file when something goes wrong.
A seed of a multi-seed run has exactly what a single-seed run of that seed would have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from awmp import checkpoint
from awmp.buffer import ReplayBuffer
from awmp.checkpoint import LoopState
from awmp.config import TrainConfig
from awmp.envs import EnvError
from awmp.evaluate import run_episodes
from awmp.logger import RunLogger
from awmp.rundir import say, write_json

EVAL_SEED_OFFSET = 1_000_003  # the evaluation env's seed is seed + this: never the training seed
DIAGNOSTIC_FILE = "diagnostic.json"


def check_obs(obs, obs_dim: int, step: int) -> np.ndarray:
    """`obs` as float32 of shape (obs_dim,), or an EnvError naming what is wrong with it."""
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


@dataclass(frozen=True)
class Messages:
    """How error messages name a seed and say how to continue, for a group of `n` seeds."""

    n: int
    resume_target: str  # what `--resume` takes: the run directory, or DIR1,DIR2,...

    def label(self, seed: int, run_dir: Path) -> str:
        return "" if self.n == 1 else f"seed {seed} ({run_dir}): "

    def hint(self, last_ckpt: Path | None) -> str:
        if last_ckpt is None:  # --resume would only start over from step 0: do not suggest it
            return "; no checkpoint was written yet, so there is nothing to resume"
        if self.n == 1:
            kept = f"the last checkpoint {last_ckpt} is kept; "
        else:
            kept = f"the last checkpoints ({last_ckpt.name} in each run directory) are kept; "
        return f"; {kept}resume with: awmp train --resume {self.resume_target}"


class SeedRun:
    """One seed: config, run directory, envs, generator, buffer, logger, episode in progress."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        env,
        eval_env,
        buffer: ReplayBuffer,
        obs_dim: int,
        messages: Messages,
    ) -> None:
        self.cfg, self.run_dir, self.env, self.eval_env = cfg, run_dir, env, eval_env
        self.buffer, self.obs_dim, self.messages = buffer, obs_dim, messages
        self.rng = np.random.default_rng(cfg.seed)  # replay sampling, warm-up actions, hooks
        self.logger: RunLogger | None = None
        self.obs = np.zeros(0, np.float32)
        self.ep_ret, self.ep_len = 0.0, 0
        self.finished: list[tuple] = []  # episodes finished since the last train.csv row
        self.evals: list[dict] = []
        self.last_hook_metrics: dict = {}
        self.last_ckpt: Path | None = None

    # ------------------------------------------------------------------ start, resume, end

    def reset(self) -> None:
        """Seed and reset both envs, as a fresh run does (a resume then restores over it)."""
        obs, _ = self.env.reset(seed=self.cfg.seed)
        self.env.action_space.seed(self.cfg.seed)
        self.eval_env.reset(seed=self.cfg.seed + EVAL_SEED_OFFSET)
        self.obs = check_obs(obs, self.obs_dim, 0)

    def restore(self, ckpt: checkpoint.Checkpoint, template):
        """Load generator, buffer, envs and episode from `ckpt`; return the agent state."""
        where = f"checkpoint {ckpt.path}"
        state = checkpoint.restore_agent(template, ckpt.agent, where)
        self.rng = checkpoint.restore_rng(ckpt.meta["rng"])
        checkpoint.restore_buffer(self.buffer, ckpt.buffer, where)
        for name, e in (("train", self.env), ("eval", self.eval_env)):
            for warning in checkpoint.restore_env(e, ckpt.envs[name], where):
                say(f"warning: {warning}")
        loop = ckpt.loop
        self.obs, self.ep_ret, self.ep_len = loop.obs, loop.ep_ret, loop.ep_len
        self.finished = [tuple(x) for x in loop.finished]
        self.evals = list(loop.evals)
        self.last_hook_metrics = dict(loop.last_hook_metrics)
        self.last_ckpt = ckpt.path
        return state

    def loop_state(self, step: int, pending: dict | None, wall_s: float) -> LoopState:
        """What a checkpoint keeps of this seed's loop variables."""
        return LoopState(
            step=step,
            obs=self.obs,
            pending=pending,
            ep_ret=self.ep_ret,
            ep_len=self.ep_len,
            finished=[list(x) for x in self.finished],
            evals=self.evals,
            last_hook_metrics={k: float(v) for k, v in self.last_hook_metrics.items()},
            wall_s=wall_s,
        )

    # ------------------------------------------------------------------ one env step

    def warmup_action(self, act_dim: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)

    def observe(self, action: np.ndarray, extras: dict, t: int) -> None:
        """One environment step: step, check, store, episode bookkeeping."""
        next_obs, reward, terminated, truncated, _ = self._env_step(action, t)
        reward = self._check_reward(reward, t + 1)
        next_obs = self._checked_obs(next_obs, t + 1)
        self.buffer.add(
            obs=self.obs,
            action=action,
            reward=reward,
            next_obs=next_obs,  # the true s' even at a time limit: bootstrap through it
            terminated=float(terminated),
            **extras,
        )
        self.ep_ret += reward
        self.ep_len += 1
        if terminated or truncated:
            self.finished.append((self.ep_ret, self.ep_len))
            self.ep_ret, self.ep_len = 0.0, 0
            self.obs = self._checked_obs(self._env_reset(t)[0], t + 1)
        else:
            self.obs = next_obs

    def _env_step(self, action: np.ndarray, t: int):
        try:
            return self.env.step(action.astype(np.float64))
        except Exception as e:  # noqa: BLE001 - a user env failing is bad input, not a crash
            raise self._env_raised(e, f"at step {t + 1}") from e

    def _env_reset(self, t: int):
        try:
            return self.env.reset()
        except Exception as e:  # noqa: BLE001
            raise self._env_raised(e, f"in reset at step {t + 1}") from e

    def _env_raised(self, e: Exception, where: str) -> EnvError:
        return EnvError(
            f"{self.label()}environment {self.cfg.env} raised {type(e).__name__} {where}: "
            f"{e}{self.hint()}"
        )

    def _check_reward(self, reward, step: int) -> float:
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            raise EnvError(
                f"{self.label()}reward at step {step} is not a number: {reward!r}{self.hint()}"
            ) from None
        if not math.isfinite(reward):
            message = f"reward at step {step} is not finite: {reward}"
            raise EnvError(self.diagnose("environment", message, step, reward=str(reward)))
        return reward

    def _checked_obs(self, obs, step: int) -> np.ndarray:
        try:
            return check_obs(obs, self.obs_dim, step)
        except EnvError as e:
            raise EnvError(self.diagnose("environment", str(e), step)) from None

    def sample(self, updates: int, batch_size: int) -> dict:
        """`updates` replay batches of `batch_size`, shaped (updates, batch_size, ...)."""
        batch = self.buffer.sample(self.rng, updates * batch_size)
        return {k: v.reshape(updates, batch_size, *v.shape[1:]) for k, v in batch.items()}

    # ------------------------------------------------------------------ logs and evaluation

    def log_train(self, step: int, metrics: dict, wall_s: float, steps_per_s: float) -> dict:
        """One train.csv row: episodes finished since the last row, losses, hook metrics."""
        row = {
            "step": step,
            "seed": self.cfg.seed,
            "episodes": len(self.finished),
            "wall_s": round(wall_s, 3),
            "steps_per_s": round(steps_per_s),
        }
        if self.finished:
            row["episode_return"] = float(np.mean([r for r, _ in self.finished]))
            row["episode_length"] = float(np.mean([x for _, x in self.finished]))
        row.update(metrics)
        row.update({k: float(v) for k, v in self.last_hook_metrics.items()})
        self.logger.log_train(row)
        self.finished.clear()
        return row

    def evaluate(self, policy: Callable, step: int, t0: float) -> dict:
        """Evaluation episodes of `policy` in the eval env; the eval.csv row, also kept."""
        try:
            returns, _ = run_episodes(policy, self.eval_env, self.cfg.eval_episodes)
        except EnvError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of a user env is reported as such
            raise EnvError(
                f"{self.label()}evaluation environment {self.cfg.env} raised "
                f"{type(e).__name__} at step {step}: {e}{self.hint()}"
            ) from e
        row = {
            "step": step,
            "seed": self.cfg.seed,
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "episodes": len(returns),
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        self.logger.log_eval(row)
        self.evals.append(row)
        return row

    # ------------------------------------------------------------------ messages

    def label(self) -> str:
        """Prefixes messages about one seed of a multi-seed run."""
        return self.messages.label(self.cfg.seed, self.run_dir)

    def hint(self) -> str:
        """How to continue after an error: the kept checkpoint and the resume command."""
        return self.messages.hint(self.last_ckpt)

    def diagnose(self, kind: str, message: str, step: int, **details) -> str:
        """Write diagnostic.json (what went wrong, where, last metrics); return the line."""
        diag = {
            "kind": kind,
            "message": message,
            "step": step,
            "last_good_checkpoint": str(self.last_ckpt) if self.last_ckpt else None,
            "episode_step": self.ep_len,
            **details,
        }
        try:
            write_json(self.run_dir / DIAGNOSTIC_FILE, diag)
        except OSError:
            pass
        return f"{self.label()}{message}{self.hint()} (details in {self.run_dir / DIAGNOSTIC_FILE})"
