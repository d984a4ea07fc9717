"""Where many runs go on one machine's CPU cores.

Measured on the project's 2-core machine (docs/BENCHMARKS.md "Runs per hour"): one process per
core, each pinned to its core with XLA's Eigen thread pool off, finishes about 1.5x the runs per
hour of one process using both cores, and more than unpinned workers or vmapped seeds. So
`awmp sweep --backend local` and `awmp experiment` give each run `threads_per_run` cores of its
own (default 1), pinned with `os.sched_setaffinity` on Linux (elsewhere: unpinned), and run
`cores // threads_per_run` at once. Pinning and XLA's threading change where the arithmetic
runs, not what it computes: a cell's numbers equal those of the same run started alone
(tests/test_sweep.py checks it bitwise).
"""

from __future__ import annotations

import dataclasses
import os

from awmp.errors import UserError

SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def available_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity mask on Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity API
        return list(range(os.cpu_count() or 1))


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity")


@dataclasses.dataclass(frozen=True)
class Layout:
    """`workers` runs at once, `threads_per_run` cores each; `slots[i]` the cores of worker i
    (None: not pinned, because the runs would not fit the cores or the OS cannot pin)."""

    workers: int
    threads_per_run: int
    slots: tuple[tuple[int, ...], ...] | None

    def describe(self) -> str:
        if self.slots is None:
            pinned = "not pinned"
        else:
            pinned = "pinned to cores " + " | ".join(",".join(map(str, s)) for s in self.slots)
        threads = "single-threaded XLA" if self.threads_per_run == 1 else "XLA's own threads"
        return (
            f"{self.workers} run(s) at once, {self.threads_per_run} core(s) each, {pinned}, "
            f"{threads}"
        )


def plan_layout(workers: int | None, threads_per_run: int = 1) -> Layout:
    """The layout for `workers` runs at once (None: as many as the cores hold), `threads_per_run`
    cores each. Raises UserError for a count below 1."""
    if threads_per_run < 1:
        raise UserError(f"invalid threads per run {threads_per_run}: must be >= 1")
    cores = available_cores()
    n = workers if workers is not None else max(1, len(cores) // threads_per_run)
    if n < 1:
        raise UserError(f"invalid workers {n}: must be >= 1")
    fits = n * threads_per_run <= len(cores)
    slots = None
    if fits and can_pin():
        slots = tuple(
            tuple(cores[i * threads_per_run : (i + 1) * threads_per_run]) for i in range(n)
        )
    return Layout(n, threads_per_run, slots)


PIN_ENV = "AWMP_CPU_CORES"


def child_env(env: dict, threads_per_run: int, cores: tuple[int, ...] | None = None) -> dict:
    """`env` for a run given `threads_per_run` cores: XLA's Eigen pool off for one core (unless
    XLA_FLAGS already says otherwise), and the cores to pin to (`pin_from_env` in the child)."""
    env = dict(env)
    flags = env.get("XLA_FLAGS", "")
    if threads_per_run == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()
    env.pop(PIN_ENV, None)
    if cores:
        env[PIN_ENV] = ",".join(map(str, cores))
    return env


def pin_from_env() -> tuple[int, ...] | None:
    """In a run's own process, before JAX starts its threads: pin every thread of this process
    to the cores `child_env` named (threads created later inherit it). Returns the cores, or
    None when none were named or the OS cannot pin. (Not a Popen preexec_fn: forking a parent
    that runs JAX threads and executing Python before exec can deadlock.)"""
    value = os.environ.get(PIN_ENV)
    if not value or not can_pin():
        return None
    cores = tuple(int(c) for c in value.split(","))
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        os.sched_setaffinity(tid, cores)
    return cores
