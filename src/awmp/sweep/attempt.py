"""One attempt at one cell of a sweep: a subprocess running `awmp train` (awmp.sweep.cell),
its outcome from its exit code, and its record in `<out>/.sweep/<sweep id>/<cell>.json`.

A fresh attempt writes the cell's config to `<cell>.config.json` in that folder and runs
`awmp train --config-file <it> --run-dir <cell dir>`; a later one runs `awmp train --resume
<cell dir>`. Outcomes (`classify`): 0 done; 2 (bad input) and 3 (diverged) failed, not retried;
anything else (a crash, a kill, a pre-emption) worth a retry that resumes the run directory.
"""

from __future__ import annotations

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

from awmp import placement
from awmp.errors import EXIT_BAD_INPUT, EXIT_DIVERGED

NO_RETRY = {EXIT_BAD_INPUT: "bad input or unusable run directory", EXIT_DIVERGED: "diverged"}
POLL_S = 0.5  # how often a running attempt's run directory is read
# What an attempt runs (after the Python interpreter): the package's cell entry point
# (awmp.sweep.__main__ -> awmp.sweep.cell). A test may run another entry that installs a fault
# and then calls awmp.sweep._cell_main.
CELL_COMMAND = ("-m", "awmp.sweep")


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
        where: dict | None = None,
    ) -> None:
        """`where`: more about where it runs, for its record (Ray: the node's id)."""
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
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        if run_dir.exists():
            step = _latest_checkpoint_step(run_dir)
            self.start = f"resume from step {step}" if step is not None else "resume from step 0"
            self.resumed_from: int | None = step or 0
            cmd += ["--resume", str(run_dir)]
        else:
            self.start, self.resumed_from = "fresh", None
            config_file = record_dir / f"{spec.key}.config.json"
            config_file.write_text(json.dumps(spec.config, indent=1) + "\n")
            cmd += ["--config", str(config_file), "--run-dir", str(run_dir)]
        self.t0 = time.time()
        entry = {"attempt": self.number, "start": self.start, "host": os.uname().nodename}
        entry.update(where or {}, started=_now())
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
