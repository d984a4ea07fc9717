"""Interruption: SIGINT/SIGTERM checkpoint and exit 130/143; kill -9 at any moment loses nothing.

Real `awmp train` subprocesses. A run killed with SIGKILL at random moments (and once, on
purpose, halfway through writing a checkpoint) and resumed each time must end exactly where the
uninterrupted run ends.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import stop_at
from reliability import (  # noqa: F401
    assert_same_run,
    compile_cache,
    logged_steps,
    subprocess_env,
    wait_past,
)

from awmp import checkpoint
from awmp.cli import parse_train_config
from awmp.cli_train import run_train
from awmp.train import TrainingInterrupted, resume, train
from awmp.trainer import Signals, StopNow

FAULT_CLI = Path(__file__).with_name("fault_cli.py")


def _args(run_dir: Path, total_steps: int) -> list[str]:
    return [
        "train",
        "--env", "Pendulum-v1",
        "--total-steps", str(total_steps),
        "--warmup-steps", "50",
        "--eval-interval", "100",
        "--eval-episodes", "1",
        "--log-interval", "10",
        "--checkpoint-interval", "20",
        "--no-progress",
        "--sac.hidden", "16", "16",
        "--sac.batch-size", "16",
        "--run-dir", str(run_dir),
    ]  # fmt: skip


def _start(args: list[str], env: dict, kill_in_checkpoint: int | None = None) -> subprocess.Popen:
    """`awmp ARGS`; with kill_in_checkpoint=N, that process SIGKILLs itself halfway through its
    N-th checkpoint write (tests/fault_cli.py)."""
    cmd = [sys.executable, "-m", "awmp.cli"]
    if kill_in_checkpoint is not None:
        cmd = [sys.executable, str(FAULT_CLI), "--kill-in-checkpoint", str(kill_in_checkpoint)]
    return subprocess.Popen(
        [*cmd, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_prints_resume_and_exits(tmp_path_factory, tmp_path, signum, code):
    run_dir = tmp_path / "run"
    proc = _start(_args(run_dir, 100_000), subprocess_env(tmp_path_factory))
    wait_past(proc, run_dir, past=60)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"resume with: awmp train --resume {run_dir}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    ckpt = checkpoint.load_latest(run_dir)
    # The checkpoint is of the very step the signal interrupted, not the last periodic one.
    assert summary["interrupted"] and ckpt.loop.step == summary["steps_done"] > 60
    assert f"checkpoint {ckpt.path} written" in err
    # ...and the run continues from it.
    with pytest.raises(TrainingInterrupted) as info:
        resume(run_dir, progress=False, on_step=stop_at(ckpt.loop.step + 5))
    assert info.value.step == ckpt.loop.step + 5


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_resumable_identical_run(tmp_path_factory, tmp_path):
    total = 400
    reference = tmp_path / "reference"
    train(parse_train_config(_args(reference, total)[1:]))

    run_dir = tmp_path / "killed"
    rng = random.Random(20261124)
    env = subprocess_env(tmp_path_factory)
    kills = 0
    for attempt in range(4):
        # The third process kills itself halfway through writing its second checkpoint.
        self_kill = attempt == 2
        args = _args(run_dir, total) if attempt == 0 else ["train", "--resume", str(run_dir)]
        past = max(logged_steps(run_dir), default=0)
        proc = _start(args, env, kill_in_checkpoint=2 if self_kill else None)
        if not self_kill:
            # The kill lands at a random step 10-50 past the last logged one, plus a random
            # fraction of a step's time. Drawn in steps, not seconds: a warm compile cache makes
            # this run ~800 steps/s, and a kill drawn in seconds (0-0.4 s, once) let a resumed
            # process finish all 400 steps before it landed (CI, 2026-12-01).
            wait_past(proc, run_dir, past=past + rng.randint(10, 50), poll=0.005)
            time.sleep(rng.uniform(0.0, 0.01))
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err
        if proc.returncode == 0:
            break  # it finished before the kill landed
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        if self_kill:
            partial = list((run_dir / "checkpoints").glob(".step_*.tmp-*"))
            assert partial, "the self-kill should have left a half-written temp file"
            checkpoint.load_latest(run_dir)  # the complete checkpoints are intact
    assert kills >= 3
    proc = _start(["train", "--resume", str(run_dir)], env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert not list((run_dir / "checkpoints").glob(".step_*.tmp-*"))
    assert_same_run(reference, run_dir)


def test_a_second_signal_stops_at_once_unless_it_is_a_copy_of_the_first():
    """Within Signals.COPY_WINDOW_S of the first signal, a second one is a copy of the same stop
    (a process group's signal and a wrapper's forward of it); later, it stops the run at once."""
    now = [100.0]
    signals = Signals(clock=lambda: now[0])
    signals._handle(signal.SIGTERM, None)
    now[0] += 0.5 * Signals.COPY_WINDOW_S
    signals._handle(signal.SIGTERM, None)  # a copy: the loop still stops with its checkpoint
    assert signals.received == signal.SIGTERM
    now[0] += 0.5 * Signals.COPY_WINDOW_S  # the window counts from the first signal
    with pytest.raises(KeyboardInterrupt) as info:
        signals._handle(signal.SIGTERM, None)
    # ...and says which signal it was: `awmp train` exits 143 after a second SIGTERM, not 130.
    assert info.value.signum == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt) as info:
        signals._handle(signal.SIGINT, None)
    assert info.value.signum == signal.SIGINT


def test_a_second_sigterm_exits_143_with_the_last_checkpoint_intact(tmp_path):
    """The immediate stop of a second signal goes through the loop and `awmp train`'s exit code
    as the signal it was (it used to exit 130, SIGINT's, after a second SIGTERM)."""
    run_dir = tmp_path / "run"

    def second_sigterm(step: int) -> None:
        if step == 70:  # past the checkpoint of step 60 (every 20)
            raise StopNow(signal.SIGTERM)

    assert run_train(parse_train_config(_args(run_dir, 200)[1:]), on_step=second_sigterm) == 143
    assert checkpoint.load_latest(run_dir).loop.step == 60  # no new checkpoint; the last intact
