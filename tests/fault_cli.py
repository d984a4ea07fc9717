"""`awmp` with a fault installed first, for subprocess tests (test-only entry point).

python tests/fault_cli.py --kill-in-checkpoint N -- train ...   (the awmp CLI's arguments)
"""

from __future__ import annotations

import sys

import faults

from awmp.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--kill-in-checkpoint"]:
        faults.kill_in_checkpoint(int(args[1]))
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    sys.exit(main(args))
