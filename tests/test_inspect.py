"""`awmp inspect` on a short SAC-AWMP run of awmp/Switch-v0: plots, CSV and refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import awmp
from awmp.cli import main as cli_main


@pytest.fixture(scope="module")
def awmp_run(tmp_path_factory):
    cfg = awmp.preset("paper")
    cfg.algo, cfg.env, cfg.seed = "sac-awmp", "awmp/Switch-v0", 0
    cfg.total_steps, cfg.warmup_steps = 300, 100
    cfg.eval_interval, cfg.eval_episodes, cfg.log_interval = 300, 1, 100
    cfg.progress = False
    cfg.awmp.num_components = 3
    cfg.awmp.hidden = cfg.awmp.prior_hidden = (32, 32)
    if hasattr(cfg.awmp, "policy_hidden"):
        cfg.awmp.policy_hidden = (32, 32)
    cfg.awmp.batch_size = 16
    cfg.awmp.prior_interval, cfg.awmp.prior_steps, cfg.awmp.prior_batch_size = 100, 20, 16
    cfg.run_dir = str(tmp_path_factory.mktemp("inspect") / "run")
    run_dir, _ = awmp.train(cfg)
    return run_dir


@pytest.mark.slow
def test_inspect_writes_plots_and_weights(awmp_run, tmp_path, capsys):
    out = tmp_path / "inspect"
    assert cli_main(["inspect", str(awmp_run), "--episodes", "2", "--out", str(out)]) == 0
    for name in (
        "weights_episode0.png",
        "weights_episode1.png",
        "component_usage.png",
        "component_by_observation.png",
    ):
        assert (out / name).stat().st_size > 5000, name
    with open(out / "weights.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 50  # two Switch episodes of 50 steps
    rho = np.array([[float(r[f"rho{g}"]) for g in range(3)] for r in rows])
    h = np.array([[float(r[f"h{g}"]) for g in range(3)] for r in rows])
    # Both are distributions over the 3 components at every step.
    assert np.all(rho >= 0) and np.all(h >= 0)
    np.testing.assert_allclose(rho.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-5)
    result = json.loads((out / "inspect.json").read_text())
    assert sum(result["usage"]["rho_argmax"]) == 100
    # The recorded return is that of the recorded rewards.
    ep0 = [float(r["reward"]) for r in rows if r["episode"] == "0"]
    assert result["returns"][0] == pytest.approx(sum(ep0), rel=1e-6)


def test_inspect_refuses_other_algorithms(tmp_path, capsys):
    run = tmp_path / "td3run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"algo": "td3"}}))
    assert cli_main(["inspect", str(run)]) == 2
    assert "needs a sac-awmp run" in capsys.readouterr().err
    assert cli_main(["inspect", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_inspect_video_unavailable_is_said_and_plots_still_written(awmp_run, tmp_path, capsys):
    # Switch-v0 has no renderer: --video must say why there is no MP4 and keep the plots.
    out = tmp_path / "inspect"
    assert cli_main(["inspect", str(awmp_run), "--video", "--out", str(out)]) == 0
    assert "no video" in capsys.readouterr().err
    assert (out / "weights_episode0.png").is_file() and (out / "component_usage.png").is_file()
    assert not list(out.glob("*.mp4"))
