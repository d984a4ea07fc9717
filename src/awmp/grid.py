"""An experiment grid: its file, its cells, their run directories and their status.

Shared by `awmp experiment` (awmp.experiment: the cells one after another) and `awmp sweep`
(awmp.sweep: in parallel, with retries).

An experiment file (TOML; `paper` is shipped in awmp/data/experiments/) has a [defaults] table
of TrainConfig fields (dotted keys such as "awmp.tau_q" or nested tables; `seeds` is a list)
and [[grid]] entries, each with `envs`, `algos`, optional `vary` (field -> list of values,
crossed) and `set` (field -> value). A cell is (env, algo, overrides, seed); its run directory is

    <out>/<env>/<algo>/<variant or "default">/seed<seed>-<budget>steps

where the variant lists the preset (unless `paper`; a grid may `set` or `vary` it) and the
overrides that differ from the preset, so a cell that several figures share (Fig. 3's
SAC-AWMP is Fig. 4's O = 4) runs once. `cell_status` says whether a cell's directory is new,
complete (a summary.json with every step done) or partial, and refuses one that holds another
configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shlex
from importlib import resources
from pathlib import Path

from awmp.algos.registry import ALGORITHMS
from awmp.config import ConfigError, TrainConfig, config_diff, flatten, preset, to_dict, validate
from awmp.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ExperimentError(UserError):
    """An experiment file or an existing cell directory that cannot be used."""


@dataclasses.dataclass
class Cell:
    grids: list[str]
    env: str
    algo: str
    seed: int
    overrides: dict  # dotted field -> value, only those that differ from the preset
    config: TrainConfig

    @property
    def variant(self) -> str:
        return ",".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in self.overrides.items())


def _fmt(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _get(cfg: TrainConfig, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _nearest(cfg: TrainConfig, dotted: str) -> str:
    """' (did you mean X?)' for the config field nearest to `dotted`, or ''."""
    from awmp.strict import did_you_mean

    names = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            names += [f"{f.name}.{g.name}" for g in dataclasses.fields(value)]
        else:
            names.append(f.name)
    return did_you_mean(dotted.replace("-", "_"), names)


def set_field(cfg: TrainConfig, dotted: str, value) -> None:
    """cfg.<a>.<b> = value, refusing unknown fields and converting lists to tuples."""
    *parents, name = dotted.replace("-", "_").split(".")
    obj, prefix = cfg, ""
    for part in parents:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise ConfigError(f"unknown config field {dotted!r}{_nearest(cfg, dotted)}")
        obj, prefix = getattr(obj, part), f"{prefix}{part}."
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"unknown config field {dotted!r}{_nearest(cfg, dotted)}")
    if isinstance(value, list):
        value = tuple(value)
    current = getattr(obj, name)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    setattr(obj, name, value)


def load_experiment(name_or_path: str) -> tuple[str, dict]:
    """(name, parsed TOML) from a file path or the name of a shipped experiment."""
    path = Path(name_or_path)
    if path.is_file():
        text, name = path.read_text(), path.stem
    else:
        shipped = resources.files("awmp").joinpath("data/experiments")
        names = sorted(p.name[:-5] for p in shipped.iterdir() if p.name.endswith(".toml"))
        if name_or_path not in names:
            raise ExperimentError(
                f"no experiment file {name_or_path!r}; give a .toml path or one of: "
                f"{', '.join(names)}"
            )
        text, name = shipped.joinpath(f"{name_or_path}.toml").read_text(), name_or_path
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{name_or_path}: invalid TOML ({e})") from None
    if not spec.get("grid"):
        raise ExperimentError(f"{name_or_path}: needs at least one [[grid]] entry")
    return name, spec


def expand(
    spec: dict,
    budget: int | None = None,
    seeds: list[int] | None = None,
    envs: list[str] | None = None,
    only: list[str] | None = None,
    sets: dict | None = None,
) -> list[Cell]:
    """Every distinct cell of the grid with the CLI's reductions applied, seed by seed (every
    cell of seed 0 in file order, then seed 1, ...), so a protocol stopped early has whole
    comparisons over fewer seeds rather than some algorithms only."""
    defaults = flatten(spec.get("defaults", {}))
    default_seeds = defaults.pop("seeds", [0])
    names = [g.get("name", f"grid{i}") for i, g in enumerate(spec["grid"])]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ExperimentError(f"unknown grid {unknown}; this file has: {', '.join(names)}")
    cells: dict[tuple, Cell] = {}
    for gname, grid in zip(names, spec["grid"], strict=True):
        if only and gname not in only:
            continue
        vary = flatten(grid.get("vary", {}))
        fixed = flatten(grid.get("set", {}))
        grid_seeds = seeds if seeds is not None else grid.get("seeds", default_seeds)
        for key in ("envs", "algos"):
            if not grid.get(key):
                raise ExperimentError(f"grid {gname!r}: needs a non-empty {key!r} list")
        grid_envs = [e for e in grid["envs"] if envs is None or e in envs]
        combos = [dict(zip(vary, vals, strict=True)) for vals in itertools.product(*vary.values())]
        for env, algo, combo, seed in itertools.product(
            grid_envs, grid["algos"], combos or [{}], grid_seeds
        ):
            merged = {**defaults, **fixed, **combo, **(sets or {})}
            cfg = preset(str(merged.get("preset", "paper")))  # first: the fields override it
            cfg.algo, cfg.env, cfg.seed = algo, env, int(seed)
            for k, v in merged.items():
                if k != "preset":
                    set_field(cfg, k, v)
            if budget is not None:
                cfg.total_steps = int(budget)
            validate(cfg)
            # The variant: algorithm fields that differ from the preset (defaults drop out).
            ref = preset(cfg.preset)
            section = ALGORITHMS[algo].section
            overrides = {"preset": cfg.preset} if cfg.preset != "paper" else {}
            overrides |= {
                k: _get(cfg, k)
                for k in sorted({**fixed, **combo})
                if k.startswith(section + ".") and _get(cfg, k) != _get(ref, k)
            }
            key = (env, algo, tuple(overrides.items()), int(seed))
            if key in cells:
                cells[key].grids.append(gname)
            else:
                cells[key] = Cell([gname], env, algo, int(seed), overrides, cfg)
    return sorted(cells.values(), key=lambda c: c.seed)  # stable: file order within a seed


def cell_dir(out: Path, cell: Cell) -> Path:
    env = cell.env.replace("/", "_")
    return (
        out / env / cell.algo / (cell.variant or "default")
        / f"seed{cell.seed}-{cell.config.total_steps}steps"
    )  # fmt: skip


# May differ between a cell and its run without changing a number of the experiment.
def cell_status(run_dir: Path, cfg: TrainConfig) -> str:
    """'todo', 'complete' or 'partial'; refuses a directory holding a different configuration."""
    if not run_dir.exists():
        return "todo"
    from awmp.runfiles import RunFileError, read_json

    cfg_path = run_dir / "config.json"
    if cfg_path.is_file():
        try:
            stored = read_json(cfg_path, run_dir).get("config", {})
            if not isinstance(stored, dict):
                raise RunFileError(run_dir, "config.json is of the wrong format (no config table)")
        except RunFileError as e:
            raise ExperimentError(f"{e}; remove the run directory or use another --out") from None
        wanted = json.loads(json.dumps(to_dict(cfg)))
        diff = config_diff(stored, wanted)
        if diff:
            raise ExperimentError(
                f"{run_dir} holds a run with a different configuration (fields {', '.join(diff)});"
                " use another --out or remove it"
            )
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            s = read_json(summary, run_dir)
        except RunFileError:  # damaged: not known to be complete; the run resumes
            return "partial"
        done = s.get("steps_done", 0)
        if isinstance(done, int) and done >= cfg.total_steps and not s.get("interrupted"):
            return "complete"
    return "partial"


def train_command(cfg: TrainConfig, run_dir: Path) -> str:
    """The `awmp train` command line equivalent to a cell (for --dry-run and logs)."""
    args = ["awmp", "train", "--algo", cfg.algo, "--env", cfg.env, "--seed", str(cfg.seed)]
    args += ["--preset", cfg.preset]
    section = ALGORITHMS[cfg.algo].section
    ours, ref = to_dict(cfg), to_dict(preset(cfg.preset))
    explicit = ("algo", "env", "seed", "preset", "run_dir")
    flat = {k: v for k, v in ours.items() if not isinstance(v, dict) and k not in explicit}
    flat.update({f"{section}.{k}": v for k, v in ours[section].items()})
    for k, v in flat.items():
        top, _, sub = k.partition(".")
        default = ref[top][sub] if sub else ref[top]
        if v == default:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            args.append(flag if v else flag.replace("--", "--no-", 1))
        elif isinstance(v, (list, tuple)):
            args += [flag, *map(str, v)]
        else:
            args += [flag, str(v)]
    return shlex.join([*args, "--run-dir", str(run_dir)])


def _parse_sets(items: list[str]) -> dict:
    sets = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExperimentError(f"invalid --set {item!r}: expected FIELD=VALUE")
        try:
            sets[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            sets[key.strip()] = value  # a bare string such as Hopper-v5
    return sets


def add_grid_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    """The options that choose the cells (shared by `awmp experiment` and `awmp sweep`)."""
    p.add_argument("experiment", help="a shipped experiment name (paper) or a .toml file")
    p.add_argument("--budget", type=int, default=None, help="environment steps per run")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1")
    p.add_argument("--envs", default=None, help="comma-separated subset of the file's envs")
    p.add_argument("--only", default=None, help="comma-separated grid names, e.g. fig3")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field in every cell, TOML value syntax "
        "(e.g. --set warmup_steps=1000 --set 'sac.hidden=[64,64]')",
    )
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--dry-run", action="store_true", help="list the cells and their status only")


def cells_from_args(args: argparse.Namespace) -> tuple[str, list[Cell]]:
    """(experiment name, its cells) from add_grid_arguments' options; raises ExperimentError,
    or ConfigError on bad input."""

    def csv_list(s):
        return [x.strip() for x in s.split(",") if x.strip()] if s else None

    name, spec = load_experiment(args.experiment)
    try:
        seeds = [int(s) for s in csv_list(args.seeds)] if args.seeds else None
    except ValueError:
        raise ExperimentError(
            f"invalid --seeds {args.seeds!r}: expected integers like 0,1,2"
        ) from None
    if args.budget is not None and args.budget < 1:
        raise ConfigError(f"invalid budget={args.budget}: must be >= 1")
    cells = expand(
        spec, args.budget, seeds, csv_list(args.envs), csv_list(args.only),
        _parse_sets(args.set),
    )  # fmt: skip
    if not cells:
        raise ExperimentError("the grid has no cells after --envs/--only")
    return name, cells
