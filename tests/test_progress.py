"""Progress off a terminal: a plain line every `log_interval` steps or every 60 s, whichever comes
first; steps/s and the ETA leave out the warm-up; the run directory is printed at the start.
Time is a fake clock (no sleeps)."""

from __future__ import annotations

from conftest import small_config

from awmp.progress import TrainProgress
from awmp.train import train


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _printed(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("awmp: step ")]


def _step_of(line: str) -> int:
    return int(line.split()[2].split("/")[0])


def test_a_line_every_log_interval_or_every_60_s_whichever_first(capsys):
    clock = FakeClock()
    p = TrainProgress(10_000, plain=True, log_interval=1000, clock=clock)
    for step in range(1, 401):  # 2 steps/s: 60 s pass every 120 steps
        clock.now += 0.5
        p.advance(step)
    for step in range(401, 2001):  # fast: the log interval comes first
        clock.now += 0.001
        p.advance(step)
    steps = [_step_of(ln) for ln in _printed(capsys.readouterr().err)]
    assert steps == [120, 240, 360, 1000, 2000]
    # The 60 s count from the last line, whatever printed it.
    clock.now += 59.0
    p.advance(2001)
    clock.now += 1.0
    p.advance(2002)
    assert [_step_of(ln) for ln in _printed(capsys.readouterr().err)] == [2002]


def test_steps_per_s_and_eta_leave_out_the_warm_up(capsys):
    clock = FakeClock()
    p = TrainProgress(3000, plain=True, log_interval=500, warmup=1000, clock=clock)
    for step in range(1, 1001):  # warm-up: 1000 steps in 1 s
        clock.now += 0.001
        p.advance(step)
    for step in range(1001, 2001):  # training: 10 steps/s
        clock.now += 0.1
        p.advance(step)
    lines = _printed(capsys.readouterr().err)
    assert [_step_of(ln) for ln in lines] == [500, 1000, 1500, 2000]
    assert "- steps/s" in lines[0] and "ETA -" in lines[0]  # no training rate yet
    # 1000 training steps in 100 s: 10 steps/s, 1000 steps left -> 100 s (the warm-up's speed
    # counted in would say 19.8 steps/s and 0:00:50).
    assert "| 10 steps/s |" in lines[3] and "ETA 0:01:40" in lines[3], lines[3]
    assert "elapsed 0:01:41" in lines[3]
    assert p.line(3000, clock.now + 100).endswith("ETA 0:00:00 | eval -")


def test_a_resumed_run_counts_from_its_own_start():
    clock = FakeClock()
    p = TrainProgress(5000, plain=True, warmup=1000, start=2000, clock=clock)
    assert "| 4 steps/s |" in p.line(2400, clock.now + 100)  # 400 steps in 100 s
    assert "ETA 0:10:50" in p.line(2400, clock.now + 100)  # 2600 steps left at 4/s


def test_training_prints_its_run_directory_first(tmp_path, capsys):
    cfg = small_config(run_dir=str(tmp_path / "run"), progress=True)  # no TTY under pytest
    train(cfg)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("awmp: ")]
    assert lines[0] == f"awmp: run directory: {tmp_path / 'run'}"
    assert [_step_of(ln) for ln in _printed("\n".join(lines))] == [100, 200, 300]
