"""Python callbacks at step, log, evaluation and checkpoint, each able to stop the run: a
checkpoint of the step, as Ctrl-C writes, but `train` returns normally (SB3's callback returning
False), summary.json says a callback stopped it, `awmp report` lists it so, and the stopped run
resumes to the same final parameters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import final_state_bytes, small_config
from faults import stop_at

import awmp
from awmp.checkpoint import list_checkpoints
from awmp.evaluate import PARAMS_FILE
from awmp.report import read_run
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
def test_a_hook_stops_the_run_normally_and_it_resumes_exactly(tmp_path, hook, step, capsys):
    plain_dir, _ = train(_cfg(tmp_path / "plain"))
    rec = Recorder(stop=(hook, step))
    run_dir, returned = train(_cfg(tmp_path / "run"), callbacks=[rec])  # no exception
    assert run_dir == tmp_path / "run" and rec.calls["step"][-1] == step
    assert f"a callback stopped the run after step {step}" in capsys.readouterr().err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == returned
    assert summary["stopped_by"] == "callback" and summary["steps_done"] == step
    assert summary["interrupted"] is False  # no signal
    # awmp report lists it as stopped by a callback, not as partial (before the first
    # evaluation, at step 150, it has nothing to report).
    run = read_run(run_dir)
    if step >= 150:
        assert not run.complete and run.problem == f"stopped by a callback at step {step} of 300"
    assert [s for s, _ in list_checkpoints(run_dir)][-1] == step  # one checkpoint of that step
    if hook == "checkpoint":  # not written twice
        assert [s for s, _ in rec.calls["checkpoint"]] == [100, 200]
    _, resumed = resume(run_dir, progress=False)
    assert resumed["stopped_by"] is None and resumed["steps_done"] == 300
    assert read_run(run_dir).complete
    assert (run_dir / PARAMS_FILE).read_bytes() == (plain_dir / PARAMS_FILE).read_bytes()
    assert final_state_bytes(run_dir) == final_state_bytes(plain_dir)


def test_a_signal_still_raises_and_the_report_calls_it_partial(tmp_path):
    """Ctrl-C (here SIGINT sent by a step function) is not a callback's stop: it raises."""
    with pytest.raises(TrainingInterrupted) as info:
        train(_cfg(tmp_path / "run"), on_step=stop_at(160))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert info.value.step == 160 and summary["stopped_by"] == "SIGINT"
    assert summary["interrupted"] is True
    assert read_run(tmp_path / "run").problem == "partial: stopped at step 160 of 300"
