"""Which code trained a run: config.json's git_commit and git_dirty, from a checkout or from a
frozen copy made by experiments/freeze_src.sh (how study runs are started)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from awmp import rundir

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


needs_git = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)


@needs_git
def test_checkout_provenance_is_git_head_and_its_dirty_flag():
    got = rundir.code_provenance()
    assert got["git_commit"] == _git("rev-parse", "HEAD")
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT).returncode != 0
    assert got["git_dirty"] is dirty
    assert got["frozen"] is None


@needs_git
def test_frozen_copy_records_the_commit_it_was_made_from(tmp_path):
    dest = tmp_path / "frozen"
    out = subprocess.run(
        ["bash", str(ROOT / "experiments" / "freeze_src.sh"), str(dest)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads((dest / "awmp" / "FROZEN.json").read_text())
    assert info["git_commit"] == _git("rev-parse", "HEAD")
    assert isinstance(info["git_dirty"], bool)
    # A second freeze into the same folder is refused (a copy is never overwritten).
    again = subprocess.run(
        ["bash", str(ROOT / "experiments" / "freeze_src.sh"), str(dest)], capture_output=True
    )
    assert again.returncode == 2
    # The copy is outside any checkout, yet a run started from it records that commit.
    code = (
        "import awmp, json; from awmp import rundir; "
        "print(json.dumps([awmp.__file__, rundir.code_provenance()]))"
    )
    env = {**os.environ, "PYTHONPATH": str(dest)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    where, prov = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(where).resolve().is_relative_to(dest.resolve())
    assert prov["git_commit"] == info["git_commit"]
    assert prov["git_dirty"] is info["git_dirty"]
    assert prov["frozen"] == info["frozen"]


def test_config_json_carries_the_provenance(tmp_path):
    from conftest import small_config

    from awmp.train import train

    cfg = small_config(run_dir=str(tmp_path / "r"))
    train(cfg)
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert {"git_commit", "git_dirty", "frozen"} <= meta.keys()
    assert meta["git_commit"] == rundir.code_provenance()["git_commit"]
