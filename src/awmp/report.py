"""`awmp report RUNS_DIR... --out report/`: tables and figures from run directories only.

Reads config.json, eval.csv and summary.json of every run directory under the given paths
(it never trains or evaluates anything), groups runs by (env, algo, variant, budget), where the
variant lists the algorithm hyperparameters that differ from the run's preset (e.g.
`num_components=8`), and writes into --out:

- `report.md`: final and best evaluation returns per group (mean ± std over seeds and the
  interquartile mean with a 95% percentile-bootstrap CI), published reference figures where task
  and budget match, and every incomplete or unreadable run with the reason;
- `results.csv`: the same numbers, one row per group;
- `curves_<env>_<budget>.png`: learning curves of the default variants (and other presets),
  mean ± half a standard deviation over seeds (the paper's Fig. 3 style), with published
  reference lines; `curves_all.png`: every task side by side;
- `ablation_<field>_<env>_<budget>.png`: SAC-AWMP runs that differ from the default only in
  `num_components` (Fig. 4) or `tau_q` (Fig. 5);
- `variants_<algo>_<env>_<budget>.png`: every other non-default variant (other network sizes,
  zeta, the gating and importance-weight switches, several fields at once) beside the default.

The IQM is `scipy.stats.trim_mean(x, 0.25)` (the mean of the runs left after cutting floor(n/4)
from each end, as rliable's `iqm`) and the intervals are `scipy.stats.bootstrap`'s percentile
intervals (rliable 1.2.0 fails to import next to pandas 3, so it is not used).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from awmp.config import NON_EXPERIMENT_FIELDS
from awmp.errors import UserError
from awmp.plots import (
    curve_styles,
    draw_curve,
    finish_panels,
    mean_curve,
    pyplot,
    task_panels,
)

# The statistics live in awmp.stats; their names stay importable from here.
from awmp.stats import (  # noqa: F401
    STATISTICS,
    bootstrap_ci,
    bootstrap_diff_ci,
    iqm,
    paired_bootstrap_ci,
    permutation_p,
    sample_std,
    sign_flip_p,
)

RUN_FILES = ("config.json", "eval.csv", "summary.json")
ABLATIONS = ("num_components", "tau_q")  # paper Fig. 4 and Fig. 5
# Loop fields that may differ within a group (the rest, e.g. warmup_steps, must not: flagged).
SETUP_IGNORED = (
    *NON_EXPERIMENT_FIELDS, "seed", "log_interval", "algo", "env", "total_steps", "preset",
)  # fmt: skip
ABLATION_TITLES = {"num_components": "O (Fig. 4)", "tau_q": "τ_Q (Fig. 5)"}


class ReportError(UserError):
    """Nothing to report (no run directories under the given paths)."""


# --------------------------------------------------------------------------- reading runs


@dataclasses.dataclass
class Run:
    path: Path
    env: str
    algo: str
    seed: int
    budget: int  # total_steps configured
    variant: str  # "" for the preset's defaults, else "field=value, ..."
    variant_fields: dict
    steps: np.ndarray  # evaluation steps
    returns: np.ndarray  # evaluation return means
    complete: bool
    problem: str  # why the run is incomplete ("" when complete)
    setup: dict = dataclasses.field(default_factory=dict)  # the loop's own config fields

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    @property
    def best(self) -> float:
        return float(np.max(self.returns))


@dataclasses.dataclass
class Unreadable:
    path: Path
    problem: str


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Every directory under `paths` that holds at least one of the run files."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise ReportError(f"{p} does not exist")
        if any((p / f).is_file() for f in RUN_FILES):
            found.add(p)
        for f in RUN_FILES:
            found.update(q.parent for q in p.rglob(f))
    return sorted(found)


def _read_eval(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, return means) of eval.csv's rows; rows that do not parse (a half-written last
    line of a run still in progress) or hold a non-finite return are left out. RunFileError for
    a file that cannot be read as CSV text at all."""
    from awmp.runfiles import RunFileError

    steps, rets = [], []
    try:
        text = path.read_bytes().decode("utf-8")
        rows = list(csv.DictReader(text.splitlines()))
    except UnicodeDecodeError:
        raise RunFileError(path.parent, "eval.csv is damaged (not UTF-8 text)") from None
    except (OSError, csv.Error) as e:
        raise RunFileError(path.parent, f"eval.csv cannot be read ({e})") from None
    for row in rows:
        try:
            step, ret = int(float(row["step"])), float(row["return_mean"])
        except (KeyError, TypeError, ValueError, OverflowError):
            continue  # a half-written last line of a run still in progress
        if math.isfinite(ret):  # else damage, or a diverged run's last row (it stopped there)
            steps.append(step)
            rets.append(ret)
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps, np.int64)[order], np.asarray(rets, np.float64)[order]


def _normalise(v):
    return tuple(_normalise(x) for x in v) if isinstance(v, (list, tuple)) else v


def variant_of(config: dict) -> dict:
    """Algorithm hyperparameters (and the preset) that differ from the run's preset defaults."""
    from awmp.algos.registry import SECTIONS
    from awmp.config import preset, to_dict

    name = config.get("preset", "paper")
    try:
        default = to_dict(preset(name))
    except ValueError:
        return {"preset": name}
    section = SECTIONS.get(config.get("algo", ""), "")
    diff = {} if name == "paper" else {"preset": name}
    ours, theirs = config.get(section, {}), default.get(section, {})
    for key in sorted(ours):
        if key in theirs and _normalise(ours[key]) != _normalise(theirs[key]):
            diff[key] = _normalise(ours[key])
    return diff


def _format_variant(diff: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in diff.items())


def _check_config_values(config: dict, path: Path) -> None:
    """RunFileError when a field of config.json holds a value of the wrong type or range (a
    field this awmp does not know, from another version, is no error here)."""
    from awmp.config import ConfigError, from_dict
    from awmp.runfiles import RunFileError

    try:
        from_dict(config)
    except ConfigError as e:
        if not str(e).startswith("unknown config field"):
            raise RunFileError(path, f"config.json: {e}") from None


def read_run(path: Path) -> Run | Unreadable:
    """One run directory, with its completeness judged from summary.json and eval.csv; an
    Unreadable naming what is wrong when config.json or eval.csv is missing or damaged."""
    from awmp.algos.registry import SECTIONS
    from awmp.runfiles import RunFileError, read_json

    cfg_path, eval_path, summary_path = (path / f for f in RUN_FILES)
    if not cfg_path.is_file():
        return Unreadable(path, "no config.json")
    try:  # a damaged file is named, and the run skipped (awmp.runfiles)
        config = read_json(cfg_path, path).get("config")
        if not isinstance(config, dict):
            raise RunFileError(path, "config.json is of the wrong format (no config table)")
        env, algo, seed = config["env"], config["algo"], int(config["seed"])
        budget = int(config["total_steps"])
        if not (isinstance(env, str) and isinstance(algo, str)):
            raise TypeError(f"env {env!r} and algo {algo!r} must be strings")
        if any(not isinstance(config.get(s, {}), dict) for s in SECTIONS.values()):
            raise TypeError("an algorithm section is not a table")
        _check_config_values(config, path)
        steps, rets = (
            _read_eval(eval_path) if eval_path.is_file() else (np.zeros(0, int), np.zeros(0))
        )
    except RunFileError as e:
        return Unreadable(path, e.problem)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        return Unreadable(path, f"config.json is of the wrong format ({type(e).__name__}: {e})")
    if steps.size == 0:
        return Unreadable(path, f"{env} {algo} seed {seed}: no evaluation in eval.csv")
    last = int(steps[-1])
    problem = stopped = ""
    if not summary_path.is_file():
        problem = f"no summary.json (running or crashed); last evaluation at step {last}"
    else:
        try:
            summary = read_json(summary_path, path)
            done = int(summary.get("steps_done", 0))
        except RunFileError as e:
            summary, done = {}, 0
            problem = f"{e.problem}; last evaluation at step {last}"
        except (ValueError, TypeError, OverflowError) as e:
            summary, done = {}, 0
            problem = f"summary.json is of the wrong format ({type(e).__name__}: {e})"
        if not problem and summary.get("stopped_by") == "callback" and done < budget:
            stopped = f"stopped by a callback at step {done} of {budget}"  # deliberate, not partial
        elif not problem and (done < budget or summary.get("interrupted")):
            problem = f"stopped at step {done}"
    if not problem and not stopped and last < budget:
        problem = f"last evaluation in eval.csv at step {last}"
    if problem:
        problem = f"partial: {problem} of {budget}"
    problem = problem or stopped
    diff = variant_of(config)
    return Run(
        path=path,
        env=env,
        algo=algo,
        seed=seed,
        budget=budget,
        variant=_format_variant(diff),
        variant_fields=diff,
        steps=steps,
        returns=rets,
        complete=not problem,
        problem=problem,
        setup={
            k: _normalise(v)
            for k, v in config.items()
            if not isinstance(v, dict) and k not in SETUP_IGNORED
        },
    )


# --------------------------------------------------------------------------- grouping


GroupKey = tuple[str, str, str, int]  # env, algo, variant, budget


def finished_runs(paths: list[str | Path]) -> list[Run]:
    """The runs at `paths`, in order, every one finished; otherwise a ReportError naming each
    that is not and why (for scripts that compare hand-picked runs)."""
    runs = [read_run(Path(p)) for p in paths]
    bad = [f"{r.path} ({r.problem})" for r in runs if isinstance(r, Unreadable) or not r.complete]
    if bad:
        raise ReportError(f"not finished: {'; '.join(bad)}")
    return runs  # type: ignore[return-value]


def group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    groups: dict[GroupKey, list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.algo, r.variant, r.budget)].append(r)
    for g in groups.values():
        g.sort(key=lambda r: (r.seed, str(r.path)))
    return dict(sorted(groups.items()))


curve = mean_curve  # the curves of a group: awmp.plots.mean_curve
_plt, _draw_curve = pyplot, draw_curve


@dataclasses.dataclass
class GroupStats:
    key: GroupKey
    seeds: list[int]
    incomplete: int
    final_mean: float
    final_std: float
    final_iqm: float
    final_ci: tuple[float, float]
    best_mean: float
    best_std: float
    best_iqm: float
    best_ci: tuple[float, float]


def group_stats(key: GroupKey, runs: list[Run]) -> GroupStats:
    """Statistics over the complete runs of a group (NaN when none is complete)."""
    done = [r for r in runs if r.complete]
    nan = float("nan")
    if not done:
        return GroupStats(key, [], len(runs), nan, nan, nan, (nan, nan), nan, nan, nan, (nan, nan))
    final = np.array([r.final for r in done])
    best = np.array([r.best for r in done])
    return GroupStats(
        key=key,
        seeds=[r.seed for r in done],
        incomplete=len(runs) - len(done),
        final_mean=float(np.mean(final)),
        final_std=sample_std(final),
        final_iqm=iqm(final),
        final_ci=bootstrap_ci(final),
        best_mean=float(np.mean(best)),
        best_std=sample_std(best),
        best_iqm=iqm(best),
        best_ci=bootstrap_ci(best),
    )


# --------------------------------------------------------------------------- references


def task_name(env_id: str) -> str:
    """'Hopper-v5' -> 'Hopper' (the reference table's task column)."""
    base = env_id.split("/")[-1]
    return base.rsplit("-v", 1)[0]


def load_references() -> list[dict]:
    """Published returns shipped with the package (data/published_returns.csv, with sources)."""
    text = resources.files("awmp").joinpath("data/published_returns.csv").read_text()
    rows = []
    for row in csv.DictReader(text.splitlines()):
        row["steps"] = int(row["steps"])
        row["return_mean"] = float(row["return_mean"])
        row["return_std"] = float(row["return_std"])
        rows.append(row)
    return rows


def matching_references(refs: list[dict], env_id: str, budget: int) -> list[dict]:
    return [r for r in refs if r["env"] == task_name(env_id) and r["steps"] == budget]


# --------------------------------------------------------------------------- figures


def _finish(ax, fig, title: str, out: Path) -> None:
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (mean ± ½ std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")  # legends never cut off
    _plt().close(fig)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def _task_axes(ax, items, refs, env: str, budget: int, styles: dict) -> None:
    for label, runs in items:
        _draw_curve(ax, runs, label, **styles[label])
    for ref in matching_references(refs, env, budget):
        ax.axhline(ref["return_mean"], ls="--", lw=0.8, color="gray")
        ax.annotate(
            f"{ref['algo']} {ref['env']}-{ref['env_version']}: {ref['source']}",
            (0, ref["return_mean"]),
            xycoords=("axes fraction", "data"),
            fontsize=6,
            color="gray",
            va="bottom",
        )


def plot_learning_curves(groups, refs, out: Path) -> list[Path]:
    """One figure per (env, budget) with every algorithm's default variant (and presets other
    than `paper`), and with two or more tasks also all of them side by side (Fig. 3 layout)."""
    plt = _plt()
    by_task: dict[tuple[str, int], list] = defaultdict(list)
    for (env, algo, variant, budget), runs in groups.items():
        if set(runs[0].variant_fields) <= {"preset"}:
            by_task[(env, budget)].append((f"{algo} ({variant})" if variant else algo, runs))
    keys = {label: (r[0].algo, r[0].variant) for items in by_task.values() for label, r in items}
    styles = curve_styles(list(keys.values()))  # one colour per algorithm
    colors = {label: styles[key] for label, key in keys.items()}
    written = []
    for (env, budget), items in sorted(by_task.items()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        _task_axes(ax, items, refs, env, budget, colors)
        path = out / f"curves_{_slug(env)}_{budget}.png"
        _finish(ax, fig, f"{env}, {budget:,} steps", path)
        written.append(path)
    if len(by_task) >= 2:
        fig, axes = task_panels(len(by_task))
        for ax, ((env, budget), items) in zip(axes.flat, sorted(by_task.items())):
            _task_axes(ax, items, refs, env, budget, colors)
            ax.set_title(f"{env}, {budget:,} steps")
        path = out / "curves_all.png"
        finish_panels(fig, axes, len(by_task), path, "return (mean ± ½ std)")
        written.append(path)
    return written


def plot_ablations(groups, out: Path) -> list[Path]:
    """Fig. 4 (O) and Fig. 5 (tau_Q) style: SAC-AWMP variants differing in one field only."""
    from awmp.algos.registry import SECTIONS
    from awmp.config import preset, to_dict

    plt = _plt()
    written = []
    defaults = to_dict(preset("paper"))[SECTIONS["sac-awmp"]]
    for field in ABLATIONS:
        by_task: dict[tuple[str, int], list] = defaultdict(list)
        for (env, algo, _variant, budget), runs in groups.items():
            fields = runs[0].variant_fields
            if algo != "sac-awmp" or set(fields) - {field}:
                continue
            value = fields.get(field, defaults[field])
            by_task[(env, budget)].append((value, field in fields, runs))
        for (env, budget), items in sorted(by_task.items()):
            if not any(is_variant for _, is_variant, _ in items):
                continue  # only the default: no ablation ran for this task
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            keys = {v: ("sac-awmp", f"{v}" if is_variant else "") for v, is_variant, _ in items}
            styles = curve_styles(list(keys.values()))  # the default in SAC-AWMP's colour
            for value, _, runs in sorted(items, key=lambda t: t[0]):
                _draw_curve(ax, runs, f"{field}={value}", **styles[keys[value]])
            path = out / f"ablation_{field}_{_slug(env)}_{budget}.png"
            _finish(ax, fig, f"SAC-AWMP on {env}: {ABLATION_TITLES[field]}", path)
            written.append(path)
    return written


def plot_variants(groups, out: Path) -> list[Path]:
    """Every other non-default variant (e.g. other network sizes, zeta, the gating switches):
    one figure per (env, algo, budget) with the default and each variant, so no group is left
    without a curve (`variants_<algo>_<env>_<budget>.png`)."""
    drawn_elsewhere = {"preset", *ABLATIONS}
    by_cell: dict[tuple[str, str, int], list] = defaultdict(list)
    for (env, algo, variant, budget), runs in groups.items():
        by_cell[(env, algo, budget)].append((variant, runs))
    written = []
    for (env, algo, budget), items in sorted(by_cell.items()):
        others = [
            (v, r) for v, r in items
            if v and not (set(r[0].variant_fields) <= drawn_elsewhere
                          and len(r[0].variant_fields) == 1)
        ]  # fmt: skip
        if not others:
            continue
        default = [(v, r) for v, r in items if not v]
        fig, ax = _plt().subplots(figsize=(6.4, 4.2))
        styles = curve_styles([(algo, v) for v, _ in default + others])
        for variant, runs in default + sorted(others, key=lambda t: t[0]):
            _draw_curve(ax, runs, variant or "default", **styles[(algo, variant)])
        path = out / f"variants_{_slug(algo)}_{_slug(env)}_{budget}.png"
        _finish(ax, fig, f"{algo} on {env}: variants", path)
        written.append(path)
    return written


# --------------------------------------------------------------------------- tables


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def _iqm_text(value: float, ci: tuple[float, float]) -> str:
    return "–" if math.isnan(value) else f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def seed_notes(groups: dict[GroupKey, list[Run]]) -> list[str]:
    """Seeds a group lacks that other groups of its task and budget have (a missing run),
    seeds that appear twice in a group (both enter its statistics), and loop settings (e.g.
    warmup_steps, eval_episodes) that differ between the runs of a group."""
    seeds_by_task: dict[tuple[str, int], set[int]] = defaultdict(set)
    for (env, _, _, budget), runs in groups.items():
        seeds_by_task[(env, budget)].update(r.seed for r in runs)
    notes = []
    for key, runs in groups.items():
        env, algo, variant, budget = key
        name = f"{env} {algo} {variant or 'default'} ({budget:,} steps)"
        seeds = [r.seed for r in runs]
        missing = sorted(seeds_by_task[(env, budget)] - set(seeds))
        if missing:
            notes.append(f"{name}: missing seeds {', '.join(map(str, missing))} (no run directory)")
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            notes.append(f"{name}: seeds {', '.join(map(str, dup))} appear more than once")
        # A field some runs lack (written by an older awmp) is no difference (config_diff's rule).
        for field in sorted(set.intersection(*(set(r.setup) for r in runs))):
            values = {repr(r.setup[field]) for r in runs}
            if len(values) > 1:
                notes.append(f"{name}: runs differ in {field} ({', '.join(sorted(values))})")
    return notes


def comparisons(stats: list[GroupStats], groups: dict[GroupKey, list[Run]]) -> list[dict]:
    """Each group against its baseline of the same task and budget: every other algorithm's
    default against SAC's default, and every non-default variant (e.g. SAC-AWMP with O = 2)
    against its algorithm's default. Final returns of complete runs; mean and IQM differences
    with 95% bootstrap CIs and the exact permutation p (unpaired), and the same difference
    paired by seed over the seeds both groups ran once (`paired_by_seed`)."""
    finals = {key: np.array([r.final for r in runs if r.complete]) for key, runs in groups.items()}
    rows = []
    for s in stats:
        env, algo, variant, budget = s.key
        if algo != "sac" and variant == "":
            base = (env, "sac", "", budget)
        elif variant:
            base = (env, algo, "", budget)
        else:
            continue
        a, b = finals[s.key], finals.get(base, np.array([]))
        if a.size == 0 or b.size == 0:
            continue
        rows.append({
            "env": env, "budget": budget, "a": (algo, variant or "default"),
            "b": (base[1], base[2] or "default"), "n_a": a.size, "n_b": b.size,
            "mean": _diff_ci(a, b, "mean"), "iqm": _diff_ci(a, b, "iqm"),
            "p": permutation_p(a, b),
            **paired_by_seed(groups[s.key], groups[base]),
        })  # fmt: skip
    return rows


def paired_by_seed(a_runs: list[Run], b_runs: list[Run]) -> dict:
    """The difference A - B paired by seed: over the seeds with exactly one complete run in
    each group, the mean of the per-seed differences of final returns with its 95% bootstrap
    CI over seeds (`paired_bootstrap_ci`) and the exact sign-flip p (`sign_flip_p`). Runs of
    one seed share their initialisation and environment seeds, so pairing removes the part of
    the seed-to-seed spread the two groups share. NaN CI and p with fewer than 2 pairs."""

    def once(runs: list[Run]) -> dict[int, float]:
        seeds = [r.seed for r in runs if r.complete]
        return {r.seed: r.final for r in runs if r.complete and seeds.count(r.seed) == 1}

    fa, fb = once(a_runs), once(b_runs)
    seeds = sorted(set(fa) & set(fb))
    d = np.array([fa[s] - fb[s] for s in seeds])
    if d.size < 2:
        point = float(d[0]) if d.size else math.nan
        return {"pair_seeds": seeds, "paired": (point, math.nan, math.nan), "p_paired": math.nan}
    return {"pair_seeds": seeds, "paired": paired_bootstrap_ci(d), "p_paired": sign_flip_p(d)}


def _diff_ci(a: np.ndarray, b: np.ndarray, statistic: str) -> tuple[float, float, float]:
    """bootstrap_diff_ci, but no interval (NaN ends) when a group has a single run: resampling
    one run never varies it, so the interval would cover only the other group's spread and read
    as if it separated the groups."""
    if min(a.size, b.size) < 2:
        f = STATISTICS[statistic]
        return float(f(a) - f(b)), math.nan, math.nan
    return bootstrap_diff_ci(a, b, statistic)


def _diff_text(d: tuple[float, float, float], no_ci: str = "a group has 1 run") -> str:
    if math.isnan(d[0]):  # nothing to compare (no seed in common)
        return "–"
    if math.isnan(d[1]):
        return f"{d[0]:+.1f} [no CI: {no_ci}]"
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def _p_text(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3f}"


def _seeds_text(seeds: list[int]) -> str:
    return ",".join(map(str, seeds)) or "none"


def write_markdown(stats, groups, refs, unreadable, figures, out: Path, extra=()) -> Path:
    lines = [
        "# awmp report",
        "",
        "Evaluation returns of deterministic policies, read from run directories. *Final*: the",
        "last evaluation of each run; *best*: its highest evaluation. Mean ± std over seeds",
        "(sample std, n − 1, here and in every figure's band; – with one run), and the",
        "interquartile mean (IQM) with a 95% percentile-bootstrap CI",
        "over seeds (20,000 resamples). Only complete runs enter the statistics; incomplete",
        "runs are counted in the *incomplete* column and listed below.",
        "",
        "| env | algo | variant | budget | seeds | incomplete | final mean ± std "
        "| final IQM [95% CI] | best mean ± std | best IQM [95% CI] |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in stats:
        env, algo, variant, budget = s.key
        seeds = ",".join(map(str, s.seeds)) or "–"
        lines.append(
            f"| {env} | {algo} | {variant or 'default'} | {budget:,} | {seeds} | {s.incomplete} "
            f"| {_pm(s.final_mean, s.final_std)} | {_iqm_text(s.final_iqm, s.final_ci)} "
            f"| {_pm(s.best_mean, s.best_std)} | {_iqm_text(s.best_iqm, s.best_ci)} |"
        )
    diffs = comparisons(stats, groups)
    lines += ["", "## Differences (A − B, final returns)", ""]
    if diffs:
        lines += [
            "Unpaired: the runs of each group are resampled independently (20,000 bootstrap",
            "resamples, 95% percentile intervals). An interval that excludes 0 separates the two",
            "groups at this budget; one that includes 0 does not. With few seeds per group the",
            "percentile bootstrap is optimistic (it resamples only a handful of values), so the",
            "last column adds the two-sided p of an exact permutation test of the difference of",
            "means (every relabelling of the pooled runs; random ones past 200,000): with 3",
            "runs per group its smallest possible value is 0.1, with 5 per group 0.008.",
            "*Paired*: the same difference of means over the seeds both groups ran (each run of",
            "a seed shares its initialisation and environment seeds), as the mean of the",
            "per-seed differences with a 95% bootstrap CI over those seeds and the exact",
            "sign-flip p (with 3 seeds its smallest possible value is 0.25, with 5 seeds 0.0625).",
            "",
            "| env | budget | A | B | runs A, B | Δ mean [95% CI] | Δ IQM [95% CI] "
            "| permutation p (two-sided) | paired seeds | paired Δ mean [95% CI] "
            "| sign-flip p (two-sided) |",
            "|---|---:|---|---|---|---:|---:|---:|---|---:|---:|",
        ]
        for d in diffs:
            lines.append(
                f"| {d['env']} | {d['budget']:,} | {' '.join(d['a'])} | {' '.join(d['b'])} "
                f"| {d['n_a']}, {d['n_b']} | {_diff_text(d['mean'])} | {_diff_text(d['iqm'])} "
                f"| {_p_text(d['p'])} | {_seeds_text(d['pair_seeds'])} "
                f"| {_diff_text(d['paired'], '1 pair')} | {_p_text(d['p_paired'])} |"
            )
    else:
        lines.append("No group has a baseline (SAC, or SAC-AWMP's default) of its task and budget.")
    lines += list(extra)  # a study's planned family (awmp.study), when asked for
    tasks = sorted({(k[0], k[3]) for k in groups})
    ref_lines = []
    for env, budget in tasks:
        for r in matching_references(refs, env, budget):
            ref_lines.append(
                f"| {env} | {r['algo']} | {r['env']}-{r['env_version']} | {r['steps']:,} "
                f"| {r['return_mean']:.1f} ± {r['return_std']:.1f} | {r['seeds']} "
                f"| {r['measure']} | {r['source']} |"
            )
    lines += ["", "## Published reference figures (same task and budget)", ""]
    if ref_lines:
        lines += [
            "Other versions of the tasks and other measures: read as orientation, not as targets.",
            "",
            "| our env | algo | their env | steps | return | seeds | measure | source |",
            "|---|---|---|---:|---:|---:|---|---|",
            *ref_lines,
        ]
    else:
        lines.append("None match the tasks and budgets of these runs.")
    bad = [(r.path, r.problem) for runs in groups.values() for r in runs if not r.complete]
    bad += [(u.path, u.problem) for u in unreadable]
    lines += ["", "## Incomplete, unreadable, missing or duplicate runs", ""]
    problems = [f"- `{p}`: {why}" for p, why in sorted(bad, key=lambda t: str(t[0]))]
    problems += [f"- {note}" for note in seed_notes(groups)]
    lines += problems or ["None: every group has every seed, once, complete."]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem}]({f.name})" for f in figures]
    lines += ["", "## Run directories", ""]
    for key, runs in groups.items():
        lines.append(
            f"- {' / '.join(str(k) for k in key if k != '')}: "
            + ", ".join(f"`{r.path}`" for r in runs)
        )
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(stats, out: Path) -> Path:
    path = out / "results.csv"
    cols = [
        "env", "algo", "variant", "budget", "seeds", "incomplete", "final_mean", "final_std",
        "final_iqm", "final_iqm_lo", "final_iqm_hi", "best_mean", "best_std", "best_iqm",
        "best_iqm_lo", "best_iqm_hi",
    ]  # fmt: skip
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for s in stats:
            env, algo, variant, budget = s.key
            w.writerow([
                env, algo, variant, budget, " ".join(map(str, s.seeds)), s.incomplete,
                s.final_mean, s.final_std, s.final_iqm, *s.final_ci,
                s.best_mean, s.best_std, s.best_iqm, *s.best_ci,
            ])  # fmt: skip
    return path


# --------------------------------------------------------------------------- entry points


def make_report(
    paths: list[str | Path],
    out: str | Path,
    compare: list[str] = (),
    explore: list[str] = (),
    alternative: str = "two-sided",
    plan: str | None = None,
    family_size: int | None = None,
) -> dict:
    """Read every run under `paths` and write the report into `out`; return what was written.

    `compare` / `explore`: a study's confirmatory / exploratory comparisons, each "A - B"
    (awmp.study: a family table with Holm's correction, its figure and the runs' provenance);
    `alternative` ("two-sided" or "greater") is the confirmatory rows' test; `plan` is
    "FILE:TEXT", the plan whose commit time the runs' starts are printed beside; `family_size`
    is the number of confirmatory comparisons the plan lists (Holm's m while some are unrun)."""
    from awmp import study

    family = [study.parse_comparison(c, True) for c in compare]
    family += [study.parse_comparison(c, False) for c in explore]
    if alternative not in ("two-sided", "greater"):
        raise ReportError(f"alternative {alternative!r}: expected two-sided or greater")
    if family_size is not None and (family_size < 1 or not compare):
        raise ReportError("--family-size needs a positive N and at least one --compare")
    if plan and not family:
        raise ReportError("--plan needs at least one --compare or --explore")
    run_dirs = find_run_dirs(paths)
    if not run_dirs:
        raise ReportError(
            f"no run directories (with {', '.join(RUN_FILES)}) under {', '.join(map(str, paths))}"
        )
    read = [read_run(p) for p in run_dirs]
    runs = [r for r in read if isinstance(r, Run)]
    unreadable = [r for r in read if isinstance(r, Unreadable)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    stats = [group_stats(k, g) for k, g in groups.items()]
    refs = load_references()
    figures = (
        plot_learning_curves(groups, refs, out)
        + plot_ablations(groups, out)
        + plot_variants(groups, out)
    )
    extra, family_rows = [], []
    if family:
        extra, fig, family_rows = study.study_section(
            groups, family, alternative, plan, out, family_size
        )
        figures += [fig] if fig else []
    md = write_markdown(stats, groups, refs, unreadable, figures, out, extra)
    table = write_csv(stats, out)
    return {
        "report": str(md),
        "table": str(table),
        "figures": [str(f) for f in figures],
        "runs": len(runs),
        "family": family_rows,
        "incomplete": [str(r.path) for r in runs if not r.complete]
        + [str(u.path) for u in unreadable],
        "skipped": [{"path": str(u.path), "problem": u.problem} for u in unreadable],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="awmp report",
        description="Tables and figures from run directories (reads files only; never trains).",
    )
    p.add_argument("runs", nargs="+", help="run directories or folders that contain them")
    p.add_argument("--out", default="report", help="output folder (default report/)")
    p.add_argument(
        "--compare", action="append", default=[], metavar="'A - B'",
        help="a confirmatory comparison of a planned family, e.g. 'sac-awmp - "
        "sac-awmp[num_components=1]' (repeat; Holm-corrected together)",
    )  # fmt: skip
    p.add_argument(
        "--explore", action="append", default=[], metavar="'A - B'",
        help="an exploratory comparison (two-sided p, not corrected; repeat)",
    )  # fmt: skip
    p.add_argument(
        "--alternative", choices=("two-sided", "greater"), default="two-sided",
        help="the confirmatory rows' test: two-sided, or greater (H1: A higher)",
    )  # fmt: skip
    p.add_argument(
        "--family-size", type=int, default=None, metavar="N",
        help="how many confirmatory comparisons the plan lists (Holm's m while some are unrun)",
    )  # fmt: skip
    p.add_argument(
        "--plan",
        default=None,
        metavar="FILE:TEXT",
        help="the study's plan (TEXT in FILE); its commit time is printed beside run starts",
    )
    args = p.parse_args(argv)
    try:
        result = make_report(
            args.runs, args.out, args.compare, args.explore, args.alternative, args.plan,
            args.family_size,
        )  # fmt: skip
    except UserError as e:  # ReportError, or a comparison or plan awmp.study cannot read
        print(f"awmp: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {result['report']} ({result['runs']} runs, {len(result['figures'])} figures)")
    skipped = {u["path"] for u in result["skipped"]}
    for path in result["incomplete"]:
        if path not in skipped:
            print(f"incomplete: {path}", file=sys.stderr)
    for u in result["skipped"]:  # unreadable runs: the path and what is wrong
        print(f"skipped: {u['path']}: {u['problem']}", file=sys.stderr)
    return 0
