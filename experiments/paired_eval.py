"""Question 7 of docs/RESULTS.md §3: one SAC-AWMP run's final parameters scored by both
deterministic actions (`eval_action` = argmax and blend) on the same fresh episodes, paired.

For each run directory (kept locally with its final parameters): `awmp eval RUN --eval-action
argmax|blend --episodes N` (same evaluation seed, so the same initial states: MuJoCo's dynamics
are deterministic, so the only difference between the two scores is the action rule). Then,
over runs: the mean of the paired differences argmax - blend with a 95% bootstrap CI over
runs and the exact sign-flip permutation p (awmp.report). With `--twin-root`, also checks that
each run's train.csv equals that of the committed run of the same env and seed in the default
cell (`eval_action` does not change training), column by column apart from wall time and
speed, and pairs the two runs' own final evaluations (same evaluation episodes too).

Usage: python experiments/paired_eval.py RUN_DIR ... [--episodes 10] [--json OUT.json]
       [--twin-root docs/results/evidence] [--add EARLIER.json ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from awmp import report
from awmp.evaluate import evaluate_run

TIMING = {"wall_s", "steps_per_s"}


def twin_of(run: Path, twin_root: Path) -> Path:
    """The default cell's run of the same env, algorithm and seed under `twin_root`
    (RUN = .../ENV/ALGO/VARIANT/seedK-Nsteps)."""
    env, algo = run.parent.parent.parent.name, run.parent.parent.name
    return twin_root / env / algo / "default" / run.name


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train_mismatches(a: Path, b: Path) -> list[str]:
    """Where two runs' train.csv differ (timing columns aside): [] when identical."""
    ra, rb = _rows(a / "train.csv"), _rows(b / "train.csv")
    if len(ra) != len(rb):
        return [f"{len(ra)} rows vs {len(rb)}"]
    out = []
    for x, y in zip(ra, rb):
        for k in sorted((set(x) | set(y)) - TIMING):
            if x.get(k) != y.get(k):
                out.append(f"step {x.get('step')}: {k} {x.get(k)} vs {y.get(k)}")
    return out


def summarise(name: str, d: np.ndarray) -> str:
    mean, lo, hi = report.paired_bootstrap_ci(d)
    p = report.sign_flip_p(d)
    ptxt = "n/a" if math.isnan(p) else f"{p:.3f}"
    return (
        f"{name}: mean {mean:+.1f} [{lo:+.1f}, {hi:+.1f}] (95% bootstrap CI over {d.size} runs), "
        f"sign-flip p = {ptxt}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="SAC-AWMP run directories with final parameters")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--json", help="write every run's returns under both rules here")
    ap.add_argument("--twin-root", help="root of the committed default runs to check against")
    ap.add_argument(
        "--add", nargs="+", default=[], metavar="JSON",
        help="rows from earlier --json files (runs scored before), summarised with the new ones",
    )  # fmt: skip
    args = ap.parse_args()
    out = [row for f in args.add for row in json.loads(Path(f).read_text())]
    if not out and not args.runs:
        ap.error("give run directories, --add files, or both")
    for r in map(Path, args.runs):
        scores = {
            rule: evaluate_run(r, episodes=args.episodes, eval_action=rule)
            for rule in ("argmax", "blend")
        }
        (run,) = report.finished_runs([r])
        row = {
            "run": "/".join(r.parts[-4:]),  # ENV/ALGO/VARIANT/seedK-Nsteps
            "env": run.env,
            "seed": run.seed,
            **{f"{k}_returns": v["returns"] for k, v in scores.items()},
            **{f"{k}_mean": v["return_mean"] for k, v in scores.items()},
        }
        row["diff"] = row["argmax_mean"] - row["blend_mean"]
        line = (
            f"{row['env']} seed {row['seed']}: argmax {row['argmax_mean']:.1f}, "
            f"blend {row['blend_mean']:.1f}, argmax - blend {row['diff']:+.1f}"
        )
        if args.twin_root:
            twin = twin_of(r, Path(args.twin_root))
            bad = train_mismatches(r, twin)
            row["train_identical_to"] = str(twin) if not bad else None
            row["own_final"], row["twin_final"] = run.final, report.finished_runs([twin])[0].final
            line += (
                f"; train.csv {'identical to' if not bad else 'DIFFERS from'} {twin}"
                f"{'' if not bad else ' (' + bad[0] + f', {len(bad)} cells)'}"
                f"; final evaluations in training: this run {row['own_final']:.1f}, "
                f"the default run {row['twin_final']:.1f}"
            )
        print(line, flush=True)
        out.append(row)
    by_env: dict[str, list[dict]] = {}
    for row in sorted(out, key=lambda x: (x["env"], x["seed"])):
        by_env.setdefault(row["env"], []).append(row)
    for env, rows in by_env.items():
        print(f"{env}: seeds {', '.join(str(x['seed']) for x in rows)}")
        fresh = np.array([x["diff"] for x in rows])
        print(summarise(f"{env}, argmax - blend (fresh episodes)", fresh))
        if all("own_final" in x for x in rows):
            own = np.array([x["own_final"] - x["twin_final"] for x in rows])
            print(summarise(f"{env}, this run - the default run (final evaluations)", own))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
