"""The benchmark's FLOP count against XLA's own cost analysis of the compiled update."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from awmp.algos import sac
from awmp.algos.sac import SACConfig
from awmp.bench import matmul_rate, sac_update_flops, sac_update_shapes
from awmp.cli import main as cli_main
from awmp.envs import EnvSpec


@pytest.mark.parametrize(
    "obs_dim, act_dim, hidden, batch", [(11, 3, (64, 64), 32), (17, 6, (96, 48), 50)]
)
def test_sac_flop_count_matches_xla_cost_analysis(obs_dim, act_dim, hidden, batch):
    spec = EnvSpec(obs_dim, act_dim)
    agent = sac.make_agent(spec, SACConfig(hidden=hidden, batch_size=batch))
    state = agent.init(jax.random.PRNGKey(0))
    z = np.zeros
    batch_arrays = {
        "obs": z((batch, obs_dim), np.float32),
        "action": z((batch, act_dim), np.float32),
        "reward": z(batch, np.float32),
        "next_obs": z((batch, obs_dim), np.float32),
        "terminated": z(batch, np.float32),
    }
    cost = jax.jit(agent.update).lower(state, batch_arrays).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    if not cost or "flops" not in cost:
        pytest.skip("this XLA backend reports no cost analysis")
    ours = sac_update_flops(obs_dim, act_dim, hidden, batch)
    # XLA also counts elementwise work (activations, Adam, losses), which we leave out: a few %.
    assert ours == pytest.approx(cost["flops"], rel=0.08)
    assert ours <= cost["flops"]


def test_matmul_rate_is_positive():
    assert matmul_rate(8, sac_update_shapes(3, 1, (16,)), seconds=0.05) > 0


def test_prior_burst_timing_runs_a_real_burst():
    """The amortised SAC-AWMP figure needs a burst that really runs (not a skipped hook)."""
    from awmp.bench import _prior_burst_seconds
    from awmp.config import preset

    cfg = preset("paper")
    cfg.algo, cfg.env = "sac-awmp", "Pendulum-v1"
    cfg.awmp.hidden, cfg.awmp.policy_hidden, cfg.awmp.prior_hidden = (16,), (16,), (16,)
    cfg.awmp.prior_interval, cfg.awmp.prior_steps = 200, 400
    assert _prior_burst_seconds(cfg) > 0
    cfg.awmp.prior_steps = 0  # nothing to draw: the timing must refuse, not report ~0 s
    with pytest.raises(RuntimeError, match="no prior burst was drawn"):
        _prior_burst_seconds(cfg)


def test_layout_bench_measures_every_layout_and_names_the_fastest(tmp_path, capsys):
    """A tiny `awmp bench --layout` (Pendulum, 8-unit networks, one round): one row per layout
    for this machine's cores with the runs' measured steps/s, and the fastest named. No timing is
    asserted (speed is measured in benchmarks, not tests)."""
    from awmp import layout_bench, placement

    out = tmp_path / "layout.json"
    args = ["bench", "--layout", "--env", "Pendulum-v1", "--hidden", "8", "--warmup", "500",
            "--burn-in", "0", "--window", "500", "--reps", "1", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    names = [lay["name"] for lay in layout_bench.layouts(placement.available_cores())]
    assert [r["layout"] for r in result["rows"]] == names
    for r in result["rows"]:
        (runs,) = r["rounds"]
        assert len(runs) == r["runs_at_once"] and all(s > 0 for s in runs)
        assert r["total_median"] == pytest.approx(sum(runs))
    assert result["rows"][0]["vs_one_process"] == pytest.approx(1.0)
    assert f"fastest: {result['fastest']}" in printed and result["fastest"] in names


def test_crossq_bench_runs_ours_and_refuses_bad_widths(tmp_path, capsys):
    """`awmp bench --crossq`: our CrossQ with the given critic widths, and
    SBX's beside it where SBX is installed (not in the project's venv). No timing asserted."""
    from awmp.bench import peers_available

    out = tmp_path / "crossq.json"
    args = ["bench", "--crossq", "--env", "Pendulum-v1", "--hidden", "8", "--warmup", "500",
            "--burn-in", "0", "--window", "500", "--reps", "1", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    rows = json.loads(out.read_text())["contenders"]
    names = ["ours CrossQ critics 8"] + (["SBX CrossQ critics 8"] * peers_available()["sbx"])
    assert list(rows) == names
    assert all(r["steps_per_s"] > 0 for r in rows.values())
    assert cli_main(["bench", "--crossq", "--hidden", "wide"]) == 2
    assert "--hidden needs positive integers" in capsys.readouterr().err
