"""Damaged run files never crash a reader.

One small SAC-AWMP run is trained once; each test copies it twice (a good and a bad copy),
damages one file of the bad copy (empty, truncated, garbage bytes, or another format) and runs
every reader on it: `awmp report` (goes on with the good run and lists the bad one with what is
wrong), `awmp eval`, `awmp inspect` (exit 2 and one line naming the run and the file) and
`awmp.load` (awmp's own exception with the same message). Files a reader does not read leave
it working.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import flax.serialization
import numpy as np
import pytest

import awmp
from awmp.checkpoint import list_checkpoints
from awmp.cli import main as cli_main
from awmp.errors import AwmpError, UserError

# The files of a run directory, by kind: path inside the run (the checkpoint: the newest).
KINDS = (
    "config.json", "eval.csv", "train.csv", "summary.json", "final_params.msgpack",
    "best_params.msgpack", "checkpoint",
)  # fmt: skip
DAMAGES = ("empty", "truncated", "garbage", "wrong format")
REPORT_READS = {"config.json", "eval.csv", "summary.json"}
LOAD_READS = {  # which= -> the files awmp.load reads
    "final": {"config.json", "final_params.msgpack"},
    "best": {"config.json", "best_params.msgpack"},
    "checkpoint": {"config.json", "checkpoint"},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    cfg = awmp.preset("paper")
    cfg.algo, cfg.env, cfg.seed = "sac-awmp", "awmp/Switch-v0", 0
    cfg.total_steps, cfg.warmup_steps = 150, 50
    cfg.eval_interval, cfg.eval_episodes, cfg.log_interval = 50, 1, 50
    cfg.checkpoint_interval, cfg.progress = 50, False
    a = cfg.awmp
    a.num_components, a.hidden, a.policy_hidden, a.prior_hidden = 2, (8,), (8,), (8,)
    a.batch_size, a.prior_interval, a.prior_steps, a.prior_batch_size = 8, 50, 2, 8
    cfg.run_dir = str(tmp_path_factory.mktemp("damaged") / "run")
    run_dir, _ = awmp.train(cfg)
    for name in KINDS[:-1]:
        assert (run_dir / name).is_file(), name
    assert list_checkpoints(run_dir)
    return run_dir


def _file(run_dir: Path, kind: str) -> Path:
    return list_checkpoints(run_dir)[-1][1] if kind == "checkpoint" else run_dir / kind


def _damage(run_dir: Path, kind: str, damage: str) -> Path:
    path = _file(run_dir, kind)
    data = path.read_bytes()
    if damage == "empty":
        new = b""
    elif damage == "truncated":
        new = data[: len(data) // 2]
    elif damage == "garbage":  # not UTF-8, NUL bytes, not msgpack
        new = b"\x00\xff\xfe" + np.random.default_rng(0).bytes(200)
    elif kind.endswith(".json"):  # valid JSON, not an object
        new = b"[1, 2, 3]\n"
    elif kind.endswith(".csv"):  # valid CSV, other columns
        new = b"a,b\n1,2\n3,4\n"
    elif kind.endswith(".msgpack"):  # valid msgpack, other fields
        new = flax.serialization.msgpack_serialize({"weights": np.zeros(3, np.float32)})
    else:  # a checkpoint holding a parameters file
        new = (run_dir / "final_params.msgpack").read_bytes()
    assert new != data
    path.write_bytes(new)
    return path


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(list(argv))
    return code, err.getvalue()


def _one_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("awmp: error: "), text
    return lines[0]


def _names(message: str, run_dir: Path, kind: str) -> None:
    """The message names the run and the damaged file."""
    name = "checkpoint" if kind == "checkpoint" else kind
    assert str(run_dir) in message and name in message, message


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_run_file_is_named_never_a_crash(trained, tmp_path, kind, damage):
    good, bad = tmp_path / "runs" / "good", tmp_path / "runs" / "bad"
    shutil.copytree(trained, good)
    shutil.copytree(trained, bad)
    _damage(bad, kind, damage)

    # awmp report: goes on with the good run; lists the bad one with what is wrong.
    code, err = _cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert code == 0 and "Traceback" not in err, err
    md = (tmp_path / "report" / "report.md").read_text()
    problems = md.split("## Incomplete")[1].split("\n## ")[0]
    assert f"`{good}`" in md.split("## Run directories")[1]  # reported
    assert f"`{good}`" not in problems and str(good) not in err
    listed = [line for line in err.splitlines() if str(bad) in line]
    if kind in REPORT_READS:
        assert listed and listed[0].startswith(("skipped: ", "incomplete: ")), err
        reason = problems.split(f"`{bad}`: ", 1)[1].split("\n", 1)[0]
        assert kind in reason, reason  # names the damaged file
        if listed[0].startswith("skipped: "):
            assert f"skipped: {bad}: {reason}" in err, err
            assert f"`{bad}`" not in md.split("## Run directories")[1]
    else:
        assert not listed and f"`{bad}`" not in problems, err

    # awmp.load: awmp's own error naming the run and file, for the files it reads.
    for which, reads in LOAD_READS.items():
        if kind in reads:
            with pytest.raises(UserError) as caught:
                awmp.load(bad, which=which)
            assert isinstance(caught.value, AwmpError)
            _names(str(caught.value), bad, kind)
        elif which == "final":  # one load of an unaffected run: still works
            assert awmp.load(bad, which=which).config.algo == "sac-awmp"

    # awmp eval and awmp inspect: exit 2, one line, the same message as awmp.load.
    if kind in LOAD_READS["final"]:
        with pytest.raises(UserError) as caught:
            awmp.load(bad)
        for argv in (
            ["eval", str(bad), "--episodes", "1"],
            ["inspect", str(bad), "--episodes", "1", "--out", str(tmp_path / "inspect")],
        ):
            code, err = _cli(*argv)
            assert code == 2, (argv[0], err)
            assert _one_line(err) == f"awmp: error: {caught.value}", argv[0]


def test_readers_still_work_on_the_undamaged_run(trained, tmp_path):
    """The reference: every reader succeeds on the run the damage tests start from."""
    code, err = _cli("eval", str(trained), "--episodes", "1")
    assert code == 0, err
    code, err = _cli("inspect", str(trained), "--episodes", "1", "--out", str(tmp_path / "i"))
    assert code == 0, err
    for which in LOAD_READS:
        assert awmp.load(trained, which=which).config.algo == "sac-awmp"
    code, err = _cli("report", str(trained), "--out", str(tmp_path / "report"))
    assert code == 0 and "skipped" not in err and "incomplete" not in err, err


@pytest.mark.parametrize("which", ["nonsense", "", "final ", 3, None])
def test_a_bad_which_is_a_value_error_not_file_not_found(trained, which):
    from awmp.evaluate import LoadArgumentError

    with pytest.raises(ValueError, match=r"invalid which=.*must be one of final, best") as caught:
        awmp.load(trained, which=which)  # type: ignore[arg-type]
    assert isinstance(caught.value, LoadArgumentError) and isinstance(caught.value, AwmpError)
    assert not isinstance(caught.value, FileNotFoundError)


def test_a_missing_file_is_still_a_file_not_found_error(trained, tmp_path):
    """Missing (not damaged) files keep raising FileNotFoundError, now awmp's own subclass."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "best_params.msgpack").unlink()
    with pytest.raises(FileNotFoundError, match="no best_params.msgpack") as caught:
        awmp.load(run, which="best")
    assert isinstance(caught.value, AwmpError)
    with pytest.raises(FileNotFoundError, match="no step_000000000007.ckpt"):
        awmp.load(run, which=str(run / "checkpoints" / "step_000000000007.ckpt"))
    (run / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"is not an awmp run directory \(no config"):
        awmp.load(run)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_return_in_eval_csv_is_damage_not_a_number(trained, tmp_path, value):
    """A row with a non-finite return (damage; a diverged run stops there) is left out: the last
    evaluation is missing and the run is listed as such, and no statistic becomes NaN."""
    import csv

    good, bad = tmp_path / "runs" / "good", tmp_path / "runs" / "bad"
    shutil.copytree(trained, good)
    shutil.copytree(trained, bad)
    with open(bad / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    final, rows[-1]["return_mean"] = rows[-1]["return_mean"], value
    with open(bad / "eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    code, err = _cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert code == 0 and f"incomplete: {bad}" in err, err
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"`{bad}`: partial: last evaluation in eval.csv at step {rows[-2]['step']}" in md
    with open(tmp_path / "report" / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["incomplete"] == "1" and float(row["final_mean"]) == float(final)  # the good run


@pytest.mark.parametrize("damage", DAMAGES)
def test_an_experiment_cell_with_a_damaged_file_is_named_or_resumed(trained, tmp_path, damage):
    """`awmp experiment` / `awmp sweep` judge a cell's run directory from config.json and
    summary.json: a damaged config.json is refused in one line (ExperimentError, exit 2), a
    damaged summary.json makes the cell partial (it resumes), never a crash."""
    from awmp.grid import ExperimentError, cell_status
    from awmp.runfiles import read_config

    _, cfg = read_config(trained)
    assert cell_status(trained, cfg) == "complete"
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    _damage(run, "summary.json", damage)
    assert cell_status(run, cfg) == "partial"
    _damage(run, "config.json", damage)
    with pytest.raises(ExperimentError, match=r"config.json .*remove the run directory") as e:
        cell_status(run, cfg)
    assert str(run) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("damage", DAMAGES)
def test_resume_keeps_the_good_rows_of_a_damaged_log_or_refuses_it(trained, tmp_path, damage):
    """`--resume` cuts eval.csv back to the checkpoint's step: a damaged file is cut at its
    first damaged row, or refused in one line naming it (LogResumeError), never a crash."""
    from awmp.logger import EVAL_COLUMNS, LogResumeError, truncate_csv

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    path = _damage(run, "eval.csv", damage)
    try:
        truncate_csv(path, EVAL_COLUMNS, 100)
    except LogResumeError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        assert damage in ("garbage", "wrong format")
    else:
        header, *rows = path.read_text().splitlines()
        assert header == ",".join(EVAL_COLUMNS)
        assert all(int(r.split(",")[0]) <= 100 for r in rows)
