"""`awmp experiment NAME_OR_TOML`: run a grid of training runs sequentially, skipping done ones.

The grid (its TOML file, its cells and their run directories) is awmp.grid. A cell whose
directory holds a summary.json with every step done is skipped; an incomplete one is resumed
when awmp.train can resume, and otherwise reported and left alone (run directories are never
overwritten). With more than one worker the cells run in parallel through `awmp sweep
--backend local` (awmp.sweep).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from awmp import placement
from awmp.errors import UserError, stop_exit_code
from awmp.grid import (  # noqa: F401 - the grid's names, as awmp.experiment always had them
    Cell,
    ExperimentError,
    _parse_sets,
    add_grid_arguments,
    cell_dir,
    cell_status,
    cells_from_args,
    expand,
    load_experiment,
    set_field,
    tomllib,
    train_command,
)


def _resume_fn():
    """awmp.train's resume entry point, if this version has one (None otherwise)."""
    from awmp import train

    return getattr(train, "resume", None)


def run_experiment(
    cells: list[Cell], out: Path, dry_run: bool = False, log=print
) -> dict[str, list[str]]:
    """Run the cells in order; return run directories by outcome."""
    from awmp.train import train

    outcome: dict[str, list[str]] = {
        k: [] for k in ("complete", "ran", "resumed", "partial", "failed", "todo")
    }
    resume = _resume_fn()
    for i, cell in enumerate(cells, 1):
        run_dir = cell_dir(out, cell)
        status = cell_status(run_dir, cell.config)
        variant = cell.variant or "default"
        label = f"[{i}/{len(cells)}] {cell.env} {cell.algo} {variant} seed {cell.seed}"
        if status == "complete":
            log(f"{label}: complete, skipped ({run_dir})")
            outcome["complete"].append(str(run_dir))
            continue
        if status == "partial" and resume is None:
            log(f"{label}: PARTIAL and this awmp cannot resume yet; left alone ({run_dir})")
            outcome["partial"].append(str(run_dir))
            continue
        if dry_run:
            verb = "would resume" if status == "partial" else "would run"
            log(f"{label}: {verb}: {train_command(cell.config, run_dir)}")
            outcome["partial" if status == "partial" else "todo"].append(str(run_dir))
            continue
        cfg = dataclasses.replace(cell.config, run_dir=str(run_dir))
        try:
            if status == "partial":
                log(f"{label}: resuming ({run_dir})")
                resume(run_dir, progress=cell.config.progress)
                outcome["resumed"].append(str(run_dir))
            else:
                log(f"{label}: running ({run_dir})")
                _, summary = train(cfg)
                log(f"{label}: final return {summary['final_eval_return']}")
                outcome["ran"].append(str(run_dir))
        except KeyboardInterrupt:
            log(f"{label}: interrupted; partial results in {run_dir}")
            outcome["partial"].append(str(run_dir))
            raise
        except Exception as e:  # one failing cell must not stop a day-long protocol
            log(f"{label}: FAILED: {type(e).__name__}: {e}")
            outcome["failed"].append(str(run_dir))
    return outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="awmp experiment",
        description="Run an experiment grid (e.g. the paper's protocol); cells already complete "
        "are skipped, so re-running continues where it stopped. With more than one worker "
        "(the default on a machine with several cores) the cells run in parallel, one pinned "
        "single-threaded run per core, as `awmp sweep --backend local` (which also retries); "
        "--workers 1 runs them one after another in this process.",
    )
    add_grid_arguments(p, out_help="root of the run directories (runs/<name>)")
    p.add_argument(
        "--workers", type=int, default=None,
        help="runs at once (default: one per core, or cores // --threads-per-run)",
    )  # fmt: skip
    p.add_argument("--threads-per-run", type=int, default=None, help="cores per run (default 1)")
    args = p.parse_args(argv)
    if not args.dry_run and args.workers != 1:
        try:
            layout = placement.plan_layout(args.workers, args.threads_per_run or 1)
        except UserError as e:
            print(f"awmp: error: {e}", file=sys.stderr)
            return 2
        if layout.workers > 1:  # in parallel: the local sweep (it prints the layout it chose)
            from awmp import sweep

            return sweep.main(list(sys.argv[1:] if argv is None else argv))

    try:
        name, cells = cells_from_args(args)
        out = Path(args.out) if args.out else Path("runs") / name
        print(f"experiment {name}: {len(cells)} cells, runs under {out}", flush=True)
        outcome = run_experiment(cells, out, args.dry_run, log=lambda m: print(m, flush=True))
    except UserError as e:  # ExperimentError, ConfigError, ...; anything else is a bug
        print(f"awmp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (awmp.train.TrainingInterrupted)
        print("\ninterrupted; re-run the same command to continue", file=sys.stderr)
        return stop_exit_code(getattr(e, "signum", None))
    counts = ", ".join(f"{len(v)} {k}" for k, v in outcome.items() if v)
    print(f"done: {counts}")
    if outcome["partial"] and _resume_fn() is None:
        print("partial cells were not resumed (this awmp.train has no resume)", file=sys.stderr)
    return 1 if outcome["failed"] else 0
