"""`awmp train` with a fault installed first, for the run-lock tests (test-only entry point).

    python tests/fault_train.py [--pause STEP] [--as-host NAME] -- ARGS   (`awmp train`'s ARGS)

--pause STEP: after STEP the run writes nothing more until its parent process is gone
(faults.stop_at "pause"); a test kills it there. --as-host NAME: this process says it runs on
host NAME (another machine as far as the run lock goes: its lock is judged by its heartbeat).
"""

from __future__ import annotations

import sys

import faults

from awmp import cli_train, runlock

if __name__ == "__main__":
    args = sys.argv[1:]
    on_step = None
    while args and args[0] != "--":
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--pause":
            on_step = faults.stop_at(int(value), "pause")
        elif flag == "--as-host":
            runlock.this_machine = lambda name=value: {
                "host": name,
                "boot_id": None,
                "pid_ns": None,
            }
        else:
            raise SystemExit(f"unknown option {flag}")
    sys.exit(cli_train.main(args[1:], on_step=on_step))
