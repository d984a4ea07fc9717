"""Many seeds in one process (`--seeds`): each seed is the run it would be alone.

A seed trained inside a group must start from the same parameters, draw the same batches and
end (after 100 updates) at the same parameters, to a relative 1e-4 (vmap may change the last
bits), as the same seed trained alone; every seed gets a normal run directory; the group stops
and resumes together (bit for bit) or one seed continues alone.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import final_state, final_state_bytes, small_config
from faults import stop_at
from reliability import assert_same_run, compile_cache, rows  # noqa: F401 - autouse fixture

import awmp
from awmp import checkpoint
from awmp.algos import sac, sac_awmp
from awmp.buffer import ReplayBuffer
from awmp.cli import main
from awmp.envs import make_env
from awmp.evaluate import PARAMS_FILE
from awmp.train import (
    Components,
    RunDirError,
    TrainingInterrupted,
    resume,
    resume_seeds,
    train_seeds,
)

GROUP = (1, 3, 4)
WARMUP, UPDATES = 100, 100
TOTAL = WARMUP + UPDATES - 1  # one update at every step from WARMUP to TOTAL: 100 updates


class _RecordingBuffer(ReplayBuffer):
    """Keeps every batch sampled from it; `made` lists the buffers in order of creation."""

    made: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[dict] = []
        _RecordingBuffer.made.append(self)

    def sample(self, rng, batch_size):
        batch = super().sample(rng, batch_size)
        self.batches.append({k: v.copy() for k, v in batch.items()})
        return batch


def _config(run_dir: Path, seeds: tuple[int, ...], algo: str = "sac"):
    cfg = small_config(algo=algo, run_dir=str(run_dir), seeds=seeds)
    cfg.total_steps, cfg.warmup_steps = TOTAL, WARMUP
    cfg.eval_interval, cfg.log_interval = TOTAL, 50
    cfg.checkpoint_interval, cfg.keep_checkpoints = 50, 10  # step 50: still the initial state
    if algo == "sac-awmp":
        a = cfg.awmp
        a.hidden, a.policy_hidden, a.prior_hidden = (32, 32), (32, 32), (32,)
        a.num_components, a.batch_size = 2, 16
        a.prior_interval, a.prior_steps, a.prior_batch_size = 50, 10, 16  # one burst, at 150
    return cfg


def _params(run_dir: Path):
    """The whole final state (its checkpoint's; final_params.msgpack: the acting fields)."""
    return final_state(run_dir)


NETWORKS = {
    "sac": ("actor", "critic", "target_critic", "log_alpha"),
    "sac-awmp": sac_awmp.NET_NAMES,
}


def _assert_close(a, b, algo: str = "sac", rtol: float = 1e-4) -> None:
    """Every network parameter to a relative `rtol` (no absolute slack); counters exactly.

    Adam's moments are left out: running means of gradients that nearly cancel, their relative
    error says nothing about the parameters (they are compared bitwise where that must hold).
    """
    assert int(a.step) == int(b.step)
    for name in NETWORKS[algo]:
        for x, y in zip(
            jax.tree.leaves(getattr(a, name)), jax.tree.leaves(getattr(b, name)), strict=True
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=0)


def _train_recording(cfg) -> list:
    _RecordingBuffer.made = []
    train_seeds(cfg, components=Components(make_buffer=_RecordingBuffer))
    return list(_RecordingBuffer.made)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seed 3 alone (`--seeds 3`) and inside the group 1, 3, 4, with their replay buffers."""
    out = {}
    root = tmp_path_factory.mktemp("multiseed")
    out["alone"] = _train_recording(_config(root / "alone", (3,)))
    out["group"] = _train_recording(_config(root / "group", GROUP))
    out["root"] = root
    return out


def test_seed_in_a_group_is_the_seed_alone(runs):
    root = runs["root"]
    alone, group = root / "alone" / "seed3", root / "group" / "seed3"
    # Same initial parameters: the step-50 checkpoint (warm-up, no update yet), bit for bit,
    # and equal to a fresh init with PRNGKey(3).
    first_alone = checkpoint.load(dict(checkpoint.list_checkpoints(alone))[50]).agent["arrays"]
    first_group = checkpoint.load(dict(checkpoint.list_checkpoints(group))[50]).agent["arrays"]
    _, spec = make_env("Pendulum-v1")
    init = sac.make_agent(spec, small_config().sac).init(jax.random.PRNGKey(3))
    init_leaves = [np.asarray(x) for x in jax.tree.leaves(init)]
    assert len(first_alone) == len(init_leaves)
    for i, leaf in enumerate(init_leaves):
        np.testing.assert_array_equal(first_alone[str(i)], leaf)
        np.testing.assert_array_equal(first_group[str(i)], leaf)

    # Same batches: seed 3's buffer is the 2nd of the group's (1, 3, 4). The first batches hold
    # warm-up transitions only (the seed's own generator and env): bitwise equal; later ones
    # hold the policy's actions, equal up to vmap's last bits.
    (buf_alone,), buf_group = runs["alone"], runs["group"]
    assert len(buf_group) == 3 and len(buf_alone.batches) == len(buf_group[1].batches) == UPDATES
    for k in buf_alone.batches[0]:
        np.testing.assert_array_equal(buf_alone.batches[0][k], buf_group[1].batches[0][k])
    for ba, bg in zip(buf_alone.batches, buf_group[1].batches, strict=True):
        for k in ba:
            np.testing.assert_allclose(ba[k], bg[k], rtol=1e-4, atol=1e-5)
    # ...and the other seeds drew other batches.
    assert not np.array_equal(buf_group[0].batches[0]["obs"], buf_group[1].batches[0]["obs"])

    # Parameters after 100 updates agree to a relative 1e-4.
    p_alone, p_group = _params(alone), _params(group)
    assert int(p_alone.step) == int(p_group.step) == UPDATES
    _assert_close(p_alone, p_group)
    p_other = _params(root / "group" / "seed1")
    assert not np.allclose(
        jax.tree.leaves(p_other.actor)[0], jax.tree.leaves(p_group.actor)[0], rtol=1e-2
    )


def test_one_normal_run_directory_per_seed(runs):
    root = runs["root"]
    assert sorted(p.name for p in (root / "group").iterdir()) == ["seed1", "seed3", "seed4"]
    for seed in GROUP:
        d = root / "group" / f"seed{seed}"
        meta = json.loads((d / "config.json").read_text())
        assert meta["config"]["seed"] == seed and "seeds" not in meta["config"]
        assert meta["config"]["run_dir"] == str(d)
        assert meta["seed_group"]["seeds"] == list(GROUP)
        assert {int(r["seed"]) for r in rows(d / "train.csv")} == {seed}
        assert [int(r["step"]) for r in rows(d / "eval.csv")] == [TOTAL]
        summary = json.loads((d / "summary.json").read_text())
        assert summary["seed"] == seed and summary["steps_done"] == TOTAL
        assert [s for s, _ in checkpoint.list_checkpoints(d)] == [50, 100, 150, TOTAL]
        policy = awmp.load(d)  # awmp.load / awmp eval work on each seed's directory
        assert policy.act(np.zeros(3, np.float32)).shape == (1,)


def test_group_stops_and_resumes_together_bitwise(runs, tmp_path, capsys):
    ref = runs["root"] / "group"
    cfg = _config(tmp_path / "group", GROUP)
    with pytest.raises(TrainingInterrupted) as info:
        train_seeds(cfg, on_step=stop_at(120))
    dirs = [tmp_path / "group" / f"seed{s}" for s in GROUP]
    assert info.value.run_dir == dirs and info.value.step == 120
    err = capsys.readouterr().err
    assert f"resume with: awmp train --resume {','.join(map(str, dirs))}" in err
    for d in dirs:
        assert [s for s, _ in checkpoint.list_checkpoints(d)] == [50, 100, 120]
    # One seed continues alone from its own directory (equal up to vmap's last bits)...
    alone = tmp_path / "alone3"
    shutil.copytree(dirs[1], alone)
    _, summary = resume(alone, progress=False)
    assert summary["steps_done"] == TOTAL and summary["seed"] == 3
    _assert_close(_params(alone), _params(ref / "seed3"))
    # ...while the group continues together, bit for bit; a kill between the seeds' checkpoint
    # writes (here: seed 4 lacks step 120) makes it resume from the newest step all have.
    dict(checkpoint.list_checkpoints(dirs[2]))[120].unlink()
    out_dirs, summaries = resume_seeds(dirs)
    assert out_dirs == dirs and [s["seed"] for s in summaries] == list(GROUP)
    assert "resuming the group from step 100" in capsys.readouterr().err
    for seed, d in zip(GROUP, dirs, strict=True):
        assert_same_run(ref / f"seed{seed}", d)


def test_group_resume_refusals(runs, tmp_path, capsys):
    root = runs["root"]
    g1, g3, alone3 = root / "group" / "seed1", root / "group" / "seed3", root / "alone" / "seed3"
    with pytest.raises(RunDirError, match=r"seeds \(3, 3\) repeat a seed"):
        resume_seeds([g3, alone3])
    other = tmp_path / "other"
    shutil.copytree(g1, other)
    meta = json.loads((other / "config.json").read_text())
    meta["config"]["sac"]["lr"] = 1e-3
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match=r"differs from that of .* in more than the seed: sac.lr"):
        resume_seeds([g3, other])
    rc = main(["train", "--resume", f"{g1},{g3}", "--seeds", "1,4"])
    assert rc == 2
    assert "seeds=(1, 4) differs from the seeds (1, 3) of these run directories" in (
        capsys.readouterr().err
    )
    rc = main(["train", "--seeds", "2,2", "--run-dir", str(tmp_path / "x")])
    assert rc == 2 and re.search(
        r"invalid --seeds \(seeds\)=\(2, 2\): must be distinct", capsys.readouterr().err
    )
    assert not (tmp_path / "x").exists()
    # An existing seed directory is refused before any other seed's directory is made.
    (tmp_path / "y" / "seed5").mkdir(parents=True)
    rc = main(["train", "--seeds", "4,5", "--run-dir", str(tmp_path / "y")])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert not (tmp_path / "y" / "seed4").exists()


def test_cli_few_steps_default_sibling_directories(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [
        "train", "--seeds", "0,2", "--total-steps", "40", "--warmup-steps", "20",
        "--eval-interval", "40", "--eval-episodes", "1", "--no-progress",
        "--sac.hidden", "16", "16", "--sac.batch-size", "8",
    ]  # fmt: skip
    assert main(args) == 0
    summaries = json.loads(capsys.readouterr().out)
    assert [s["seed"] for s in summaries] == [0, 2]
    dirs = sorted((tmp_path / "runs" / "Pendulum-v1" / "sac").iterdir())
    assert [d.name.split("-", 1)[0] for d in dirs] == ["seed0", "seed2"]
    assert dirs[0].name.split("-", 1)[1] == dirs[1].name.split("-", 1)[1]  # one timestamp
    assert [s["run_dir"] for s in summaries] == [str(d.relative_to(tmp_path)) for d in dirs]
    assert main(["eval", str(dirs[1]), "--episodes", "1"]) == 0
    capsys.readouterr()
    # The finished group resumed together: nothing left to do, nothing changes.
    before = [((d / PARAMS_FILE).read_bytes(), final_state_bytes(d)) for d in dirs]
    assert main(["train", "--resume", ",".join(map(str, dirs))]) == 0
    assert before == [((d / PARAMS_FILE).read_bytes(), final_state_bytes(d)) for d in dirs]


@pytest.mark.slow
def test_sac_awmp_group_runs_prior_bursts_per_seed(tmp_path):
    """The prior burst (hook) drawn per seed and vmapped: seed 1 in (0, 1) is seed 1 alone."""
    dirs, summaries = train_seeds(_config(tmp_path / "group", (0, 1), "sac-awmp"))
    alone, _ = train_seeds(_config(tmp_path / "alone", (1,), "sac-awmp"))
    alone = alone[0]
    for d in (*dirs, alone):
        last = rows(d / "train.csv")[-1]
        assert np.isfinite(float(last["prior_loss"])) and np.isfinite(float(last["q_loss"]))
        assert int(_params(d).prior_step) == 10  # one burst of 10 steps, at 150
    losses = [rows(d / "train.csv")[-1]["prior_loss"] for d in dirs]
    assert losses[0] != losses[1]
    _assert_close(_params(dirs[1]), _params(alone), "sac-awmp")


def _fault_args(run_dir: Path) -> list[str]:
    return [
        "train", "--env", "test/Fault-v0", "--seeds", "0,1", "--total-steps", "60",
        "--warmup-steps", "20", "--eval-interval", "60", "--eval-episodes", "1",
        "--log-interval", "10", "--checkpoint-interval", "20", "--no-progress",
        "--sac.hidden", "16", "16", "--sac.batch-size", "16", "--run-dir", str(run_dir),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        (
            "raise",
            2,
            r"seed 0 \(.*seed0\): environment test/Fault-v0 raised RuntimeError at step 35",
        ),
        ("huge_reward", 3, r"seed 0 \(.*seed0\): training diverged: non-finite .*q_loss"),
    ],
)
def test_a_faulty_seed_stops_the_group_which_resumes_together(
    tmp_path, capsys, kind, code, message
):
    from test_bad_input import FAULT  # registers test/Fault-v0; FAULT switches its faults on

    dirs = [tmp_path / "group" / f"seed{s}" for s in (0, 1)]
    try:
        FAULT.update(kind=kind, at=45 if kind == "huge_reward" else 35)
        assert main(_fault_args(tmp_path / "group")) == code
    finally:
        FAULT.update(kind=None, at=35)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, err), err
    assert f"resume with: awmp train --resume {dirs[0]},{dirs[1]}" in err
    if kind == "huge_reward":  # every seed diverged: each has its own diagnostic.json
        for d in dirs:
            assert json.loads((d / "diagnostic.json").read_text())["kind"] == "divergence"
    last_good = 20 if kind == "raise" else 40
    for d in dirs:  # no checkpoint from a diverged state; the last good one in every directory
        assert checkpoint.list_checkpoints(d)[-1][0] == last_good
    assert main(["train", "--resume", f"{dirs[0]},{dirs[1]}"]) == 0  # the fault is gone
    for d in dirs:
        assert json.loads((d / "summary.json").read_text())["steps_done"] == 60
