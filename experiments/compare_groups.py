"""Two groups of finished runs, side by side: final returns, the difference of means and of
IQMs with 95% bootstrap CIs, and the exact permutation test's two-sided p (awmp.report's
statistics), for comparisons `awmp report` does not make by itself (e.g. a variant against the
default runs of the same seeds only, as docs/RESULTS.md §3 questions 2 and 5 do); then the
difference of means paired by seed over the seeds both groups ran, with the sign-flip p.

Usage: python experiments/compare_groups.py --a RUN_DIR ... --b RUN_DIR ...
       python experiments/compare_groups.py --values FILE.json
A values file holds scores that are not a run's own final evaluation (e.g. fork_anatomy.py's
grid scores): {"a": {"label": ..., "seeds": [...], "values": [...]}, "b": {...},
"source": "..."}; the same statistics are printed, paired by seed over the seeds both list.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from awmp import report


def finished(paths: list[str]) -> list[report.Run]:
    try:
        return report.finished_runs(paths)
    except report.ReportError as e:
        raise SystemExit(f"compare_groups: {e}") from None


def from_values(path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(a, b, paired) from a values file (see the module docstring)."""
    try:
        spec = json.loads(open(path).read())
        groups = [spec["a"], spec["b"]]
        a, b = (np.asarray(g["values"], np.float64) for g in groups)
        seeds = [list(map(int, g["seeds"])) for g in groups]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"compare_groups: {path}: not a values file ({e})") from None
    if len(seeds[0]) != a.size or len(seeds[1]) != b.size:
        raise SystemExit(f"compare_groups: {path}: seeds and values differ in length")
    print(f"{path}: A = {groups[0].get('label', 'A')}, B = {groups[1].get('label', 'B')}")
    fa, fb = dict(zip(seeds[0], a, strict=True)), dict(zip(seeds[1], b, strict=True))
    common = sorted(set(fa) & set(fb))
    d = np.array([fa[k] - fb[k] for k in common])
    if d.size >= 2:
        paired = {"pair_seeds": common, "paired": report.paired_bootstrap_ci(d),
                  "p_paired": report.sign_flip_p(d)}  # fmt: skip
    else:
        nan = float("nan")
        paired = {"pair_seeds": common, "paired": (nan, nan, nan), "p_paired": nan}
    return a, b, paired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", help="run directories of group A")
    ap.add_argument("--b", nargs="+", help="run directories of group B")
    ap.add_argument("--values", help="a JSON file of per-seed scores instead of run directories")
    args = ap.parse_args()
    if args.values:
        if args.a or args.b:
            sys.exit("compare_groups: give --values or --a/--b, not both")
        a, b, paired = from_values(args.values)
    elif args.a and args.b:
        runs_a, runs_b = finished(args.a), finished(args.b)
        a, b = np.array([r.final for r in runs_a]), np.array([r.final for r in runs_b])
        paired = report.paired_by_seed(runs_a, runs_b)
    else:
        sys.exit("compare_groups: give --a and --b run directories, or --values FILE")
    print("A finals:", ", ".join(f"{v:.1f}" for v in a))
    print("B finals:", ", ".join(f"{v:.1f}" for v in b))
    for stat in ("mean", "iqm"):
        d, lo, hi = report.bootstrap_diff_ci(a, b, stat)
        print(f"A - B, {stat}: {d:+.1f} [{lo:+.1f}, {hi:+.1f}] (95% bootstrap CI)")
    p = report.permutation_p(a, b)
    print(f"exact permutation test, difference of means: two-sided p = {p:.3f}")
    seeds = ",".join(map(str, paired["pair_seeds"])) or "none"
    d, lo, hi = paired["paired"]
    print(
        f"paired by seed (seeds {seeds}): A - B, mean {d:+.1f} [{lo:+.1f}, {hi:+.1f}] "
        f"(95% bootstrap CI over seeds), sign-flip two-sided p = {paired['p_paired']:.3f}"
    )


if __name__ == "__main__":
    main()
