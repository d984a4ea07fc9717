"""Run directories: create one, describe it (config.json), find what `--resume` continues.

Runs are never overwritten: a fresh run gets a new directory, and the only way back into an
existing one is `--resume`, which must ask for the same experiment (every field but
RESUME_FREE_FIELDS equal to the saved config.json). A multi-seed run (`seeds`) is a group of
ordinary run directories, one per seed, resumed together with `--resume DIR1,DIR2`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jax

from awmp import checkpoint
from awmp._version import __version__
from awmp.config import (
    NON_EXPERIMENT_FIELDS,
    TrainConfig,
    config_diff,
    flatten,
    from_dict,
    to_dict,
)
from awmp.errors import UserError
from awmp.evaluate import PARAMS_FILE

# Fields a resumed run may change: they do not alter a single number of the experiment.
RESUME_FREE_FIELDS = NON_EXPERIMENT_FIELDS  # the only fields a resume may change


class RunDirError(UserError):
    """The run directory cannot be used (it exists, cannot be written, or cannot be resumed)."""


def say(msg: str) -> None:
    """One line of news for the user on stderr."""
    print(f"awmp: {msg}", file=sys.stderr, flush=True)


def write_json(path: Path, obj: dict) -> None:
    """Write `obj` as JSON through a temp file, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    os.replace(tmp, path)


FROZEN_FILE = "FROZEN.json"
"""Written into a frozen copy of the package (experiments/freeze_src.sh): the commit it was
copied from and whether the work tree differed from that commit (tracked files) at the time."""


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def code_provenance() -> dict:
    """Which code a run is trained with: {"git_commit", "git_dirty", "frozen"}.

    A frozen copy (a FROZEN.json beside this module) answers from that file: the commit the copy
    was made from, whether tracked files differed from it then, and when it was frozen. Otherwise
    git answers for the checkout this module lives in (dirty: tracked files differ from HEAD).
    Outside any checkout every field is None.
    """
    frozen = Path(__file__).resolve().parent / FROZEN_FILE
    if frozen.is_file():
        try:
            info = json.loads(frozen.read_text())
            return {
                "git_commit": info.get("git_commit"),
                "git_dirty": info.get("git_dirty"),
                "frozen": info.get("frozen"),
            }
        except (OSError, ValueError, AttributeError):
            return {"git_commit": None, "git_dirty": None, "frozen": None}
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return {"git_commit": None, "git_dirty": None, "frozen": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return {"git_commit": head.stdout.strip(), "git_dirty": dirty, "frozen": None}


def default_run_dir(cfg: TrainConfig, stamp: str | None = None) -> Path:
    """runs/<env>/<algo>/seed<seed>-<stamp>; the seeds of one multi-seed run share `stamp`."""
    stamp = stamp or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / cfg.env.replace("/", "_") / cfg.algo / f"seed{cfg.seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def create_run_dir(cfg: TrainConfig) -> Path:
    """Create a fresh run directory; refuse an existing one (runs are never overwritten)."""
    path = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if path.exists():
        raise RunDirError(
            f"run directory {path} already exists; choose another --run-dir, or continue that "
            f"run with: awmp train --resume {path} (runs are never overwritten)"
        )
    try:
        path.mkdir(parents=True)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {path}: {e.strerror or e}") from None
    return path


def run_metadata(cfg: TrainConfig) -> dict:
    """config.json: the resolved config and where it ran (versions, commit, host, argv)."""
    config = to_dict(cfg)
    if not config["seeds"]:  # a seed's own run directory: the same config.json as ever
        del config["seeds"]
    return {
        "config": config,
        "awmp_version": __version__,
        **code_provenance(),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def create_run_dirs(
    cfg: TrainConfig,
    members: list[TrainConfig],
    lock: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Create each member's run directory and write its config.json; `lock(run_dir)` is
    called on each new directory before anything is written into it (awmp.runlock)."""
    run_dirs = []
    for m in members:
        run_dir = create_run_dir(m)
        run_dirs.append(run_dir)
        if lock is not None:
            lock(run_dir)
        meta = run_metadata(m)
        if cfg.seeds:  # the siblings trained in the same process (resume them together)
            meta["seed_group"] = {
                "seeds": list(cfg.seeds),
                "run_dirs": [x.run_dir for x in members],
            }
        try:
            write_json(run_dir / "config.json", meta)
        except OSError as e:
            raise RunDirError(f"cannot write to run directory {run_dir}: {e}") from None
    return run_dirs


def refuse_existing(members: list[TrainConfig]) -> None:
    """Refuse a group before creating any seed's directory when one of them exists."""
    for m in members:
        if Path(m.run_dir).exists():
            create_run_dir(m)  # raises the usual "already exists" error


AUTO_CHECKPOINT_MIN_STEPS = 1_000  # short runs: a few checkpoints, not one every 100 steps
AUTO_CHECKPOINT_MAX_STEPS = 50_000  # long runs: never less often than this ...
AUTO_CHECKPOINT_MAX_SECONDS = 1_800.0  # ... nor than every 30 minutes of wall time


def checkpoint_interval(cfg: TrainConfig) -> int:
    """Steps between checkpoints: the configured value, or when it is 0 (auto) 5% of the run
    clamped to [AUTO_CHECKPOINT_MIN_STEPS, AUTO_CHECKPOINT_MAX_STEPS] (auto runs also
    checkpoint after AUTO_CHECKPOINT_MAX_SECONDS of wall time; `checkpoint_seconds`)."""
    if cfg.checkpoint_interval:
        return cfg.checkpoint_interval
    return min(max(cfg.total_steps // 20, AUTO_CHECKPOINT_MIN_STEPS), AUTO_CHECKPOINT_MAX_STEPS)


def checkpoint_seconds(cfg: TrainConfig) -> float | None:
    """Wall seconds after which an automatic-cadence run checkpoints anyway (None: explicit)."""
    return None if cfg.checkpoint_interval else AUTO_CHECKPOINT_MAX_SECONDS


# ----------------------------------------------------------------------------- resume


def resume_dirs(resume: str | Path) -> list[Path]:
    """The run directories of `--resume`: one, or a comma-separated group resumed together."""
    text = str(resume)
    if "," in text and not Path(text).exists():
        return [Path(p) for p in text.split(",") if p]
    return [Path(text)]


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was started with (its config.json), for `--resume`.

    For a comma-separated group of run directories (`--resume DIR1,DIR2`): their common config
    with `seeds` set to their seeds, in the given order.
    """
    dirs = resume_dirs(run_dir)
    if len(dirs) > 1:
        return _group_config(dirs)
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"cannot resume {run_dir}: not an awmp run directory (no config.json)")
    try:
        return from_dict(json.loads(path.read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"cannot resume {run_dir}: unreadable {path} ({e})") from None


def experiment_fields(cfg: TrainConfig) -> dict:
    """The config fields that define the experiment (all but RESUME_FREE_FIELDS), flattened."""
    return {k: v for k, v in flatten(to_dict(cfg)).items() if k not in RESUME_FREE_FIELDS}


def _diff(ours: dict, saved: dict) -> list[str]:
    return [f"{k}={ours[k]!r} (saved {saved[k]!r})" for k in config_diff(ours, saved)]


def _group_config(dirs: list[Path]) -> TrainConfig:
    """The config of run directories resumed together: equal but for the seed."""
    cfgs = [load_run_config(d) for d in dirs]
    seeds = tuple(c.seed for c in cfgs)
    group = ",".join(map(str, dirs))
    if len(set(seeds)) != len(seeds):
        raise RunDirError(f"cannot resume {group} together: seeds {seeds} repeat a seed")
    first = experiment_fields(dataclasses.replace(cfgs[0], seed=0))
    for d, c in zip(dirs[1:], cfgs[1:], strict=True):
        diff = _diff(experiment_fields(dataclasses.replace(c, seed=0)), first)
        if diff:
            raise RunDirError(
                f"cannot resume {group} together: the config of {d} differs from that of "
                f"{dirs[0]} in more than the seed: {', '.join(diff)}; resume them one by one"
            )
    return dataclasses.replace(cfgs[0], seeds=seeds, run_dir=None, resume=None)


def _same_experiment(cfg: TrainConfig, saved: TrainConfig) -> list[str]:
    """How `cfg` differs from a saved run's config, beyond what a resume may change: the
    RESUME_FREE_FIELDS and a larger total_steps (extending the run; guide: "Extend a run")."""
    theirs = experiment_fields(saved)
    if cfg.total_steps > saved.total_steps:
        theirs["total_steps"] = cfg.total_steps
    return _diff(experiment_fields(cfg), theirs)


def check_resume(cfg: TrainConfig) -> Path:
    """The directory `cfg.resume` names, checked: same experiment (or the same with a larger
    total_steps), writable."""
    run_dir = Path(cfg.resume)
    saved = load_run_config(run_dir)
    diff = _same_experiment(cfg, saved)
    if diff:
        hint = (
            "; a resume may raise --total-steps but not lower it"
            if cfg.total_steps < saved.total_steps
            else ""
        )
        raise RunDirError(
            f"cannot resume {run_dir}: the config differs from the saved run: {', '.join(diff)}; "
            f"omit these flags to continue the saved experiment{hint}"
        )
    try:  # fail now, not at the first checkpoint, when the directory is read-only
        probe = run_dir / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot resume {run_dir}: not writable ({e.strerror or e})") from None
    return run_dir


def extend(run_dirs: list[Path], cfg: TrainConfig) -> None:
    """Record a larger total_steps in each resumed run's config.json (guide: "Extend a run"),
    with the history under "extended", before training on: the run is now one of that budget."""
    for run_dir in run_dirs:
        path = run_dir / "config.json"
        meta = json.loads(path.read_text())
        old = int(meta["config"]["total_steps"])
        if cfg.total_steps <= old:
            continue
        meta["config"]["total_steps"] = cfg.total_steps
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        meta.setdefault("extended", []).append({"from": old, "to": cfg.total_steps, "at": stamp})
        write_json(path, meta)
        say(f"extending {run_dir} from {old} to {cfg.total_steps} steps")


def finished_summaries(dirs: list[Path], total_steps: int) -> list[dict] | None:
    """The saved summaries when every run directory finished its `total_steps` (summary.json,
    written last, says so, and the final parameters are there); else None."""
    summaries = []
    for d in dirs:
        try:
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(summary, dict)
            or summary.get("interrupted") is not False
            or summary.get("steps_done") != total_steps
            or not (d / PARAMS_FILE).is_file()
        ):
            return None
        summaries.append(summary)
    return summaries


def members(cfg: TrainConfig) -> list[TrainConfig]:
    """One config per seed, each exactly what a single-seed run of that seed would have.

    Without `seeds`: [cfg]. With `seeds`: cfg with seed=s, seeds=() and the seed's own run
    directory (<run_dir>/seed<s>, or the default with a shared timestamp) or resumed directory.
    """
    if cfg.resume:
        dirs = resume_dirs(cfg.resume)
        if len(dirs) == 1 and not cfg.seeds:
            return [cfg]
        seeds = tuple(load_run_config(d).seed for d in dirs)
        if tuple(cfg.seeds) != seeds:
            raise RunDirError(
                f"cannot resume {cfg.resume}: seeds={tuple(cfg.seeds)} differs from the seeds "
                f"{seeds} of these run directories; omit --seeds when resuming"
            )
        return [
            dataclasses.replace(cfg, seed=s, seeds=(), resume=str(d), run_dir=str(d))
            for s, d in zip(seeds, dirs, strict=True)
        ]
    if not cfg.seeds:
        return [cfg]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = []
    for s in cfg.seeds:
        one = dataclasses.replace(cfg, seed=s, seeds=())
        one.run_dir = str(
            Path(cfg.run_dir) / f"seed{s}" if cfg.run_dir else default_run_dir(one, stamp)
        )
        out.append(one)
    return out


def group_checkpoints(dirs: list[Path]) -> list[checkpoint.Checkpoint | None]:
    """Each directory's checkpoint to resume from: the newest one; for a group, the newest step
    that every directory has (a kill between the seeds' checkpoint writes leaves some a step
    ahead), or none at all when none has one yet."""
    if len(dirs) == 1:
        return [checkpoint.load_latest(dirs[0])]
    found = [dict(checkpoint.list_checkpoints(d)) for d in dirs]
    if not any(found):
        return [None] * len(dirs)
    common = set.intersection(*(set(f) for f in found))
    if not common:
        steps = ", ".join(f"{d}: {sorted(f) or 'none'}" for d, f in zip(dirs, found, strict=True))
        raise RunDirError(
            f"cannot resume {','.join(map(str, dirs))} together: they have no checkpoint step in "
            f"common ({steps}); resume each alone with --resume DIR"
        )
    step = max(common)
    if any(max(f) != step for f in found):
        say(f"resuming the group from step {step}, the newest checkpoint every seed has")
    return [checkpoint.load(f[step]) for f in found]


def resume_checkpoints(cfg: TrainConfig, group: list[TrainConfig]) -> list:
    """The checkpoints the group continues from (None each when none was written yet),
    each checked to be of this experiment."""
    dirs = [Path(m.resume) for m in group]
    ckpts = group_checkpoints(dirs)
    for m, ckpt in zip(group, ckpts, strict=True):
        if ckpt is not None and _same_experiment(m, from_dict(ckpt.meta["config"])):
            raise checkpoint.CheckpointError(
                f"checkpoint {ckpt.path} was written by another config than {m.resume}/config.json"
            )
    return ckpts
