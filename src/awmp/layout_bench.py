"""`awmp bench --layout`: which way of placing many runs on this machine's cores finishes the
most runs per hour (docs/BENCHMARKS.md "Runs per hour").

Layouts, each a set of `awmp train` processes started together:
- `1 process`: one run with XLA's default threads (the baseline, 1.0x);
- `N unpinned`: N runs at once with XLA's default threads, N = 2 .. cores (what a plain
  process pool does);
- `N pinned`: N runs, each pinned to its own core with single-threaded XLA, N = 1 .. cores
  (awmp.placement; what `awmp sweep` and `awmp experiment` do by default);
- `vmapped N seeds`: one process training N seeds with `--seeds` (one vmapped update).
Every run trains `warmup + burn_in + window` steps; its throughput is `window` over the wall
time of its last `window` steps (train.csv). A layout's score is the sum of its runs' steps/s:
runs per hour are proportional to it at equal budgets. Layouts run one after another, in
`reps` interleaved rounds; the table reports each layout's median total over the rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from awmp import placement


def layouts(cores: list[int]) -> list[dict]:
    n = len(cores)
    out = [{"name": "1 process, XLA default threads", "procs": [{}]}]
    for k in range(1, n + 1):
        out.append({
            "name": f"{k} pinned, single-threaded",
            "procs": [{"cores": (cores[i],), "threads": 1} for i in range(k)],
        })  # fmt: skip
    for k in range(2, n + 1):
        out.append({"name": f"{k} unpinned, XLA default threads", "procs": [{}] * k})
    if n >= 2:
        out.append({"name": f"1 process, vmapped {n} seeds", "procs": [{"seeds": n}]})
    return out


def _train_args(run_dir: Path, env: str, algo: str, steps: dict, hidden: list[str]) -> list[str]:
    total = steps["warmup"] + steps["burn_in"] + steps["window"]
    args = [
        "train", "--algo", algo, "--env", env, "--total-steps", str(total),
        "--warmup-steps", str(steps["warmup"]), "--log-interval", "500",
        "--eval-interval", str(total), "--eval-episodes", "1", "--no-progress",
        "--checkpoint-interval", str(total), "--run-dir", str(run_dir),
    ]  # fmt: skip
    if hidden:
        from awmp.algos.registry import SECTIONS

        section = SECTIONS[algo]
        args += [f"--{section}.hidden", *hidden]
    return args


def _sps(run_dir: Path, start: int, end: int) -> float:
    from awmp.logger import window_steps_per_second

    return window_steps_per_second(run_dir, start, end)


def run_layout(layout: dict, env: str, algo: str, steps: dict, hidden: list[str], tmp: Path):
    """Start the layout's processes together; return each run's steps/s over the window."""
    procs, dirs = [], []
    for i, p in enumerate(layout["procs"]):
        run_dir = tmp / f"p{i}"
        args = _train_args(run_dir, env, algo, steps, hidden)
        if p.get("seeds"):
            args += ["--seeds", ",".join(str(s) for s in range(p["seeds"]))]
            dirs += [run_dir / f"seed{s}" for s in range(p["seeds"])]
        else:
            dirs.append(run_dir)
        child = dict(os.environ)
        child.pop(placement.PIN_ENV, None)
        if p.get("threads"):
            child = placement.child_env(child, p["threads"], p.get("cores"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "awmp.cli", *args], env=child,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a benchmark run failed ({proc.returncode}): {err[-2000:]}")
    start = steps["warmup"] + steps["burn_in"]
    return [_sps(d, start, start + steps["window"]) for d in dirs]


def layout_bench(
    env: str = "Hopper-v5",
    algo: str = "sac",
    warmup: int = 1000,
    burn_in: int = 500,
    window: int = 2000,
    reps: int = 2,
    hidden: list[str] | None = None,
    log=print,
) -> dict:
    """Measure every layout of `layouts(available cores)`; return the table and the fastest."""
    steps = {"warmup": warmup, "burn_in": burn_in, "window": window}
    cores = placement.available_cores()
    todo = layouts(cores)
    results: dict[str, list[list[float]]] = {lay["name"]: [] for lay in todo}
    with tempfile.TemporaryDirectory(prefix="awmp-layout-") as tmp:
        for rep in range(reps):
            for j, lay in enumerate(todo):
                sps = run_layout(lay, env, algo, steps, hidden or [], Path(tmp) / f"r{rep}l{j}")
                results[lay["name"]].append(sps)
                each = " + ".join(f"{s:.1f}" for s in sps)
                log(f"round {rep + 1}/{reps}: {lay['name']}: {each} = {sum(sps):.1f} steps/s")
    base = statistics.median(sum(r) for r in results[todo[0]["name"]])
    rows = []
    for lay in todo:
        totals = [sum(r) for r in results[lay["name"]]]
        rows.append({
            "layout": lay["name"], "runs_at_once": sum(p.get("seeds", 1) for p in lay["procs"]),
            "rounds": results[lay["name"]], "total_median": statistics.median(totals),
            "vs_one_process": statistics.median(totals) / base,
        })  # fmt: skip
    best = max(rows, key=lambda r: r["total_median"])
    return {
        "env": env, "algo": algo, "cores": cores, "steps": steps, "reps": reps,
        "hidden": hidden, "rows": rows, "fastest": best["layout"],
    }  # fmt: skip


def table(result: dict) -> str:
    lines = [
        f"{result['algo']} on {result['env']}, {len(result['cores'])} cores, window "
        f"{result['steps']['window']} steps, median of {result['reps']} round(s)",
        "| layout | runs at once | total steps/s (median) | vs 1 process | rounds (per run) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        rounds = "; ".join(" + ".join(f"{s:.0f}" for s in rd) for rd in r["rounds"])
        lines.append(
            f"| {r['layout']} | {r['runs_at_once']} | {r['total_median']:.1f} "
            f"| {r['vs_one_process']:.2f}x | {rounds} |"
        )
    lines.append(f"fastest: {result['fastest']}")
    return "\n".join(lines)


def write(result: dict, out: str) -> None:
    Path(out).write_text(json.dumps(result, indent=2))
