"""Two groups of finished runs, side by side: final returns, the difference of means and of
IQMs with 95% bootstrap CIs, and the exact permutation test's two-sided p (awmp.report's
statistics), for comparisons `awmp report` does not make by itself (e.g. a variant against the
default runs of the same seeds only, as docs/RESULTS.md §3 questions 2 and 5 do); then the
difference of means paired by seed over the seeds both groups ran, with the sign-flip p.

Usage: python experiments/compare_groups.py --a RUN_DIR ... --b RUN_DIR ...
"""

from __future__ import annotations

import argparse

import numpy as np

from awmp import report


def finished(paths: list[str]) -> list[report.Run]:
    try:
        return report.finished_runs(paths)
    except report.ReportError as e:
        raise SystemExit(f"compare_groups: {e}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, help="run directories of group A")
    ap.add_argument("--b", nargs="+", required=True, help="run directories of group B")
    args = ap.parse_args()
    runs_a, runs_b = finished(args.a), finished(args.b)
    a, b = np.array([r.final for r in runs_a]), np.array([r.final for r in runs_b])
    print("A finals:", ", ".join(f"{v:.1f}" for v in a))
    print("B finals:", ", ".join(f"{v:.1f}" for v in b))
    for stat in ("mean", "iqm"):
        d, lo, hi = report.bootstrap_diff_ci(a, b, stat)
        print(f"A - B, {stat}: {d:+.1f} [{lo:+.1f}, {hi:+.1f}] (95% bootstrap CI)")
    p = report.permutation_p(a, b)
    print(f"exact permutation test, difference of means: two-sided p = {p:.3f}")
    paired = report.paired_by_seed(runs_a, runs_b)
    seeds = ",".join(map(str, paired["pair_seeds"])) or "none"
    d, lo, hi = paired["paired"]
    print(
        f"paired by seed (seeds {seeds}): A - B, mean {d:+.1f} [{lo:+.1f}, {hi:+.1f}] "
        f"(95% bootstrap CI over seeds), sign-flip two-sided p = {paired['p_paired']:.3f}"
    )


if __name__ == "__main__":
    main()
