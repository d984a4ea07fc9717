"""Reading a run directory's JSON files so that a damaged one is named, never a crash.

awmp.load, `awmp eval`, `awmp inspect` and `awmp report` read config.json and summary.json
through `read_json` / `read_config`: a file that is missing, empty, truncated, not UTF-8 text,
not JSON or not the table awmp writes raises RunFileError, whose message names the run and what
is wrong (`awmp report` lists the run as skipped with that reason and goes on; the others exit
2). Parameter files and checkpoints have their own errors, which name the file
(awmp.evaluate.ParamsError, awmp.checkpoint.CheckpointError).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from awmp.errors import ConfigError, UserError

if TYPE_CHECKING:
    from awmp.config import TrainConfig

__all__ = ["MissingRunFileError", "RunFileError", "read_config", "read_json"]


class RunFileError(UserError):
    """A file of a run directory is damaged, truncated, empty or of the wrong format.

    `run_dir` and `problem` (what is wrong, naming the file) make the message, by default
    `RUN_DIR: PROBLEM`."""

    def __init__(self, run_dir: str | Path, problem: str, message: str | None = None) -> None:
        super().__init__(message or f"{run_dir}: {problem}")
        self.run_dir, self.problem = Path(run_dir), problem


class MissingRunFileError(RunFileError, FileNotFoundError):
    """A file a run directory needs is not there (also a FileNotFoundError, as it always was)."""


def read_json(path: Path, run_dir: str | Path) -> dict[str, Any]:
    """The JSON object in `path` (a file of `run_dir`); RunFileError saying what is wrong."""
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingRunFileError(run_dir, f"no {name}") from None
    except OSError as e:
        raise RunFileError(run_dir, f"cannot read {name} ({e.strerror or e})") from None
    if not data.strip():
        raise RunFileError(run_dir, f"{name} is empty")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFileError(run_dir, f"{name} is damaged (not UTF-8 text)") from None
    except ValueError as e:  # json.JSONDecodeError
        problem = f"{name} is damaged or truncated (not valid JSON: {e})"
        raise RunFileError(run_dir, problem) from None
    except RecursionError:
        raise RunFileError(run_dir, f"{name} is damaged (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise RunFileError(
            run_dir, f"{name} is of the wrong format (a JSON {type(obj).__name__}, not an object)"
        )
    return obj


def read_config(run_dir: str | Path) -> tuple[dict[str, Any], TrainConfig]:
    """(config.json's whole content, its TrainConfig) of a run directory; MissingRunFileError
    without config.json, RunFileError when it is damaged or its config invalid."""
    from awmp.config import from_dict

    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        problem = "not an awmp run directory (no config.json)"
        raise MissingRunFileError(run_dir, problem, f"{run_dir} is {problem}")
    meta = read_json(path, run_dir)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise RunFileError(run_dir, "config.json is of the wrong format (no config table)")
    try:
        return meta, from_dict(config)
    except ConfigError as e:
        raise RunFileError(run_dir, f"config.json: {e}") from None
