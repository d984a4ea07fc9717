"""`awmp sweep EXPERIMENT --backend {local,ray}`: an experiment grid in parallel, with retries.

The cells are those of `awmp experiment` (awmp.experiment: the same files, options, run
directory layout and skipping of complete cells), so `awmp report` reads a sweep's output
unchanged. Each attempt at a cell is one subprocess (`python -m awmp.sweep --cell ...`) that
runs the real `awmp train --config-file <cell config> --run-dir DIR` (or `--resume DIR`), with
its exit codes: JAX is not fork-safe, and a process that dies takes nothing else with it.

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

The package: `attempt` (one subprocess, its outcome and record), `cell` (that subprocess),
`plan` (options, a Job per cell, the summary), `local` and `ray` (the backends; only `ray`
imports Ray), and `main` here.
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import os
import sys
from pathlib import Path

from awmp.errors import EXIT_BAD_INPUT, UserError, stop_exit_code
from awmp.grid import add_grid_arguments, cells_from_args
from awmp.sweep import local, ray
from awmp.sweep.attempt import (  # noqa: F401 - the sweep's names, as awmp.sweep always had them
    CELL_COMMAND,
    NO_RETRY,
    POLL_S,
    Attempt,
    CellSpec,
    _exit_reason,
    classify,
    divergence_note,
    load_record,
    read_progress,
    save_record,
)
from awmp.sweep.cell import _cell_main, _die_with_parent  # noqa: F401
from awmp.sweep.plan import (  # noqa: F401
    BACKENDS,
    DEFAULT_MAX_RETRIES,
    Job,
    SweepError,
    _check_options,
    plan,
    print_summary,
    summarize,
)


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
            ray._import_ray()
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
            stopped_by = local.run_local(jobs, opts["layout"], args.max_retries, log=log)
        else:
            stopped_by = ray.run_ray(
                jobs, name, sweep_id, storage, args.address, opts["cpus"], opts["gpus"],
                args.max_retries, log=log,
            )  # fmt: skip
    except SweepError as e:
        print(f"awmp: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = summarize(jobs, record_dir, args.max_retries)
    print_summary(summary, out=log)
    print(f"summary: {record_dir / 'summary.json'}; report: awmp report {out}", flush=True)
    if stopped_by is not None:
        print("interrupted; re-run the same command to continue", file=sys.stderr)
        return stop_exit_code(stopped_by)
    return 1 if summary["counts"].get("failed") else 0
