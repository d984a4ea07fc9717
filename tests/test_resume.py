"""Exact resume: a run stopped at any step and resumed equals the uninterrupted run, bit for bit.

Compared (tests/reliability.py): the final agent state, eval.csv and train.csv; only the
wall-clock columns (wall_s, steps_per_s) are left out.

Two ways to stop: "signal" (as SIGINT: a checkpoint at the stop step, taken mid-episode) and
"crash" (no checkpoint at the stop step: the resume starts from the previous periodic one, so
the CSV rows written after it are cut and written again).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import final_state_bytes, small_config
from faults import SimulatedCrash, stop_at
from reliability import assert_same_run, compile_cache, rows  # noqa: F401 - autouse fixture

from awmp import checkpoint
from awmp.train import TrainingInterrupted, resume, train


def _config(algo: str, env: str, run_dir: Path):
    cfg = small_config(algo=algo, env=env, run_dir=str(run_dir))
    cfg.log_interval = 50
    cfg.checkpoint_interval = 100
    if algo == "sac-awmp":
        a = cfg.awmp
        a.hidden, a.policy_hidden, a.prior_hidden = (32, 32), (32, 32), (32,)
        a.num_components, a.batch_size = 2, 16
        # A prior burst every 40 steps after the warm-up (100): at 120, 160, ..., 280. Log rows
        # (every 50) fall between bursts, so they carry the last burst's metrics over a resume.
        a.prior_interval, a.prior_steps, a.prior_batch_size = 40, 20, 16
    if algo == "td3":
        cfg.td3.hidden, cfg.td3.batch_size = (32, 32), 16
    if algo == "td3-awmp":
        a = cfg.td3_awmp
        a.hidden, a.prior_hidden, a.num_components, a.batch_size = (32, 32), (32,), 2, 16
        a.prior_interval, a.prior_steps, a.prior_batch_size = 40, 20, 16  # as sac-awmp's
    return cfg


_references: dict = {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of (algo, env), made once per module."""

    def get(algo: str, env: str) -> Path:
        if (algo, env) not in _references:
            run_dir = tmp_path_factory.mktemp("ref") / "run"
            train(_config(algo, env, run_dir))
            _references[algo, env] = run_dir
        return _references[algo, env]

    return get


def _stop_and_resume(cfg, step: int, mode: str) -> checkpoint.Checkpoint:
    with pytest.raises((TrainingInterrupted, SimulatedCrash)):
        train(cfg, on_step=stop_at(step, mode))
    ckpt = checkpoint.load_latest(Path(cfg.run_dir))
    resume(cfg.run_dir)
    return ckpt


CASES = [
    pytest.param("sac", "Pendulum-v1", 170, "signal", id="sac-pendulum-signal"),
    pytest.param(
        "sac", "Pendulum-v1", 170, "crash", id="sac-pendulum-crash", marks=pytest.mark.slow
    ),
    pytest.param("sac", "Hopper-v5", 150, "signal", id="sac-hopper-signal", marks=pytest.mark.slow),
    pytest.param("td3", "Hopper-v5", 230, "crash", id="td3-hopper-crash", marks=pytest.mark.slow),
    pytest.param("crossq", "Pendulum-v1", 170, "signal", id="crossq-pendulum-signal"),
    pytest.param(
        "sac-gmm",
        "Pendulum-v1",
        170,
        "signal",
        id="sac-gmm-pendulum-signal",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "crossq", "Hopper-v5", 230, "crash", id="crossq-hopper-crash", marks=pytest.mark.slow
    ),
    pytest.param(
        "sac-awmp",
        "Pendulum-v1",
        130,
        "signal",
        id="awmp-pendulum-signal",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "td3-awmp",
        "Pendulum-v1",
        130,
        "signal",
        id="td3-awmp-pendulum-signal",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "sac-awmp",
        "Hopper-v5",
        170,
        "crash",
        id="awmp-hopper-crash",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("algo", "env", "stop_at", "mode"), CASES)
def test_resume_is_bitwise_identical(reference, tmp_path, algo, env, stop_at, mode):
    ref = reference(algo, env)
    cfg = _config(algo, env, tmp_path / "run")
    ckpt = _stop_and_resume(cfg, stop_at, mode)
    if mode == "signal":
        assert ckpt.loop.step == stop_at
        # Interrupted mid-episode (Pendulum's episodes last 200 steps; Hopper's are checked).
        assert ckpt.loop.ep_len > 0
    else:
        # The crash left rows past the last checkpoint (step 100 or 200); they were redone.
        assert ckpt.loop.step == stop_at // 100 * 100
    if algo in ("sac-awmp", "td3-awmp"):
        # The resumed part contains a prior burst drawn from the restored NumPy generator.
        assert any(
            r.get("prior_loss") not in ("", None) for r in rows(tmp_path / "run" / "train.csv")
        )
    assert_same_run(ref, tmp_path / "run")


def test_resume_of_a_finished_run_changes_nothing(reference, tmp_path):
    ref = reference("sac", "Pendulum-v1")

    def files():
        return (
            (ref / "final_params.msgpack").read_bytes(),
            final_state_bytes(ref),
            rows(ref / "train.csv"),
        )

    before = files()
    _, summary = resume(ref)
    assert summary["steps_done"] == 300 and not summary["interrupted"]
    assert before == files()


def test_checkpoints_keep_the_newest_k_and_leave_no_temp_files(reference):
    ref = reference("sac", "Pendulum-v1")
    found = checkpoint.list_checkpoints(ref)
    assert [s for s, _ in found] == [200, 300]  # interval 100, keep_checkpoints = 2
    assert not list((ref / "checkpoints").glob(".*tmp*"))
    ckpt = checkpoint.load(found[-1][1])
    assert ckpt.buffer["size"] == 300 and ckpt.loop.step == 300
