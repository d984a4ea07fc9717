"""The training loop as a story: `Trainer.run` reads top to bottom, one named step at a time.

Per environment step: act (or warm up) and step every seed's env, store -> algorithm hook
(SAC-AWMP's prior burst) -> one jitted call that runs `updates_per_step` gradient steps and
then acts on the new observation -> at their intervals: log, evaluate, checkpoint. The seed axis
lives in awmp.seedaxis, each seed's host side in awmp.seedrun, the divergence guard in
awmp.guard, run directories and resume in awmp.rundir.
"""

from __future__ import annotations

import datetime as _dt
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from awmp import algos, checkpoint
from awmp._version import __version__
from awmp.buffer import ReplayBuffer
from awmp.callbacks import Callback, Callbacks
from awmp.config import TrainConfig, to_dict
from awmp.envs import EnvSpec, make_env
from awmp.evaluate import BEST_PARAMS_FILE, PARAMS_FILE, params_bytes
from awmp.guard import DivergenceError, DivergenceGuard
from awmp.logger import LogResumeError, RunLogger
from awmp.rundir import RunDirError, checkpoint_interval, checkpoint_seconds, say, write_json
from awmp.seedaxis import SeedAxis
from awmp.seedrun import Messages, SeedRun
from awmp.track import open_tracker

# Called after every environment step with the step number (after that step's logging and
# evaluation, before its checkpoint); a true return value stops the run there as Ctrl-C does.
OnStep = Callable[[int], Any]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after a step; `checkpoint` is None if none was written.

    `run_dir`: the run directory, or the list of them for a multi-seed run (`seeds`).
    """

    def __init__(self, run_dir: Path, step: int, signum: int, ckpt: Path | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.step, self.signum, self.checkpoint = run_dir, step, signum, ckpt


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM: the run stops at once, without a new checkpoint (`signum`: it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Turns the first SIGINT/SIGTERM into a flag the loop reads after each step.

    A second signal stops the run at once (the last checkpoint is kept), unless it comes within
    `COPY_WINDOW_S` of the first: then it is taken as a copy of the same stop. A signal sent to a
    process group and a wrapper's forward of it (experiments/run_queue.sh, a batch scheduler's
    step launcher) arrive together, and must not cost the checkpoint of the step they stopped.
    """

    COPY_WINDOW_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.received: int | None = None
        self._first_at = 0.0
        self._clock = clock
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        now = self._clock()
        if self.received is None:
            self.received, self._first_at = signum, now
        elif now - self._first_at >= self.COPY_WINDOW_S:  # a second stop: now, no checkpoint
            raise StopNow(signum)

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class Components:
    """What a run is built from; a test passes its own (e.g. a buffer that records)."""

    make_buffer: Callable[..., ReplayBuffer] = ReplayBuffer
    make_env: Callable[[str], tuple[Any, EnvSpec]] = make_env
    make_signals: Callable[[], Signals] = Signals


class Trainer:
    """One run of N >= 1 seeds: host work per seed, one device call per step for all of them."""

    def __init__(
        self,
        group: list[TrainConfig],
        run_dirs: list[Path],
        envs: list,
        eval_envs: list,
        spec: EnvSpec,
        ckpts: list[checkpoint.Checkpoint | None],
        components: Components | None = None,
        callbacks: list[Callback] = (),  # type: ignore[assignment]
    ) -> None:
        self.cfg = cfg = group[0]  # every field but seed, run_dir and resume is the same
        self.components = components or Components()
        self.callbacks, self.spec, self.axis = Callbacks(callbacks), spec, SeedAxis(len(group))
        self.agent = algos.get(cfg.algo).make_agent(spec, cfg.algo_config())
        self.updates, self.batch_size = cfg.updates_per_step, cfg.algo_config().batch_size
        self.ckpt_every = checkpoint_interval(cfg)
        self.ckpt_seconds = checkpoint_seconds(cfg)
        self.compiled = False  # the fused train step has run once (compiled)
        self.last_ckpt_time = time.monotonic()
        self.run_dirs = list(run_dirs)
        self.resume_target = ",".join(map(str, run_dirs))
        messages = Messages(self.axis.n, self.resume_target)
        capacity = min(cfg.buffer_size, cfg.total_steps)
        self.seeds = [
            SeedRun(m, d, e, ev, self._buffer(capacity), spec.obs_dim, messages)
            for m, d, e, ev in zip(group, run_dirs, envs, eval_envs, strict=True)
        ]
        # Each seed's initial state exactly as a single-seed run makes it.
        init = jax.jit(self.agent.init)
        init_states = [init(jax.random.PRNGKey(m.seed)) for m in group]
        # Fixed train.csv columns: update metrics (found by abstract evaluation), hook metrics.
        example = {k: jnp.asarray(v[:1]) for k, v in self.seeds[0].buffer.data.items()}
        names = algos.metric_names(self.agent, init_states[0], example)
        self.guard = DivergenceGuard(names, self.axis)
        self._compile()
        self.flags = self.guard.initial_flags()
        self.step, self.wall_s = 0, 0.0
        self.pending = None  # (actions (n, 1, d), extras) the fused step computed for the obs
        self.last_metrics: dict | None = None
        self.interrupted_by: int | None = None  # the signal that stopped the run
        self.stopped_by_callback = False  # a callback asked to stop: the run returns normally
        for s in self.seeds:
            s.reset()
        if ckpts[0] is not None:
            init_states = self._restore(ckpts, init_states)
        elif cfg.resume:
            say(f"resuming {self.resume_target}: no checkpoint yet, restarting from step 0")
        self.state = self.axis.stack(init_states)
        hook = self.agent.hook
        self._open_logs((*names, *(hook.metric_names if hook else ())))
        self.start = self.step

    # ------------------------------------------------------------------ the loop

    def run(self) -> list[tuple[Path, dict]]:
        """Train to `total_steps`; write final parameters and summaries; [(run_dir, summary)]."""
        from awmp.progress import TrainProgress

        self.t0 = time.perf_counter() - self.wall_s
        self.last_log_t, self.last_log_step = time.perf_counter(), self.step
        self.progress = TrainProgress(
            self.cfg.total_steps,
            enabled=self.cfg.progress,
            start=self.start,
            log_interval=self.cfg.log_interval,
            warmup=self.cfg.warmup_steps,
        )
        if self.cfg.progress:  # where to look while it runs (also in a log file or a pipe)
            say(f"run directory: {self.resume_target}")
        try:
            with self.components.make_signals() as signals, self.progress:
                self._loop(signals)
        except KeyboardInterrupt as e:  # a second signal: stopped without a new checkpoint
            say(f"stopped at step {self.step}{self._hint()}")
            signum = getattr(e, "signum", signal.SIGINT)  # a bare KeyboardInterrupt is Ctrl-C
            raise TrainingInterrupted(self._run_dir(), self.step, signum, None) from None
        except OSError as e:  # a log write failed (e.g. a full disk); checkpoints are intact
            raise RunDirError(
                f"cannot write to run directory {self.resume_target}: {e.strerror or e}"
                f"{self._hint()}"
            ) from None
        finally:
            for s in self.seeds:
                if s.logger is not None:
                    s.logger.close()
        results = self._write_final_files()
        if self.interrupted_by is not None:
            self._stop_interrupted()
        if self.stopped_by_callback:
            say(
                f"a callback stopped the run after step {self.step} ({self._written()}); "
                f"continue it with: awmp train --resume {self.resume_target}"
            )
        return results

    def _loop(self, signals: Signals) -> None:
        """Every environment step from `start` to `total_steps`, in order."""
        cfg = self.cfg
        for t in range(self.start, cfg.total_steps):
            self._act_and_observe(t)  # warm-up or policy action, every seed's env step, store
            step = self.step = t + 1
            self._algorithm_hook(step)  # SAC-AWMP's prior burst, when due
            self._update(step)  # gradient steps, then the action for the new observation
            if step % cfg.log_interval == 0 or step == cfg.total_steps:
                self._log(step)  # train.csv, progress line, divergence check
            if cfg.eval_interval and (step % cfg.eval_interval == 0 or step == cfg.total_steps):
                self._evaluate(step)  # eval.csv
            self.progress.advance(step)
            self.callbacks("on_step", step)
            if (signals.received is not None or self.callbacks.stop) and step < cfg.total_steps:
                # A signal (Ctrl-C, SIGTERM) wins over a callback's request: it raises.
                self.interrupted_by = signals.received
                self.stopped_by_callback = signals.received is None
                self._save_checkpoint(step)
                return
            if step % self.ckpt_every == 0 or step == cfg.total_steps or self._overdue():
                self._save_checkpoint(step)
                if self.callbacks.stop and step < cfg.total_steps:  # asked by on_checkpoint
                    self.stopped_by_callback = True
                    return

    # ------------------------------------------------------------------ the named steps

    def _act_and_observe(self, t: int) -> None:
        if t < self.cfg.warmup_steps:
            for s in self.seeds:
                action = s.warmup_action(self.spec.act_dim)
                s.observe(action, self.agent.warmup_extras(action), t)
            return
        if self.pending is None:  # no action from a train step yet (e.g. warm-up 0, a resume)
            with self.progress.phase("compiling"):
                self.state, a, ex = self._act(self.state, self._obs_batch())
            self.pending = (a, ex)
        actions, extras = self.axis.to_host(self.pending)  # one transfer for all seeds
        self.pending = None
        for i, s in enumerate(self.seeds):
            s.observe(actions[i, 0], {k: v[i, 0] for k, v in extras.items()}, t)

    def _algorithm_hook(self, step: int) -> None:
        hook = self.agent.hook
        if hook is None or not hook.due(step):
            return
        # Gradient steps so far: one burst of `updates` at every step from the one that
        # completes the warm-up (and >= 1), before this step's.
        grad_steps = max(0, step - max(self.cfg.warmup_steps, 1)) * self.updates
        drawn = [hook.draw(step, s.buffer, s.rng, grad_steps) for s in self.seeds]
        if drawn[0] is None:  # due for every seed at once: same step and sizes
            return
        data = {k: np.stack([d[k] for d in drawn]) for k in drawn[0]}
        with self.progress.phase("prior burst"):
            self.state, metrics = self._hook_apply(self.state, self.axis.to_device(data))
            metrics = self.axis.to_host(metrics)
        for i, s in enumerate(self.seeds):
            s.last_hook_metrics = {k: float(v[i]) for k, v in metrics.items()}

    def _update(self, step: int) -> None:
        if step < self.cfg.warmup_steps:
            return
        batches = self.axis.stack_host(
            [s.sample(self.updates, self.batch_size) for s in self.seeds]
        )
        if step < self.cfg.total_steps:
            with self.progress.phase(None if self.compiled else "compiling"):
                self.state, a, ex, self.last_metrics, self.flags = self._train_step(
                    self.state, batches, self._obs_batch(), self.flags, step
                )
            self.compiled = True
            self.pending = (a, ex)
        else:  # the last step: update, no action needed
            self.state, self.last_metrics, self.flags = self._update_only(
                self.state, batches, self.flags, step
            )

    def _log(self, step: int) -> None:
        now = time.perf_counter()
        metrics = self.axis.to_host(self.last_metrics) if self.last_metrics is not None else {}
        steps_per_s = (step - self.last_log_step) / max(now - self.last_log_t, 1e-9)
        rows = [
            s.log_train(
                step, {k: float(v[i]) for k, v in metrics.items()}, now - self.t0, steps_per_s
            )
            for i, s in enumerate(self.seeds)
        ]
        self.last_log_t, self.last_log_step = now, step
        self.progress.set_losses({k: float(np.mean(v)) for k, v in metrics.items()})
        self._verify(step)
        self.callbacks("on_log", step, rows)

    def _evaluate(self, step: int) -> None:
        self._verify(step)
        with self.progress.phase("evaluating"):
            for i, s in enumerate(self.seeds):
                params = self.axis.index(self.state, i)
                s.evaluate(lambda o, p=params: np.asarray(self._act_det(p, o)), step, self.t0)
                if s.evals[-1]["return_mean"] >= max(r["return_mean"] for r in s.evals):
                    self._write_best(s, params)
        self.progress.set_eval(float(np.mean([s.evals[-1]["return_mean"] for s in self.seeds])))
        self.callbacks("on_eval", step, [dict(s.evals[-1]) for s in self.seeds])

    def _verify(self, step: int) -> None:
        """The divergence check; diagnostic.json for each diverged seed."""
        findings = self.guard.check(step, self.flags, self.state, self.last_metrics)
        if findings:
            lines = [
                self.seeds[f["seed"]].diagnose("divergence", f["message"], step, **f["details"])
                for f in findings
            ]
            raise DivergenceError("; ".join(lines))

    def _overdue(self) -> bool:
        """An automatic-cadence run whose last checkpoint is older than ckpt_seconds."""
        return (
            self.ckpt_seconds is not None
            and time.monotonic() - self.last_ckpt_time >= self.ckpt_seconds
        )

    def _save_checkpoint(self, step: int) -> None:
        with self.progress.phase("checkpoint"):
            self._write_checkpoint(step)
        self.callbacks("on_checkpoint", step, [Path(s.last_ckpt) for s in self.seeds])

    def _write_checkpoint(self, step: int) -> None:
        self.last_ckpt_time = time.monotonic()
        self._verify(step)  # never a checkpoint of a diverged state
        pending = self.axis.to_host(self.pending) if self.pending is not None else None
        meta = {
            "awmp_version": __version__,
            "jax_version": jax.__version__,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        wall = time.perf_counter() - self.t0
        for i, s in enumerate(self.seeds):
            own = None
            if pending is not None:
                own = {
                    "action": np.asarray(pending[0][i]),
                    "extras": {k: np.asarray(v[i]) for k, v in pending[1].items()},
                }
            s.last_ckpt = checkpoint.save(
                s.run_dir,
                meta={"config": to_dict(s.cfg), **meta},
                agent_state=self.axis.index(self.state, i),
                rng=s.rng,
                buffer=s.buffer,
                envs={"train": s.env, "eval": s.eval_env},
                loop=s.loop_state(step, own, wall),
                keep=self.cfg.keep_checkpoints,
            )

    # ------------------------------------------------------------------ set-up

    def _buffer(self, capacity: int) -> ReplayBuffer:
        spec, extra = self.spec, self.agent.extra_fields
        return self.components.make_buffer(capacity, spec.obs_dim, spec.act_dim, extra)

    def _compile(self) -> None:
        """The jitted device calls, each over the seed axis. The agent state and the guard's
        flags are donated: a step updates them in place instead of allocating anew."""
        agent, axis, guard = self.agent, self.axis, self.guard
        fused_step = algos.make_train_step(agent)
        update_burst = algos.make_update_burst(agent)

        def train_step(state, batches, obs, flags, step):
            state, a, ex, metrics = fused_step(state, batches, obs)
            return state, a, ex, metrics, guard.update(flags, metrics, step)

        def update_only(state, batches, flags, step):
            state, metrics = update_burst(state, batches)
            return state, metrics, guard.update(flags, metrics, step)

        self._train_step = jax.jit(axis.map(train_step, (0, 0, 0, 0, None)), donate_argnums=(0, 3))
        self._update_only = jax.jit(axis.map(update_only, (0, 0, 0, None)), donate_argnums=(0, 2))
        self._act = jax.jit(axis.map(agent.act, (0, 0)), donate_argnums=0)
        self._act_det = jax.jit(agent.act_deterministic)
        self._hook_apply = None
        if agent.hook is not None:
            self._hook_apply = jax.jit(axis.map(agent.hook.apply, (0, 0)), donate_argnums=0)

    def _restore(self, ckpts: list, init_states: list) -> list:
        """Every seed from its checkpoint; the loop's step, wall time and pending action."""
        states = [
            s.restore(c, template)
            for s, c, template in zip(self.seeds, ckpts, init_states, strict=True)
        ]
        ckpt = ckpts[0]
        for key, ours in (("awmp_version", __version__), ("jax_version", jax.__version__)):
            if ckpt.meta.get(key) != ours:
                say(
                    f"warning: the checkpoint was written with {key} {ckpt.meta.get(key)}, this "
                    f"is {ours}: the continuation may differ in the last bits"
                )
        self.step, self.wall_s = ckpt.loop.step, ckpt.loop.wall_s
        if ckpt.loop.pending is not None:
            pends = [c.loop.pending for c in ckpts]
            stacked = (
                np.stack([p["action"] for p in pends]),
                {k: np.stack([p["extras"][k] for p in pends]) for k in pends[0]["extras"]},
            )
            self.pending = jax.tree.map(jnp.asarray, self.axis.to_device(stacked))
        say(f"resuming {self.resume_target} from step {self.step} ({ckpt.path.name})")
        return states

    def _open_logs(self, columns: tuple[str, ...]) -> None:
        resume_step = self.step if self.cfg.resume else None
        for s in self.seeds:
            try:
                s.logger = RunLogger(s.run_dir, columns, resume_step=resume_step)
                s.logger.tracker = open_tracker(s.cfg, s.run_dir)  # --track: W&B, or None
            except LogResumeError as e:
                raise RunDirError(f"cannot resume {s.run_dir}: {e}") from None
            except OSError as e:
                raise RunDirError(f"cannot write to run directory {s.run_dir}: {e}") from None

    def _obs_batch(self) -> np.ndarray:  # (n, 1, obs_dim); NumPy: jit transfers it, no eager op
        return self.axis.to_device(np.stack([s.obs for s in self.seeds])[:, None])

    # ------------------------------------------------------------------ the end

    def _run_dir(self) -> Path | list[Path]:
        return self.run_dirs[0] if self.axis.n == 1 else self.run_dirs

    def _hint(self) -> str:
        return self.seeds[0].hint()

    def _write_best(self, s: SeedRun, params) -> None:
        """best_params.msgpack: the acting parameters at the seed's best evaluation so far
        (ties: latest)."""
        path = s.run_dir / BEST_PARAMS_FILE
        try:
            checkpoint.atomic_write(path, params_bytes(self.agent, params))
        except OSError as e:
            raise RunDirError(f"cannot write {path}: {e.strerror or e}{self._hint()}") from None

    def _write_final_files(self) -> list[tuple[Path, dict]]:
        wall = time.perf_counter() - self.t0
        return [self._write_final(i, s, wall) for i, s in enumerate(self.seeds)]

    def _write_final(self, i: int, s: SeedRun, wall: float) -> tuple[Path, dict]:
        """A seed's final acting parameters and summary.json (written last: the run is
        complete). The whole final state is in the step's checkpoint."""
        params = s.run_dir / PARAMS_FILE
        try:
            state = self.axis.index(self.state, i)
            checkpoint.atomic_write(params, params_bytes(self.agent, state))
        except OSError as e:
            raise RunDirError(f"cannot write {params}: {e.strerror or e}{self._hint()}") from None
        evals, step = s.evals, self.step
        best = max(evals, key=lambda r: r["return_mean"]) if evals else None
        summary = {
            "run_dir": str(s.run_dir),
            "algo": self.cfg.algo,
            "env": self.cfg.env,
            "seed": s.cfg.seed,
            "total_steps": self.cfg.total_steps,
            "steps_done": step,
            "interrupted": self.interrupted_by is not None,
            "stopped_by": self._stopped_by(),  # "callback", "SIGINT", "SIGTERM"; None: finished
            "final_eval_return": evals[-1]["return_mean"] if evals else None,
            "final_eval_step": evals[-1]["step"] if evals else None,
            "best_eval_return": best["return_mean"] if best else None,
            "best_eval_step": best["step"] if best else None,
            "last_checkpoint": str(s.last_ckpt) if s.last_ckpt else None,
            "wall_s": round(wall, 3),
            "steps_per_s": round(step / wall, 2) if wall > 0 else None,
        }
        if self.axis.n > 1:
            summary["seeds_in_process"] = self.axis.n  # steps_per_s is per seed
        try:
            write_json(s.run_dir / "summary.json", summary)
        except OSError as e:
            raise RunDirError(
                f"cannot write {s.run_dir / 'summary.json'}: {e.strerror or e}"
            ) from None
        return s.run_dir, summary

    def _stopped_by(self) -> str | None:
        if self.interrupted_by is not None:
            return signal.Signals(self.interrupted_by).name
        return "callback" if self.stopped_by_callback else None

    def _written(self) -> str:
        last = self.seeds[0].last_ckpt
        if self.axis.n == 1:
            return f"checkpoint {last} written"
        return f"checkpoints {last.name} written in each run directory"

    def _stop_interrupted(self) -> None:
        name = signal.Signals(self.interrupted_by).name
        say(
            f"{name}: stopped after step {self.step}, {self._written()}; "
            f"resume with: awmp train --resume {self.resume_target}"
        )
        last = self.seeds[0].last_ckpt
        raise TrainingInterrupted(self._run_dir(), self.step, self.interrupted_by, last)
