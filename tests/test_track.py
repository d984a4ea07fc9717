"""Optional Weights & Biases logging (`awmp train --track wandb`, the `track`
extra), through the real `awmp` command in subprocesses, in W&B's offline mode (no network, no
account). The offline runs are read back from W&B's own transaction log (`run-<id>.wandb`, a
LevelDB-format log of wandb's protobuf `Record`s) and compared with the run's CSV logs."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from reliability import subprocess_env

from awmp.config import NON_EXPERIMENT_FIELDS
from awmp.rundir import load_run_config
from awmp.track import ID_FILE

TINY = [
    "--env", "Pendulum-v1", "--warmup-steps", "100", "--eval-interval", "100",
    "--eval-episodes", "1", "--log-interval", "100", "--checkpoint-interval", "100",
    "--no-progress", "--sac.hidden", "16", "16", "--sac.batch-size", "16",
]  # fmt: skip


def _awmp(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "awmp.cli", *args], capture_output=True, text=True, timeout=600,
        env=env,
    )  # fmt: skip


def _offline_env(tmp_path: Path, tmp_path_factory) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    return subprocess_env(
        tmp_path_factory,
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp_path / "wandb-dir"),  # unused: awmp puts the files in the run dir
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_X_DISABLE_STATS="true",  # no system-metrics sampler on a busy test machine
        HOME=str(home),
    )


# ---------------------------------------------------------------- reading W&B's offline log

_BLOCK, _HEADER = 32768, 7  # leveldb log format: 32 KiB blocks, 7-byte record headers
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> list:
    """The protobuf Records of a `.wandb` file (file header ':W&B', magic 0xBEE1, then
    leveldb-log records: crc32 u32, length u16, type u8, data; none crosses a block end)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1), path
    out, pos, parts = [], _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # the block's zero trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:  # padding to the end of the block
            pos += left
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        parts = chunk if kind in (_FULL, _FIRST) else parts + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            out.append(record)
    return out


def _offline_runs(run_dir: Path) -> list[dict]:
    """Each offline W&B run under <run_dir>/wandb, oldest first: id, name, project, config and
    history ({step: {key: value}})."""
    runs = []
    for d in sorted((run_dir / "wandb").glob("offline-run-*")):
        (log,) = d.glob("run-*.wandb")
        run: dict = {"history": {}}
        for r in _records(log):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run.update(id=r.run.run_id, name=r.run.display_name, project=r.run.project)
                run["config"] = {
                    u.key: json.loads(u.value_json)
                    for u in r.run.config.update
                    if u.key != "_wandb"
                }
            elif kind == "history":
                items = {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in r.history.item
                }
                run["history"].setdefault(items.pop("_step"), {}).update(items)
        runs.append(run)
    return runs


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _history(runs: list[dict]) -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for run in runs:
        for step, items in run["history"].items():
            merged.setdefault(step, {}).update(items)
    return merged


# ---------------------------------------------------------------- tests


def test_track_wandb_logs_each_seed_run_offline_and_resume_continues_it(tmp_path, tmp_path_factory):
    pytest.importorskip("wandb")  # the `track` extra (`make test` installs it)
    env = _offline_env(tmp_path, tmp_path_factory)
    root = tmp_path / "runs"
    res = _awmp(
        "train", *TINY, "--seeds", "0,1", "--total-steps", "200", "--run-dir", str(root),
        "--track", "wandb", "--wandb-project", "awmp-test", env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    dirs = [root / "seed0", root / "seed1"]
    first = {}
    for d in dirs:
        (run,) = _offline_runs(d)  # one W&B run per seed run directory
        assert run["id"] == (d / ID_FILE).read_text().strip()
        assert (run["name"], run["project"]) == (d.name, "awmp-test")
        assert run["config"] == json.loads((d / "config.json").read_text())["config"]
        first[d] = run

    # Extending the run continues the same W&B run (same id; offline: a second directory).
    res = _awmp("train", "--resume", ",".join(map(str, dirs)), "--total-steps", "300", env=env)
    assert res.returncode == 0, res.stderr
    for seed, d in enumerate(dirs):
        runs = _offline_runs(d)
        assert len(runs) == 2 and {r["id"] for r in runs} == {first[d]["id"]}
        assert runs[1]["config"]["total_steps"] == 300
        assert sorted(runs[0]["history"]) == [100, 200] and sorted(runs[1]["history"]) == [300]
        history = _history(runs)
        evals, trains = _csv(d / "eval.csv"), _csv(d / "train.csv")
        assert [int(r["step"]) for r in evals] == [100, 200, 300]
        assert {int(r["seed"]) for r in evals} == {seed}
        for r in evals:
            assert history[int(r["step"])]["eval/return_mean"] == float(r["return_mean"])
            assert history[int(r["step"])]["eval/return_std"] == float(r["return_std"])
        assert [int(r["step"]) for r in trains] == [100, 200, 300]
        for r in trains:
            assert history[int(r["step"])]["train/q_loss"] == float(r["q_loss"])
            assert history[int(r["step"])]["train/episodes"] == float(r["episodes"])
        assert sorted(history) == [100, 200, 300]
    # the seeds' W&B runs are distinct
    assert first[dirs[0]]["id"] != first[dirs[1]]["id"]


def test_track_wandb_without_wandb_is_refused_in_one_line(tmp_path, tmp_path_factory):
    shim = tmp_path / "shim"
    (shim / "wandb").mkdir(parents=True)
    (shim / "wandb" / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    env = subprocess_env(tmp_path_factory)
    env["PYTHONPATH"] = ":".join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
    run_dir = tmp_path / "run"
    res = _awmp("train", *TINY, "--total-steps", "200", "--run-dir", str(run_dir),
                "--track", "wandb", env=env)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("awmp: error: --track wandb needs the wandb package")
    assert "pip install -e '.[track]'" in lines[0]
    assert not run_dir.exists()  # refused before anything was created


def test_no_tracking_never_imports_wandb(tmp_path):
    code = (
        "import sys, awmp, awmp.cli, awmp.train, awmp.trainer, awmp.logger\n"
        "from awmp.config import preset\n"
        "from awmp.track import open_tracker, require\n"
        "require('none')\n"
        f"assert open_tracker(preset(), {str(tmp_path)!r}) is None\n"
        "print('wandb' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
    assert not (tmp_path / ID_FILE).exists()


def test_old_config_json_without_the_tracking_fields_still_loads():
    old = Path(__file__).parents[1] / "docs/results/evidence/Hopper-v5/sac/default"
    run_dir = old / "seed0-100000steps"
    assert "track" not in json.loads((run_dir / "config.json").read_text())["config"]
    cfg = load_run_config(run_dir)
    assert (cfg.track, cfg.wandb_project, cfg.wandb_entity, cfg.wandb_group) == (
        "none", "awmp", None, None,
    )  # fmt: skip
    assert {"track", "wandb_project", "wandb_entity", "wandb_group"} <= set(NON_EXPERIMENT_FIELDS)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--track", "neptune"], "invalid choice 'neptune' for argument '--track'"),
        (["--wandb-project", " "], "invalid --wandb-project (wandb_project)=' '"),
    ],
)
def test_bad_tracking_flags_are_refused_in_one_line(capsys, tmp_path, args, message):
    from awmp.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--track", "wandb", "--run-dir", str(run_dir), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not run_dir.exists()
