"""Optional experiment tracking beside the CSV and TensorBoard logs: `--track wandb`.

One Weights & Biases run per run directory (each seed of `--seeds` has its own): named after the
directory, the run's config as its W&B config, every train.csv row as `train/<column>` and every
eval.csv row as `eval/<column>` at the environment step, its files in <run-dir>/wandb. The W&B
run id is kept in <run-dir>/wandb_run_id, so `--resume` continues the same W&B run (online:
resume="allow"; offline: a new offline directory with the same id, which `wandb sync` merges).

`wandb` is an extra (`pip install 'awmp[track]'`) and is imported only when a run tracks.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from awmp.errors import UserError

ID_FILE = "wandb_run_id"  # in the run directory: the W&B run that --resume continues
INSTALL_HINT = "pip install 'awmp[track]' (from a checkout: pip install -e '.[track]')"


class TrackError(UserError):
    """Tracking cannot start: the package is missing or W&B refused the run (exit 2)."""


def _wandb() -> Any:
    try:
        import wandb
    except Exception as e:  # noqa: BLE001 - missing, or broken: either way it cannot track
        raise TrackError(
            f"--track wandb needs the wandb package ({type(e).__name__}: {e}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return wandb


def require(track: str) -> None:
    """Refuse at start (TrackError, exit 2) when `track` needs a package that cannot be
    imported; imports nothing for `track="none"`."""
    if track == "wandb":
        _wandb()


def run_id(run_dir: Path) -> str:
    """The W&B run id of `run_dir`: the stored one (a resumed run), else a new one, stored."""
    path = Path(run_dir) / ID_FILE
    if path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    new = uuid.uuid4().hex[:16]
    path.write_text(new + "\n")
    return new


def run_config(cfg: Any, run_dir: Path) -> dict:
    """The run's config as its config.json records it (a seed's own config, an extended
    total_steps), else `cfg`'s fields."""
    from awmp.config import to_dict

    try:
        return dict(json.loads((Path(run_dir) / "config.json").read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return to_dict(cfg)


class WandbRun:
    """One W&B run of one run directory; `log_train`/`log_eval` take the CSV rows."""

    def __init__(self, cfg: Any, run_dir: Path) -> None:
        wandb = _wandb()
        run_dir = Path(run_dir)
        try:
            self.run = wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_entity,
                group=cfg.wandb_group,
                name=run_dir.name,
                id=run_id(run_dir),
                resume="allow",
                dir=str(run_dir),
                config=run_config(cfg, run_dir),
                reinit="create_new",  # one process may hold several (one per seed)
                # awmp's own progress output stays as it is (no console capture)
                settings=wandb.Settings(console="off"),
            )
        except Exception as e:  # noqa: BLE001 - e.g. no API key: one line, not a traceback
            raise TrackError(
                f"W&B could not start a run for {run_dir}: {type(e).__name__}: {e} "
                "(log in with `wandb login`, or set WANDB_MODE=offline)"
            ) from None

    def _log(self, prefix: str, row: dict) -> None:
        data = {}
        for k, v in row.items():
            if k in ("step", "seed") or v is None or v == "":
                continue
            data[f"{prefix}/{k}"] = float(v)
        self.run.log(data, step=int(row["step"]))

    def log_train(self, row: dict) -> None:
        self._log("train", row)

    def log_eval(self, row: dict) -> None:
        self._log("eval", row)

    def close(self) -> None:
        self.run.finish()


def open_tracker(cfg: Any, run_dir: Path) -> WandbRun | None:
    """The tracker `cfg.track` asks for, started for `run_dir`; None for "none"."""
    if getattr(cfg, "track", "none") == "wandb":
        return WandbRun(cfg, run_dir)
    return None
