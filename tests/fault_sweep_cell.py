"""A sweep attempt's subprocess with a fault: `awmp sweep`'s cell entry (awmp.sweep._cell_main)
after installing a fault right after a step, for the first attempt at one cell.

    sweep.main(argv, cell_command=(this file, "--kill", "CELL@STEP"))
    sweep.main(argv, cell_command=(this file, "--pause", "CELL@STEP"))

CELL is the run directory relative to the sweep's output root; only a fresh start (not a
resume) of that cell gets the fault, so the retry continues from its checkpoint. `--kill`:
SIGKILL after STEP. `--pause`: after STEP the attempt writes nothing more until its launcher
(the sweep, or a Ray worker) is gone, as on a frozen node (faults.stop_at "pause"); a test
then kills it or its node.
"""

from __future__ import annotations

import sys

import faults

from awmp import sweep

if __name__ == "__main__":
    args = sys.argv[1:]
    mode = {"--kill": "kill", "--pause": "pause"}.get(args[0] if args else "")
    cell, _, step = args[1].rpartition("@") if mode else ("", "", "")
    args = args[2:] if cell else args
    fresh = "--config" in args and "--run-dir" in args
    run_dir = args[args.index("--run-dir") + 1] if fresh else ""
    on_step = None
    if cell and fresh and run_dir.replace("\\", "/").endswith("/" + cell):
        on_step = faults.stop_at(int(step), mode)
    sys.exit(sweep._cell_main(args, on_step=on_step))
