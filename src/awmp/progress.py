"""Training progress: a live bar on a terminal, plain lines elsewhere (nohup, Slurm, CI).

On a terminal (stdout or stderr is a TTY) a rich progress bar shows steps, steps/s, elapsed
time, ETA and the last evaluation return. Without a TTY the bar would print nothing, so one
plain line goes to stderr instead every `log_interval` steps or every `max_silence_s` (60 s),
whichever comes first, and at the last step, e.g.

    awmp: step 2000/10000 (20%) | 512 steps/s | elapsed 0:00:04 | ETA 0:00:16 | eval -143.2 |
          q_loss 1.23 pi_loss -4.56   (one line)

steps/s and the ETA count from the end of the warm-up (`warmup` steps of random actions and no
updates, far faster than training; from the resumed step when that is later), so the warm-up
does not make the ETA optimistic; during the warm-up the ETA is "-". `enabled=False`
(`--no-progress`) silences both.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


def _is_tty() -> bool:
    return sys.stderr.isatty() or sys.stdout.isatty()


def _hms(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main_losses(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics a progress line shows: the losses and SAC's temperature."""
    shown = {k: float(v) for k, v in metrics.items() if k.endswith("_loss")}
    if "alpha" in metrics:
        shown["alpha"] = float(metrics["alpha"])
    return shown


class TrainProgress:
    """Cheap to call every step: the bar is redrawn at most every `refresh_s` seconds; a plain
    line (no TTY) is printed every `log_interval` steps, or after `max_silence_s` seconds
    without one. `clock`: the time source in seconds (a fake one in tests)."""

    def __init__(
        self,
        total: int,
        enabled: bool = True,
        refresh_s: float = 0.25,
        *,
        start: int = 0,
        log_interval: int = 1000,
        plain: bool | None = None,
        warmup: int = 0,
        max_silence_s: float = 60.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.refresh_s = refresh_s
        self.start = start
        self.log_interval = max(int(log_interval), 1)
        self.plain = enabled and (not _is_tty() if plain is None else plain)
        self.max_silence_s = max_silence_s
        self.clock = clock
        self._last = 0.0
        self._eval = "-"
        self._losses: dict[str, float] = {}
        self._t0 = clock()
        self._last_line = self._t0
        # Where the rate behind steps/s and the ETA starts: the end of the warm-up (step, time;
        # None: the start's time), None until the loop gets there.
        self.warmup = warmup
        self._rate_from: tuple[int, float | None] | None = None
        if start >= warmup:
            self._rate_from = (start, None)
        self._progress = None
        if enabled and not self.plain:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]} steps/s"),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("eval {task.fields[eval]}"),
                console=None,
                transient=False,
            )
            self._task = self._progress.add_task(
                "train", total=total, completed=start, sps="-", eta="-", eval="-", phase="train"
            )

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def phase(self, label: str | None):
        """Label the bar with what the run does meanwhile (compiling, evaluating, checkpoint,
        prior burst), redrawn at once, then back to "train"; None: no label (a no-op)."""
        if label is None or self._progress is None:
            yield
            return
        self._progress.update(self._task, phase=label, refresh=True)
        try:
            yield
        finally:
            self._progress.update(self._task, phase="train", refresh=True)

    def set_eval(self, value: float) -> None:
        self._eval = f"{value:.1f}"

    def set_losses(self, metrics: Mapping[str, float]) -> None:
        """The latest losses, shown on the next plain line."""
        self._losses = main_losses(metrics)

    def _note_warmup_end(self, step: int, now: float) -> None:
        if self._rate_from is None and step >= self.warmup:
            self._rate_from = (step, now)

    def _sps(self, step: int, now: float) -> float | None:
        """Steps per second since the end of the warm-up; None before there is any."""
        if self._rate_from is None or step <= self._rate_from[0]:
            return None
        s0, t0 = self._rate_from
        return (step - s0) / max(now - (self._t0 if t0 is None else t0), 1e-9)

    def _eta(self, step: int, sps: float | None) -> str:
        if step >= self.total:
            return _hms(0)
        return _hms((self.total - step) / sps) if sps else "-"

    def line(self, step: int, now: float | None = None) -> str:
        """The plain progress line at `step`."""
        now = self.clock() if now is None else now
        sps = self._sps(step, now)
        parts = [
            f"step {step}/{self.total} ({100 * step / self.total:.0f}%)",
            f"{sps:.0f} steps/s" if sps is not None else "- steps/s",
            f"elapsed {_hms(now - self._t0)}",
            f"ETA {self._eta(step, sps)}",
            f"eval {self._eval}",
        ]
        if self._losses:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in self._losses.items()))
        return "awmp: " + " | ".join(parts)

    def advance(self, step: int) -> None:
        """After environment step `step`: a plain line when due, or the bar redrawn."""
        if not self.enabled:
            return
        now = self.clock()
        self._note_warmup_end(step, now)
        if self.plain:
            if (
                step % self.log_interval == 0
                or step == self.total
                or now - self._last_line >= self.max_silence_s
            ):
                print(self.line(step, now), file=sys.stderr, flush=True)
                self._last_line = now
            return
        if now - self._last < self.refresh_s and step < self.total:
            return
        self._last = now
        sps = self._sps(step, now)
        self._progress.update(
            self._task,
            completed=step,
            sps=f"{sps:.0f}" if sps is not None else "-",
            eta=self._eta(step, sps),
            eval=self._eval,
        )
