"""A sweep's plan and its summary: the options checked, a Job per cell with its status now, and
the final state of every cell from its attempts' records (`summary.json`)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys
from pathlib import Path

from awmp import placement
from awmp.config import from_dict, to_dict
from awmp.errors import UserError
from awmp.grid import Cell, cell_dir, cell_status
from awmp.sweep.attempt import CELL_COMMAND, CellSpec, divergence_note, load_record, read_progress

BACKENDS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2


class SweepError(UserError):
    """A sweep that cannot start (bad option, Ray missing, storage unusable)."""


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
