"""`awmp experiment`: grid expansion, the shipped paper protocol, dry run, skip, partial cells."""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path

import pytest
from faults import stop_at

from awmp import experiment
from awmp.cli import main as cli_main

TINY = """
[defaults]
seeds = [0]
total_steps = 300
warmup_steps = 100
eval_interval = 150
eval_episodes = 1
log_interval = 100
progress = false
"sac.hidden" = [32, 32]
"sac.batch_size" = 16
[defaults.td3]
hidden = [32, 32]
batch_size = 16

[[grid]]
name = "main"
envs = ["Pendulum-v1"]
algos = ["sac", "td3"]

[[grid]]
name = "tau"
envs = ["Pendulum-v1"]
algos = ["sac"]
vary = { "sac.tau" = [0.005, 0.01] }
"""


def test_paper_protocol_grid():
    name, spec = experiment.load_experiment("paper")
    cells = experiment.expand(spec)
    # Fig. 3: 4 tasks x 3 algos x 5 seeds; Fig. 4 adds O = 1, 2, 8 (O = 4 is Fig. 3's);
    # Fig. 5 adds tau_Q = 0.1, 0.0001 (0.001 is the default): 60 + 60 + 40 distinct cells.
    assert len(cells) == 160
    assert {c.env for c in cells} == {"Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5"}
    assert {c.seed for c in cells} == {0, 1, 2, 3, 4}
    assert all(c.config.total_steps == 1_000_000 for c in cells)
    shared = [c for c in cells if c.algo == "sac-awmp" and not c.overrides]
    assert len(shared) == 20 and all(c.grids == ["fig3", "fig4", "fig5"] for c in shared)
    o_values = {c.config.awmp.num_components for c in cells if c.algo == "sac-awmp"}
    tau_values = {c.config.awmp.tau_q for c in cells if c.algo == "sac-awmp"}
    assert o_values == {1, 2, 4, 8} and tau_values == {0.1, 0.001, 0.0001}
    # The reduced protocol of the issue.
    reduced = experiment.expand(spec, budget=100_000, seeds=[0, 1], only=["fig3"])
    assert len(reduced) == 4 * 3 * 2 and all(c.config.total_steps == 100_000 for c in reduced)
    # experiments/paper.toml in the repository is the shipped file.
    repo_copy = Path(__file__).resolve().parents[1] / "experiments" / "paper.toml"
    assert experiment.tomllib.loads(repo_copy.read_text()) == spec


def test_dry_run_creates_nothing(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "runs"
    assert cli_main(["experiment", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "3 cells" in text and text.count("would run: awmp train") == 3
    assert "--sac.tau 0.01" in text
    assert not out.exists()


@pytest.mark.slow
def test_runs_grid_resumes_interrupted_skips_complete(tmp_path, capsys, monkeypatch):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "runs"
    # The first cell is stopped after step 150 as by Ctrl-C (a step callback): the
    # experiment stops with 130, and the same command continues it from its checkpoint.
    train_module = importlib.import_module("awmp.train")
    monkeypatch.setattr(
        train_module, "train", functools.partial(train_module.train, on_step=stop_at(150))
    )
    assert cli_main(["experiment", str(path), "--out", str(out), "--workers", "1"]) == 130
    first = out / "Pendulum-v1/sac/default/seed0-300steps"
    assert json.loads((first / "summary.json").read_text())["steps_done"] == 150
    monkeypatch.undo()
    capsys.readouterr()
    assert cli_main(["experiment", str(path), "--out", str(out), "--workers", "1"]) == 0
    assert "sac default seed 0: resuming" in capsys.readouterr().out
    assert json.loads((first / "summary.json").read_text())["steps_done"] == 300
    dirs = sorted(p.parent for p in out.rglob("summary.json"))
    assert [d.relative_to(out).as_posix() for d in dirs] == [
        "Pendulum-v1/sac/default/seed0-300steps",
        "Pendulum-v1/sac/tau=0.01/seed0-300steps",
        "Pendulum-v1/td3/default/seed0-300steps",
    ]
    cfg = json.loads((dirs[1] / "config.json").read_text())["config"]
    assert cfg["sac"]["tau"] == 0.01 and cfg["total_steps"] == 300
    capsys.readouterr()

    # Re-running skips every complete cell (nothing is trained again).
    mtimes = [(d / "summary.json").stat().st_mtime_ns for d in dirs]
    assert cli_main(["experiment", str(path), "--out", str(out), "--workers", "1"]) == 0
    assert "done: 3 complete" in capsys.readouterr().out
    assert [(d / "summary.json").stat().st_mtime_ns for d in dirs] == mtimes

    # A cell without summary.json is partial: reported, never overwritten (without resume).
    monkeypatch.setattr(experiment, "_resume_fn", lambda: None)
    (dirs[2] / "summary.json").unlink()
    assert cli_main(["experiment", str(path), "--out", str(out), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "td3 default seed 0: PARTIAL" in captured.out
    assert "not resumed" in captured.err
    assert not (dirs[2] / "summary.json").exists()

    # A directory holding another configuration is refused, naming the field.
    assert (
        cli_main(
            [
                "experiment",
                str(path),
                "--out",
                str(out),
                "--workers",
                "1",
                "--set",
                "eval_episodes=2",
            ]
        )
        == 2
    )
    assert "eval_episodes" in capsys.readouterr().err


def test_bad_inputs_are_refused(tmp_path, capsys):
    assert cli_main(["experiment", "nope"]) == 2
    assert "paper" in capsys.readouterr().err  # lists the shipped experiments
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace('"sac.batch_size"', '"sac.batchsize"'))
    assert cli_main(["experiment", str(path), "--dry-run"]) == 2
    assert "sac.batchsize" in capsys.readouterr().err
    assert cli_main(["experiment", "paper", "--only", "fig9", "--dry-run"]) == 2
    assert "fig9" in capsys.readouterr().err


@pytest.mark.parametrize("item", ["warmup_steps", "=3"])
def test_set_needs_field_and_value(item):
    with pytest.raises(experiment.ExperimentError, match="FIELD=VALUE"):
        experiment._parse_sets([item])


def test_preset_per_grid_is_its_own_variant():
    spec = {
        "defaults": {"seeds": [0], "total_steps": 1000},
        "grid": [
            {"name": "a", "envs": ["Pendulum-v1"], "algos": ["sac-awmp"]},
            {
                "name": "b",
                "envs": ["Pendulum-v1"],
                "algos": ["sac-awmp"],
                "set": {"preset": "reference-code"},
            },
            {
                "name": "c",
                "envs": ["Pendulum-v1"],
                "algos": ["sac-awmp"],
                "vary": {"preset": ["paper", "reference-code"]},
            },
        ],
    }
    cells = experiment.expand(spec)
    assert [(c.variant, c.grids) for c in cells] == [
        ("", ["a", "c"]),
        ("preset=reference-code", ["b", "c"]),
    ]
    ref = cells[1].config
    assert ref.preset == "reference-code" and ref.awmp.acting == "weighted"
    assert "--preset reference-code" in experiment.train_command(ref, Path("x"))


def test_bad_worker_counts_are_refused(tmp_path, capsys):
    """The layout comes from placement.plan_layout, which refuses counts below 1."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "runs"
    for args, message in (
        (["--workers", "0"], "invalid workers 0: must be >= 1"),
        (["--threads-per-run", "-1"], "invalid threads per run -1: must be >= 1"),
    ):
        assert cli_main(["experiment", str(path), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("awmp: error:") and message in err, err
    assert not out.exists()


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_experiment_file_expands_into_valid_cells(path):
    """The study files under experiments/ (the commands of docs/RESULTS.md) stay runnable as
    the code changes: every cell's config validates and names a registered environment."""
    import gymnasium as gym

    import awmp  # noqa: F401  (registers awmp/Switch-v0 and awmp/Fork-v0)

    _, spec = experiment.load_experiment(str(path))
    cells = experiment.expand(spec)
    assert cells
    for cell in cells:
        assert cell.env in gym.registry, (path.name, cell.env)
