"""One writer per run directory (awmp.runlock): two real processes on one run directory.

A training process holds `<run_dir>/.awmp.lock` for its whole life. While it lives, a second
`awmp train --resume` is refused with exit 2 and one line naming it; `awmp.train.resume` raises
RunLockError. Killed with -9, its lock is taken over (same machine: the PID is gone). A holder
that says it runs on another host is judged by its heartbeat instead: refused while the
heartbeat is fresh, taken over once it is older than the stale age.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability import compile_cache, subprocess_env  # noqa: F401

from awmp import checkpoint, runlock
from awmp.errors import UserError
from awmp.rundir import RunDirError
from awmp.train import RunLockError, resume, train

FAULT_TRAIN = Path(__file__).with_name("fault_train.py")
TOTAL = 200


def _args(run_dir: Path) -> list[str]:
    return [
        "--env", "Pendulum-v1",
        "--total-steps", str(TOTAL),
        "--warmup-steps", "50",
        "--eval-interval", "0",
        "--log-interval", "10",
        "--checkpoint-interval", "50",
        "--no-progress",
        "--sac.hidden", "16", "16",
        "--sac.batch-size", "16",
        "--run-dir", str(run_dir),
    ]  # fmt: skip


def _holder(run_dir: Path, env: dict, *fault: str) -> subprocess.Popen:
    """`awmp train` that pauses after step 120 (checkpoint at 100), holding its lock."""
    cmd = [sys.executable, str(FAULT_TRAIN), "--pause", "120", *fault, "--", *_args(run_dir)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_paused(proc: subprocess.Popen, run_dir: Path, timeout: float = 300) -> None:
    """Until the holder has logged step 120 (where it pauses)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with open(run_dir / "train.csv", newline="") as f:
                if any(r["step"] == "120" for r in csv.DictReader(f)):
                    return
        except (OSError, KeyError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the holder did not reach step 120: {proc.communicate()}")


def _resume_cli(run_dir: Path, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "awmp.cli", "train", "--resume", str(run_dir), "--no-progress"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_second_writer_refused_then_takes_over_a_killed_holder(tmp_path_factory, tmp_path):
    run_dir = tmp_path / "run"
    env = subprocess_env(tmp_path_factory)
    holder = _holder(run_dir, env)
    try:
        _wait_paused(holder, run_dir)
        info = runlock.read_lock(run_dir)
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname()

        second = _resume_cli(run_dir, env)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("awmp: error: "), second.stderr
        assert f"run directory {run_dir} is in use: awmp pid {holder.pid} on host " in lines[0]
        assert f"tail --pid={holder.pid}" in lines[0] and f"kill {holder.pid}" in lines[0]
        # The Python API: awmp's own error, a RunDirError (UserError, ValueError).
        with pytest.raises(RunLockError, match=f"pid {holder.pid} on host") as e:
            resume(run_dir, progress=False)
        assert isinstance(e.value, RunDirError) and isinstance(e.value, UserError)
        # Nothing was written by the refused writers: the holder's files are as they were.
        assert runlock.read_lock(run_dir)["token"] == info["token"]
        assert not (run_dir / "summary.json").exists()
    finally:
        if holder.poll() is None:
            _kill9(holder)

    # The holder is gone (kill -9): its lock is still there, and is taken over.
    assert runlock.read_lock(run_dir)["pid"] == holder.pid
    third = _resume_cli(run_dir, env)
    assert third.returncode == 0, third.stderr
    took = [x for x in third.stderr.splitlines() if "taking over the lock" in x]
    assert took == [
        f"awmp: taking over the lock of {run_dir}: pid {holder.pid} on host "
        f"{socket.gethostname()} is gone (no such process)"
    ], third.stderr
    assert f"resuming {run_dir} from step 100" in third.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps_done"] == TOTAL and not summary["interrupted"]
    assert runlock.read_lock(run_dir) is None  # released at the end
    assert not list(run_dir.glob(".awmp.lock*"))  # no temp or set-aside files left


def test_another_hosts_lock_is_judged_by_its_heartbeat(tmp_path_factory, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # Heartbeats every second (a quarter of the stale age the holder sees).
    env = subprocess_env(tmp_path_factory, AWMP_LOCK_STALE_SECONDS="4")
    holder = _holder(run_dir, env, "--as-host", "node-b")
    try:
        _wait_paused(holder, run_dir)
        first = runlock.read_lock(run_dir)
        assert first["host"] == "node-b" and first["heartbeat_interval"] == 1.0
        time.sleep(2.5)
        beat = runlock.read_lock(run_dir)
        assert beat["token"] == first["token"] and beat["heartbeat"] > first["heartbeat"]
        monkeypatch.setenv(runlock.STALE_ENV, "4")
        with pytest.raises(RunLockError, match="pid .* on host node-b") as e:
            resume(run_dir, progress=False)
        assert "taken over once its heartbeat is older than 4 s" in str(e.value)
    finally:
        if holder.poll() is None:
            _kill9(holder)
    # Another host's PID means nothing here: its lock lives until its heartbeat is stale.
    assert not runlock.holder_gone(runlock.read_lock(run_dir), now=beat["heartbeat"] + 1)
    monkeypatch.setenv(runlock.STALE_ENV, "600")
    with pytest.raises(RunLockError, match="node-b"):
        resume(run_dir, progress=False)
    # With a stale age of 3 s, three seconds after the last heartbeat the lock is taken over.
    while time.time() - runlock.read_lock(run_dir)["heartbeat"] <= 3.5:
        time.sleep(0.2)
    done = _resume_cli(run_dir, {**env, "AWMP_LOCK_STALE_SECONDS": "3"})
    assert done.returncode == 0, done.stderr
    took = [x for x in done.stderr.splitlines() if "taking over the lock" in x]
    assert len(took) == 1 and f"pid {holder.pid} on host node-b is gone (its heartbeat" in took[0]
    assert "more than 3 s)" in took[0]
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == TOTAL


def test_a_holder_that_lost_its_lock_stops_without_writing_more(tmp_path, monkeypatch):
    """Another process took the lock over (this one looked dead: suspended, or cut off from the
    shared filesystem for longer than the stale age): the next heartbeat notices, and the run
    stops at the next step with RunLockError, no checkpoint, no summary."""
    from awmp.callbacks import Callback
    from awmp.cli import parse_train_config

    monkeypatch.setenv(runlock.STALE_ENV, "0.8")  # heartbeats every 0.2 s
    run_dir = tmp_path / "run"
    cfg = parse_train_config(_args(run_dir))

    class Steal(Callback):
        def on_step(self, step):
            if step == 60:
                stolen = {**runlock.read_lock(run_dir), "pid": 4242, "token": "stolen"}
                stolen["host"] = "node-c"
                tmp = run_dir / "stolen.tmp"
                tmp.write_text(json.dumps(stolen))
                os.replace(tmp, run_dir / runlock.LOCK_FILE)  # atomically, as a taker does
                time.sleep(1.0)  # the heartbeat thread notices meanwhile

    with pytest.raises(RunLockError, match="lost the lock of .* to pid 4242 on host node-c"):
        train(cfg, callbacks=[Steal()])
    assert [step for step, _ in checkpoint.list_checkpoints(run_dir)] == [50]
    assert not (run_dir / "summary.json").exists()
    assert json.loads((run_dir / runlock.LOCK_FILE).read_text())["token"] == "stolen"


def test_dead_reused_zombie_and_unreadable_holders(tmp_path, monkeypatch):
    here = runlock.this_machine()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = {**here, "pid": proc.pid, "heartbeat": time.time()}
    assert runlock.holder_gone(dead) == "no such process"
    alive = {**here, "pid": os.getpid(), "pid_start": None, "heartbeat": 0.0}
    assert runlock.holder_gone(alive) is None  # a live PID: the heartbeat does not matter
    if runlock._proc_stat(os.getpid()) is not None:
        reused = {**alive, "pid_start": "1"}  # the PID now belongs to a later process
        assert runlock.holder_gone(reused) == "no such process"
        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        while runlock._proc_stat(zombie.pid)[0] != "Z":  # exited, not yet reaped
            time.sleep(0.05)
        assert runlock.holder_gone({**here, "pid": zombie.pid}) == "no such process"
        zombie.wait()
    other = {"host": "node-b", "pid": os.getpid(), "heartbeat": time.time() - 200}
    assert "200 s old, more than 120 s" in runlock.holder_gone(other)
    assert runlock.holder_gone({**other, "heartbeat": time.time() - 100}) is None

    # A lock file that is not JSON: refused while young, taken over once stale.
    (tmp_path / runlock.LOCK_FILE).write_text("garbage")
    with pytest.raises(RunLockError, match="unreadable lock file"):
        runlock.RunLock(tmp_path).acquire()
    old = time.time() - 500
    os.utime(tmp_path / runlock.LOCK_FILE, (old, old))
    lock = runlock.RunLock(tmp_path)
    lock.acquire()
    assert runlock.read_lock(tmp_path)["token"] == lock.token
    lock.release()
    assert runlock.read_lock(tmp_path) is None

    monkeypatch.setenv(runlock.STALE_ENV, "soon")
    with pytest.raises(RunDirError, match="invalid AWMP_LOCK_STALE_SECONDS='soon'"):
        runlock.RunLock(tmp_path)


def test_one_process_cannot_write_a_directory_twice(tmp_path):
    """The lock is per writer, not per process: a second writer in the same process (e.g. two
    threads of a notebook) is refused too, naming this process."""
    with runlock.RunLocks() as locks:
        locks.acquire(tmp_path)
        with pytest.raises(RunLockError, match=r"\(this process\)"):
            runlock.RunLock(tmp_path).acquire()
    assert runlock.read_lock(tmp_path) is None


def test_a_filesystem_without_hard_links_gets_an_exclusive_create(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(runlock.os, "link", no_links)
    with runlock.RunLocks() as locks:
        locks.acquire(tmp_path)
        assert runlock.read_lock(tmp_path)["pid"] == os.getpid()
        with pytest.raises(RunLockError, match="is in use"):
            runlock.RunLock(tmp_path).acquire()
    assert not list(tmp_path.iterdir())  # released, no temp file left
