"""Bad input never crashes with a traceback or loses data.

Each case goes through the `awmp` command (in process) and must give its exit code (2 for bad
input, 3 for a diverged run) and one `awmp: error:` line; where a run was under way, its last
checkpoint must stay intact and `--resume` must finish the run exactly as if nothing happened.
Faults come from a small env registered here whose failures are switched on by FAULT.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from reliability import assert_same_run, compile_cache  # noqa: F401 - autouse fixture

from awmp import checkpoint
from awmp.cli import main

FAULT: dict = {"kind": None, "at": 35}


class FaultEnv(gym.Env):
    """A noisy 3-d linear system; from its FAULT["at"]-th step on, FAULT["kind"] goes wrong."""

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.x = np.zeros(3)
        self.count = 0  # steps since construction; a plain attribute, so checkpoints keep it

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if FAULT["kind"] == "raise_in_reset" and self.count >= FAULT["at"]:
            raise RuntimeError("cannot reset")
        self.x = self.np_random.normal(size=3)
        return self.x.astype(np.float32), {}

    def step(self, action):
        self.count += 1
        self.x = 0.9 * self.x + 0.1 * float(action[0]) + 0.01 * self.np_random.normal(size=3)
        obs, reward = self.x.astype(np.float32), -float(self.x @ self.x)
        kind = FAULT["kind"] if self.count >= FAULT["at"] else None
        if kind == "nan_obs":
            obs[1] = np.nan
        elif kind == "nan_reward":
            reward = float("nan")
        elif kind == "raise":
            raise RuntimeError("simulator exploded")
        elif kind == "shape":
            obs = np.zeros(5, np.float32)
        elif kind == "dtype":
            obs = np.array(["a", "b", "c"])
        elif kind == "huge_reward":  # finite, but its square overflows float32: q_loss = inf
            reward = 1e38
        return obs, reward, False, False, {}


if "test/Fault-v0" not in gym.registry:
    gym.register("test/Fault-v0", entry_point=FaultEnv, max_episode_steps=25)


def _args(run_dir: Path) -> list[str]:
    return [
        "train",
        "--env", "test/Fault-v0",
        "--total-steps", "60",
        "--warmup-steps", "20",
        "--eval-interval", "60",
        "--eval-episodes", "1",
        "--log-interval", "10",
        "--checkpoint-interval", "20",
        "--no-progress",
        "--sac.hidden", "16", "16",
        "--sac.batch-size", "16",
        "--run-dir", str(run_dir),
    ]  # fmt: skip


def _run(argv: list[str], capsys, code: int) -> str:
    """Run the CLI; check the exit code and that stderr ends in one error line; return it."""
    try:
        rc = main(argv)
    except SystemExit as e:  # tyro's own refusals exit this way
        rc = e.code
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err
    if code == 0:
        return err
    last = err.strip().splitlines()[-1]
    assert last.startswith("awmp: error: ") or "error" in last.lower(), err
    return last


@pytest.fixture(autouse=True)
def no_fault():
    FAULT.update(kind=None, at=35)
    yield
    FAULT.update(kind=None, at=35)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """The run every faulty one is compared with once it is resumed with the fault gone."""
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    assert main(_args(run_dir)) == 0
    return run_dir


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--checkpoint-interval", "-1"],
            r"invalid --checkpoint-interval \(checkpoint_interval\)=-1: must be >= 0",
        ),
        (["--keep-checkpoints", "0"], r"invalid --keep-checkpoints \(keep_checkpoints\)=0: must"),
        (["--total-steps", "0"], r"invalid --total-steps \(total_steps\)=0: must be >= 1"),
        (["--sac.gamma", "1.5"], r"invalid --sac.gamma \(sac.gamma\)=1.5: must be in \(0, 1\]"),
        (["--sac.lr", "nan"], r"invalid --sac.lr \(sac.lr\)=nan"),
        (["--seed", "-3"], r"invalid --seed \(seed\)=-3"),
    ],
)
def test_invalid_config_values(tmp_path, capsys, flags, message):
    line = _run([*_args(tmp_path / "run"), *flags], capsys, 2)
    assert re.search(message, line), line
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_unparsable_flag_value_is_refused_without_traceback(tmp_path, capsys):
    _run([*_args(tmp_path / "run"), "--total-steps", "many"], capsys, 2)


def test_existing_run_dir_is_refused_and_left_alone(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    line = _run(_args(run_dir), capsys, 2)
    assert "already exists" in line and f"--resume {run_dir}" in line
    assert [p.name for p in run_dir.iterdir()] == ["precious.txt"]


def test_unwritable_run_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _run(_args(blocker / "run"), capsys, 2)
    assert "cannot create run directory" in line
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        line = _run(_args(ro / "run"), capsys, 2)
        assert "cannot create run directory" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--algo", "td3"], "algo='td3' (saved 'sac')"),
        (["--seed", "7"], "seed=7 (saved 0)"),
        (["--env", "Pendulum-v1"], "env='Pendulum-v1' (saved 'test/Fault-v0')"),
        (["--sac.hidden", "8"], "sac.hidden=(8,) (saved (16, 16))"),
    ],
)
def test_mismatched_resume_is_refused(clean_run, capsys, flags, message):
    line = _run(["train", "--resume", str(clean_run), *flags], capsys, 2)
    assert "config differs from the saved run" in line and message in line


def test_resume_of_something_else_is_refused(tmp_path, capsys):
    line = _run(["train", "--resume", str(tmp_path)], capsys, 2)
    assert "not an awmp run directory (no config.json)" in line


def test_resume_may_change_only_free_fields(clean_run, capsys):
    # progress and the checkpoint cadence change no number: allowed (the run is complete).
    _run(["train", "--resume", str(clean_run), "--no-progress", "--checkpoint-interval", "7"],
         capsys, 0)  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "is truncated"),
        ("flip", r"is corrupted \(SHA-256 checksum mismatch\)"),
        ("garbage", "is not an awmp checkpoint"),
        ("empty", "is truncated"),
    ],
)
def test_damaged_checkpoint_is_refused_then_previous_one_works(
    clean_run, tmp_path, capsys, damage, message
):
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    (run_dir / "summary.json").unlink()  # unfinished (a finished run is not resumed at all)
    (step, newest), (prev_step, _) = checkpoint.list_checkpoints(run_dir)[::-1][:2]
    blob = bytearray(newest.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 3]
    elif damage == "flip":
        blob[-100] ^= 0xFF
    elif damage == "garbage":
        blob = bytearray(b"PK\x03\x04 not a checkpoint at all" * 10)
    else:
        blob = bytearray()
    newest.write_bytes(bytes(blob))
    line = _run(["train", "--resume", str(run_dir)], capsys, 2)
    assert re.search(message, line), line
    assert f"previous checkpoint step_{prev_step:012d}.ckpt (step {prev_step})" in line
    newest.rename(run_dir / "damaged.ckpt")  # what the message says to do
    _run(["train", "--resume", str(run_dir)], capsys, 0)
    assert_same_run(clean_run, run_dir)


ENV_FAULTS = [
    ("nan_obs", r"observation at step 35 is not finite: \[nan\] at indices \[1\]"),
    ("nan_reward", "reward at step 35 is not finite: nan"),
    ("raise", "environment test/Fault-v0 raised RuntimeError at step 35: simulator exploded"),
    ("shape", r"observation at step 35 has shape \(5,\), expected \(3,\)"),
    ("dtype", "observation at step 35 has dtype <U1, expected real numbers"),
]


@pytest.mark.parametrize(("kind", "message"), ENV_FAULTS)
def test_env_fault_stops_cleanly_and_resume_finishes_the_same_run(
    clean_run, tmp_path, capsys, kind, message
):
    run_dir = tmp_path / "run"
    FAULT.update(kind=kind, at=35)
    line = _run(_args(run_dir), capsys, 2)
    assert re.search(message, line), line
    assert f"resume with: awmp train --resume {run_dir}" in line
    assert [s for s, _ in checkpoint.list_checkpoints(run_dir)] == [20]  # the last good one
    if kind != "raise":
        diag = json.loads((run_dir / "diagnostic.json").read_text())
        assert diag["step"] == 35 and diag["kind"] == "environment"
    FAULT.update(kind=None)  # a transient fault: gone when the user resumes
    _run(["train", "--resume", str(run_dir)], capsys, 0)
    assert_same_run(clean_run, run_dir)


def test_env_fault_before_the_first_checkpoint_does_not_suggest_resume(tmp_path, capsys):
    """With no checkpoint yet, `--resume` would only start over."""
    run_dir = tmp_path / "run"
    FAULT.update(kind="nan_obs", at=7)
    line = _run(_args(run_dir), capsys, 2)
    assert re.search(r"observation at step 7 is not finite: \[nan\] at indices \[1\]", line)
    assert "--resume" not in line and "resume with" not in line, line
    assert "no checkpoint was written yet, so there is nothing to resume" in line
    assert checkpoint.list_checkpoints(run_dir) == []


def test_env_raising_in_reset_is_bad_input_naming_the_step(tmp_path, capsys):
    run_dir = tmp_path / "run"
    FAULT.update(kind="raise_in_reset", at=35)  # the time limit (25 steps) resets at step 50
    line = _run(_args(run_dir), capsys, 2)
    assert "environment test/Fault-v0 raised RuntimeError in reset at step 50: cannot reset" in line
    assert f"the last checkpoint {run_dir / 'checkpoints' / 'step_000000000040.ckpt'}" in line


def test_divergence_stops_keeps_last_good_checkpoint_and_resume_works(clean_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    FAULT.update(kind="huge_reward", at=45)
    line = _run(_args(run_dir), capsys, 3)
    assert "training diverged: non-finite" in line and "q_loss" in line, line
    diag = json.loads((run_dir / "diagnostic.json").read_text())
    assert diag["kind"] == "divergence" and 45 <= min(diag["nonfinite_metrics"].values()) <= 60
    # No checkpoint was written from the diverged state; the last good one is complete.
    found = checkpoint.list_checkpoints(run_dir)
    assert found[-1][0] == 40 and diag["last_good_checkpoint"] == str(found[-1][1])
    good = checkpoint.load(found[-1][1])
    assert all(np.all(np.isfinite(v)) for v in good.agent["arrays"].values() if v.dtype.kind == "f")
    FAULT.update(kind=None)
    _run(["train", "--resume", str(run_dir)], capsys, 0)
    assert_same_run(clean_run, run_dir)


def test_full_disk_during_checkpoint(clean_run, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    real_fsync, files_synced = os.fsync, []

    def fsync(fd):  # the second checkpoint file hits a full disk
        if stat.S_ISREG(os.fstat(fd).st_mode):
            files_synced.append(fd)
            if len(files_synced) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    line = _run(_args(run_dir), capsys, 2)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "cannot write checkpoint" in line and "No space left on device" in line
    first = run_dir / "checkpoints" / "step_000000000020.ckpt"
    assert f"{first} (step 20) is intact" in line
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [first.name]  # no temp left
    checkpoint.load(first)
    _run(["train", "--resume", str(run_dir)], capsys, 0)
    assert_same_run(clean_run, run_dir)


def test_config_round_trip_and_unknown_fields_refused():
    """A saved config comes back equal; a field this version does not know is named, not
    dropped (a resume or report would otherwise silently use another config)."""
    from awmp.config import ConfigError, from_dict, preset, to_dict

    for name in ("paper", "reference-code"):
        cfg = preset(name)
        cfg.seeds = (0, 3)
        assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    saved = to_dict(preset("paper"))
    with pytest.raises(ConfigError, match="bogus_top"):
        from_dict({**saved, "bogus_top": 1})
    with pytest.raises(ConfigError, match=r"awmp\.bogus_awmp.*sac\.bogus_sac"):
        from_dict({**saved, "awmp": {**saved["awmp"], "bogus_awmp": 2}, "sac": {"bogus_sac": 3}})
