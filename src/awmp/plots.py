"""Plots of a single run (learning curve). Uses the non-interactive Agg backend."""

from __future__ import annotations

import csv
from pathlib import Path


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
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean, marker="o", ms=3)
    ax.fill_between(
        steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.25
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
