"""`awmp inspect` on short SAC-AWMP and TD3-AWMP runs of awmp/Switch-v0: plots, CSV, refusals."""

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
    # sharpness: per-state max and entropy of rho and h and argmax agreement, recomputed here
    # in float64 from the CSV's columns with an explicit loop over the steps.
    sharp = result["sharpness"]
    ent_rho = [-sum(p * np.log(p) for p in row if p > 0) for row in rho.astype(np.float64)]
    ent_h = [-sum(p * np.log(p) for p in row if p > 0) for row in h.astype(np.float64)]
    assert sharp["rho_max"] == pytest.approx(np.mean([max(r) for r in rho]), abs=1e-5)
    assert sharp["h_entropy"] == pytest.approx(np.mean(ent_h), abs=1e-4)
    assert sharp["rho_entropy"] == pytest.approx(np.mean(ent_rho), abs=1e-4)
    agree = [list(r).index(max(r)) == list(q).index(max(q)) for r, q in zip(rho, h, strict=True)]
    assert sharp["argmax_agreement"] == pytest.approx(np.mean(agree))
    assert sharp["uniform_entropy"] == pytest.approx(np.log(3))
    # The recorded return is that of the recorded rewards.
    ep0 = [float(r["reward"]) for r in rows if r["episode"] == "0"]
    assert result["returns"][0] == pytest.approx(sum(ep0), rel=1e-6)


@pytest.mark.slow
def test_inspect_td3_awmp(tmp_path_factory, tmp_path):
    cfg = awmp.preset("paper")
    cfg.algo, cfg.env, cfg.seed = "td3-awmp", "awmp/Switch-v0", 0
    cfg.total_steps, cfg.warmup_steps = 300, 100
    cfg.eval_interval, cfg.eval_episodes, cfg.log_interval = 300, 1, 100
    cfg.progress = False
    c = cfg.td3_awmp
    c.num_components, c.hidden, c.prior_hidden, c.batch_size = 2, (32, 32), (32, 32), 16
    c.prior_interval, c.prior_steps, c.prior_batch_size = 100, 20, 16
    cfg.run_dir = str(tmp_path_factory.mktemp("inspect_td3") / "run")
    run_dir, _ = awmp.train(cfg)
    out = tmp_path / "inspect"
    assert cli_main(["inspect", str(run_dir), "--out", str(out)]) == 0
    assert (out / "component_usage.png").stat().st_size > 5000
    with open(out / "weights.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50
    # Every recorded action is the loaded policy's deterministic action at the recorded
    # observation, i.e. mu_g(s) of the component argmax rho names (TD3-AWMP's evaluation).
    policy = awmp.load(run_dir)
    obs = np.array([[float(r[k]) for k in r if k.startswith("obs")] for r in rows], np.float32)
    acts = np.array([[float(r[k]) for k in r if k.startswith("action")] for r in rows])
    np.testing.assert_allclose(policy.act_normalized(obs), acts, atol=1e-6)
    # ...and the recorded rho names that component: the action is mu_g(s), g = argmax rho.
    from awmp.algos import td3_awmp

    model = td3_awmp.build(policy.spec, policy.config.td3_awmp)
    mu = np.asarray(model.actor_net.apply(policy.state.actor, obs))  # (O, B, d)
    rho = np.array([[float(r[f"rho{g}"]) for g in range(2)] for r in rows])
    np.testing.assert_allclose(mu[rho.argmax(1), np.arange(len(rows))], acts, atol=1e-6)


def test_inspect_refuses_other_algorithms(tmp_path, capsys):
    run = tmp_path / "td3run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"algo": "td3"}}))
    assert cli_main(["inspect", str(run)]) == 2
    assert "needs a mixture run (sac-awmp, td3-awmp or sac-gmm)" in capsys.readouterr().err
    assert cli_main(["inspect", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_inspect_video_unavailable_is_said_and_plots_still_written(awmp_run, tmp_path, capsys):
    # Switch-v0 has no renderer: --video must say why there is no MP4 and keep the plots.
    out = tmp_path / "inspect"
    assert cli_main(["inspect", str(awmp_run), "--video", "--out", str(out)]) == 0
    assert "no video" in capsys.readouterr().err
    assert (out / "weights_episode0.png").is_file() and (out / "component_usage.png").is_file()
    assert not list(out.glob("*.mp4"))
