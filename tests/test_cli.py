"""The `awmp` command: one-line refusals with exit code 2, --help, invalid hyperparameters."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from awmp.cli import main
from awmp.config import ConfigError, TrainConfig, preset, validate


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "awmp.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_discrete_env_exits_2_with_one_line(tmp_path):
    res = _run("train", "--algo", "sac", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r"))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [
        "awmp: error: CartPole-v1: only Box (continuous) action spaces are supported, "
        "got Discrete(2)"
    ]
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "r").exists()  # nothing created for a refused run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Hoper-v5"], "did you mean Hopper-v5"),
        (["--sac.gamma", "1.5"], r"invalid --sac.gamma \(sac.gamma\)=1.5: must be in \(0, 1\]"),
        (["--total-steps", "-5"], r"invalid --total-steps \(total_steps\)=-5"),
        (["--algo", "ppo"], r"invalid --algo \(algo\)='ppo'"),
        (["--preset", "nope"], r"invalid --preset \(preset\)='nope'"),
    ],
)
def test_bad_train_input_exits_2(args, message, capsys, tmp_path):
    code = main(["train", "--run-dir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("awmp: error: ")
    import re

    assert re.search(message, err), err


def test_help_lists_every_field_with_its_docstring():
    res = _run("train", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    sections = [("", TrainConfig())]
    sections += [
        (f.name.replace("_", "-") + ".", getattr(TrainConfig(), f.name))  # tyro: --td3-awmp.
        for f in dataclasses.fields(TrainConfig)
        if dataclasses.is_dataclass(getattr(TrainConfig(), f.name))
    ]
    assert {p for p, _ in sections} >= {"", "sac.", "awmp."}
    for prefix, obj in sections:
        for f in dataclasses.fields(obj):
            if dataclasses.is_dataclass(getattr(obj, f.name)):
                continue
            flag = "--" + prefix + f.name.replace("_", "-")
            assert flag in text, flag
    assert "Discount factor" in text and "number of policy components" in text
    for flag in (
        "--algo",
        "--env",
        "--seed",
        "--total-steps",
        "--preset",
        "--eval-interval",
        "--eval-episodes",
        "--run-dir",
    ):
        assert flag in text


def test_top_level_usage_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    assert "awmp train" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_eval_of_missing_run_dir_exits_2(capsys, tmp_path):
    assert main(["eval", str(tmp_path / "nope"), "--episodes", "1"]) == 2
    assert "is not an awmp run directory (no config.json)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("sac", "gamma", 0.0, r"sac.gamma=0.0: must be in \(0, 1\]"),
        ("sac", "gamma", 1.01, r"sac.gamma=1.01: must be in \(0, 1\]"),
        ("sac", "tau", 0.0, r"sac.tau=0.0: must be in \(0, 1\]"),
        ("sac", "tau", 2.0, r"sac.tau=2.0: must be in \(0, 1\]"),
        ("sac", "batch_size", 2_000_000, r"sac.batch_size=2000000: must be <= buffer_size"),
        ("sac", "lr", float("nan"), "sac.lr=nan"),
        ("awmp", "tau_q", 0.0, r"awmp.tau_q=0.0: must be in \(0, 1\]"),
        ("awmp", "num_components", 0, r"awmp.num_components=0: must be in \[1, 64\]"),
        ("", "total_steps", -1, "total_steps=-1: must be >= 1"),
        ("", "warmup_steps", -3, "warmup_steps=-3: must be >= 0"),
        ("", "eval_episodes", 0, "eval_episodes=0: must be >= 1"),
    ],
)
def test_invalid_hyperparameters_are_refused(section, field, value, message):
    cfg = preset("paper")
    if section == "awmp":
        cfg.algo = "sac-awmp"
    setattr(getattr(cfg, section) if section else cfg, field, value)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_presets_are_valid():
    for name in ("paper", "reference-code"):
        for algo in ("sac", "sac-awmp"):
            cfg = preset(name)
            cfg.algo = algo
            validate(cfg)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("fast")
