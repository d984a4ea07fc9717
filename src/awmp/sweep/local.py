"""`awmp sweep --backend local`: up to `--workers` attempts at once on this machine, each pinned
to its own cores (awmp.placement), with a live table of the cells."""

from __future__ import annotations

import collections
import signal
import sys
import time

from awmp import placement
from awmp.sweep.attempt import POLL_S, Attempt
from awmp.sweep.plan import Job


def _table(jobs: list[Job], title: str):
    from rich.table import Table

    rank = {"running": 0, "retrying": 1, "failed": 2, "pending": 3}
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("cell", "state", "try", "steps", "last eval"):
        table.add_column(col, justify="right" if col in ("try", "steps", "last eval") else "left")
    for job in sorted(jobs, key=lambda j: rank.get(j.state, 4)):
        ret = "-" if job.last_return is None else f"{job.last_return:.1f}"
        table.add_row(
            job.spec.rel, job.state, str(job.attempts or "-"),
            f"{job.steps:,}/{job.spec.total_steps:,}", ret,
        )  # fmt: skip
    return table


def run_local(
    jobs: list[Job],
    workers: int | placement.Layout,
    max_retries: int,
    log=print,
) -> int | None:
    """Run the jobs that need it, `layout.workers` at a time, each on its own cores (an int:
    that many workers, laid out by `placement.plan_layout`). Returns None when every job has
    ended, or the signal (SIGINT or SIGTERM) that stopped the sweep: the running cells were
    passed it, so each checkpointed its step and exited."""
    layout = workers if isinstance(workers, placement.Layout) else placement.plan_layout(workers)
    workers = layout.workers
    free = list(layout.slots) if layout.slots is not None else [None] * workers
    queue = collections.deque(j for j in jobs if j.state == "pending")
    running: dict[int, tuple[Job, Attempt]] = {}
    stop = {"signal": None}

    def handle(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    live = None
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(), auto_refresh=False, transient=False)
        live.start()
        log = live.console.print

    def title() -> str:
        c = collections.Counter(j.state for j in jobs)
        return "sweep: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items()))

    try:
        while (queue or running) and stop["signal"] is None:
            while queue and len(running) < workers and stop["signal"] is None:
                job = queue.popleft()
                attempt = Attempt(
                    job.spec, cores=free.pop(0), threads_per_run=layout.threads_per_run
                )
                job.state, job.attempts = "running", attempt.number
                running[id(attempt)] = (job, attempt)
                log(f"start {job.spec.rel} (attempt {attempt.number}, {attempt.start})")
            time.sleep(POLL_S)
            for key, (job, attempt) in list(running.items()):
                job.steps, job.last_return = attempt.progress()
                result = attempt.poll()
                if result is None:
                    continue
                del running[key]
                free.append(attempt.cores)
                if result["outcome"] == "done":
                    job.state = "resumed" if attempt.any_resumed() else "done"
                    ret = "-" if job.last_return is None else f"{job.last_return:.1f}"
                    log(f"{job.state} {job.spec.rel}: last eval {ret}")
                elif result["outcome"] == "retry" and stop["signal"] is not None:
                    job.state = "partial"
                elif result["outcome"] == "retry" and attempt.number <= max_retries:
                    job.state = "retrying"
                    log(f"retry {job.spec.rel}: {result['reason']}")
                    queue.appendleft(job)
                else:
                    job.state, job.reason = "failed", result["reason"]
                    log(f"FAILED {job.spec.rel}: {result['reason']}")
            if live is not None:
                live.update(_table(jobs, title()), refresh=True)
    finally:
        if running:
            signum = stop["signal"] or signal.SIGINT
            for _, attempt in running.values():
                attempt.signal(signum)  # each checkpoints and exits
            for _, attempt in running.values():
                attempt.wait(timeout=120)
                attempt.poll(stopped_by=signum)
        if live is not None:
            live.update(_table(jobs, title()), refresh=True)
            live.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return stop["signal"]
