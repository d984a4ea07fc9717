"""Extend a finished run (`awmp train --resume DIR --total-steps N`, SB3's
`reset_num_timesteps=False`). With explicit intervals the extended run equals a run planned
with N from the start: same final parameters (bytes), evaluations and losses. Through the real
`awmp` command in subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from conftest import final_state_bytes
from reliability import subprocess_env

from awmp.evaluate import PARAMS_FILE

TINY_AWMP = [
    "--algo", "sac-awmp", "--env", "Pendulum-v1",
    "--warmup-steps", "100", "--eval-interval", "100", "--eval-episodes", "1",
    "--log-interval", "100", "--checkpoint-interval", "100", "--no-progress",
    "--awmp.hidden", "16", "16", "--awmp.policy-hidden", "16", "16",
    "--awmp.prior-hidden", "16", "16", "--awmp.batch-size", "16",
    "--awmp.prior-interval", "100", "--awmp.prior-steps", "10",
    "--awmp.prior-batch-size", "16",
]  # fmt: skip


def _awmp(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "awmp.cli", *args], capture_output=True, text=True, timeout=600,
        env=env,
    )  # fmt: skip


def _rows(path: Path, drop: tuple[str, ...] = ("wall_s", "steps_per_s")) -> list[dict]:
    with path.open() as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def test_extending_a_finished_run_equals_the_run_planned_with_the_larger_budget(
    tmp_path, tmp_path_factory
):
    env = subprocess_env(tmp_path_factory)
    planned, short = tmp_path / "planned", tmp_path / "short"
    res = _awmp("train", *TINY_AWMP, "--total-steps", "400", "--run-dir", str(planned), env=env)
    assert res.returncode == 0, res.stderr
    res = _awmp("train", *TINY_AWMP, "--total-steps", "200", "--run-dir", str(short), env=env)
    assert res.returncode == 0, res.stderr

    # Lowering the budget is refused in one line; raising it extends the run.
    res = _awmp("train", "--resume", str(short), "--total-steps", "150", env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "may raise --total-steps but not lower it" in res.stderr
    res = _awmp("train", "--resume", str(short), "--total-steps", "400", env=env)
    assert res.returncode == 0, res.stderr
    assert f"extending {short} from 200 to 400 steps" in res.stderr

    meta = json.loads((short / "config.json").read_text())
    assert meta["config"]["total_steps"] == 400
    assert [(e["from"], e["to"]) for e in meta["extended"]] == [(200, 400)]
    summary = json.loads((short / "summary.json").read_text())
    assert summary["steps_done"] == 400 and summary["interrupted"] is False
    assert (short / PARAMS_FILE).read_bytes() == (planned / PARAMS_FILE).read_bytes()
    assert final_state_bytes(short) == final_state_bytes(planned)
    assert _rows(short / "eval.csv") == _rows(planned / "eval.csv")
    assert _rows(short / "train.csv") == _rows(planned / "train.csv")
    # The extended run is an ordinary finished run of 400 steps now.
    res = _awmp("train", "--resume", str(short), env=env)
    assert res.returncode == 0 and "already finished (400 of 400 steps)" in res.stderr
