"""Run-directory writers: eval.csv, train.csv and TensorBoard events."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

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


class _Csv:
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
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
    """Writes eval.csv, train.csv (fixed columns known at start) and TensorBoard scalars."""

    def __init__(self, run_dir: Path, metric_names: Sequence[str], tensorboard: bool = True):
        self.eval_csv = _Csv(run_dir / "eval.csv", EVAL_COLUMNS)
        self.train_csv = _Csv(run_dir / "train.csv", (*TRAIN_BASE_COLUMNS, *metric_names))
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(run_dir), flush_secs=30)

    def log_eval(self, row: dict) -> None:
        self.eval_csv.write(row)
        if self.tb is not None:
            self.tb.add_scalar("eval/return_mean", row["return_mean"], row["step"])
            self.tb.add_scalar("eval/return_std", row["return_std"], row["step"])

    def log_train(self, row: dict) -> None:
        self.train_csv.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k in ("step", "seed") or v is None or v == "":
                    continue
                self.tb.add_scalar(f"train/{k}", float(v), row["step"])

    def close(self) -> None:
        self.eval_csv.close()
        self.train_csv.close()
        if self.tb is not None:
            self.tb.close()
