"""Run-directory writers: eval.csv, train.csv, TensorBoard events and (--track) a tracker."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from awmp.errors import UserError

if TYPE_CHECKING:
    from awmp.track import WandbRun

EVAL_COLUMNS = ("step", "seed", "return_mean", "return_std", "episodes", "wall_s")
TRAIN_BASE_COLUMNS = (
    "step",
    "seed",
    "episode_return",
    "episode_length",
    "episodes",
    "wall_s",
    "steps_per_s",
)


class LogResumeError(UserError):
    """A CSV log of a resumed run does not have the columns this run writes."""


def truncate_csv(path: Path, columns: Sequence[str], last_step: int) -> None:
    """Keep the header and the complete rows with step <= last_step (a resume's position).

    Rows past the checkpoint, and a last line cut short by a crash, are dropped; kept lines stay
    byte for byte as they were; the result replaces the file atomically.
    """
    buf = io.StringIO()
    csv.writer(buf).writerow(columns)
    header = buf.getvalue()
    lines = []
    if path.exists():
        try:
            with open(path, newline="") as f:
                lines = f.readlines()
        except UnicodeDecodeError:
            raise LogResumeError(
                f"{path} is damaged (not UTF-8 text); move it away to resume without its rows"
            ) from None
    if lines and lines[0] != header:
        raise LogResumeError(
            f"{path} has columns {lines[0].strip()!r}, this run writes {header.strip()!r}"
        )
    kept = [header]
    for line in lines[1:]:
        try:
            row = next(csv.reader([line]), [])
        except csv.Error:  # e.g. a NUL byte: damage, as a line cut short
            break
        if not line.endswith("\n") or len(row) != len(columns):
            break  # a row cut short by a crash: nothing after it was written completely
        try:
            step = int(float(row[0]))
        except ValueError:
            break
        if step > last_step:
            break
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write("".join(kept))
    tmp.replace(path)


class _Csv:
    def __init__(self, path: Path, columns: Sequence[str], resume_step: int | None = None) -> None:
        self.columns = tuple(columns)
        if resume_step is not None:
            truncate_csv(path, self.columns, resume_step)
            self._file = open(path, "a", newline="")  # noqa: SIM115 - kept open for the run
            self._writer = csv.DictWriter(self._file, fieldnames=self.columns, restval="")
            return
        self._file = open(path, "w", newline="")  # noqa: SIM115 - kept open for the run
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, restval="")
        self._writer.writeheader()
        self._file.flush()

    def write(self, row: dict) -> None:
        clean = {}
        for k, v in row.items():
            if k not in self.columns:
                continue
            if isinstance(v, float) and not math.isfinite(v):
                clean[k] = str(v)
            else:
                clean[k] = v
        self._writer.writerow(clean)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunLogger:
    """Writes eval.csv, train.csv (fixed columns known at start) and TensorBoard scalars, and
    hands every row to `tracker` (awmp.track, `--track`) when one is set."""

    def __init__(
        self,
        run_dir: Path,
        metric_names: Sequence[str],
        tensorboard: bool = True,
        resume_step: int | None = None,
        tracker: WandbRun | None = None,
    ):
        """`resume_step`: continue a resumed run: keep the rows up to that step, then append.
        `tracker`: also log each row there (awmp.track.open_tracker); closed with the logger."""
        self.tracker = tracker
        self.eval_csv = _Csv(run_dir / "eval.csv", EVAL_COLUMNS, resume_step)
        self.train_csv = _Csv(
            run_dir / "train.csv", (*TRAIN_BASE_COLUMNS, *metric_names), resume_step
        )
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # A resumed run starts a new events file that hides the old one's steps past the
            # checkpoint (TensorBoard's purge_step).
            purge = None if resume_step is None else resume_step + 1
            self.tb = SummaryWriter(str(run_dir), flush_secs=30, purge_step=purge)

    def log_eval(self, row: dict) -> None:
        self.eval_csv.write(row)
        if self.tb is not None:
            self.tb.add_scalar("eval/return_mean", row["return_mean"], row["step"])
            self.tb.add_scalar("eval/return_std", row["return_std"], row["step"])
        if self.tracker is not None:
            self.tracker.log_eval(row)

    def log_train(self, row: dict) -> None:
        self.train_csv.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k in ("step", "seed") or v is None or v == "":
                    continue
                self.tb.add_scalar(f"train/{k}", float(v), row["step"])
        if self.tracker is not None:
            self.tracker.log_train(row)

    def close(self) -> None:
        self.eval_csv.close()
        self.train_csv.close()
        if self.tb is not None:
            self.tb.close()
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None


def window_steps_per_second(run_dir: Path, start: int, end: int) -> float:
    """Environment steps per second of wall time between two logged steps of train.csv."""
    with open(run_dir / "train.csv", newline="") as f:
        rows = {int(r["step"]): float(r["wall_s"]) for r in csv.DictReader(f)}
    return (end - start) / (rows[end] - rows[start])
