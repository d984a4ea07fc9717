"""Plots of a single run (learning curve). Uses the non-interactive Agg backend."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from awmp.stats import sample_std


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Plot eval.csv (mean +- std of the evaluation return against steps) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_csv(run_dir / "eval.csv")
    steps = [int(r["step"]) for r in rows]
    mean = [float(r["return_mean"]) for r in rows]
    std = [float(r["return_std"]) for r in rows]
    meta = run_dir / "config.json"
    title = run_dir.name
    if meta.is_file():
        import json

        c = json.loads(meta.read_text())["config"]
        title = f"{c['algo']} on {c['env']} (seed {c['seed']})"
    color = algo_color(c["algo"]) if meta.is_file() else None
    fig, ax = plt.subplots(figsize=(6, 4))
    (line,) = ax.plot(steps, mean, marker="o", ms=3, color=color)
    ax.fill_between(
        steps,
        [m - s for m, s in zip(mean, std)],
        [m + s for m, s in zip(mean, std)],
        alpha=0.25,
        color=line.get_color(),
    )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (mean ± std)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out) if out else run_dir / "learning_curve.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# One colour per algorithm in every figure (report, study and single runs): matplotlib's tab10,
# in the order the algorithms were added; an algorithm not listed gets one of the rest by name.
ALGO_COLORS = {
    "sac-awmp": "#1f77b4",  # blue
    "sac": "#ff7f0e",  # orange
    "td3": "#2ca02c",  # green
    "td3-awmp": "#d62728",  # red
    "crossq": "#9467bd",  # purple
}
_OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_LINESTYLES = ("-", "--", "-.", ":")


def algo_color(algo: str) -> str:
    """The colour of `algo` in every figure."""
    import zlib

    if algo in ALGO_COLORS:
        return ALGO_COLORS[algo]
    return _OTHER_COLORS[zlib.crc32(algo.encode()) % len(_OTHER_COLORS)]


def curve_styles(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """{(algo, variant): matplotlib line keywords} for the curves of one figure: each algorithm
    in its colour (`algo_color`); its variants in that colour too, told apart by line style and
    shade (the default variant "" first, solid and full colour; the others in sorted order)."""
    from matplotlib.colors import to_hex, to_rgb

    styles = {}
    for algo in sorted({a for a, _ in keys}):
        variants = sorted({v for a, v in keys if a == algo}, key=lambda v: (v != "", v))
        base = np.asarray(to_rgb(algo_color(algo)))
        for i, variant in enumerate(variants):
            shade = min(0.3 * (i // len(_LINESTYLES)), 0.6)  # darker after each 4 line styles
            styles[(algo, variant)] = {
                "color": to_hex(base * (1 - shade)),
                "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            }
    return styles


def mean_curve(runs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, sample std, n) over the runs (awmp.report.Run: `steps`, `returns`) that have
    an evaluation at each step."""
    steps = np.unique(np.concatenate([r.steps for r in runs]))
    mean, std, n = [], [], []
    for s in steps:
        vals = [r.returns[r.steps == s][-1] for r in runs if np.any(r.steps == s)]
        mean.append(np.mean(vals))
        std.append(sample_std(vals))
        n.append(len(vals))
    return steps, np.asarray(mean), np.asarray(std), np.asarray(n)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_curve(ax, runs: list, label: str, color=None, linestyle=None) -> None:
    """One group's curve; `color` and `linestyle` from awmp.plots.curve_styles (one colour per
    algorithm in every figure)."""
    steps, mean, std, _ = mean_curve(runs)
    partial = sum(not r.complete for r in runs)
    count = f"n={len(runs) - partial}" + (f" + {partial} partial" if partial else "")
    (line,) = ax.plot(steps, mean, label=f"{label} ({count})", color=color, linestyle=linestyle)
    # The paper's Fig. 3: mean ± half a standard deviation over seeds.
    ax.fill_between(steps, mean - 0.5 * std, mean + 0.5 * std, alpha=0.2, color=line.get_color())


def task_panels(n: int):
    """(fig, axes): a grid of n task panels, two per row (the paper's Fig. 3 layout)."""
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    return pyplot().subplots(rows, cols, figsize=(6.0 * cols, 4.0 * rows), squeeze=False)


def finish_panels(fig, axes, n: int, path, ylabel: str, legend_loc: str | None = None):
    """Label the first n panels (x: environment steps, a grid, a legend inside), hide the
    rest, and save the figure to `path`."""
    for ax in list(axes.flat)[:n]:
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc=legend_loc)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path
