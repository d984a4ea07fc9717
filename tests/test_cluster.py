"""`awmp sweep --backend ray` on a Ray cluster of several nodes on this machine
(ray.cluster_utils.Cluster, as Ray's own tests do): a head with no CPUs and two 1-CPU worker
nodes, the sweep's driver a process of its own (tests/fault_sweep.py) joining it by address.

- A node lost mid-run: the cell's first attempt pauses after step 200 (its checkpoint is at
  step 100) and the test freezes it, removes its node (its raylet SIGKILLed) and SIGKILLs the
  frozen attempt, as if the machine had vanished. Tune retries the trial on the other node; the
  retry takes over the dead attempt's run lock, resumes from step 100 and ends with the final
  agent bitwise that of the same cell run without a fault.
- A sweep interrupted as a whole: the driver is SIGKILLed while one cell is finished and the
  other running; Ray kills the running attempt with the dead driver's trials (its lock stays).
  The same command again does not rerun the finished cell, and resumes the other from its last
  checkpoint, taking its lock over; both end bitwise as without a fault.

Tiny cells (Pendulum-v1, SAC, 300 steps, 32x32 networks), minimal node resources.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability import assert_same_run, cache_dir, compile_cache, subprocess_env  # noqa: F401

from awmp import runlock
from awmp.cli import main as cli_main

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

GRID = """
[defaults]
seeds = [0, 1]
total_steps = 300
warmup_steps = 100
eval_interval = 150
eval_episodes = 1
log_interval = 50
checkpoint_interval = 100
progress = false
"sac.hidden" = [32, 32]
"sac.batch_size" = 16

[[grid]]
name = "main"
envs = ["Pendulum-v1"]
algos = ["sac"]
"""
CELL0, CELL1 = (f"Pendulum-v1/sac/default/seed{s}-300steps" for s in (0, 1))
FAULT_SWEEP = Path(__file__).with_name("fault_sweep.py")
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "tiny.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (no CPUs: nothing runs there) and two worker nodes; every node's processes inherit
    the XLA compile cache settings, and run at normal priority: Ray's default worker niceness,
    15, starves the runs beside other work (docs/CLUSTER.md), which is not what these tests are
    about."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_worker_niceness", "0")
        mp.setenv("JAX_COMPILATION_CACHE_DIR", cache_dir(tmp_path_factory))
        mp.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        mp.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
        mp.setenv("JAX_PLATFORMS", "cpu")
        head = {
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": NODE["object_store_memory"],
            # A lost node is declared dead after a few missed health checks (default ~15 s).
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 5},
        }
        c = Cluster(initialize_head=True, head_node_args=head)
        try:
            for _ in range(2):
                c.add_node(**NODE)
            c.wait_for_nodes()
            yield c
        finally:
            c.shutdown()


@pytest.fixture(scope="module")
def reference(grid, tmp_path_factory) -> Path:
    """Both cells without a fault, one after the other in this process."""
    out = tmp_path_factory.mktemp("reference") / "runs"
    assert cli_main(["experiment", str(grid), "--out", str(out), "--workers", "1"]) == 0
    return out


def _driver(grid: Path, out: Path, cluster, env: dict, *sweep_args: str) -> subprocess.Popen:
    """The sweep's driver, joining the cluster; the first attempt at CELL1... pauses."""
    cmd = [sys.executable, str(FAULT_SWEEP), "--pause", f"{CELL1}@200", "--"]
    cmd += [str(grid), "--backend", "ray", "--address", cluster.address, "--out", str(out)]
    cmd += ["--storage", str(out.parent / "storage"), *sweep_args]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait(what: str, ok, proc: subprocess.Popen, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {proc.communicate()[0]}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}: {proc.communicate()[0]}")


def _logged(run_dir: Path, step: int) -> bool:
    try:
        with open(run_dir / "train.csv", newline="") as f:
            return any(r.get("step") == str(step) for r in csv.DictReader(f))
    except OSError:
        return False


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _records(out: Path, cell: str) -> list[list[dict]]:
    """The attempts at `cell` in each sweep of `out`, oldest sweep first."""
    key = cell.replace("/", "__")
    return [
        json.loads(p.read_text())["attempts"] if p.is_file() else []
        for p in (d / f"{key}.json" for d in sorted(out.glob(".sweep/*")))
    ]


def _end(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        text = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the sweep did not end: {proc.communicate()[0]}") from None
    return proc.returncode, text


def test_node_lost_mid_run_retried_on_another_node_bitwise(
    grid, cluster, reference, tmp_path_factory, tmp_path
):
    out = tmp_path / "runs"
    run_dir = out / CELL1
    driver = _driver(grid, out, cluster, subprocess_env(tmp_path_factory), "--seeds", "1")
    try:
        _wait("the cell to pause after step 200", lambda: _logged(run_dir, 200), driver)
        holder = runlock.read_lock(run_dir)
        (first,) = _records(out, CELL1)[0]
        (lost,) = [n for n in cluster.worker_nodes if n.node_id == first["node"]]
        # The machine vanishes: nothing runs on it from this instant, neither the attempt nor
        # the Ray worker that launched it (which could otherwise still record its end).
        doomed = [holder["pid"], _parent(holder["pid"])]
        for pid in doomed:
            os.kill(pid, signal.SIGSTOP)
        cluster.remove_node(lost, allow_graceful=False)
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        code, text = _end(driver)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == 0, text
    (attempts,) = _records(out, CELL1)
    assert [(a["start"], a.get("code")) for a in attempts] == [
        ("fresh", None),  # it never ended: its node was gone
        ("resume from step 100", 0),
    ], attempts
    assert attempts[1]["node"] != lost.node_id  # retried on another node
    (log2,) = out.glob(f".sweep/*/{CELL1.replace('/', '__')}.attempt2.log")
    text2 = log2.read_text()
    assert (
        f"awmp: taking over the lock of {run_dir}: pid {holder['pid']} on host {holder['host']} "
        "is gone (no such process)"
    ) in text2
    assert f"resuming {run_dir} from step 100" in text2
    (summary,) = out.glob(".sweep/*/summary.json")
    (cell,) = json.loads(summary.read_text())["cells"]
    assert cell["state"] == "resumed" and cell["resumed"] == ["resume from step 100"]
    assert runlock.read_lock(run_dir) is None
    assert_same_run(reference / CELL1, run_dir)
    cluster.add_node(**NODE)  # two worker nodes again, for the next test
    cluster.wait_for_nodes()


def test_sweep_interrupted_as_a_whole_and_started_again(
    grid, cluster, reference, tmp_path_factory, tmp_path
):
    out = tmp_path / "runs"
    env = subprocess_env(tmp_path_factory)
    driver = _driver(grid, out, cluster, env)
    try:
        _wait(
            "one cell finished and the other running past step 200",
            lambda: (out / CELL0 / "summary.json").is_file() and _logged(out / CELL1, 200),
            driver,
        )
        driver.send_signal(signal.SIGKILL)  # the whole sweep stops, its driver first
        driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    # Ray ends the dead driver's trials and kills what their workers started: the running
    # attempt dies without a word (SIGKILL), leaving its lock behind and its last periodic
    # checkpoint (step 100) as the place to resume from.
    holder = runlock.read_lock(out / CELL1)
    deadline = time.monotonic() + 120
    while runlock.holder_gone(holder) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert runlock.holder_gone(holder) == "no such process"
    assert not (out / CELL1 / "summary.json").exists()
    finished = (out / CELL0 / "summary.json").stat().st_mtime_ns

    code, text = _end(_driver(grid, out, cluster, env))
    assert code == 0, text
    assert "2 cells (1 complete, 1 partial, 0 new" in text
    first, second = _records(out, CELL0)
    assert len(first) == 1 and second == []  # the finished cell was not run again
    assert (out / CELL0 / "summary.json").stat().st_mtime_ns == finished
    first, second = _records(out, CELL1)
    assert [(a["start"], a["code"]) for a in second] == [("resume from step 100", 0)], second
    (log,) = sorted(out.glob(f".sweep/*/{CELL1.replace('/', '__')}.attempt1.log"))[1:]
    assert f"taking over the lock of {out / CELL1}: pid {holder['pid']} " in log.read_text()
    for cell in (CELL0, CELL1):
        assert_same_run(reference / cell, out / cell)
