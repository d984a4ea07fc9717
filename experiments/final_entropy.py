"""Each finished run's policy entropy at its last logged update, grouped as `awmp report` groups
runs: the mean over the run's components of the `entropy_*` columns (SAC-AWMP: -mean log pi_g
of each component's reparameterised sample) or the `entropy` column (SAC), from the last row of
train.csv, with the learned temperature (`alpha`) where the run learned one. Runs that log no
entropy (TD3) are left out. The temperature study (docs/RESULTS.md section 7) reads these
beside each cell's final return.

Usage: python experiments/final_entropy.py RUN_DIR_OR_ROOT ...
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from awmp import report
from awmp.study import GroupSpec


def last_row(run_dir: Path) -> dict[str, str] | None:
    """The last train.csv row with an entropy value; None for a policy without one (TD3)."""
    with open(run_dir / "train.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if any(k.startswith("entropy") and r[k] for k in r)]
    return rows[-1] if rows else None


def entropy_of(row: dict[str, str]) -> float:
    values = [float(v) for k, v in row.items() if k.startswith("entropy") and v]
    return sum(values) / len(values)


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    try:
        runs = report.finished_runs(report.find_run_dirs(argv))
    except report.ReportError as e:
        raise SystemExit(f"final_entropy: {e}") from None
    groups: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for run in runs:
        row = last_row(Path(run.path))
        if row is None:
            continue
        alpha = row.get("alpha") or ""
        group = GroupSpec(run.algo, run.variant).label  # as `awmp report --compare` names it
        groups.setdefault((run.env, group), []).append((run.seed, entropy_of(row), alpha))
    print("| task | group | seeds | final entropy per seed | mean (sample SD) | alpha at the end |")
    print("|---|---|---|---|---|---|")
    for (env, group), rows in sorted(groups.items()):
        rows.sort()
        ents = [e for _, e, _ in rows]
        sd = statistics.stdev(ents) if len(ents) > 1 else float("nan")
        alphas = ", ".join(f"{float(a):.3f}" for _, _, a in rows if a) or "not logged (fixed)"
        print(
            f"| {env} | {group} | {','.join(str(s) for s, _, _ in rows)} | "
            f"{', '.join(f'{e:+.2f}' for e in ents)} | {statistics.fmean(ents):+.2f} ({sd:.2f}) "
            f"| {alphas} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
