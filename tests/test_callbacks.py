"""Issue 13 item 18: Python callbacks at step, log, evaluation and checkpoint, each able to stop
the run as Ctrl-C does (and the stopped run resumes to the same final parameters)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import final_state_bytes, small_config

import awmp
from awmp.checkpoint import list_checkpoints
from awmp.evaluate import PARAMS_FILE
from awmp.train import TrainingInterrupted, resume, train


class Recorder(awmp.Callback):
    def __init__(self, stop: tuple[str, int] | None = None) -> None:
        self.calls: dict[str, list] = {"step": [], "log": [], "eval": [], "checkpoint": []}
        self.stop = stop

    def _stop(self, hook: str, step: int) -> bool:
        return self.stop == (hook, step)

    def on_step(self, step):
        self.calls["step"].append(step)
        return self._stop("step", step)

    def on_log(self, step, rows):
        self.calls["log"].append((step, rows))
        return self._stop("log", step)

    def on_eval(self, step, rows):
        self.calls["eval"].append((step, rows))
        return self._stop("eval", step)

    def on_checkpoint(self, step, paths):
        self.calls["checkpoint"].append((step, [Path(p) for p in paths]))
        assert all(Path(p).is_file() for p in paths)  # on disk when the hook runs
        return self._stop("checkpoint", step)


def _cfg(run_dir: Path):
    cfg = small_config("sac", run_dir=str(run_dir))  # 300 steps, log 100, eval 150
    cfg.checkpoint_interval = 100
    return cfg


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_hook_sees_what_the_run_writes(tmp_path):
    rec = Recorder()
    run_dir, _ = train(_cfg(tmp_path / "run"), callbacks=[rec])
    assert rec.calls["step"] == list(range(1, 301))
    assert [s for s, _ in rec.calls["log"]] == [100, 200, 300]
    logged = [rows[0] for _, rows in rec.calls["log"]]
    for got, written in zip(logged, _csv(run_dir / "train.csv"), strict=True):
        assert {k: str(v) for k, v in got.items()} == {k: v for k, v in written.items() if v}
    assert [s for s, _ in rec.calls["eval"]] == [150, 300]
    evals = [rows[0] for _, rows in rec.calls["eval"]]
    written = _csv(run_dir / "eval.csv")
    assert [e["return_mean"] for e in evals] == [float(r["return_mean"]) for r in written]
    assert [s for s, _ in rec.calls["checkpoint"]] == [100, 200, 300]
    assert [p[0].parent.parent for _, p in rec.calls["checkpoint"]] == [run_dir] * 3


@pytest.mark.parametrize(("hook", "step"), [("eval", 150), ("checkpoint", 200), ("log", 100)])
def test_a_hook_stops_the_run_like_ctrl_c_and_it_resumes_exactly(tmp_path, hook, step):
    plain_dir, _ = train(_cfg(tmp_path / "plain"))
    rec = Recorder(stop=(hook, step))
    with pytest.raises(TrainingInterrupted) as info:
        train(_cfg(tmp_path / "run"), callbacks=[rec])
    run_dir = tmp_path / "run"
    assert info.value.step == step and rec.calls["step"][-1] == step
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["steps_done"] == step
    assert [s for s, _ in list_checkpoints(run_dir)][-1] == step  # one checkpoint of that step
    if hook == "checkpoint":  # not written twice
        assert [s for s, _ in rec.calls["checkpoint"]] == [100, 200]
    resume(run_dir, progress=False)
    assert (run_dir / PARAMS_FILE).read_bytes() == (plain_dir / PARAMS_FILE).read_bytes()
    assert final_state_bytes(run_dir) == final_state_bytes(plain_dir)
