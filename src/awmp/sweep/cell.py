"""The subprocess of one sweep attempt: `python -m awmp.sweep --cell --parent-pid PID` and either
`--config FILE --run-dir DIR` (a fresh cell) or `--resume DIR`.

It pins itself to the cores its launcher chose, dies with its launcher, waits (a retry) until
the run directory's lock is free or its holder gone, and then runs the real
`awmp train --config-file FILE --run-dir DIR` (or `awmp train --resume DIR --no-progress`)
through awmp.cli_train, so an attempt has `awmp train`'s exit codes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from typing import TYPE_CHECKING

from awmp import compile_cache, placement

if TYPE_CHECKING:
    from awmp.trainer import OnStep


def _cell_main(argv: list[str], on_step: OnStep | None = None) -> int:
    """Train a fresh cell or resume it, as `awmp train` does; its exit code.
    `on_step`: as for awmp.train.train (tests/fault_sweep_cell.py installs faults with it)."""
    p = argparse.ArgumentParser(prog="python -m awmp.sweep --cell")
    p.add_argument("--cell", action="store_true")
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--config", default=None, help="the cell's config file (a fresh start)")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", default=None)
    args = p.parse_args(argv)
    cores = placement.pin_from_env()  # first: before JAX starts any thread
    if cores is not None:
        print(f"# pinned to cores {','.join(map(str, cores))}", flush=True)
    _die_with_parent(args.parent_pid)
    compile_cache.enable()  # as the `awmp` command does
    from awmp import cli_train

    if args.resume:
        # A retry may start on another node while the lost node's lock still has a fresh
        # heartbeat: wait until it is stale (awmp.runlock), then `awmp train` takes it over.
        from awmp import runlock
        from awmp.errors import AwmpError

        try:
            runlock.wait_until_free(args.resume, timeout=runlock.lock_wait())
        except AwmpError:
            pass  # e.g. a bad AWMP_LOCK_STALE_SECONDS: `awmp train` says so in one line
        train_argv = ["--resume", args.resume, "--no-progress"]
    else:
        train_argv = ["--config-file", args.config, "--run-dir", args.run_dir]
    print(f"# awmp train {shlex.join(train_argv)}", flush=True)
    return cli_train.main(train_argv, on_step=on_step)


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
