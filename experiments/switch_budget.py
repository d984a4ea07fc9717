"""Switch-v0's budget for questions 3-4 (docs/RESULTS.md §3, the rule fixed before the runs).

m(t): the mean over the runs of the evaluation at step t; L: the mean of m over the last
`--window` evaluations; B: the first evaluation step from which m stays within `--tol` of L for
the rest of the run, rounded up to the next `--round`. If B would exceed `--limit`, SAC is still
improving inside the plateau window: no budget (exit 1), extend the runs instead.

Usage: python experiments/switch_budget.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from awmp import report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="finished run directories (the grid 'budget')")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--tol", type=float, default=2.0)
    ap.add_argument("--round", type=int, default=10_000)
    ap.add_argument("--limit", type=int, default=50_000)
    args = ap.parse_args()
    try:
        runs = report.finished_runs(args.runs)
    except report.ReportError as e:
        raise SystemExit(f"switch_budget: {e}") from None
    steps = runs[0].steps
    if any(not np.array_equal(r.steps, steps) for r in runs):
        raise SystemExit("switch_budget: the runs were evaluated at different steps")
    m = np.mean([r.returns for r in runs], axis=0)
    level = float(m[-args.window :].mean())
    inside = np.abs(m - level) <= args.tol
    outside = np.flatnonzero(~inside)
    first = int(outside[-1]) + 1 if outside.size else 0  # len(m): the last one is outside
    print("step  mean over runs  (per run)")
    for i, t in enumerate(steps):
        per = " ".join(f"{r.returns[i]:7.1f}" for r in runs)
        mark = " <- B starts here" if i == first else ""
        print(f"{int(t):6d}  {m[i]:7.2f}  ({per}){mark}")
    print(f"L (mean of the last {args.window} evaluations) = {level:.2f}; tolerance {args.tol}")
    if first >= len(m):
        print("no budget: the last evaluation is outside the tolerance")
        return 1
    b = int(math.ceil(steps[first] / args.round) * args.round)
    if b > args.limit:
        print(f"no budget: m settles only at {int(steps[first])} (> {args.limit}); extend the runs")
        return 1
    print(f"m stays within {args.tol} of L from step {int(steps[first])}: B = {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
