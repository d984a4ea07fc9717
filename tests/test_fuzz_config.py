"""Fuzz the config surface: every generated config or command line either trains a few steps or
is refused with one clear line (a ConfigError, EnvError, ... message; exit code 2 or 3), never a
traceback.

Configs start from a tiny valid one and have up to three fields replaced by values drawn from a
mix of valid, boundary and invalid ones (NaN, infinities, negatives, zero, wrong names), so about
half of them run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import small_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import compile_cache  # noqa: F401 - autouse fixture

from awmp.checkpoint import CheckpointError
from awmp.cli import main
from awmp.config import ConfigError
from awmp.envs import EnvError
from awmp.train import DivergenceError, RunDirError, train

CLEAR_ERRORS = (ConfigError, EnvError, RunDirError, CheckpointError, DivergenceError)

ints = st.integers(-3, 40)
floats = st.sampled_from([0.0, 1e-4, 0.005, 0.2, 0.99, 1.0, 1.5, -1.0, math.nan, math.inf, 1e3])
sizes = st.lists(st.integers(-1, 8), min_size=0, max_size=3).map(tuple)

TOP = {
    "algo": st.sampled_from(["sac", "td3", "sac-awmp", "ppo"]),
    "env": st.sampled_from(["Pendulum-v1", "CartPole-v1", "NoSuchEnv-v0", "", "test/Asym-v0"]),
    "seed": st.one_of(ints, st.just(2**31), st.just(-(2**40))),
    "total_steps": st.integers(-2, 30),
    "warmup_steps": ints,
    "buffer_size": ints,
    "updates_per_step": st.integers(-1, 3),
    "eval_interval": ints,
    "eval_episodes": st.integers(-1, 2),
    "log_interval": ints,
    "checkpoint_interval": ints,
    "keep_checkpoints": st.integers(-1, 3),
}
SECTIONS = {
    "sac": {"hidden": sizes, "batch_size": ints, "lr": floats, "tau": floats, "gamma": floats,
            "alpha": floats, "learn_alpha": st.booleans()},
    "td3": {"hidden": sizes, "batch_size": ints, "lr": floats, "gamma": floats,
            "policy_noise": floats, "noise_clip": floats, "policy_delay": st.integers(-1, 3),
            "exploration_noise": floats},
    "awmp": {"hidden": sizes, "policy_hidden": sizes, "prior_hidden": sizes, "batch_size": ints,
             "num_components": st.integers(-1, 3), "prior_interval": ints,
             "prior_steps": st.integers(-1, 5), "prior_batch_size": ints, "zeta": floats,
             "sigma": floats, "gating_temperature": floats, "alpha_pi": floats},
}  # fmt: skip
FIELDS = [(None, k) for k in TOP] + [(s, k) for s, fields in SECTIONS.items() for k in fields]


def _tiny():
    cfg = small_config()
    cfg.total_steps, cfg.warmup_steps, cfg.log_interval = 12, 4, 5
    cfg.eval_interval, cfg.checkpoint_interval = 12, 6
    cfg.td3.hidden, cfg.td3.batch_size = (8,), 4
    a = cfg.awmp
    a.hidden, a.policy_hidden, a.prior_hidden = (8,), (8,), (8,)
    a.num_components, a.batch_size = 2, 4
    a.prior_interval, a.prior_steps, a.prior_batch_size = 5, 2, 4
    cfg.sac.hidden, cfg.sac.batch_size = (8,), 4
    return cfg


@st.composite
def configs(draw):
    cfg = _tiny()
    for section, name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if section is None:
            setattr(cfg, name, draw(TOP[name]))
        else:
            setattr(getattr(cfg, section), name, draw(SECTIONS[section][name]))
    return cfg


def _assert_clear(message: str) -> None:
    assert message and "\n" not in message.strip(), repr(message)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs())
def test_fuzzed_configs_run_or_are_refused_clearly(cfg):
    run_dir = Path(tempfile.mkdtemp()) / "run"
    cfg.run_dir = str(run_dir)
    try:
        out, summary = train(cfg)
    except CLEAR_ERRORS as e:
        _assert_clear(str(e))
    else:
        assert summary["steps_done"] == cfg.total_steps
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)


FLAGS = [
    "--total-steps", "--warmup-steps", "--buffer-size", "--updates-per-step", "--eval-interval",
    "--eval-episodes", "--log-interval", "--checkpoint-interval", "--keep-checkpoints", "--seed",
    "--algo", "--env", "--preset", "--sac.hidden", "--sac.gamma", "--sac.lr", "--sac.alpha",
    "--sac.learn-alpha", "--td3.policy-delay", "--awmp.num-components", "--awmp.prior-steps",
    "--resume", "--run-dir", "--bogus", "--sac.nope", "-x",
]  # fmt: skip
TOKENS = ["0", "-1", "1", "3", "8", "nan", "inf", "abc", "", "1e9", "0.5", "True", "td3",
          "paper", "Pendulum-v1", "blocked/run"]  # fmt: skip
# Relative paths (--run-dir 8, --resume blocked/run) resolve inside a fresh temp directory.


@st.composite
def argv_lists(draw):
    extra = []
    for _ in range(draw(st.integers(0, 3))):
        extra.append(draw(st.sampled_from(FLAGS)))
        extra += draw(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=2))
    return extra


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(extra=argv_lists())
def test_fuzzed_command_lines_run_or_are_refused_clearly(extra):
    tmp = Path(tempfile.mkdtemp())
    (tmp / "blocked").write_text("")  # a file: blocked/run cannot be created
    cwd = os.getcwd()
    base = ["train", "--total-steps", "10", "--warmup-steps", "4", "--eval-interval", "10",
            "--eval-episodes", "1", "--log-interval", "5", "--no-progress",
            "--sac.hidden", "8", "--sac.batch-size", "4", "--td3.hidden", "8",
            "--td3.batch-size", "4", "--run-dir", str(tmp / "run")]  # fmt: skip
    err, out = io.StringIO(), io.StringIO()
    try:
        os.chdir(tmp)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main([*base, *extra])
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)
    text = err.getvalue()
    assert "Traceback" not in text
    assert code in (0, 2, 3), (code, text)
    if code:
        last = text.strip().splitlines()[-1]
        assert last.startswith("awmp: error: "), text


def test_one_config_diff_rule_for_resume_experiment_and_report():
    """config_diff: dotted fields set differently in both; a field one side lacks (another awmp
    version) is no difference; the non-experiment fields never are; lists equal tuples."""
    from awmp.config import NON_EXPERIMENT_FIELDS, config_diff, flatten, preset, to_dict

    a = to_dict(preset("paper"))
    b = json.loads(json.dumps(a))  # as read back from config.json: tuples became lists
    assert config_diff(a, b) == []
    b["sac"]["hidden"], b["total_steps"], b["progress"] = [8], 5, not a["progress"]
    del b["awmp"]["zeta"]
    assert config_diff(a, b) == ["sac.hidden", "total_steps"]
    assert config_diff(a, b, ignore=()) == ["progress", "sac.hidden", "total_steps"]
    assert "progress" in NON_EXPERIMENT_FIELDS and "run_dir" in NON_EXPERIMENT_FIELDS
    assert flatten({"a": {"b": [1, 2]}, "c": 3}) == {"a.b": (1, 2), "c": 3}
