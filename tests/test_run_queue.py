"""experiments/run_queue.sh, the runner of every study: a signal stops its run with a checkpoint of
the step it stopped, whether it reaches the script alone (the run is the script's background
child, so the script must pass it on) or the whole process group (the run then gets the group's
signal and the script's copy of it: one stop; the unit test of that rule is in test_interrupt).
The same command resumes the run. Real processes: the script, `awmp experiment`, a tiny SAC on
Pendulum-v1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from reliability import compile_cache, subprocess_env, wait_past  # noqa: F401

from awmp import checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "run_queue.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("taskset") is None or not (ROOT / ".venv" / "bin" / "awmp").exists(),
    reason="run_queue.sh needs taskset and the checkout's .venv (make test makes it)",
)

GRID = """
[defaults]
seeds = [0, 1]
total_steps = 100_000
warmup_steps = 50
eval_interval = 50_000
eval_episodes = 1
log_interval = 10
checkpoint_interval = 1_000_000
progress = false
"sac.hidden" = [16, 16]
"sac.batch_size" = 16

[[grid]]
name = "p"
envs = ["Pendulum-v1"]
algos = ["sac"]
"""


def _frozen_copy(dest: Path) -> Path:
    """What experiments/freeze_src.sh makes (tested in test_provenance), without needing git."""
    shutil.copytree(
        ROOT / "src" / "awmp", dest / "awmp", ignore=shutil.ignore_patterns("__pycache__")
    )
    (dest / "awmp" / "FROZEN.json").write_text(
        json.dumps({"git_commit": None, "git_dirty": None, "frozen": "test"})
    )
    return dest


def _start(tmp_path: Path, env: dict) -> subprocess.Popen:
    core = min(os.sched_getaffinity(0))
    return subprocess.Popen(
        ["bash", str(SCRIPT), str(core), str(tmp_path / "grid.toml"), str(tmp_path / "runs"),
         "p:0", "p:1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, which one test signals as a whole
    )  # fmt: skip


def _stopped_with_checkpoint_of_its_step(proc: subprocess.Popen, run_dir: Path) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run never heard of the signal
        out = proc.communicate()[0]
        raise AssertionError(f"not stopped 120 s after the signal: {out}") from None
    assert proc.returncode == 143, out
    assert "Traceback" not in out
    summary = json.loads((run_dir / "summary.json").read_text())
    ckpt = checkpoint.load_latest(run_dir)
    # The checkpoint is of the very step the signal stopped (the periodic ones never come here).
    assert summary["interrupted"] and ckpt.loop.step == summary["steps_done"], out
    return ckpt.loop.step, out


def test_a_signal_stops_the_queue_with_a_checkpoint_and_the_same_command_resumes(
    tmp_path, tmp_path_factory
):
    (tmp_path / "grid.toml").write_text(GRID)
    env = subprocess_env(tmp_path_factory, AWMP_SRC=str(_frozen_copy(tmp_path / "frozen")))
    run_dir = tmp_path / "runs" / "Pendulum-v1" / "sac" / "default" / "seed0-100000steps"

    # SIGTERM to the script alone: it passes it on, the run checkpoints its step, the queue ends.
    proc = _start(tmp_path, env)
    wait_past(proc, run_dir, past=60, timeout=180, may_exit=False, group=True)
    proc.send_signal(signal.SIGTERM)
    first, out = _stopped_with_checkpoint_of_its_step(proc, run_dir)
    assert first > 60
    assert "stopped in p seed 0: resume with the same command" in out
    assert not (run_dir.parent / "seed1-100000steps").exists()  # the next cell never started

    # The same command resumes it; SIGTERM to the process group reaches the run directly and
    # passed on by the script, and is one stop with a checkpoint of its step.
    proc = _start(tmp_path, env)
    wait_past(proc, run_dir, past=first + 60, timeout=180, may_exit=False, group=True)
    os.killpg(proc.pid, signal.SIGTERM)
    second, out = _stopped_with_checkpoint_of_its_step(proc, run_dir)
    assert f"resuming {run_dir} from step {first}" in out
    assert second > first + 60
