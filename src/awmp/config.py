"""Typed configs, presets and validation.

Every field's docstring is what `awmp train --help` shows. Presets are functions that return a
fully resolved `TrainConfig`; the CLI parses `--algo`/`--preset` first, builds the preset and then
lets every other flag override it, so `--help` shows the preset's values as defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from awmp.algos.registry import ALGORITHMS
from awmp.errors import ConfigError, require
from awmp.strict import StrictFields, check_types, did_you_mean, make_strict

ALGOS = tuple(ALGORITHMS)  # the registered algorithms, awmp.algos.registry

MAX_TOTAL_STEPS = 10**13  # beyond any machine's reach: a typo (e.g. 1e15), not a budget
PRESETS = ("paper", "reference-code")
TRACKERS = ("none", "wandb")  # --track: besides the CSV and TensorBoard logs


@dataclass
class RunConfig(StrictFields):
    """One training run: environment, algorithm, budget, evaluation and output (TrainConfig
    adds one config section per registered algorithm)."""

    algo: str = "sac"
    """Algorithm to train."""
    env: str = "Pendulum-v1"
    """Gymnasium environment id with a bounded Box action space (e.g. Hopper-v5)."""
    seed: int = 0
    """Random seed of the agent, the training env and (offset) the evaluation env."""
    env_kwargs: Annotated[tuple[str, ...], tyro.conf.arg(metavar="KEY=VALUE...")] = ()
    """Keyword arguments of gymnasium.make, as KEY=VALUE (VALUE a TOML value, else a string),
    e.g. --env-kwargs ctrl_cost_weight=0.05 terminate_when_unhealthy=false."""
    seeds: tuple[int, ...] = ()
    """Train these seeds together in one process, e.g. --seeds 0,1,2,3,4 (then `seed` is unused):
    one agent, env, buffer and generator per seed, exactly as `--seed s` alone, with one vmapped
    update per step; one run directory per seed, <run-dir>/seed<s> or (no --run-dir)
    `runs/<env>/<algo>/seed<s>-<timestamp>`. Pays on a GPU; on CPUs one pinned process per core
    (awmp sweep, awmp experiment) finishes more runs per hour: on 2 cores 1.48x one process,
    2 vmapped seeds 1.07x (docs/guide.md, "Many seeds")."""
    total_steps: int = 1_000_000
    """Environment steps to train for."""
    preset: Literal["paper", "reference-code"] = "paper"
    """Hyperparameter preset the other flags override (paper = Tables 2-3)."""
    warmup_steps: int = 10_000
    """Uniform random actions before learning starts (the reference code's start_timesteps)."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (paper Table 2: 1e6)."""
    updates_per_step: int = 1
    """Gradient steps per environment step after warm-up (paper Table 2: 1)."""
    eval_interval: int = 5000
    """Environment steps between deterministic evaluations (the paper: 1000); 0: none."""
    eval_episodes: int = 10
    """Episodes per evaluation (paper: 10)."""
    log_interval: int = 1000
    """Environment steps between rows of train.csv losses and diagnostics."""
    run_dir: str | None = None
    """Run directory; default `runs/<env>/<algo>/seed<seed>-<timestamp>`. Never overwritten."""
    progress: bool = True
    """Show progress: a live bar on a terminal, else (nohup, Slurm, CI) a plain line on stderr
    every log_interval steps (step, steps/s, elapsed, ETA, last eval, losses). Off: silent."""
    checkpoint_interval: int = 0
    """Environment steps between checkpoints; 0 = auto: 5% of total_steps (guide: "Long runs")."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep (>= 1)."""
    resume: str | None = None
    """Continue this run directory from its newest checkpoint; other flags must match its config."""
    track: Literal["none", "wandb"] = "none"
    """Also log every train.csv and eval.csv row to Weights & Biases (`pip install -e
    '.[track]'`): one W&B run per run directory, named after it, its files in <run-dir>/wandb;
    WANDB_MODE=offline logs without an account (docs/guide.md, "Tracking")."""
    wandb_project: str = "awmp"
    """W&B project of --track wandb runs."""
    wandb_entity: str | None = None
    """W&B entity (user or team) of --track wandb runs; None: the account's default entity."""
    wandb_group: str | None = None
    """W&B group of --track wandb runs (e.g. one name for all seeds of an experiment); None:
    no group."""

    def algo_config(self):
        """The hyperparameter section of the selected algorithm."""
        return getattr(self, ALGORITHMS[self.algo].section)


def _train_config() -> type:
    """RunConfig plus one field per registered algorithm, named by its section (`cfg.sac`,
    `cfg.awmp`, ...; the CLI's --<section>.* flags), and `algo` restricted to their names."""
    fields: list = [("algo", Literal[ALGOS], field(default=ALGOS[0]))]  # type: ignore[valid-type]
    for a in ALGORITHMS.values():
        make_strict(a.config)  # a section that does not derive from StrictFields is made strict
        help_text = f"{a.label} hyperparameters (used when algo = {a.name})."
        typ = Annotated[a.config, tyro.conf.arg(help=help_text)]
        fields.append((a.section, typ, field(default_factory=a.config)))
    cls = dataclasses.make_dataclass("TrainConfig", fields, bases=(RunConfig,))
    cls.__module__, cls.__qualname__ = __name__, "TrainConfig"
    cls.__doc__ = RunConfig.__doc__
    return cls


TrainConfig = _train_config()


def preset(name: str = "paper") -> TrainConfig:
    """A fully resolved config for a named preset.

    `paper`: every algorithm's config defaults: Table 2 (SAC) and Table 3 (SAC-AWMP) of the
    paper, ALGORITHM.md "Presets"; TD3 with the hyperparameters of the TD3 paper (Fujimoto et
    al. 2018, Section 6.1). Another preset changes the sections of the algorithms that list it
    (`Algorithm.presets`): `reference-code`, the authors' reference code's choices for SAC-AWMP
    (ALGORITHM.md "Presets"), for ablations; the others are the same as `paper` under it.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; supported: {', '.join(PRESETS)}")
    cfg = TrainConfig(preset=name)  # type: ignore[arg-type]
    for a in ALGORITHMS.values():
        if name in a.presets:  # e.g. awmp.algos.sac_awmp.reference_code_preset
            setattr(cfg, a.section, a.presets[name](getattr(cfg, a.section)))
    return cfg


_check = require


def _check_finite(name: str, value: float) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value), name, value, "a finite number")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise ConfigError naming the first invalid field, its value and the allowed range: its
    type first (awmp.strict.check_types; an int is a float, a bool neither), then its value."""
    check_types(cfg)
    _check(cfg.algo in ALGOS, "algo", cfg.algo, f"one of {', '.join(ALGOS)}")
    _check(cfg.preset in PRESETS, "preset", cfg.preset, f"one of {', '.join(PRESETS)}")
    _check(isinstance(cfg.env, str) and cfg.env != "", "env", cfg.env, "a Gymnasium env id")
    _check(0 <= cfg.seed < 2**31, "seed", cfg.seed, "an integer in [0, 2^31)")
    _check(
        all(isinstance(s, int) and 0 <= s < 2**31 for s in cfg.seeds)
        and len(set(cfg.seeds)) == len(cfg.seeds),
        "seeds",
        tuple(cfg.seeds),
        "distinct integers in [0, 2^31)",
    )
    _check(
        1 <= cfg.total_steps <= MAX_TOTAL_STEPS, "total_steps", cfg.total_steps,
        f">= 1 and <= {MAX_TOTAL_STEPS:.0e} (about 3 years at 100,000 steps/s)",
    )  # fmt: skip
    env_kwargs(cfg)  # KEY=VALUE entries, or ConfigError
    _check(cfg.warmup_steps >= 0, "warmup_steps", cfg.warmup_steps, ">= 0")
    _check(cfg.buffer_size >= 1, "buffer_size", cfg.buffer_size, ">= 1")
    _check(cfg.updates_per_step >= 1, "updates_per_step", cfg.updates_per_step, ">= 1")
    _check(cfg.eval_interval >= 0, "eval_interval", cfg.eval_interval, ">= 0 (0: no evaluation)")
    _check(cfg.eval_episodes >= 1, "eval_episodes", cfg.eval_episodes, ">= 1")
    _check(cfg.log_interval >= 1, "log_interval", cfg.log_interval, ">= 1")
    _check(cfg.checkpoint_interval >= 0, "checkpoint_interval", cfg.checkpoint_interval, ">= 0")
    _check(cfg.keep_checkpoints >= 1, "keep_checkpoints", cfg.keep_checkpoints, ">= 1")
    _check(cfg.track in TRACKERS, "track", cfg.track, f"one of {', '.join(TRACKERS)}")
    _check(
        isinstance(cfg.wandb_project, str) and cfg.wandb_project.strip() != "",
        "wandb_project", cfg.wandb_project, "a W&B project name",
    )  # fmt: skip
    algorithm = ALGORITHMS[cfg.algo]
    a, prefix = cfg.algo_config(), algorithm.section
    # The checks every section with these fields gets; the algorithm's own (`check`) follow.
    if hasattr(a, "gamma"):
        _check(0 < a.gamma <= 1, f"{prefix}.gamma", a.gamma, "in (0, 1]")
    if hasattr(a, "batch_size"):
        _check(a.batch_size >= 1, f"{prefix}.batch_size", a.batch_size, ">= 1")
        _check(
            a.batch_size <= cfg.buffer_size,
            f"{prefix}.batch_size",
            a.batch_size,
            f"<= buffer_size ({cfg.buffer_size})",
        )
    if hasattr(a, "lr"):
        _check(a.lr > 0 and math.isfinite(a.lr), f"{prefix}.lr", a.lr, "a finite number > 0")
    if hasattr(a, "hidden"):
        _check(
            len(a.hidden) >= 1 and all(h >= 1 for h in a.hidden),
            f"{prefix}.hidden",
            a.hidden,
            "one or more positive layer sizes",
        )
    algorithm.check(a, cfg)
    for f in dataclasses.fields(a):
        v = getattr(a, f.name)
        if isinstance(v, float):
            _check_finite(f"{prefix}.{f.name}", v)
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict, where: str | None = None) -> TrainConfig:
    """The config `to_dict` wrote (e.g. a run directory's config.json), or a config file's
    fields. Unknown fields raise ConfigError with a "did you mean" (dropping them would let a
    resumed or reported run silently differ from the one that was saved), and so does a value
    of the wrong type (`check_types`); `where` (a file) starts the message. JSON lists become
    tuples, and a whole float in an integer field (TOML's 1e6) an integer."""
    at = f"{where}: " if where else ""
    if not isinstance(d, dict):
        raise ConfigError(f"{at}expected a table of config fields, not {type(d).__name__}")
    d = dict(d)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    dotted = set(known)
    unknown = []  # dotted, as a file would spell them
    for k, v in d.items():
        if k not in known:
            unknown += [f"{k}.{sub}" for sub in v] if isinstance(v, dict) and v else [k]
    for a in ALGORITHMS.values():
        values = d.pop(a.section, None)
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(
                f"{at}invalid {a.section}={values!r}: must be a table of {a.label} fields"
            )
        fields = {f.name for f in dataclasses.fields(a.config)}
        dotted |= {f"{a.section}.{k}" for k in fields}
        unknown += [f"{a.section}.{k}" for k in values if k not in fields]
        section = _coerce({k: v for k, v in values.items() if k in fields}, a.config)
        d[a.section] = a.config(**section)
    if unknown:
        hints = ", ".join(n + did_you_mean(n, dotted) for n in sorted(unknown))
        many = "s" if len(unknown) > 1 else ""
        raise ConfigError(f"{at}unknown config field{many} {hints}")
    cfg = TrainConfig(**_coerce(d, TrainConfig))
    try:
        check_types(cfg)
    except ConfigError as e:
        raise ConfigError(f"{at}{e}") from None
    return cfg


def _coerce(values: dict, cls: type) -> dict:
    """`values` with JSON lists turned back into the tuples of `cls`'s tuple-valued fields and
    whole floats in its integer fields into integers."""
    ints = {f.name for f in dataclasses.fields(cls) if type(_default(f)) is int}
    out = _tuples(values, cls)
    for k, v in out.items():
        if k in ints and isinstance(v, float) and v.is_integer():
            out[k] = int(v)
    return out


def _tuples(values: dict, cls: type) -> dict:
    """`values` with JSON lists turned back into the tuples of `cls`'s tuple-valued fields."""
    tuple_fields = {f.name for f in dataclasses.fields(cls) if isinstance(_default(f), tuple)}
    return {
        k: tuple(v) if k in tuple_fields and isinstance(v, list) else v for k, v in values.items()
    }


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


# Fields that say where a run goes and how it is watched or saved, not what it computes: a
# resumed run may change them (rundir), an experiment cell ignores them (experiment), runs of
# one report group may differ in them (report).
NON_EXPERIMENT_FIELDS = (
    "run_dir",
    "resume",
    "progress",
    "checkpoint_interval",
    "keep_checkpoints",
    "track",
    "wandb_project",
    "wandb_entity",
    "wandb_group",
)
# Of those, the ones that say where: a run's config.json used as a config file must not send
# the new run into the old run's directory.
PLACE_FIELDS = ("run_dir", "resume")


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config dict (or TOML table) as {"section.field": value}, lists as tuples (the
    config's own type for sequences, and hashable)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def config_diff(a: dict, b: dict, ignore: tuple[str, ...] = NON_EXPERIMENT_FIELDS) -> list[str]:
    """Dotted fields set differently in two config dicts (nested or flat), sorted. A field one
    of them lacks (written by another awmp version) is no difference; `ignore` never is."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in fa.keys() & fb.keys() if k not in ignore and fa[k] != fb[k])


def load_config_file(path: str) -> dict:
    """The fields of a config file: TOML (top-level fields, `[sac]`/`[awmp]`/`[td3]` tables or
    dotted keys such as `"sac.hidden"`) or JSON, including a run directory's config.json
    (`{"config": {...}}`, as RL Zoo's hyperparameter files). `run_dir` and `resume` are
    dropped. Raises ConfigError for a missing or unreadable file."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no config file {path!r}")
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix == ".json" else "TOML"
        raise ConfigError(f"{path}: not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of config fields")
    if isinstance(data.get("config"), dict):  # a run directory's config.json
        data = data["config"]
    nested: dict = {}
    for key, value in data.items():
        if "." in key or isinstance(value, dict):
            section, _, field_name = key.partition(".")
            table = nested.setdefault(section, {})
            if not isinstance(table, dict):  # `sac = 3` and `"sac.hidden" = ...`
                raise ConfigError(f"{path}: invalid {section}={table!r}: must be a table")
            table.update({field_name: value} if field_name else value)
        elif key not in PLACE_FIELDS:
            if isinstance(nested.get(key), dict):
                raise ConfigError(f"{path}: invalid {key}={value!r}: must be a table")
            nested[key] = value
    return nested


def with_fields(cfg: TrainConfig, fields: dict, where: str = "config file") -> TrainConfig:
    """`cfg` with `fields` (nested as `load_config_file` returns them) set; unknown fields raise
    ConfigError naming them (`from_dict`'s rule)."""
    d = to_dict(cfg)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return from_dict(d, where)


def env_kwargs(cfg: TrainConfig) -> dict:
    """`cfg.env_kwargs` (KEY=VALUE strings) as gymnasium.make's keyword arguments; a VALUE that
    is a TOML value (0.05, false, "x", [1, 2]) is that value, anything else the plain string."""
    out = {}
    for item in cfg.env_kwargs:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid env_kwargs entry {item!r}: must be KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out
