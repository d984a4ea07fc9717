"""One table row per finished run, from committed run files (docs/RESULTS.md's per-run tables).

Usage: python experiments/run_rows.py docs/results/evidence [--filter TEXT]

Columns: run (task, algorithm, the fields that differ from the paper preset's, seed), the final
evaluation, the mean of the last three evaluations, the best evaluation, the range of the
prior's burst-mean ESS and estimated MI Î (SAC-AWMP, TD3-AWMP; "–" otherwise), wall minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from awmp.algos.registry import ALGORITHMS
from awmp.config import preset
from awmp.grid import _get


def _floats(rows: list[dict], name: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(name)
        if v not in (None, "", "nan"):
            out.append(float(v))
    return [x for x in out if np.isfinite(x)]


def _num(v: float) -> str:
    """Returns of 100 or more as integers (MuJoCo), smaller ones with a decimal (Switch, Fork)."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _variant(cfg: dict) -> str:
    """The algorithm's fields that differ from its preset, e.g. 'zeta=-0.1'."""
    section = ALGORITHMS[cfg["algo"]].section
    mine = cfg.get(section, {})
    ref = preset(cfg.get("preset", "paper"))
    parts = []
    for k, v in sorted(mine.items()):
        try:
            r = _get(ref, f"{section}.{k}")
        except (AttributeError, KeyError):
            continue
        r = list(r) if isinstance(r, tuple) else r
        if v != r:
            parts.append(f"{k}={'x'.join(map(str, v)) if isinstance(v, list) else v}")
    return " ".join(parts)


def rows(root: Path, needle: str = "") -> list[str]:
    out = []
    for s in sorted(root.rglob("summary.json")):
        d = s.parent
        summary = json.loads(s.read_text())
        cfg = json.loads((d / "config.json").read_text())["config"]
        with open(d / "eval.csv") as f:
            rets = _floats(list(csv.DictReader(f)), "return_mean")
        with open(d / "train.csv") as f:
            train = list(csv.DictReader(f))
        ess, mi = _floats(train, "prior_ess"), _floats(train, "prior_mi")
        variant = _variant(cfg)
        name = f"{cfg['env']} {cfg['algo']}{' ' + variant if variant else ''} seed {cfg['seed']}"
        if needle not in name:
            continue
        e = f"{min(ess):.1f}–{max(ess):.1f}" if ess else "–"
        m = f"{round(min(mi), 2) + 0.0:.2f}–{round(max(mi), 2) + 0.0:.2f}" if mi else "–"
        out.append(
            f"| {name} | {_num(rets[-1])} | {_num(np.mean(rets[-3:]))} | {_num(max(rets))} "
            f"| {e} | {m} "
            f"| {summary['wall_s'] / 60:.0f} |"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--filter", default="", help="only runs whose name contains this text")
    args = p.parse_args()
    print("| run | final | mean of last 3 evals | best | prior ESS | Î (nats) | wall min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows(args.root, args.filter)))


if __name__ == "__main__":
    main()
