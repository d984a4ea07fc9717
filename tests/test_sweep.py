"""`awmp sweep`: a tiny grid on both backends, a trial killed mid-run, bad input.

The grid (Pendulum-v1, SAC and TD3, seeds 0 and 1, 300 steps, tiny networks) runs once with
the local backend and once on a local Ray instance started here; in each, the first attempt at
one cell is killed with SIGKILL after step 200 (tests/fault_sweep_cell.py), after its checkpoint at
step 100. Both sweeps must end with that cell resumed from step 100 and complete, the same run
directories, bitwise the same final agents (a resumed run continues exactly), and the same
`awmp report`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability import assert_same_run, cache_dir, logged_steps, wait_past

from awmp import checkpoint, placement, sweep
from awmp.cli import main as cli_main

TINY = """
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
"td3.hidden" = [32, 32]
"td3.batch_size" = 16

[[grid]]
name = "main"
envs = ["Pendulum-v1"]
algos = ["sac", "td3"]
"""
CELLS = [
    f"Pendulum-v1/{algo}/default/seed{seed}-300steps" for algo in ("sac", "td3") for seed in (0, 1)
]
KILLED = "Pendulum-v1/td3/default/seed0-300steps"
# The sweep's attempts run this entry: the first attempt at KILLED is SIGKILLed after step 200.
KILL_CELL = (str(Path(__file__).with_name("fault_sweep_cell.py")), "--kill", f"{KILLED}@200")


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def sweep_env(tmp_path_factory):
    """The persistent XLA cache for the cells' subprocesses (and Ray's workers, which inherit
    this environment when the test starts Ray)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAX_COMPILATION_CACHE_DIR", cache_dir(tmp_path_factory))
        mp.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        mp.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
        mp.setenv("JAX_PLATFORMS", "cpu")
        yield


def _summary(out: Path) -> dict:
    (path,) = out.glob(".sweep/*/summary.json")
    return json.loads(path.read_text())


def _check_sweep(out: Path) -> None:
    """The killed cell was resumed from its checkpoint; every cell is complete."""
    found = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("summary.json"))
    assert [f for f in found if not f.startswith(".sweep")] == sorted(CELLS)
    summary = _summary(out)
    states = {c["cell"]: c for c in summary["cells"]}
    assert summary["counts"] == {"done": 3, "resumed": 1}
    killed = states[KILLED]
    assert killed["state"] == "resumed" and killed["attempts"] == 2
    assert killed["resumed"] == ["resume from step 100"]
    assert "attempt 1: killed by SIGKILL" in killed["reason"]
    (record_dir,) = out.glob(".sweep/*")
    key = KILLED.replace("/", "__")
    record = json.loads((record_dir / f"{key}.json").read_text())["attempts"]
    assert [(a["start"], a["code"], a["steps"]) for a in record] == [
        ("fresh", -9, 200),  # died after step 200 (train.csv was at 200)...
        ("resume from step 100", 0, 300),  # ...and continued from its step-100 checkpoint
    ]
    second_log = (record_dir / f"{key}.attempt2.log").read_text()
    assert f"resuming {out / KILLED} from step 100" in second_log
    # The killed attempt's run lock was left behind, and the retry took it over.
    assert f"awmp: taking over the lock of {out / KILLED}: pid " in second_log
    assert "is gone (no such process)" in second_log
    for cell in CELLS:
        s = json.loads((out / cell / "summary.json").read_text())
        assert s["steps_done"] == 300 and not s["interrupted"]


@pytest.fixture(scope="module")
def local_sweep(grid, sweep_env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "runs"
    rc = sweep.main([str(grid), "--out", str(out), "--workers", "2"], cell_command=KILL_CELL)
    assert rc == 0
    return out


def test_local_backend_resumes_killed_cell_and_skips_complete(local_sweep, grid, capsys):
    _check_sweep(local_sweep)
    # Re-running skips every cell: nothing is trained again.
    mtimes = {c: (local_sweep / c / "summary.json").stat().st_mtime_ns for c in CELLS}
    capsys.readouterr()
    assert cli_main(["sweep", str(grid), "--out", str(local_sweep), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 cells (4 complete, 0 partial, 0 new" in out and "sweep summary: 4 complete" in out
    assert {c: (local_sweep / c / "summary.json").stat().st_mtime_ns for c in CELLS} == mtimes


def test_pinned_workers_equal_the_cells_run_alone(local_sweep, grid, tmp_path, capsys):
    """The local sweep ran 2 workers, each pinned to one core with single-threaded XLA (and one
    cell killed and resumed); `awmp experiment` runs the same cells one by one in this process,
    unpinned with XLA's default threads: bitwise the same final agents and logs."""
    record_dir = sorted(local_sweep.glob(".sweep/*"))[0]  # the fixture's sweep (ids sort by time)
    logs = [p.read_text() for p in record_dir.glob("*.log")]
    assert len(logs) == 5  # 4 cells, one of them killed and resumed
    if placement.can_pin() and len(placement.available_cores()) >= 2:
        assert all("# pinned to cores " in log for log in logs), logs
    out = tmp_path / "alone"
    assert cli_main(["experiment", str(grid), "--out", str(out), "--workers", "1"]) == 0
    for cell in CELLS:
        assert_same_run(out / cell, local_sweep / cell)
    if len(placement.available_cores()) < 2:
        return
    # `awmp experiment` without --workers: in parallel, pinned, the layout said; same numbers
    capsys.readouterr()
    par = tmp_path / "parallel"
    assert cli_main(["experiment", str(grid), "--out", str(par)]) == 0
    printed = capsys.readouterr().out
    assert "layout: " in printed and "1 core(s) each, pinned to cores" in printed
    for cell in CELLS:
        assert_same_run(out / cell, par / cell)


LONG = """
[defaults]
seeds = [0, 1]
total_steps = 100000
warmup_steps = 50
eval_interval = 50000
eval_episodes = 1
log_interval = 10
checkpoint_interval = 20
progress = false
"sac.hidden" = [16, 16]
"sac.batch_size" = 16

[[grid]]
name = "long"
envs = ["Pendulum-v1"]
algos = ["sac"]
"""


def test_a_signal_stops_a_local_sweep_with_checkpoints_and_its_exit_code(sweep_env, tmp_path):
    """SIGTERM to the driver of a local sweep (a pre-empted job) is passed to its running cell,
    which checkpoints the step it stopped at; the sweep exits 143 and starts nothing more. The
    same command resumes that cell from its checkpoint; Ctrl-C (SIGINT) then exits 130."""
    grid = tmp_path / "long.toml"
    grid.write_text(LONG)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "awmp.cli", "sweep", str(grid), "--out", str(out)]
    cmd += ["--workers", "1"]
    first = out / "Pendulum-v1/sac/default/seed0-100000steps"
    stopped_at = []
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        past = max(logged_steps(first), default=0) + 40
        wait_past(proc, first, past, timeout=300, may_exit=False)
        proc.send_signal(signum)
        try:
            text = proc.communicate(timeout=180)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"the sweep did not stop: {proc.communicate()[0]}") from None
        assert proc.returncode == code, text
        assert "Traceback" not in text
        summary = json.loads((first / "summary.json").read_text())
        step = checkpoint.load_latest(first).loop.step
        assert summary["interrupted"] and step == summary["steps_done"] > past, text
        assert not (first.parent / "seed1-100000steps").exists()  # nothing more started
        stopped_at.append(step)
    # The second sweep resumed the cell from the first one's checkpoint of its stopped step.
    logs = "".join(p.read_text() for p in out.glob(".sweep/*/*.attempt1.log"))
    assert f"resuming {first} from step {stopped_at[0]}" in logs
    assert stopped_at[1] > stopped_at[0]


def test_layout_pins_one_single_threaded_run_per_core(monkeypatch):
    monkeypatch.setattr(placement, "available_cores", lambda: [0, 1, 2, 3])
    lay = placement.plan_layout(None)
    assert (lay.workers, lay.threads_per_run, lay.slots) == (4, 1, ((0,), (1,), (2,), (3,)))
    assert "pinned to cores 0 | 1 | 2 | 3, single-threaded XLA" in lay.describe()
    lay = placement.plan_layout(None, threads_per_run=2)
    assert (lay.workers, lay.slots) == (2, ((0, 1), (2, 3)))
    assert placement.plan_layout(5).slots is None  # more runs than cores: not pinned
    env = placement.child_env({"XLA_FLAGS": "--foo"}, 1)
    assert env["XLA_FLAGS"] == "--foo --xla_cpu_multi_thread_eigen=false"
    assert placement.child_env({}, 2, (2, 3)) == {placement.PIN_ENV: "2,3"}
    kept = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
    assert placement.child_env(kept, 1) == kept  # the user's own setting wins


def test_a_pinned_child_runs_only_on_its_core():
    """Every thread of the child, those started before the pinning included."""
    if not placement.can_pin():
        pytest.skip("no CPU affinity API on this OS")
    core = placement.available_cores()[-1]
    code = (
        "import os, threading, time\n"
        "t = threading.Thread(target=time.sleep, args=(2,)); t.start()\n"
        "from awmp import placement; placement.pin_from_env()\n"
        "print(sorted({c for tid in os.listdir('/proc/self/task') "
        "for c in os.sched_getaffinity(int(tid))}))\n"
    )
    env = placement.child_env(dict(os.environ), 1, (core,))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == f"[{core}]"


def test_ray_backend_same_runs_and_report(
    local_sweep, grid, sweep_env, tmp_path, capsys, monkeypatch
):
    ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")
    storage = tmp_path / "storage"
    monkeypatch.setenv("RAY_worker_niceness", "0")  # as tests/test_cluster.py: no starved runs
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        args = [str(grid), "--backend", "ray", "--storage", str(storage)]
        rc = sweep.main(args, cell_command=KILL_CELL)
    finally:
        ray.shutdown()
    assert rc == 0
    out = storage / "tiny"  # the default --out: <storage>/<experiment name>
    _check_sweep(out)
    assert any((storage / "_ray").iterdir())  # Tune's own state stays under --storage
    for cell in CELLS:
        assert_same_run(local_sweep / cell, out / cell)
    # `awmp report` aggregates both outputs alike: 2 groups of 2 seeds, the same numbers.
    for runs in (local_sweep, out):
        assert cli_main(["report", str(runs), "--out", str(runs.parent / "report")]) == 0
    capsys.readouterr()
    local_csv = (local_sweep.parent / "report" / "results.csv").read_text()
    assert local_csv == (out.parent / "report" / "results.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(local_csv)))
    assert sorted(r["algo"] for r in rows) == ["sac", "td3"]
    assert all(r["seeds"] == "0 1" and r["incomplete"] == "0" for r in rows), rows
    # The same command again, every cell complete: nothing runs, Ray is not started, and it
    # ends with 0 (it once said "interrupted" and exited 130 here).
    mtimes = {c: (out / c / "summary.json").stat().st_mtime_ns for c in CELLS}
    assert cli_main(["sweep", *args]) == 0
    captured = capsys.readouterr()
    assert "4 cells (4 complete, 0 partial, 0 new" in captured.out
    assert "interrupted" not in captured.err
    assert not ray.is_initialized()
    assert {c: (out / c / "summary.json").stat().st_mtime_ns for c in CELLS} == mtimes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "slurm"], "unknown backend 'slurm'; choose one of local, ray"),
        (["--workers", "0"], "invalid --workers 0: must be >= 1"),
        (["--max-retries", "-1"], "invalid --max-retries -1"),
        (["--address", "auto"], "--address: only with --backend ray"),
        (["--backend", "ray", "--workers", "2"], "--workers is for --backend local"),
        (["--threads-per-run", "0"], "invalid --threads-per-run 0"),
        (["--backend", "ray", "--threads-per-run", "1"], "--threads-per-run is for --backend"),
        (["--backend", "ray", "--cpus-per-run", "0"], "invalid --cpus-per-run 0.0"),
        (["--backend", "ray", "--storage", "s3://bucket/runs"], "object stores"),
        (["--budget", "0"], "invalid budget=0"),
    ],
)
def test_bad_options_are_refused(grid, tmp_path, capsys, args, message):
    assert cli_main(["sweep", str(grid), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("awmp: error:") and message in err, err
    assert not (tmp_path / "o").exists()


def test_ray_missing_says_how_to_install(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert cli_main(["sweep", str(grid), "--backend", "ray", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'awmp[cluster]'" in err and "ray[tune]" in err


def test_outcomes_of_exit_codes():
    # A divergence (3) or bad input (2) would fail again the same way: not retried.
    assert sweep.classify(0) == "done"
    assert sweep.classify(3) == "failed" and sweep.classify(2) == "failed"
    for code in (1, -9, 143, 130):  # crash, SIGKILL, SIGTERM (pre-empted), SIGINT
        assert sweep.classify(code) == "retry"


def test_exit_reasons(tmp_path):
    log = tmp_path / "attempt.log"
    log.write_text("some output\nawmp: error: cannot resume x: not writable\n")
    assert sweep._exit_reason(-9, log, tmp_path) == "killed by SIGKILL"
    assert sweep._exit_reason(2, log, tmp_path) == (
        "exit code 2: awmp: error: cannot resume x: not writable"
    )
    (tmp_path / "diagnostic.json").write_text(
        json.dumps({"kind": "divergence", "message": "training diverged: NaN", "step": 7})
    )
    assert sweep._exit_reason(3, log, tmp_path).startswith("diverged: training diverged: NaN")


def test_diverged_cell_is_reported_not_rerun(grid, tmp_path, capsys):
    out = tmp_path / "runs"
    diverged = out / CELLS[0]
    diverged.mkdir(parents=True)
    (diverged / "diagnostic.json").write_text(
        json.dumps(
            {"kind": "divergence", "message": "training diverged: non-finite q_loss", "step": 120}
        )
    )
    assert cli_main(["sweep", str(grid), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "3 new, 1 diverged" in text
    assert f"failed: {CELLS[0]} (diverged earlier, not rerun: training diverged" in text
    assert text.count("would run:") == 3 and not (out / CELLS[1]).exists()


def test_read_progress_skips_a_cut_last_line(tmp_path):
    (tmp_path / "train.csv").write_text("step,seed,episode_return\n50,0,-1\n100,0,-2\n15")
    (tmp_path / "eval.csv").write_text("step,seed,return_mean\n100,0,-123.5\n")
    assert sweep.read_progress(tmp_path) == (100, -123.5)
    assert sweep.read_progress(tmp_path / "missing") == (0, None)


def test_cell_subprocess_dies_with_its_launcher():
    # The guard of _die_with_parent: a wrong parent pid means the launcher is already gone.
    code = "from awmp.sweep import _die_with_parent; _die_with_parent(parent_pid=1)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGTERM, proc.stderr


def test_a_cell_runs_the_real_train_command_on_its_config_file(grid, tmp_path):
    """A fresh attempt writes its cell's config to a file; `awmp train --config-file FILE
    --run-dir DIR` (what the cell runs) parses it back to exactly the cell's config."""
    from awmp.cli_train import parse_train_config
    from awmp.config import from_dict
    from awmp.grid import cells_from_args

    class Args:
        experiment, budget, seeds, envs, only, set = str(grid), None, None, None, None, []

    _, cells = cells_from_args(Args)
    jobs = sweep.plan(cells, tmp_path / "out", tmp_path / "records")
    for job in jobs:
        path = tmp_path / f"{job.spec.key}.config.json"
        path.write_text(json.dumps(job.spec.config))
        cfg = parse_train_config(["--config-file", str(path), "--run-dir", job.spec.run_dir])
        wanted = from_dict(job.spec.config)
        wanted.run_dir = job.spec.run_dir
        assert cfg == wanted and not cfg.progress
