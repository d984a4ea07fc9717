"""A live progress bar for training: steps, steps/s, ETA and the last evaluation return."""

from __future__ import annotations

import sys
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """Cheap to call every step: the bar is redrawn at most every `refresh_s` seconds."""

    def __init__(self, total: int, enabled: bool = True, refresh_s: float = 0.25) -> None:
        self.total = total
        self.enabled = enabled
        self.refresh_s = refresh_s
        self._last = 0.0
        self._eval = "-"
        self._t0 = time.perf_counter()
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]} steps/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("eval {task.fields[eval]}"),
                console=None,
                transient=False,
                disable=not sys.stderr.isatty() and not sys.stdout.isatty(),
            )
            self._task = self._progress.add_task("train", total=total, sps="-", eval="-")

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def set_eval(self, value: float) -> None:
        self._eval = f"{value:.1f}"

    def advance(self, step: int) -> None:
        if self._progress is None:
            return
        now = time.perf_counter()
        if now - self._last < self.refresh_s and step < self.total:
            return
        self._last = now
        sps = step / max(now - self._t0, 1e-9)
        self._progress.update(self._task, completed=step, sps=f"{sps:.0f}", eval=self._eval)
