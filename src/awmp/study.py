"""A study's planned family of comparisons, its figure and its provenance (`awmp report --compare`).

A study names its comparisons before its runs (docs/RESULTS.md), e.g. the paper's Figure 3:

    awmp report RUNS... --compare "sac-awmp - sac-awmp[num_components=1]" \\
        --compare "sac-awmp - td3" --explore "sac-awmp - sac" --alternative greater \\
        --plan "docs/RESULTS.md:## 5. The paper's Figure 3, complete: the plan"

A group is named `ALGO` (its preset's defaults) or `ALGO[VARIANT]`, with VARIANT as `awmp
report` prints it (e.g. `num_components=1`). For every task and budget where both groups of a
comparison have finished runs, the report adds one row: the difference of mean final returns A − B
with its 95% bootstrap CI, the exact permutation p and the verdict of the CI rule (*confirmed* if
the CI lies above 0, *refuted* if below, *undecided* otherwise). The `--compare` rows are the
confirmatory family: their p is one-sided when `--alternative greater` (H1: A's mean is higher),
and Holm's step-down correction over all of them is reported beside the raw p; a confirmatory
verdict adds "holds family-wise" when its Holm-adjusted p is at most 0.05. The `--explore` rows get
the two-sided p and no correction. The family's figure (`family.png`) has one panel per task with
every group of the family, mean ± half a sample standard deviation over seeds (the paper's Fig. 3).

Provenance: for each group, the earliest run start (config.json `created`), the code commits its
runs were trained from (`git_commit`, `git_dirty`) and, with `--plan FILE:TEXT`, the commit that
first added TEXT to FILE and its time, so that "the plan was written before the runs" can be
checked from committed files.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np

from awmp.errors import UserError
from awmp.stats import bootstrap_diff_ci, permutation_p

FAMILY_LEVEL = 0.05  # family-wise level of the Holm reading


class StudyError(UserError):
    """A comparison or plan given to `awmp report` cannot be read."""


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    algo: str
    variant: str  # "" for the preset's defaults

    @property
    def label(self) -> str:
        return f"{self.algo}[{self.variant}]" if self.variant else self.algo


@dataclasses.dataclass(frozen=True)
class Comparison:
    a: GroupSpec
    b: GroupSpec
    confirmatory: bool

    @property
    def label(self) -> str:
        return f"{self.a.label} − {self.b.label}"


def parse_group(text: str) -> GroupSpec:
    """'sac-awmp' -> (sac-awmp, ''); 'sac-awmp[num_components=1]' -> (sac-awmp,
    'num_components=1'); 'ALGO[default]' is ALGO."""
    text = text.strip()
    if "[" in text:
        if not text.endswith("]") or text.count("[") != 1:
            raise StudyError(f"group {text!r}: expected ALGO or ALGO[VARIANT]")
        algo, variant = text[:-1].split("[")
        variant = variant.strip()
    else:
        algo, variant = text, ""
    if not algo.strip() or any(c.isspace() for c in algo.strip()):
        raise StudyError(f"group {text!r}: expected ALGO or ALGO[VARIANT]")
    return GroupSpec(algo.strip(), "" if variant == "default" else variant)


def parse_comparison(text: str, confirmatory: bool) -> Comparison:
    """'A - B' (spaces around the minus sign) -> Comparison(A, B)."""
    parts = text.split(" - ")
    if len(parts) != 2:
        raise StudyError(f"comparison {text!r}: expected 'A - B' (a minus sign between spaces)")
    return Comparison(parse_group(parts[0]), parse_group(parts[1]), confirmatory)


# --------------------------------------------------------------------------- statistics


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN entries stay NaN and do not
    count in the family): sorted ascending, p_(i) is multiplied by (m - i + 1), made
    non-decreasing, and clipped to 1."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def verdict(lo: float, hi: float) -> str:
    """The CI rule: confirmed (CI above 0), refuted (below 0), undecided (contains 0)."""
    if math.isnan(lo) or math.isnan(hi):
        return "no CI (a group has 1 run)"
    if lo > 0:
        return "confirmed"
    if hi < 0:
        return "refuted"
    return "undecided"


# --------------------------------------------------------------------------- the family


def _match(groups: dict, spec: GroupSpec, env: str, budget: int):
    return groups.get((env, spec.algo, spec.variant, budget))


def _mean_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its 95% bootstrap CI; no interval (NaN ends) when a group has one
    run, since resampling one run never varies it."""
    if min(a.size, b.size) >= 2:
        return bootstrap_diff_ci(a, b, "mean")
    return float(a.mean() - b.mean()), math.nan, math.nan


def family_rows(
    groups: dict, comparisons: list[Comparison], alternative: str, family_size: int | None = None
) -> list[dict]:
    """One row per (task, budget, comparison) where both groups have a finished run: Δ mean
    [95% CI], the raw p (one-sided for confirmatory rows when alternative is "greater"), Holm's
    adjusted p over the confirmatory rows, and the verdict. `family_size`: the number of
    confirmatory comparisons the plan lists; while some have no runs yet, each is counted as
    p = 1 (Holm's correction is never smaller than the finished family's)."""
    tasks = sorted({(k[0], k[3]) for k in groups})
    rows = []
    for comp in comparisons:
        for env, budget in tasks:
            ga, gb = _match(groups, comp.a, env, budget), _match(groups, comp.b, env, budget)
            if not ga or not gb:
                continue
            a = np.array([r.final for r in ga if r.complete])
            b = np.array([r.final for r in gb if r.complete])
            if a.size == 0 or b.size == 0:
                continue
            diff = _mean_diff(a, b)
            alt = alternative if comp.confirmatory else "two-sided"
            rows.append({
                "env": env, "budget": budget, "comparison": comp, "n_a": a.size, "n_b": b.size,
                "seeds_a": sorted(r.seed for r in ga if r.complete),
                "seeds_b": sorted(r.seed for r in gb if r.complete),
                "mean": diff, "alternative": alt, "p": permutation_p(a, b, alternative=alt),
                "p_holm": math.nan, "verdict": verdict(diff[1], diff[2]),
            })  # fmt: skip
    confirm = [r for r in rows if r["comparison"].confirmatory]
    if family_size is not None and family_size < len(confirm):
        raise StudyError(
            f"--family-size {family_size}: the runs already give {len(confirm)} confirmatory rows"
        )
    pending = (family_size or len(confirm)) - len(confirm)
    adjusted = holm([r["p"] for r in confirm] + [1.0] * pending)[: len(confirm)]
    for r, adj in zip(confirm, adjusted, strict=True):
        r["p_holm"] = adj
        if not math.isnan(adj) and adj <= FAMILY_LEVEL:
            r["verdict"] += ", holds family-wise"
    return rows


def efficiency(run) -> float:
    """Learning efficiency: the mean of a run's evaluations after its warm-up (steps greater than
    `warmup_steps`), the area under its learning curve divided by its length."""
    after = run.steps > int(run.setup.get("warmup_steps", 0))
    return float(np.mean(run.returns[after])) if np.any(after) else math.nan


def efficiency_rows(groups: dict, comparisons: list[Comparison]) -> list[dict]:
    """Exploratory: per (task, budget, comparison), the difference of mean learning efficiency
    A − B with its 95% bootstrap CI and the two-sided exact permutation p (no correction)."""
    rows = []
    for comp in comparisons:
        for env, budget in sorted({(k[0], k[3]) for k in groups}):
            ga, gb = _match(groups, comp.a, env, budget), _match(groups, comp.b, env, budget)
            a = np.array([efficiency(r) for r in ga or [] if r.complete])
            b = np.array([efficiency(r) for r in gb or [] if r.complete])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            if a.size == 0 or b.size == 0:
                continue
            diff = _mean_diff(a, b)
            rows.append({
                "env": env, "budget": budget, "comparison": comp, "n_a": a.size, "n_b": b.size,
                "mean": diff, "p": permutation_p(a, b),
            })  # fmt: skip
    return rows


def stability_rows(groups: dict, specs: list[GroupSpec]) -> list[dict]:
    """Exploratory: per group of the family, the sample SD of the final returns over seeds and
    the mean drop from each run's best evaluation to its final one."""
    from awmp.stats import sample_std

    rows = []
    for (env, algo, variant, budget), runs in groups.items():
        if GroupSpec(algo, variant) not in specs:
            continue
        done = [r for r in runs if r.complete]
        if not done:
            continue
        rows.append({
            "env": env, "budget": budget, "group": GroupSpec(algo, variant), "n": len(done),
            "sd_final": sample_std([r.final for r in done]),
            "drop": float(np.mean([r.best - r.final for r in done])),
        })  # fmt: skip
    return rows


def exploratory_markdown(eff: list[dict], stab: list[dict]) -> list[str]:
    lines = [
        "*Learning efficiency* (exploratory): each run's mean evaluation after its warm-up (the",
        "area under its learning curve over its length); difference of group means A − B with",
        "its 95% bootstrap CI and the two-sided exact permutation p, not adjusted.",
        "",
        "| task | budget | comparison (A − B) | runs A, B | Δ mean efficiency [95% CI] | p |",
        "|---|---:|---|---|---:|---:|",
    ]
    for r in eff:
        ci = f"{r['mean'][0]:+.1f} [{_fmt(r['mean'][1])}, {_fmt(r['mean'][2])}]"
        lines.append(
            f"| {r['env']} | {r['budget']:,} | {r['comparison'].label} | {r['n_a']}, {r['n_b']} "
            f"| {ci} | {_fmt(r['p'], '.3f')} |"
        )
    lines += [
        "",
        "*Stability* (exploratory): per group, the sample SD of the final returns over seeds and",
        "the mean drop from each run's best evaluation to its final one.",
        "",
        "| task | budget | group | runs | SD of finals | mean best − final |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in stab:
        lines.append(
            f"| {r['env']} | {r['budget']:,} | {r['group'].label} | {r['n']} "
            f"| {_fmt(r['sd_final'], '.1f')} | {r['drop']:.1f} |"
        )
    return lines


def _fmt(x: float, spec: str = "+.1f") -> str:
    return "–" if math.isnan(x) else format(x, spec)


def family_markdown(
    rows: list[dict], alternative: str, family_size: int | None = None
) -> list[str]:
    if not rows:
        return ["No comparison of the family has finished runs in both groups yet."]
    done = sum(r["comparison"].confirmatory for r in rows)
    m = f"{done} of the plan's {family_size}" if family_size else f"{done}"
    side = "one-sided (H1: A higher)" if alternative == "greater" else "two-sided"
    lines = [
        "Difference of mean final returns A − B with its 95% bootstrap CI (runs of each group",
        "resampled independently) and the exact permutation p over every relabelling of the",
        f"pooled runs. Confirmatory rows ({m}): p {side}, and Holm's step-down adjustment over",
        "the plan's confirmatory comparisons (any without runs yet counted as p = 1);"
        if family_size
        else "those rows;",
        "exploratory rows: p two-sided, not adjusted. Verdict: *confirmed* if the CI",
        "lies above 0, *refuted* if below, *undecided* otherwise; a confirmatory row adds *holds",
        f"family-wise* when its Holm-adjusted p is at most {FAMILY_LEVEL}.",
        "",
        "| task | budget | comparison (A − B) | role | seeds A; B | Δ mean [95% CI] | p | p side "
        "| Holm p | verdict |",
        "|---|---:|---|---|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        lo, hi = r["mean"][1], r["mean"][2]
        ci = f"{r['mean'][0]:+.1f} [{_fmt(lo)}, {_fmt(hi)}]"
        role = "confirmatory" if r["comparison"].confirmatory else "exploratory"
        seeds = f"{','.join(map(str, r['seeds_a']))}; {','.join(map(str, r['seeds_b']))}"
        lines.append(
            f"| {r['env']} | {r['budget']:,} | {r['comparison'].label} | {role} | {seeds} | {ci} "
            f"| {_fmt(r['p'], '.3f')} | {r['alternative']} | {_fmt(r['p_holm'], '.3f')} "
            f"| {r['verdict']} |"
        )
    return lines


def plot_family(groups: dict, comparisons: list[Comparison], out: Path) -> Path | None:
    """The study's figure: one panel per (task, budget) with every group the family names,
    mean ± half a sample standard deviation over seeds (the paper's Fig. 3); one colour per
    algorithm, as in every report figure (awmp.plots.curve_styles), variants by line style."""
    from awmp.plots import draw_curve as _draw_curve

    specs: list[GroupSpec] = []
    for c in comparisons:
        for s in (c.a, c.b):
            if s not in specs:
                specs.append(s)
    panels = defaultdict(list)
    for env, budget in sorted({(k[0], k[3]) for k in groups}):
        for s in specs:
            runs = _match(groups, s, env, budget)
            if runs:
                panels[(env, budget)].append((s, runs))
    if not panels:
        return None
    from awmp.plots import curve_styles, finish_panels, task_panels

    styles = curve_styles([(s.algo, s.variant) for s in specs])
    fig, axes = task_panels(len(panels))
    for ax, ((env, budget), items) in zip(axes.flat, sorted(panels.items()), strict=False):
        for s, runs in items:
            _draw_curve(ax, runs, s.label, **styles[(s.algo, s.variant)])
        ax.set_title(f"{env}, {budget:,} steps")
    path = out / "family.png"
    return finish_panels(
        fig, axes, len(panels), path, "return (mean ± ½ sample std)", legend_loc="upper left"
    )


# --------------------------------------------------------------------------- provenance


def parse_time(text: str | None) -> _dt.datetime | None:
    """An ISO time; one without a zone (config.json's `created` before zones were written)
    is read as UTC, the zone of the machines the committed runs were trained on."""
    if not text:
        return None
    try:
        t = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit_time(repo: Path, commit: str) -> _dt.datetime | None:
    out = _git(repo, "show", "-s", "--format=%cI", commit)
    return parse_time(out) if out else None


def plan_commit(spec: str) -> tuple[str, _dt.datetime]:
    """FILE:TEXT -> (commit, its time): the earliest commit that added TEXT to FILE."""
    if ":" not in spec:
        raise StudyError(f"--plan {spec!r}: expected FILE:TEXT")
    file, text = spec.split(":", 1)
    path = Path(file)
    if not path.is_file() or not text:
        raise StudyError(f"--plan {spec!r}: no file {file}, or no TEXT after the colon")
    repo = path.resolve().parent
    out = _git(repo, "log", "--reverse", "--format=%H %cI", "-S", text, "--", path.name)
    if not out:
        raise StudyError(f"--plan: no commit added {text!r} to {file} (is it committed?)")
    commit, when = out.splitlines()[0].split(" ", 1)
    return commit, parse_time(when)  # type: ignore[return-value]


def provenance_rows(groups: dict, specs: list[GroupSpec] | None, repo: Path) -> list[dict]:
    """Per group (those of the family, or all): runs, earliest start, code commits."""
    rows = []
    times: dict[str, _dt.datetime | None] = {}
    for key, runs in groups.items():
        env, algo, variant, budget = key
        if specs is not None and GroupSpec(algo, variant) not in specs:
            continue
        starts, commits, dirty = [], set(), set()
        for r in runs:
            try:
                meta = json.loads((r.path / "config.json").read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict):
                continue
            t = parse_time(meta.get("created"))
            if t:
                starts.append(t)
            commits.add(meta.get("git_commit"))
            dirty.add(meta.get("git_dirty"))
        for c in commits:
            if c and c not in times:
                times[c] = commit_time(repo, c)
        rows.append({
            "key": key, "runs": len(runs), "first_start": min(starts) if starts else None,
            "commits": sorted(commits, key=str), "dirty": dirty,
            "commit_times": {c: times.get(c) for c in commits if c},
        })  # fmt: skip
    return rows


def _t(t: _dt.datetime | None) -> str:
    return "?" if t is None else t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def provenance_markdown(rows: list[dict], plan: tuple[str, _dt.datetime] | None) -> list[str]:
    lines = []
    if plan:
        lines += [
            f"The plan: added in commit `{plan[0][:10]}` at {_t(plan[1])}. *After the plan*: the",
            "group's earliest run started after that commit time.",
            "",
        ]
    head = "| env | algo | variant | budget | runs | earliest start | code commits (commit time) "
    head += "| tracked files changed |" + (" after the plan |" if plan else "")
    lines += [head, "|---|---|---|---:|---:|---|---|---|" + ("---|" if plan else "")]
    for r in rows:
        env, algo, variant, budget = r["key"]
        commits = ", ".join(
            f"`{c[:10]}` ({_t(r['commit_times'].get(c))})" if c else "unknown" for c in r["commits"]
        )
        dirty = {True: "yes", False: "no", None: "unknown"}
        changed = "/".join(sorted(dirty.get(d, "unknown") for d in r["dirty"]))
        line = (
            f"| {env} | {algo} | {variant or 'default'} | {budget:,} | {r['runs']} "
            f"| {_t(r['first_start'])} | {commits} | {changed} |"
        )
        if plan:
            after = r["first_start"] is not None and r["first_start"] > plan[1]
            line += " yes |" if after else " **no** |"
        lines.append(line)
    return lines


def study_section(
    groups: dict,
    comparisons: list[Comparison],
    alternative: str,
    plan: str | None,
    out: Path,
    family_size: int | None = None,
) -> tuple[list[str], Path | None, list[dict]]:
    """The report's family section (markdown lines), its figure and its rows."""
    plan_info = plan_commit(plan) if plan else None
    rows = family_rows(groups, comparisons, alternative, family_size)
    figure = plot_family(groups, comparisons, out)
    specs = list(dict.fromkeys(s for c in comparisons for s in (c.a, c.b)))
    repo = Path(plan.split(":", 1)[0]).resolve().parent if plan else Path.cwd()
    prov = provenance_rows(groups, specs, repo)
    lines = [
        "",
        "## The planned family of comparisons",
        "",
        *family_markdown(rows, alternative, family_size),
    ]
    if figure:
        lines += ["", f"![{figure.stem}]({figure.name})"]
    lines += [
        "",
        "## Exploratory readings of the family",
        "",
        *exploratory_markdown(efficiency_rows(groups, comparisons), stability_rows(groups, specs)),
    ]
    lines += ["", "## Provenance of the family's runs", "", *provenance_markdown(prov, plan_info)]
    return lines, figure, rows
