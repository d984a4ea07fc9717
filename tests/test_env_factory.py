"""`awmp.train(cfg, env=factory)`: an env factory (a callable returning a Gymnasium env, wrappers
and all) instead of a registered id. The run records the factory; resume and `awmp.load` need
the same one again, and say so in one line without it."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from conftest import final_state_bytes, small_config

import awmp
from awmp.cli import main as cli_main
from awmp.envs import EnvError, check_factory, make_env, make_env_from
from awmp.evaluate import PARAMS_FILE, run_episodes
from awmp.train import EVAL_SEED_OFFSET, resume, train

CALLS = {"n": 0}


def tenth_reward_pendulum() -> gym.Env:
    """Pendulum-v1 with every reward divided by 10 (a wrapper a registered id cannot say)."""
    CALLS["n"] += 1
    return gym.wrappers.TransformReward(gym.make("Pendulum-v1"), lambda r: r / 10.0)


def other_factory() -> gym.Env:
    return gym.make("Pendulum-v1")


@pytest.fixture(scope="module")
def factory_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("factory")
    CALLS["n"] = 0
    cfg = small_config(run_dir=str(root / "full"), eval_interval=300)  # one evaluation
    run_dir, summary = train(cfg, env=tenth_reward_pendulum)
    assert CALLS["n"] == 2  # the training env and the evaluation env
    return root, run_dir, summary


def test_a_factory_run_trains_on_the_factorys_env(factory_run):
    _, run_dir, summary = factory_run
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["env"] == "tenth_reward_pendulum" == summary["env"]
    assert meta["env_factory"] == {
        "name": f"{__name__}.tenth_reward_pendulum",
        "env_id": "Pendulum-v1",
    }
    # The in-training evaluation (one, at the end) ran on the wrapped env: the same episode
    # rolled out here on the factory's env gives its return, and on plain Pendulum ten times it.
    policy = awmp.load(run_dir, env=tenth_reward_pendulum)
    returns = []
    for env, _ in (make_env_from(tenth_reward_pendulum), make_env("Pendulum-v1")):
        env.reset(seed=0 + EVAL_SEED_OFFSET)
        returns.append(run_episodes(lambda o: policy.act_normalized(o), env, 1)[0][0])
    assert returns[0] == pytest.approx(summary["final_eval_return"], rel=1e-6)
    assert returns[1] == pytest.approx(10.0 * returns[0], rel=1e-5)


def test_resume_with_the_same_factory_continues_exactly(factory_run, capsys):
    root, full, _ = factory_run

    class StopAt(awmp.Callback):
        def on_step(self, step):
            return step == 150

    cfg = small_config(run_dir=str(root / "stopped"), eval_interval=300)
    stopped, summary = train(cfg, env=tenth_reward_pendulum, callbacks=[StopAt()])
    assert summary["steps_done"] == 150 and summary["stopped_by"] == "callback"
    # Without the factory: one line saying what to pass, from Python and from the command.
    with pytest.raises(EnvError, match=r"trained with the env factory .*tenth_reward_pendulum"):
        resume(stopped)
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "awmp.resume(run_dir, env=factory)" in err
    with pytest.raises(EnvError, match="not .*other_factory: pass the same one"):
        resume(stopped, env=other_factory)
    with pytest.raises(EnvError, match="pass the same one: awmp.load"):
        awmp.load(full)
    assert cli_main(["eval", str(full), "--episodes", "1"]) == 2
    # With it: the same final parameters and state as the run never stopped.
    _, resumed = resume(stopped, env=tenth_reward_pendulum, progress=False)
    assert resumed["steps_done"] == 300 and resumed["stopped_by"] is None
    assert (stopped / PARAMS_FILE).read_bytes() == (full / PARAMS_FILE).read_bytes()
    assert final_state_bytes(stopped) == final_state_bytes(full)


def test_factory_refusals(tmp_path):
    with pytest.raises(EnvError, match="registered env id, not an env factory"):
        check_factory(None, tenth_reward_pendulum, "RUN", "awmp.resume(run_dir)")
    check_factory(None, None, "RUN", "awmp.resume(run_dir)")  # a registered id: nothing to check
    cfg = small_config(run_dir=str(tmp_path / "kw"), env_kwargs=("g=9.0",))
    with pytest.raises(EnvError, match="env_kwargs .* pass them inside it"):
        train(cfg, env=tenth_reward_pendulum)
    with pytest.raises(EnvError, match="returned int, not a Gymnasium env"):
        train(small_config(run_dir=str(tmp_path / "int")), env=lambda: 3)
    with pytest.raises(awmp.config.ConfigError, match="a registered id goes in cfg.env"):
        train(small_config(run_dir=str(tmp_path / "str")), env="Pendulum-v1")
