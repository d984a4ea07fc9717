"""A sweep attempt's subprocess with a fault: `awmp sweep`'s cell entry (awmp.sweep._cell_main)
after installing a SIGKILL right after a step, for the first attempt at one cell.

    sweep.main(argv, cell_command=(this file, "--kill", "CELL@STEP"))

CELL is the run directory relative to the sweep's output root; only a fresh start (not a
resume) of that cell is killed, so the retry continues from its checkpoint.
"""

from __future__ import annotations

import sys

import faults

from awmp import sweep

if __name__ == "__main__":
    args = sys.argv[1:]
    cell, _, step = args[1].rpartition("@") if args[:1] == ["--kill"] else ("", "", "")
    args = args[2:] if cell else args
    fresh = "--config" in args and "--run-dir" in args
    run_dir = args[args.index("--run-dir") + 1] if fresh else ""
    on_step = None
    if cell and fresh and run_dir.replace("\\", "/").endswith("/" + cell):
        on_step = faults.stop_at(int(step), "kill")
    sys.exit(sweep._cell_main(args, on_step=on_step))
