"""`awmp sweep` as its own process whose cells run tests/fault_sweep_cell.py (test-only entry).

    python tests/fault_sweep.py --pause CELL@STEP -- SWEEP_ARGS   (or --kill CELL@STEP)

A test kills this driver, or a node of the Ray cluster it joined (`--address`), mid-sweep.
"""

from __future__ import annotations

import sys
from pathlib import Path

from awmp import sweep

if __name__ == "__main__":
    args = sys.argv[1:]
    split = args.index("--")
    cell_command = (str(Path(__file__).with_name("fault_sweep_cell.py")), *args[:split])
    sys.exit(sweep.main(args[split + 1 :], cell_command=cell_command))
