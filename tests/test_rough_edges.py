"""Small pieces of the command line and the Python API: `awmp train` writes the learning curve,
`awmp eval --which best`, `policy.act` in the action space's dtype, and `awmp inspect`'s warning
when the prior has not been trained yet. One tiny SAC-AWMP run through the real `awmp train`."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import awmp
from awmp.cli import main as cli_main
from awmp.cli_train import parse_train_config
from awmp.envs import make_env
from awmp.evaluate import BEST_PARAMS_FILE, run_episodes
from awmp.inspect import first_prior_burst, prior_note
from awmp.train import train

TINY_AWMP = [
    "--algo", "sac-awmp", "--env", "Pendulum-v1", "--total-steps", "300",
    "--warmup-steps", "100", "--eval-interval", "100", "--eval-episodes", "1",
    "--log-interval", "100", "--checkpoint-interval", "100", "--no-progress",
    "--awmp.hidden", "16", "16", "--awmp.policy-hidden", "16", "16",
    "--awmp.prior-hidden", "16", "16", "--awmp.batch-size", "16",
    "--awmp.prior-interval", "200", "--awmp.prior-steps", "10",
    "--awmp.prior-batch-size", "16",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished 300-step SAC-AWMP run made by `awmp train` (its prior trained at step 200)."""
    out = tmp_path_factory.mktemp("edges") / "run"
    assert cli_main(["train", *TINY_AWMP, "--run-dir", str(out)]) == 0
    return out


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_awmp_train_writes_the_learning_curve(run_dir):
    import matplotlib.image

    png = run_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert height > 100 and width > 100


def test_eval_which_best_evaluates_the_best_parameters(run_dir, capsys):
    assert cli_main(["eval", str(run_dir), "--which", "best", "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == str(run_dir / BEST_PARAMS_FILE)
    # The same episodes, rolled out here with the best parameters loaded through the API.
    policy = awmp.load(run_dir, which="best")
    env, _ = make_env("Pendulum-v1", seed=12345)
    returns, _ = run_episodes(lambda o: policy.act_normalized(o, True), env, 2)
    assert result["returns"] == returns
    # ...which are not those of the final parameters when the best evaluation was another.
    final = awmp.load(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["best_eval_step"] != summary["final_eval_step"]:
        obs = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
        assert not np.array_equal(policy.act(obs), final.act(obs))
    # A nonsense choice is one line, exit 2.
    assert cli_main(["eval", str(run_dir), "--which", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


class _Float64Actions(gym.Env):
    """Pendulum's observation size with a float64 action box [-1, 3]."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 3.0, (1,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


def test_act_returns_the_action_spaces_dtype(run_dir, tmp_path):
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    policy = awmp.load(run_dir)
    assert gym.make("Pendulum-v1").action_space.dtype == np.float32
    actions = policy.act(obs)
    assert actions.dtype == np.float32 and policy.act(obs[0]).dtype == np.float32
    a = policy.act_normalized(obs)  # [-1, 1]; Pendulum's box is [-2, 2]
    np.testing.assert_allclose(actions, 2.0 * a, rtol=1e-6, atol=1e-6)
    # The same parameters acting in a float64 box [-1, 3]: float64, mapped affinely.
    if "awmptest/Float64Actions-v0" not in gym.registry:
        gym.register("awmptest/Float64Actions-v0", entry_point=_Float64Actions)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "config.json").read_text())
    meta["config"]["env"] = "awmptest/Float64Actions-v0"
    (copy / "config.json").write_text(json.dumps(meta))
    wide = awmp.load(copy).act(obs)
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, -1.0 + (a.astype(np.float64) + 1.0) * 2.0, rtol=1e-6)


def test_prior_note_agrees_with_the_bursts_train_csv_records(run_dir):
    """prior_note is None at exactly the logged steps whose train.csv row has prior metrics."""
    cfg = awmp.load(run_dir).config
    rows = _rows(run_dir / "train.csv")
    prior_cols = [c for c in rows[0] if c.startswith("prior")]
    assert prior_cols
    seen = []
    for r in rows:
        trained = any(r[c] != "" for c in prior_cols)
        assert (prior_note(cfg, int(r["step"])) is None) == trained, r["step"]
        seen.append(trained)
    assert seen == [False, True, True]  # steps 100, 200, 300
    assert first_prior_burst(cfg) == 200
    cfg.warmup_steps = 400  # the first burst after the warm-up's end
    assert first_prior_burst(cfg) == 600
    cfg.awmp.num_components = 1
    assert first_prior_burst(cfg) is None and "O = 1" in prior_note(cfg, 10**6)


def test_inspect_warns_when_the_prior_is_untrained(run_dir, tmp_path, capsys):
    assert cli_main(["inspect", str(run_dir), "--out", str(tmp_path / "a")]) == 0
    assert "prior has not been trained" not in capsys.readouterr().err

    class StopAt150(awmp.Callback):
        def on_step(self, step):
            return step == 150

    cfg = parse_train_config([*TINY_AWMP, "--run-dir", str(tmp_path / "early")])
    early, summary = train(cfg, callbacks=[StopAt150()])
    assert summary["steps_done"] == 150
    capsys.readouterr()
    assert cli_main(["inspect", str(early), "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "warning: the prior has not been trained yet" in err
    assert "first burst comes after step 200" in err and "of step 150" in err
    notes = json.loads((tmp_path / "b" / "inspect.json").read_text())["notes"]
    assert any("not been trained" in n for n in notes)
