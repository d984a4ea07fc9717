"""The rough edges a new user hit (items 1, 3, 4, 6, 8, 11, 12).

CLI behaviour goes through the real `awmp` command in a subprocess (no TTY there, as under
nohup, Slurm or CI); the Python API in process. Item 7 is in test_bad_input.py (its fault env).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import flax.serialization
import gymnasium as gym
import jax
import numpy as np
import pytest
from conftest import BoxEnv, small_config
from reliability import subprocess_env

import awmp
from awmp import algos
from awmp.cli import main as cli_main
from awmp.cli import parse_train_config
from awmp.config import ConfigError, from_dict, preset, to_dict
from awmp.envs import make_env
from awmp.evaluate import PARAMS_FILE
from awmp.progress import TrainProgress
from awmp.train import resume

TINY = [
    "--env", "Pendulum-v1",
    "--total-steps", "300",
    "--warmup-steps", "100",
    "--eval-interval", "150",
    "--eval-episodes", "1",
    "--log-interval", "100",
    "--sac.hidden", "16", "16",
    "--sac.batch-size", "16",
]  # fmt: skip


def _awmp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "awmp.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _error_line(res: subprocess.CompletedProcess) -> str:
    """The one `awmp: error:` line of a refused command (exit code 2, no traceback)."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("awmp: error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A tiny run trained by `awmp train` without a TTY and without --no-progress."""
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    res = _awmp("train", *TINY, "--run-dir", str(run_dir), env=subprocess_env(tmp_path_factory))
    assert res.returncode == 0, res.stderr
    return run_dir, res


# ----------------------------------------------------------------------------- item 1


def test_without_a_tty_a_plain_line_every_log_interval(plain_run):
    _, res = plain_run
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("awmp: step ")]
    assert [ln.split()[2] for ln in lines] == ["100/300", "200/300", "300/300"], res.stderr
    for ln in lines:
        for part in ("steps/s", "elapsed ", "ETA ", "eval ", "q_loss ", "pi_loss "):
            assert part in ln, ln
    assert re.search(r"\| eval -?\d+\.\d \|", lines[-1]), lines[-1]  # the last evaluation
    assert "ETA 0:00:00" in lines[-1]
    assert json.loads(res.stdout)["steps_done"] == 300  # stdout stays the JSON summary


def test_progress_line_contents_and_silence(capsys):
    p = TrainProgress(1000, enabled=True, log_interval=250, plain=True, start=200)
    p._t0 -= 10.0  # 10 s ago
    p.set_eval(-123.456)
    p.set_losses({"q_loss": 1.5, "pi_loss": -2.25, "alpha": 0.2, "q_mean": 7.0})
    line = p.line(700, now=p._t0 + 10.0)
    assert line == (
        "awmp: step 700/1000 (70%) | 50 steps/s | elapsed 0:00:10 | ETA 0:00:06 | eval -123.5 | "
        "q_loss 1.5 pi_loss -2.25 alpha 0.2"
    )
    for step in range(201, 1001):
        p.advance(step)
    err = capsys.readouterr().err
    assert [ln.split()[2] for ln in err.splitlines()] == ["250/1000", "500/1000", "750/1000",
                                                          "1000/1000"]  # fmt: skip
    quiet = TrainProgress(1000, enabled=False, log_interval=250, plain=True)
    with quiet:
        for step in range(1, 1001):
            quiet.advance(step)
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------------------- item 12


def test_resuming_a_finished_run_does_nothing(plain_run, tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    shutil.copytree(plain_run[0], run_dir)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    res = _awmp("train", "--resume", str(run_dir), env=subprocess_env(tmp_path_factory))
    assert res.returncode == 0, res.stderr
    assert f"awmp: {run_dir}: already finished (300 of 300 steps); nothing to do" in res.stderr
    assert "from step" not in res.stderr  # not "resuming ... from step 300"
    assert json.loads(res.stdout) == json.loads((run_dir / "summary.json").read_text())
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    assert after == before  # no new events file, nothing rewritten
    # The Python form says the same and returns the saved summary.
    got_dir, summary = resume(run_dir, progress=False)
    assert got_dir == run_dir and summary["steps_done"] == 300


# ----------------------------------------------------------------------------- item 3


@pytest.fixture(scope="module", params=["sac", "sac-awmp", "td3", "crossq"])
def saved_policy(request, tmp_path_factory):
    """A run directory of each algorithm holding its initial parameters (no training needed)."""
    cfg = preset("paper")
    cfg.algo, cfg.env = request.param, "test/Asym-v0"  # obs (2,), actions (2,) in asymmetric bounds
    for section in (cfg.sac, cfg.td3, cfg.awmp, cfg.crossq):
        section.hidden = (8, 8)
    cfg.awmp.policy_hidden, cfg.awmp.prior_hidden = (8, 8), (8, 8)
    cfg.crossq.policy_hidden = (8, 8)
    run_dir = tmp_path_factory.mktemp(request.param)
    _, spec = make_env(cfg.env)
    state = algos.get(cfg.algo).make_agent(spec, cfg.algo_config()).init(jax.random.PRNGKey(0))
    (run_dir / "config.json").write_text(json.dumps({"config": to_dict(cfg)}))
    (run_dir / PARAMS_FILE).write_bytes(flax.serialization.to_bytes(state))
    return awmp.load(run_dir)


@pytest.mark.parametrize("deterministic", [True, False])
def test_act_takes_one_observation_or_a_batch_for_every_algorithm(saved_policy, deterministic):
    policy = saved_policy
    batch = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    for fn, low, high in (
        (policy.act_normalized, -1.0, 1.0),
        (policy.act, np.array([0.0, -3.0]), np.array([10.0, 1.0])),
    ):
        one = fn(batch[0], deterministic=deterministic)
        many = fn(batch, deterministic=deterministic)
        assert one.shape == (2,) and many.shape == (5, 2)
        assert np.all((low <= many) & (many <= high)) and np.all((low <= one) & (one <= high))
        if deterministic:
            np.testing.assert_allclose(one, many[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected an observation of shape \(2,\)"):
        policy.act_normalized(np.zeros(3))
    with pytest.raises(ValueError, match=r"expected an observation of shape \(2,\)"):
        policy.act(np.zeros((1, 1, 2)))


# ----------------------------------------------------------------------------- item 4


def test_env_module_that_does_not_exist(tmp_path):
    line = _error_line(_awmp("train", "--env", "nosuchmod_awmp:Foo-v0", "--run-dir", str(tmp_path)))
    assert line == (
        "awmp: error: cannot import module 'nosuchmod_awmp' for environment "
        "'nosuchmod_awmp:Foo-v0': ModuleNotFoundError: No module named 'nosuchmod_awmp'"
    )


def test_env_module_whose_import_fails(tmp_path):
    (tmp_path / "brokenenvs_awmp.py").write_text("raise RuntimeError('needs a licence file')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    run_dir = tmp_path / "run"
    res = _awmp("train", "--env", "brokenenvs_awmp:Foo-v0", "--run-dir", str(run_dir), env=env)
    assert _error_line(res) == (
        "awmp: error: cannot import module 'brokenenvs_awmp' for environment "
        "'brokenenvs_awmp:Foo-v0': RuntimeError: needs a licence file"
    )
    assert not run_dir.exists()


# ----------------------------------------------------------------------------- item 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run-dir", ""], r"invalid --run-dir \(run_dir\)='': give a directory"),
        (["--run-dir="], r"invalid --run-dir \(run_dir\)=''"),
        (
            ["--resume", "RUN", "--run-dir", "ELSEWHERE"],
            r"--run-dir cannot be combined with --resume: a run continues in its own directory "
            r"\(RUN\)",
        ),
    ],
)
def test_ambiguous_run_flags_are_refused(tmp_path, args, message):
    line = _error_line(_awmp("train", *args))
    assert re.search(message, line), line
    assert not Path("ELSEWHERE").exists()


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (
            ["--algo", "td3", "--sac.hidden", "8", "8"],
            "awmp: warning: --sac.hidden applies only to --algo sac; this run is --algo td3 and "
            "ignores it (did you mean --td3.hidden?)",
        ),
        (
            ["--algo", "sac", "--awmp.num-components=8", "--td3.tau", "0.1", "--td3.tau", "0.2"],
            "awmp: warning: --awmp.num-components, --td3.tau apply only to --algo sac-awmp, td3; "
            "this run is --algo sac and ignores them (did you mean --sac.tau?)",
        ),
        (  # a section whose flags tyro spells with a hyphen (td3_awmp -> --td3-awmp.*)
            ["--algo", "td3", "--td3-awmp.num-components", "2", "--td3-awmp.tau", "0.1"],
            "awmp: warning: --td3-awmp.num-components, --td3-awmp.tau apply only to --algo "
            "td3-awmp; this run is --algo td3 and ignores them (did you mean --td3.tau?)",
        ),
    ],
)
def test_flags_of_another_algorithm_are_named_once(args, warning):
    # --eval-episodes 0 stops the command right after parsing: no training needed.
    res = _awmp("train", *args, "--eval-episodes", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        warning,
        "awmp: error: invalid --eval-episodes (eval_episodes)=0: must be >= 1",
    ]


def test_empty_run_dir_is_refused_in_python():
    cfg = preset("paper")
    cfg.run_dir = ""
    with pytest.raises(ConfigError, match="invalid run_dir=''"):
        awmp.train(cfg)


# ----------------------------------------------------------------------------- item 8


class Float64Env(gym.Env):
    """float64 action bounds, as many third-party and MuJoCo-style envs declare them."""

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(
            np.array([-2.0, 0.0]), np.array([2.0, 5.0]), dtype=np.float64
        )
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action):
        self.last_action = np.asarray(action)
        return np.zeros(2), 0.0, False, False, {}


if "test/Float64-v0" not in gym.registry:
    gym.register("test/Float64-v0", entry_point=Float64Env, max_episode_steps=5)


def test_float64_action_bounds_give_no_warning():
    assert Float64Env().action_space.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env, spec = make_env("test/Float64-v0", seed=0)
        env.step(np.array([1.0, -1.0], np.float32))
        assert np.allclose(env.unwrapped.last_action, [2.0, 0.0])  # still mapped affinely
        env.step(np.array([-1.0, 0.5], np.float32))
        assert np.allclose(env.unwrapped.last_action, [-2.0, 3.75])
        env.close()
    assert spec.act_dim == 2


# ----------------------------------------------------------------------------- item 11


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--total-steps", "0"], r"^awmp: error: invalid --total-steps \(total_steps\)=0: must be"),
        (["--sac.gamma", "1.5"], r"invalid --sac\.gamma \(sac\.gamma\)=1\.5: must be in \(0, 1\]"),
        (
            ["--algo", "ppo"],
            r"invalid --algo \(algo\)='ppo': must be one of sac, sac-awmp, td3, crossq",
        ),
        (
            ["--total-step", "5"],
            r"Unrecognized options: --total-step, 5; did you mean "
            r"--total-steps\?",
        ),  # fmt: skip
        (["--sac.hiden", "8"], r"did you mean --sac\.hidden\?"),
        (["--total-steps", "1.5e-3"], r"write a whole number, e\.g\. 1000000, 1_000_000 or 1e6"),
        # 1e6 parses as 1000000: the error is about the next flag, not about --total-steps
        (
            ["--total-steps", "1e6", "--eval-episodes", "0"],
            r"^awmp: error: invalid --eval-episodes \(eval_episodes\)=0",
        ),  # fmt: skip
    ],
)
def test_errors_name_the_flag_the_user_typed(args, message):
    line = _error_line(_awmp("train", *args))
    assert re.search(message, line), line


def test_integer_budgets_in_scientific_notation():
    cfg = parse_train_config(["--total-steps", "1e6", "--warmup-steps=2.5e4", "--seed", "7"])
    assert (cfg.total_steps, cfg.warmup_steps, cfg.seed) == (1_000_000, 25_000, 7)
    assert parse_train_config(["--sac.lr", "1e-4"]).sac.lr == pytest.approx(1e-4)  # floats as is


def test_version_and_help_cosmetics():
    res = _awmp("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"awmp {awmp.__version__}"
    res = _awmp("train", "--help")
    assert res.returncode == 0
    for bad in ("{None}|STR", "(default: )", "--seeds [INT"):
        assert bad not in res.stdout
    text = " ".join(res.stdout.split())
    assert "--run-dir DIR" in text and "--resume DIR" in text
    assert "--seeds S[,S...]" in text and "(default: none, one run with --seed)" in text
    widths = {len(ln) for ln in res.stdout.splitlines() if ln.startswith("\u2502")}
    assert len(widths) == 1, widths  # the help box's lines all still end at its border


# ----------------------------------------------------------------------------- item 13


def test_the_command_keeps_compiled_programs_and_off_turns_it_off(plain_run, tmp_path):
    """`awmp eval` fills the persistent compilation cache named by AWMP_COMPILE_CACHE; a second
    run reads it (same result); AWMP_COMPILE_CACHE=off writes nothing."""
    run_dir, _ = plain_run
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    cache = tmp_path / "xla"
    outs = []
    for _ in range(2):
        res = _awmp(
            "eval", str(run_dir), "--episodes", "1", env={**env, "AWMP_COMPILE_CACHE": str(cache)}
        )
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout)["returns"])
    assert cache.is_dir() and any(cache.iterdir())
    assert outs[0] == outs[1]
    off = tmp_path / "off"
    res = _awmp(
        "eval",
        str(run_dir),
        "--episodes",
        "1",
        env={**env, "AWMP_COMPILE_CACHE": "off", "XDG_CACHE_HOME": str(off)},
    )
    assert res.returncode == 0, res.stderr
    assert not off.exists()


@pytest.mark.parametrize("algo", ["sac", "sac-awmp", "td3", "crossq"])
def test_load_reads_the_saved_values_without_running_init(algo, tmp_path, monkeypatch):
    """awmp.load builds the state's structure with jax.eval_shape (init is traced, never run)
    and ends with exactly the saved values (final_params.msgpack: the acting fields; the other
    fields are NaN, integers 0)."""
    cfg = small_config(algo, run_dir=str(tmp_path / "r"))
    cfg.total_steps, cfg.progress = 150, False
    cfg.sac.hidden = cfg.td3.hidden = cfg.awmp.hidden = cfg.crossq.hidden = (16, 16)
    cfg.awmp.policy_hidden = cfg.awmp.prior_hidden = cfg.crossq.policy_hidden = (16, 16)
    awmp.train(cfg)
    saved = flax.serialization.msgpack_restore((tmp_path / "r" / PARAMS_FILE).read_bytes())
    real_get = algos.get
    eager = []

    def spy(name):
        entry = real_get(name)

        class Wrapped:
            def make_agent(self, spec, c):
                agent = entry.make_agent(spec, c)
                init = agent.init

                def counting_init(key):
                    eager.append(not isinstance(key, jax.core.Tracer))
                    return init(key)

                return dataclasses.replace(agent, init=counting_init)

        return Wrapped()

    monkeypatch.setattr(algos, "get", spy)
    policy = awmp.load(tmp_path / "r")
    assert eager == [False]  # traced once by eval_shape, never run on real arrays
    got = flax.serialization.to_state_dict(policy.state)
    assert set(saved) == set(policy.restored) == set(policy.agent.acting_fields)
    for name in got.keys() - saved.keys():
        for x in jax.tree.leaves(got[name]):
            x = np.asarray(x)
            assert np.all(np.isnan(x) if np.issubdtype(x.dtype, np.inexact) else x == 0), name
    flat_saved = jax.tree.leaves(saved)
    flat_got = jax.tree.leaves({name: got[name] for name in saved})
    assert len(flat_saved) == len(flat_got)
    for a, b in zip(flat_saved, flat_got, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- item 10


def test_tensorboard_reads_the_event_files(plain_run):
    """TensorBoard's own reader opens a run's events: the evaluation scalars are eval.csv's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = plain_run
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"eval/return_mean", "train/q_loss", "train/steps_per_s"} <= tags
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    events = acc.Scalars("eval/return_mean")
    assert [e.step for e in events] == [int(r["step"]) for r in rows]
    for e, r in zip(events, rows, strict=True):
        assert e.value == pytest.approx(float(r["return_mean"]), rel=1e-6)


# ----------------------------------------------------------------------------- item 21


class _FilmedEnv(BoxEnv):
    """conftest's BoxEnv with rgb_array frames: flat grey levels 20 * t (t = steps taken)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        super().__init__()
        self.render_mode = render_mode

    def render(self):
        return np.full((32, 32, 3), 20 * self.t, np.uint8)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_eval_films_any_algorithm(algo, tmp_path, capsys):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the video extra")

    if "test/Filmed-v0" not in gym.registry:
        gym.register("test/Filmed-v0", entry_point=_FilmedEnv, max_episode_steps=5)
    cfg = small_config(algo, env="test/Filmed-v0", run_dir=str(tmp_path / "r"))
    cfg.total_steps, cfg.warmup_steps, cfg.eval_interval, cfg.progress = 60, 20, 30, False
    cfg.sac.hidden = cfg.td3.hidden = (8,)
    awmp.train(cfg)
    out = tmp_path / "film" / "eval.mp4"
    assert cli_main(["eval", str(tmp_path / "r"), "--episodes", "3", "--video", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["video"] == str(out) and result["frames"] == 3 * 6  # reset + 5 steps each
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (32, 32)
    frames = [np.frombuffer(f, np.uint8) for f in reader]
    assert len(frames) == 18
    levels = [float(np.mean(f)) for f in frames]
    assert levels[:6] == pytest.approx([0, 20, 40, 60, 80, 100], abs=4)  # lossy codec


def test_eval_video_without_the_extra_is_one_line(tmp_path, capsys, monkeypatch, plain_run):
    run_dir, _ = plain_run
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    assert cli_main(["eval", str(run_dir), "--video", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "awmp: error: --video needs imageio and imageio-ffmpeg: pip install 'awmp[video]'"
    ]
    assert not (tmp_path / "x.mp4").exists()


def test_eval_action_on_a_run_that_is_not_sac_awmp_is_one_line(capsys, plain_run):
    run_dir, _ = plain_run  # a SAC run
    assert cli_main(["eval", str(run_dir), "--eval-action", "argmax"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"awmp: error: eval_action applies to sac-awmp runs; {run_dir} is sac"]


# ----------------------------------------------------------------------------- item 17


def test_config_file_sets_fields_and_flags_override_it(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'algo = "td3"\nenv = "Hopper-v5"\ntotal_steps = 5000\n"td3.hidden" = [64, 32]\n'
        "[td3]\nbatch_size = 32\n"
    )
    cfg = parse_train_config(["--config-file", str(path), "--total-steps", "7000"])
    assert (cfg.algo, cfg.env, cfg.total_steps) == ("td3", "Hopper-v5", 7000)
    assert (cfg.td3.hidden, cfg.td3.batch_size) == ((64, 32), 32)
    assert cfg.td3.lr == preset("paper").td3.lr  # the rest from the preset
    cfg = parse_train_config(["--config-file", str(path), "--algo", "sac"])
    assert cfg.algo == "sac" and cfg.td3.batch_size == 32


def test_a_runs_config_json_is_a_config_file(plain_run):
    """RL Zoo's habit: rerun a run from its config.json; only where it goes is dropped."""
    run_dir, _ = plain_run
    saved = to_dict(from_dict(json.loads((run_dir / "config.json").read_text())["config"]))
    cfg = parse_train_config(["--config-file", str(run_dir / "config.json")])
    got = to_dict(cfg)
    assert saved.pop("run_dir") == str(run_dir) and got.pop("run_dir") is None
    saved.pop("resume"), got.pop("resume")
    assert got == saved


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("total_step = 5\n", ".toml", "field total_step (did you mean total_steps?)"),
        ("[sac]\nhiden = [8]\n", ".toml", "field sac.hiden (did you mean sac.hidden?)"),
        ('algo = "td3"\n[[x]\n', ".toml", "not valid TOML"),
        ("[1, 2]", ".json", "expected a table of config fields"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, text, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    line = _error_line(_awmp("train", "--config-file", str(path)))
    assert message in line, line
    missing = _error_line(_awmp("train", "--config-file", str(tmp_path / "nope.toml")))
    assert "no config file" in missing


# ----------------------------------------------------------------------------- items 5, 15


def test_automatic_checkpoint_cadence_is_clamped_and_absurd_budgets_refused():
    from awmp import rundir

    def every(total, explicit=0):
        cfg = preset("paper")
        cfg.total_steps, cfg.checkpoint_interval = total, explicit
        return rundir.checkpoint_interval(cfg), rundir.checkpoint_seconds(cfg)

    assert every(2_000) == (1_000, 1_800.0)  # a short run: 2 checkpoints, not 20
    assert every(300_000) == (15_000, 1_800.0)  # 5% in between
    assert every(10**8) == (50_000, 1_800.0)  # never rarer than 50,000 steps or 30 minutes
    assert every(2_000, explicit=100) == (100, None)  # an explicit cadence is kept as given
    line = _error_line(_awmp("train", "--total-steps", "1e15"))
    assert "invalid --total-steps (total_steps)=1000000000000000: must be >= 1 and <= 1e+13" in line


def test_an_automatic_cadence_run_checkpoints_after_its_wall_time_limit(tmp_path, monkeypatch):
    """With the wall-time limit at 0 s every step is overdue: checkpoints at every step (the
    newest two kept), where the step cadence alone (1,000) would write only the final one."""
    from awmp import checkpoint, rundir

    monkeypatch.setattr(rundir, "AUTO_CHECKPOINT_MAX_SECONDS", 0.0)
    cfg = small_config("sac", run_dir=str(tmp_path / "r"))
    cfg.total_steps, cfg.progress, cfg.sac.hidden = 150, False, (8,)
    awmp.train(cfg)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "r")] == [149, 150]
    monkeypatch.setattr(rundir, "AUTO_CHECKPOINT_MAX_SECONDS", 1e9)
    cfg.run_dir = str(tmp_path / "r2")
    awmp.train(cfg)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "r2")] == [150]


# ----------------------------------------------------------------------------- item 14


def test_the_bar_says_what_the_run_is_doing(tmp_path, monkeypatch):
    """The progress bar's label while the run compiles, evaluates, checkpoints and runs a prior
    burst (each a pause of seconds in which the bar used to freeze unlabelled)."""
    from awmp.progress import TrainProgress

    bar = TrainProgress(100, enabled=True, plain=False)
    with bar:
        field = lambda: bar._progress.tasks[0].fields["phase"]  # noqa: E731
        assert field() == "train"
        with bar.phase("evaluating"):
            assert field() == "evaluating"
        assert field() == "train"
        with bar.phase(None):
            assert field() == "train"

    seen = []
    real = TrainProgress.phase

    def record(self, label):
        seen.append(label)
        return real(self, label)

    monkeypatch.setattr(TrainProgress, "phase", record)
    cfg = small_config("sac-awmp", run_dir=str(tmp_path / "r"))
    cfg.progress, cfg.checkpoint_interval = False, 150
    a = cfg.awmp
    a.hidden = a.policy_hidden = a.prior_hidden = (8,)
    a.prior_interval, a.prior_steps = 100, 5
    awmp.train(cfg)
    assert {"compiling", "evaluating", "checkpoint", "prior burst"} <= set(seen)
    assert seen.count("compiling") == 1  # the first fused train step (it also acts) only


# ----------------------------------------------------------------------------- item 19


def test_no_evaluation_and_env_kwargs(tmp_path):
    """--eval-interval 0 trains without a single evaluation; --env-kwargs reach gymnasium.make
    (TOML values typed, other text a string) and are used again by awmp.load."""
    cfg = parse_train_config([
        *TINY, "--eval-interval", "0", "--run-dir", str(tmp_path / "r"), "--no-progress",
        "--env-kwargs", "g=9.0", "max_episode_steps=50",
    ])  # fmt: skip
    assert cfg.env_kwargs == ("g=9.0", "max_episode_steps=50")
    _, summary = awmp.train(cfg)
    assert summary["final_eval_return"] is None
    with open(tmp_path / "r" / "eval.csv") as f:
        assert len(f.read().strip().splitlines()) == 1  # the header only
    policy = awmp.load(tmp_path / "r")
    env, _ = make_env(cfg.env, **{"g": 9.0, "max_episode_steps": 50})
    assert env.unwrapped.g == 9.0 and env.spec.max_episode_steps == 50
    from awmp.config import env_kwargs

    assert env_kwargs(policy.config) == {"g": 9.0, "max_episode_steps": 50}
    with open(tmp_path / "r" / "train.csv") as f:  # episodes of 50 steps: the kwarg was used
        lengths = {float(r["episode_length"]) for r in csv.DictReader(f) if r["episode_length"]}
    assert lengths == {50.0}
    line = _error_line(_awmp("train", *TINY, "--env-kwargs", "novalue"))
    assert "KEY=VALUE" in line


# ----------------------------------------------------------------------------- item 18


def test_best_model_and_load_which(tmp_path):
    """best_params.msgpack holds the agent of the best evaluation: replaying the evaluation
    env's episodes up to eval.csv's best row with it reproduces that row's return. "checkpoint"
    loads the newest checkpoint's agent (the final one at the end; the way to load a run killed
    before its final files); a missing file is one clear error."""
    from awmp import checkpoint
    from awmp.evaluate import run_episodes
    from awmp.seedrun import EVAL_SEED_OFFSET

    cfg = small_config("sac", run_dir=str(tmp_path / "r"))
    cfg.total_steps, cfg.eval_interval, cfg.eval_episodes = 400, 100, 2
    cfg.progress, cfg.sac.hidden, cfg.checkpoint_interval = False, (16, 16), 200
    _, summary = awmp.train(cfg)
    with open(tmp_path / "r" / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    best_i = max(range(len(rows)), key=lambda i: (float(rows[i]["return_mean"]), i))
    best = awmp.load(tmp_path / "r", which="best")
    # the evaluation env's episodes up to the best row, replayed with the best parameters
    env, _ = make_env(cfg.env, seed=cfg.seed + EVAL_SEED_OFFSET)
    for _ in range(best_i + 1):
        rets, _ = run_episodes(lambda o: best.act_normalized(o), env, cfg.eval_episodes)
    assert np.mean(rets) == pytest.approx(float(rows[best_i]["return_mean"]), rel=1e-5)
    final = awmp.load(tmp_path / "r")
    last = awmp.load(tmp_path / "r", which="checkpoint")
    assert last.source == checkpoint.list_checkpoints(tmp_path / "r")[-1][1]
    acting = {n: getattr(final.state, n) for n in final.restored}  # the final file's fields
    in_ckpt = {n: getattr(last.state, n) for n in final.restored}
    for a, b in zip(jax.tree.leaves(acting), jax.tree.leaves(in_ckpt), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    (tmp_path / "r" / "final_params.msgpack").unlink()  # as after kill -9: no final files
    with pytest.raises(FileNotFoundError, match="which='checkpoint' loads an unfinished one"):
        awmp.load(tmp_path / "r")
    assert awmp.load(tmp_path / "r", which="checkpoint").source.suffix == ".ckpt"
