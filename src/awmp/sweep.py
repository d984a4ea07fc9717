"""`awmp sweep EXPERIMENT --backend {local,ray}`: an experiment grid in parallel, with retries.

The cells are those of `awmp experiment` (awmp.experiment: the same files, options, run
directory layout and skipping of complete cells), so `awmp report` reads a sweep's output
unchanged. Each attempt at a cell is one subprocess (`python -m awmp.sweep --cell ...`, which
trains through awmp.cli.run_train and so has `awmp train`'s exit codes): JAX is not fork-safe,
and a process that dies takes nothing else with it.

- `local`: up to `--workers` subprocesses on this machine, a live table of the cells.
- `ray`: each cell is one Ray Tune trial (`--cpus-per-run`, `--gpus-per-run`) whose trainable
  runs the same subprocess, polls the run directory and reports steps and the last evaluation
  return to Tune; Tune's FailureConfig(max_failures=--max-retries) retries a trial that raised.
  Run directories go under `--out` (default `<storage>/<experiment>`), Tune's own state under
  `<storage>/_ray`; both must be paths every node can reach (docs/CLUSTER.md).

Outcomes of an attempt (its exit code):
  0 -> done. 3 (the divergence guard) -> failed, not retried: resuming from the last good
  checkpoint would compute the same numbers and diverge again (diagnostic.json says where).
  2 (bad input, an unusable run directory or checkpoint) -> failed, not retried: it would fail
  the same way. Anything else (a crash, a kill, SIGTERM from a pre-empted node) -> retried up to
  --max-retries times, each retry resuming the run directory from its newest checkpoint.
A re-run of the same command skips complete cells, resumes partial ones, and reports a cell
that stopped on divergence as failed without running it again (remove its directory to rerun).

Each attempt's output goes to `<out>/.sweep/<sweep id>/<cell>.attempt<N>.log` and its outcome
to `<cell>.json` there; the summary of the sweep is `summary.json` in the same folder.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import datetime as _dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from awmp import compile_cache, placement
from awmp.config import from_dict, to_dict
from awmp.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, UserError
from awmp.experiment import (
    Cell,
    add_grid_arguments,
    cell_dir,
    cell_status,
    cells_from_args,
)

BACKENDS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2
NO_RETRY = {EXIT_BAD_INPUT: "bad input or unusable run directory", EXIT_DIVERGED: "diverged"}
POLL_S = 0.5  # how often a running attempt's run directory is read
RAY_INSTALL_HINT = (
    "--backend ray needs Ray: pip install 'awmp[cluster]' (from a checkout: "
    "pip install -e '.[cluster]'), which installs ray[tune]==2.60.0"
)
# What an attempt runs (after the Python interpreter): this module's cell entry point.
# A test may run another entry that installs a fault and then calls _cell_main.
CELL_COMMAND = ("-m", "awmp.sweep")


class SweepError(UserError):
    """A sweep that cannot start (bad option, Ray missing, storage unusable)."""


# ----------------------------------------------------------------------------- one cell


@dataclasses.dataclass
class CellSpec:
    """What an attempt needs, as plain data (it travels to Ray workers)."""

    rel: str  # the run directory relative to the output root: the cell's name
    run_dir: str  # absolute
    config: dict  # to_dict(TrainConfig) of a fresh run (progress off)
    total_steps: int
    record_dir: str  # <out>/.sweep/<sweep id>
    cell_command: tuple[str, ...] | list[str] = CELL_COMMAND  # see CELL_COMMAND

    @property
    def key(self) -> str:
        return self.rel.replace("/", "__")


def read_progress(run_dir: Path) -> tuple[int, float | None]:
    """(last step in train.csv, last return_mean in eval.csv) of a run directory; 0 / None
    when not there yet. Reads only the files' tails: cheap on a 1M-step run."""

    def last_row(path: Path) -> dict | None:
        try:
            with open(path, "rb") as f:
                header = f.readline().decode()
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(len(header), size - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            row = next(csv.DictReader(io.StringIO(header + line + "\n")), None)
            if row and None not in row.values() and (row.get("step") or "").isdigit():
                return row
        return None

    train_row = last_row(run_dir / "train.csv")
    eval_row = last_row(run_dir / "eval.csv")
    steps = int(train_row["step"]) if train_row else 0
    ret = None
    if eval_row:
        steps = max(steps, int(eval_row["step"]))
        try:
            ret = float(eval_row["return_mean"])
        except (KeyError, ValueError):
            ret = None
    return steps, ret


def _latest_checkpoint_step(run_dir: Path) -> int | None:
    from awmp.checkpoint import list_checkpoints

    found = list_checkpoints(run_dir)
    return found[-1][0] if found else None


def divergence_note(run_dir: Path) -> str | None:
    """The message of a divergence that stopped this (incomplete) run, if that is where it
    stands: a diagnostic.json of kind divergence and no checkpoint written after it."""
    path = run_dir / "diagnostic.json"
    try:
        diag = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if diag.get("kind") != "divergence":
        return None
    latest = _latest_checkpoint_step(run_dir)
    if latest is not None and latest > int(diag.get("step", 0)):
        return None  # resumed past it since
    return str(diag.get("message", "training diverged"))


def _exit_reason(code: int, log_path: Path, run_dir: Path) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code == EXIT_DIVERGED:
        note = divergence_note(run_dir)
        if note:
            return f"diverged: {note} (see {run_dir / 'diagnostic.json'})"
    last = ""
    try:
        lines = [x for x in log_path.read_text(errors="replace").splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("awmp: error:")]
        last = (errors or lines or [""])[-1].strip()
    except OSError:
        pass
    what = {130: "stopped by SIGINT", 143: "stopped by SIGTERM (pre-empted?)"}.get(
        code, f"exit code {code}"
    )
    return f"{what}: {last[:300]}" if last else what


def classify(code: int) -> str:
    """An attempt's exit code -> done | failed (not worth a retry) | retry."""
    if code == 0:
        return "done"
    return "failed" if code in NO_RETRY else "retry"


class Attempt:
    """One subprocess training (or resuming) one cell; poll() until it returns an outcome."""

    def __init__(
        self,
        spec: CellSpec,
        extra_env: dict | None = None,
        cores: tuple[int, ...] | None = None,
        threads_per_run: int | None = None,
    ) -> None:
        self.spec = spec
        run_dir = Path(spec.run_dir)
        record_dir = Path(spec.record_dir)
        record_dir.mkdir(parents=True, exist_ok=True)
        self.record = load_record(record_dir, spec.key)
        self.number = len(self.record["attempts"]) + 1
        self.log_path = record_dir / f"{spec.key}.attempt{self.number}.log"
        cmd = [sys.executable, *spec.cell_command, "--cell", "--parent-pid", str(os.getpid())]
        env = {**os.environ, **(extra_env or {})}
        if threads_per_run is not None:
            env = placement.child_env(env, threads_per_run, cores)
        # The child imports the awmp this process runs (a Ray worker's cwd is its trial folder,
        # so a relative PYTHONPATH would not do).
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        if run_dir.exists():
            step = _latest_checkpoint_step(run_dir)
            self.start = f"resume from step {step}" if step is not None else "resume from step 0"
            self.resumed_from: int | None = step or 0
            cmd += ["--resume", str(run_dir)]
        else:
            self.start, self.resumed_from = "fresh", None
            cmd += ["--config", json.dumps(spec.config), "--run-dir", str(run_dir)]
        self.t0 = time.time()
        entry = {"attempt": self.number, "start": self.start, "host": os.uname().nodename}
        entry["started"] = _now()
        self.record["attempts"].append(entry)
        save_record(record_dir, spec.key, self.record)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in poll()
        self._log.write(f"# attempt {self.number} ({self.start}): {' '.join(cmd[:6])} ...\n")
        self._log.flush()
        self.cores = cores
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def any_resumed(self) -> bool:
        """Whether an attempt at this cell in this sweep resumed from a checkpoint."""
        return any(t["start"] != "fresh" for t in self.record["attempts"])

    def progress(self) -> tuple[int, float | None]:
        return read_progress(Path(self.spec.run_dir))

    def poll(self, stopped_by: int | None = None) -> dict | None:
        """None while running; then {"outcome": done|retry|failed|stopped, "reason", "code"}.
        `stopped_by`: the signal the sweep itself sent to stop it (outcome "stopped")."""
        code = self.proc.poll()
        if code is None:
            return None
        self._log.close()
        run_dir = Path(self.spec.run_dir)
        outcome = classify(code)
        reason = "" if code == 0 else _exit_reason(code, self.log_path, run_dir)
        if stopped_by is not None and code != 0:
            outcome = "stopped"
            reason = f"stopped by the sweep ({signal.Signals(stopped_by).name}, exit {code})"
        steps, ret = self.progress()
        entry = self.record["attempts"][-1]
        entry.update(
            code=code, outcome=outcome, reason=reason, steps=steps, last_eval_return=ret,
            wall_s=round(time.time() - self.t0, 1), ended=_now(),
        )  # fmt: skip
        save_record(Path(self.spec.record_dir), self.spec.key, self.record)
        return {"outcome": outcome, "reason": reason, "code": code}

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_record(record_dir: Path, key: str) -> dict:
    try:
        return json.loads((record_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        return {"attempts": []}


def save_record(record_dir: Path, key: str, record: dict) -> None:
    tmp = record_dir / f".{key}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(record_dir / f"{key}.json")


def _cell_main(argv: list[str], on_step=None) -> int:
    """The subprocess of one attempt: train a fresh cell or resume it, as `awmp train` would.
    `on_step`: as for awmp.train.train."""
    p = argparse.ArgumentParser(prog="python -m awmp.sweep --cell")
    p.add_argument("--cell", action="store_true")
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--config", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", default=None)
    args = p.parse_args(argv)
    cores = placement.pin_from_env()  # first: before JAX starts any thread
    if cores is not None:
        print(f"# pinned to cores {','.join(map(str, cores))}", flush=True)
    _die_with_parent(args.parent_pid)
    compile_cache.enable()  # as the `awmp` command does
    from awmp.cli import run_train
    from awmp.train import RunDirError, load_run_config

    if args.resume:
        try:
            cfg = load_run_config(args.resume)
        except RunDirError as e:
            print(f"awmp: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        cfg.resume, cfg.progress = args.resume, False
    else:
        cfg = from_dict(json.loads(args.config))
        cfg.run_dir = args.run_dir
    return run_train(cfg, on_step=on_step)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when its launcher dies (Linux), so a killed sweep or Ray worker
    leaves no orphan training on (SIGTERM: train checkpoints and exits 143)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


# ----------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Job:
    spec: CellSpec
    label: str
    initial: str  # todo | partial | complete | diverged
    state: str = "pending"  # pending | running | retrying | done | resumed | failed | ...
    attempts: int = 0
    steps: int = 0
    last_return: float | None = None
    reason: str = ""
    resumed_from: list = dataclasses.field(default_factory=list)


def plan(
    cells: list[Cell], out: Path, record_dir: Path, cell_command: tuple[str, ...] = CELL_COMMAND
) -> list[Job]:
    """A Job per cell, with its status now (refusing a directory of another configuration)."""
    jobs = []
    for cell in cells:
        run_dir = cell_dir(out, cell)
        rel = run_dir.relative_to(out).as_posix()
        status = cell_status(run_dir, cell.config)
        cfg = dataclasses.replace(cell.config, progress=False, run_dir=None)
        spec = CellSpec(
            rel, str(run_dir), json.loads(json.dumps(to_dict(cfg))), cell.config.total_steps,
            str(record_dir), tuple(cell_command),
        )  # fmt: skip
        job = Job(spec, f"{cell.env} {cell.algo} {cell.variant or 'default'} seed {cell.seed}",
                  status)  # fmt: skip
        if status == "complete":
            job.state = "complete"
        elif status == "partial":
            note = divergence_note(run_dir)
            if note:
                job.initial, job.state = "diverged", "failed"
                job.reason = f"diverged earlier, not rerun: {note} (remove {run_dir} to rerun)"
        job.steps, job.last_return = read_progress(run_dir)
        jobs.append(job)
    return jobs


def summarize(jobs: list[Job], record_dir: Path, max_retries: int) -> dict:
    """Final states from the attempts' records (both backends write the same ones)."""
    for job in jobs:
        if job.state in ("complete",) or job.initial == "diverged":
            continue
        record = load_record(record_dir, job.spec.key)
        tries = record["attempts"]
        job.attempts = len(tries)
        job.resumed_from = [t["start"] for t in tries if t["start"] != "fresh"]
        job.steps, job.last_return = read_progress(Path(job.spec.run_dir))
        status = cell_status(Path(job.spec.run_dir), from_dict(job.spec.config))
        if status == "complete":
            job.state = "resumed" if job.resumed_from else "done"
            job.reason = "; ".join(
                f"attempt {t['attempt']}: {t.get('reason') or t.get('outcome', 'did not end')}"
                for t in tries
                if t.get("outcome") != "done"
            )
        elif tries and (
            tries[-1].get("outcome") == "failed"
            or (tries[-1].get("outcome") == "retry" and len(tries) > max_retries)
        ):
            job.state = "failed"
            n = len(tries)
            job.reason = tries[-1].get("reason", "") + (f" (after {n} attempts)" if n > 1 else "")
        elif tries:
            job.state = "partial"
            job.reason = tries[-1].get("reason") or "stopped before the end"
            job.reason += "; re-run the sweep to resume it"
        else:
            job.state = "partial" if job.initial == "partial" else "not run"
            job.reason = job.reason or "not started (sweep stopped)"
    counts = collections.Counter(j.state for j in jobs)
    summary = {
        "counts": dict(counts),
        "cells": [
            {
                "cell": j.spec.rel,
                "state": j.state,
                "attempts": j.attempts,
                "steps": j.steps,
                "total_steps": j.spec.total_steps,
                "last_eval_return": j.last_return,
                "resumed": j.resumed_from,
                "reason": j.reason,
            }
            for j in jobs
        ],
    }
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict, out=print) -> None:
    order = ("complete", "done", "resumed", "failed", "partial", "not run")
    counts = summary["counts"]
    out("sweep summary: " + ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k)))
    for c in summary["cells"]:
        if c["state"] in ("resumed", "failed", "partial", "not run"):
            extra = f" [{'; '.join(c['resumed'])}]" if c["resumed"] else ""
            out(f"  {c['state']:8} {c['cell']}{extra}: {c['reason'] or 'ok'}")


# ----------------------------------------------------------------------------- local backend


def _table(jobs: list[Job], title: str):
    from rich.table import Table

    rank = {"running": 0, "retrying": 1, "failed": 2, "pending": 3}
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("cell", "state", "try", "steps", "last eval"):
        table.add_column(col, justify="right" if col in ("try", "steps", "last eval") else "left")
    for job in sorted(jobs, key=lambda j: rank.get(j.state, 4)):
        ret = "-" if job.last_return is None else f"{job.last_return:.1f}"
        table.add_row(
            job.spec.rel, job.state, str(job.attempts or "-"),
            f"{job.steps:,}/{job.spec.total_steps:,}", ret,
        )  # fmt: skip
    return table


def run_local(
    jobs: list[Job],
    workers: int | placement.Layout,
    max_retries: int,
    log=print,
) -> bool:
    """Run the jobs that need it, `layout.workers` at a time, each on its own cores (an int:
    that many workers, laid out by `placement.plan_layout`); False when stopped by a signal."""
    layout = workers if isinstance(workers, placement.Layout) else placement.plan_layout(workers)
    workers = layout.workers
    free = list(layout.slots) if layout.slots is not None else [None] * workers
    queue = collections.deque(j for j in jobs if j.state == "pending")
    running: dict[int, tuple[Job, Attempt]] = {}
    stop = {"signal": None}

    def handle(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    live = None
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(), auto_refresh=False, transient=False)
        live.start()
        log = live.console.print

    def title() -> str:
        c = collections.Counter(j.state for j in jobs)
        return "sweep: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items()))

    try:
        while (queue or running) and stop["signal"] is None:
            while queue and len(running) < workers and stop["signal"] is None:
                job = queue.popleft()
                attempt = Attempt(
                    job.spec, cores=free.pop(0), threads_per_run=layout.threads_per_run
                )
                job.state, job.attempts = "running", attempt.number
                running[id(attempt)] = (job, attempt)
                log(f"start {job.spec.rel} (attempt {attempt.number}, {attempt.start})")
            time.sleep(POLL_S)
            for key, (job, attempt) in list(running.items()):
                job.steps, job.last_return = attempt.progress()
                result = attempt.poll()
                if result is None:
                    continue
                del running[key]
                free.append(attempt.cores)
                if result["outcome"] == "done":
                    job.state = "resumed" if attempt.any_resumed() else "done"
                    ret = "-" if job.last_return is None else f"{job.last_return:.1f}"
                    log(f"{job.state} {job.spec.rel}: last eval {ret}")
                elif result["outcome"] == "retry" and stop["signal"] is not None:
                    job.state = "partial"
                elif result["outcome"] == "retry" and attempt.number <= max_retries:
                    job.state = "retrying"
                    log(f"retry {job.spec.rel}: {result['reason']}")
                    queue.appendleft(job)
                else:
                    job.state, job.reason = "failed", result["reason"]
                    log(f"FAILED {job.spec.rel}: {result['reason']}")
            if live is not None:
                live.update(_table(jobs, title()), refresh=True)
    finally:
        if running:
            signum = stop["signal"] or signal.SIGINT
            for _, attempt in running.values():
                attempt.signal(signum)  # each checkpoints and exits
            for _, attempt in running.values():
                attempt.wait(timeout=120)
                attempt.poll(stopped_by=signum)
        if live is not None:
            live.update(_table(jobs, title()), refresh=True)
            live.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return stop["signal"] is None


# ----------------------------------------------------------------------------- ray backend

RAY_REPORT_S = 5.0  # how often a trial reports steps and the last return to Tune


def _ray_trial(config: dict, specs: dict) -> None:
    """Tune's trainable: one attempt at one cell. Raises when the attempt should be retried
    (Tune then calls it again, up to max_failures, and the new attempt resumes the run
    directory); a failure not worth retrying (divergence, bad input) returns normally with
    state "failed" in its last result."""
    import ray
    from ray import tune

    spec = CellSpec(**specs[config["cell"]])
    # The CPUs Ray gave this trial set the run's threads (one: XLA single-threaded, as locally);
    # Ray does not say which cores, so the run is not pinned.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    attempt = Attempt(spec, threads_per_run=max(1, int(cpus)))
    last = 0.0
    while (result := attempt.poll()) is None:
        if time.monotonic() - last >= RAY_REPORT_S:
            last = time.monotonic()
            tune.report(_metrics(attempt, "running"))
        time.sleep(POLL_S)
    if result["outcome"] == "retry":
        raise RuntimeError(
            f"{spec.rel}: attempt {attempt.number} {result['reason']}; a retry resumes it from "
            "its newest checkpoint"
        )
    tune.report({**_metrics(attempt, result["outcome"]), "reason": result["reason"]})


def _metrics(attempt: Attempt, state: str) -> dict:
    steps, ret = attempt.progress()
    nan = float("nan")
    return {
        "steps": steps,
        "last_eval_return": nan if ret is None else ret,
        "attempt": attempt.number,
        "state": state,
    }


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError(RAY_INSTALL_HINT) from None
    return ray, tune


def run_ray(
    jobs: list[Job],
    name: str,
    sweep_id: str,
    storage: Path,
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
    max_retries: int,
    log=print,
) -> bool:
    """One Tune trial per job that needs running; False when interrupted."""
    import logging

    ray, tune = _import_ray()
    # Tune's classic reporter: one status table every 30 s (the newer output engine also
    # prints a box per finished trial and cuts cell names to 20 characters).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,  # each attempt's output is in its .sweep log file
        )
    todo = [j for j in jobs if j.state == "pending"]
    if not todo:
        return True
    specs = {j.spec.rel: dataclasses.asdict(j.spec) for j in todo}
    trainable = tune.with_resources(
        tune.with_parameters(_ray_trial, specs=specs), {"cpu": cpus_per_run, "gpu": gpus_per_run}
    )
    reporter = tune.CLIReporter(
        parameter_columns={"cell": "cell"},
        metric_columns={
            "state": "state", "attempt": "try", "steps": "steps", "last_eval_return": "last eval",
        },
        max_report_frequency=30,
        max_column_length=max(len(rel) for rel in specs),
        sort_by_metric=False,
    )  # fmt: skip
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(list(specs))},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"{name}-{sweep_id}",
            storage_path=str(storage / "_ray"),
            failure_config=tune.FailureConfig(max_failures=max_retries),
            progress_reporter=reporter,
            verbose=1,
        ),
    )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        return False
    return True


# ----------------------------------------------------------------------------- the command


def main(argv: list[str] | None = None, cell_command: tuple[str, ...] = CELL_COMMAND) -> int:
    """`awmp sweep`. `cell_command`: what each attempt runs after the interpreter (tests)."""
    p = argparse.ArgumentParser(
        prog="awmp sweep",
        description="Run every cell of an experiment grid in parallel: processes on this "
        "machine (--backend local) or Ray Tune trials on a cluster (--backend ray). Failed or "
        "pre-empted runs are retried from their last checkpoint; re-running the command skips "
        "complete cells and resumes partial ones. Same grid options and run directories as "
        "`awmp experiment`; `awmp report OUT` reads the result. See docs/CLUSTER.md.",
    )
    add_grid_arguments(p, out_help="root of the run directories (default <storage>/<name>)")
    p.add_argument("--backend", default="local", help="local (default) or ray")
    p.add_argument(
        "--workers", type=int, default=None,
        help="local: runs at once (default: one per CPU core of this machine)",
    )  # fmt: skip
    p.add_argument(
        "--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
        help="retries of a crashed or killed run, each resuming from its newest checkpoint "
        f"(default {DEFAULT_MAX_RETRIES}); a diverged run (exit 3) or bad input (exit 2) is "
        "not retried",
    )  # fmt: skip
    p.add_argument(
        "--storage", default=None,
        help="a directory every node can reach (shared filesystem); run directories go to "
        "<storage>/<name> unless --out, Ray's own state to <storage>/_ray (default: runs)",
    )  # fmt: skip
    p.add_argument(
        "--address", default=None,
        help="ray: the cluster to join ('auto': the one `ray start` made on this node); "
        "default: start a local Ray instance",
    )  # fmt: skip
    p.add_argument(
        "--threads-per-run", type=int, default=None,
        help="local: cores per run, each run pinned to its own (default 1: one single-threaded "
        "run per core, the fastest layout on CPUs; docs/BENCHMARKS.md)",
    )  # fmt: skip
    p.add_argument("--cpus-per-run", type=float, default=None, help="ray: CPUs per run (1)")
    p.add_argument("--gpus-per-run", type=float, default=None, help="ray: GPUs per run (0)")
    args = p.parse_args(argv)
    try:
        name, cells = cells_from_args(args)
        opts = _check_options(args)
        storage = Path(opts["storage"]).absolute()
        out = Path(args.out).absolute() if args.out else storage / name
        sweep_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + f"{os.getpid() % 10000:04d}"
        record_dir = out / ".sweep" / sweep_id
        jobs = plan(cells, out, record_dir, cell_command)
        if args.backend == "ray" and not args.dry_run:
            _import_ray()
    except UserError as e:  # SweepError, ExperimentError, ConfigError, ...; else a bug
        print(f"awmp: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    counts = collections.Counter(j.initial for j in jobs)
    print(
        f"sweep {name}: {len(jobs)} cells ({counts['complete']} complete, {counts['partial']} "
        f"partial, {counts['todo']} new, {counts['diverged']} diverged) on {args.backend}; "
        f"runs under {out}",
        flush=True,
    )
    if args.dry_run:
        for job in jobs:
            verb = {"todo": "would run", "partial": "would resume"}.get(job.initial, job.state)
            print(f"  {verb}: {job.spec.rel}{' (' + job.reason + ')' if job.reason else ''}")
        return 0
    print(f"attempt logs and summary: {record_dir}", flush=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    try:
        if args.backend == "local":
            print(f"layout: {opts['layout'].describe()}", flush=True)
            finished = run_local(jobs, opts["layout"], args.max_retries, log=log)
        else:
            finished = run_ray(
                jobs, name, sweep_id, storage, args.address, opts["cpus"], opts["gpus"],
                args.max_retries, log=log,
            )  # fmt: skip
    except SweepError as e:
        print(f"awmp: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = summarize(jobs, record_dir, args.max_retries)
    print_summary(summary, out=log)
    print(f"summary: {record_dir / 'summary.json'}; report: awmp report {out}", flush=True)
    if not finished:
        print("interrupted; re-run the same command to continue", file=sys.stderr)
        return 130
    return 1 if summary["counts"].get("failed") else 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _check_options(args) -> dict:
    """The backend's options, checked; raises SweepError naming the bad one."""
    if args.backend not in BACKENDS:
        raise SweepError(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    if args.max_retries < 0:
        raise SweepError(f"invalid --max-retries {args.max_retries}: must be >= 0")
    storage = args.storage or "runs"
    if "://" in storage:
        raise SweepError(
            f"--storage {storage}: awmp writes run directories as plain files, so --storage must "
            "be a filesystem path every node can reach (e.g. an NFS mount); object stores "
            "(s3://, gs://) are not supported (docs/CLUSTER.md)"
        )
    opts: dict = {"storage": storage}
    if args.backend == "local":
        ray_only = [
            f for f, v in (("--address", args.address), ("--cpus-per-run", args.cpus_per_run),
                           ("--gpus-per-run", args.gpus_per_run)) if v is not None
        ]  # fmt: skip
        if ray_only:
            raise SweepError(f"{', '.join(ray_only)}: only with --backend ray")
        if args.workers is not None and args.workers < 1:
            raise SweepError(f"invalid --workers {args.workers}: must be >= 1")
        threads = 1 if args.threads_per_run is None else args.threads_per_run
        if threads < 1:
            raise SweepError(f"invalid --threads-per-run {threads}: must be >= 1")
        opts["layout"] = placement.plan_layout(args.workers, threads)
        opts["workers"] = opts["layout"].workers
        if opts["workers"] * threads > _cores():
            print(
                f"awmp: warning: {opts['workers']} runs x {threads} core(s) > {_cores()} cores: "
                "runs will share cores unpinned (slower each, same numbers)",
                file=sys.stderr,
            )
    else:
        if args.threads_per_run is not None:
            raise SweepError("--threads-per-run is for --backend local; on Ray: --cpus-per-run")
        if args.workers is not None:
            raise SweepError(
                "--workers is for --backend local; on Ray, --cpus-per-run/--gpus-per-run and the "
                "cluster's resources decide how many runs go at once"
            )
        opts["cpus"] = 1.0 if args.cpus_per_run is None else args.cpus_per_run
        opts["gpus"] = 0.0 if args.gpus_per_run is None else args.gpus_per_run
        if opts["cpus"] <= 0:
            raise SweepError(f"invalid --cpus-per-run {opts['cpus']}: must be > 0")
        if opts["gpus"] < 0:
            raise SweepError(f"invalid --gpus-per-run {opts['gpus']}: must be >= 0")
    return opts


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"]:
        sys.exit(_cell_main(sys.argv[1:]))
    sys.exit(main())
