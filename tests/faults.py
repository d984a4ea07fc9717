"""Faults for tests, injected through the public seams (no hook in the production code).

- `stop_at(step, mode)`: an `on_step` callback for awmp.train.train / resume / run_train that,
  after `step`, sends this process SIGINT, i.e. stops the run as Ctrl-C does ("signal"; a
  callback's own stop request returns normally instead), crashes it without a checkpoint
  ("crash": SimulatedCrash) or kills the process with SIGKILL ("kill"), or pauses it there
  ("pause": it writes nothing more, as a process on a frozen node, until its parent process is
  gone; then it goes on, so a SIGTERM from PR_SET_PDEATHSIG stops it with a checkpoint).
- `kill_in_checkpoint(n)`: makes the n-th checkpoint write of this process SIGKILL itself
  halfway through writing its temp file (for subprocesses: tests/fault_cli.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from awmp import checkpoint


class SimulatedCrash(BaseException):
    """A crash after a step with no checkpoint of it (not an Exception: nothing catches it)."""


def stop_at(stop: int, mode: str = "signal") -> Callable[[int], bool]:
    if mode not in ("signal", "crash", "kill", "pause"):
        raise ValueError(f"unknown mode {mode!r}")
    parent = os.getppid()

    def on_step(step: int) -> bool:
        if step == stop and mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if step == stop and mode == "pause":
            while os.getppid() == parent:
                time.sleep(0.2)
            return False
        if step == stop and mode == "crash":
            raise SimulatedCrash(f"simulated crash after step {step}")
        if step == stop:  # Ctrl-C: the loop's handler records it and stops after this step
            os.kill(os.getpid(), signal.SIGINT)
        return False

    return on_step


def kill_in_checkpoint(n: int) -> None:
    """Replace checkpoint.atomic_write in this process: its n-th call for a checkpoint file
    (checkpoints/step_*) writes half the file to the temp path the real one uses, fsyncs it and
    SIGKILLs the process. Other atomic writes (best_params / final_params.msgpack) are not
    counted: they are not checkpoints, and counting them made the n-th call land on whichever
    file an evaluation happened to write first."""
    real = checkpoint.atomic_write
    calls = [0]

    def faulty(path: Path, *chunks: bytes) -> None:
        if not path.name.startswith("step_"):
            return real(path, *chunks)
        calls[0] += 1
        if calls[0] != n:
            return real(path, *chunks)
        data = b"".join(chunks)
        with open(path.with_name(f".{path.name}.tmp-{os.getpid()}"), "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.atomic_write = faulty
