"""experiments/final_entropy.py, the temperature study's entropy column (docs/RESULTS.md
section 7): on copies of committed runs whose last train.csv row is rewritten with known
entropies, it prints each group's per-seed values, their mean and sample SD (computed here by
hand), the learned alpha where one is logged, and leaves out runs that log no entropy (TD3)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
FIG3 = ROOT / "docs" / "results" / "fig3" / "HalfCheetah-v5"


fe = load_script("final_entropy")


def _copy_run(src: Path, dst: Path, last: dict[str, str]) -> None:
    shutil.copytree(src, dst)
    with open(dst / "train.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    rows[-1].update(last)
    with open(dst / "train.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_groups_means_sample_sd_and_runs_without_entropy(tmp_path, capsys):
    mix = FIG3 / "sac-awmp" / "default"
    one = FIG3 / "sac-awmp" / "num_components=1"
    # SAC-AWMP (4 components): the run's value is the mean over its components.
    _copy_run(
        mix / "seed0-100000steps", tmp_path / "a0", {f"entropy_{g}": str(g) for g in range(4)}
    )
    _copy_run(mix / "seed1-100000steps", tmp_path / "a1", {f"entropy_{g}": "-2" for g in range(4)})
    _copy_run(one / "seed0-100000steps", tmp_path / "b0", {"entropy_0": "0.5"})
    shutil.copytree(FIG3 / "td3" / "default" / "seed0-100000steps", tmp_path / "t0")

    assert fe.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[2].strip(): line for line in out.splitlines()[2:]}
    assert set(rows) == {"sac-awmp", "sac-awmp[num_components=1]"}  # TD3 left out
    # a0: mean(0, 1, 2, 3) = 1.5; a1: -2; mean -0.25; sample SD |1.5 - (-2)| / sqrt(2) = 2.47
    assert "| 0,1 | +1.50, -2.00 | -0.25 (2.47) | not logged (fixed) |" in rows["sac-awmp"]
    assert "| 0 | +0.50 | +0.50 (nan) |" in rows["sac-awmp[num_components=1]"]


def test_an_unfinished_run_is_an_error_naming_it(tmp_path):
    src = FIG3 / "sac-awmp" / "num_components=1" / "seed0-100000steps"
    _copy_run(src, tmp_path / "b0", {})
    (tmp_path / "b0" / "summary.json").unlink()
    with pytest.raises(SystemExit, match="final_entropy: not finished: .*b0"):
        fe.main([str(tmp_path)])
