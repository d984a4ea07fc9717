"""Two groups of finished runs, side by side: final returns, the difference of means and of
IQMs with 95% bootstrap CIs, and the exact permutation test's two-sided p (awmp.report's
statistics), for comparisons `awmp report` does not make by itself (e.g. a variant against the
default runs of the same seeds only, as docs/RESULTS.md §3 questions 2 and 5 do).

Usage: python experiments/compare_groups.py --a RUN_DIR ... --b RUN_DIR ...
"""

from __future__ import annotations

import argparse

import numpy as np

from awmp import report


def finals(paths: list[str]) -> list[float]:
    try:
        return [run.final for run in report.finished_runs(paths)]
    except report.ReportError as e:
        raise SystemExit(f"compare_groups: {e}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, help="run directories of group A")
    ap.add_argument("--b", nargs="+", required=True, help="run directories of group B")
    args = ap.parse_args()
    a, b = np.array(finals(args.a)), np.array(finals(args.b))
    print("A finals:", ", ".join(f"{v:.1f}" for v in a))
    print("B finals:", ", ".join(f"{v:.1f}" for v in b))
    for stat in ("mean", "iqm"):
        d, lo, hi = report.bootstrap_diff_ci(a, b, stat)
        print(f"A - B, {stat}: {d:+.1f} [{lo:+.1f}, {hi:+.1f}] (95% bootstrap CI)")
    p = report.permutation_p(a, b)
    print(f"exact permutation test, difference of means: two-sided p = {p:.3f}")


if __name__ == "__main__":
    main()
