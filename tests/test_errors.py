"""Errors: one base, user input apart from divergence and from bugs, one exit-code table."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import small_config

from awmp import errors
from awmp.checkpoint import CheckpointError
from awmp.cli import main, run_train
from awmp.config import ConfigError
from awmp.envs import EnvError
from awmp.experiment import ExperimentError
from awmp.inspect import InspectError
from awmp.logger import LogResumeError
from awmp.report import ReportError
from awmp.runlock import RunLockError
from awmp.sweep import SweepError
from awmp.train import DivergenceError, RunDirError, TrainingInterrupted

USER_ERRORS = [
    ConfigError,
    EnvError,
    RunDirError,
    RunLockError,
    CheckpointError,
    LogResumeError,
    ExperimentError,
    SweepError,
    ReportError,
    InspectError,
]


@pytest.mark.parametrize("cls", USER_ERRORS)
def test_user_errors_share_one_base_and_exit_2(cls):
    assert issubclass(cls, errors.UserError) and issubclass(cls, errors.AwmpError)
    assert not issubclass(cls, DivergenceError)
    assert errors.exit_code(cls("x")) == errors.EXIT_BAD_INPUT == 2


def test_divergence_is_not_bad_input_and_signals_are_not_errors():
    assert issubclass(DivergenceError, errors.AwmpError)
    assert not issubclass(DivergenceError, errors.UserError)
    assert errors.exit_code(DivergenceError("x")) == errors.EXIT_DIVERGED == 3
    assert not issubclass(TrainingInterrupted, Exception)  # `except Exception` lets it through


def test_a_bug_is_a_crash_not_bad_input(tmp_path):
    """A plain ValueError (a programming error, here from a step callback) propagates: it is
    not reported as bad input with exit 2."""
    cfg = small_config(run_dir=str(tmp_path / "run"), total_steps=20, warmup_steps=10)

    def buggy(step: int) -> None:
        raise ValueError("a bug, not the user's input")

    with pytest.raises(ValueError, match="a bug"):
        run_train(cfg, on_step=buggy)


def test_bad_input_is_exit_2_in_one_line(capsys):
    assert main(["train", "--env", "Pendulum-v1", "--total-steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("awmp: error: invalid --total-steps") and "Traceback" not in err


def test_the_command_crashes_with_a_traceback_and_exit_1(tmp_path):
    """`awmp` itself: an unexpected exception prints its traceback and exits 1."""
    code = (
        "import sys, awmp.cli as c\n"
        "def broken(argv):\n"
        "    raise KeyError('bug')\n"
        "c.COMMANDS['report'] = broken\n"
        "sys.exit(c.main(['report', 'x']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'bug'" in proc.stderr
