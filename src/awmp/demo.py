"""`make demo`: a short real SAC-AWMP training run that visibly learns on a 2-core CPU.

SAC-AWMP (paper preset: O = 4 components, the paper's switches and coefficients) on
Pendulum-v1 with networks scaled down to (128, 128) and a prior burst of 1,000 steps every
2,000 environment steps, so that it finishes in a few minutes; docs/ALGORITHM.md lists the
per-seed calibration of exactly this config (tests/test_sac_awmp.py::test_learns_pendulum).
"""

from __future__ import annotations

import time

from awmp.config import TrainConfig, preset
from awmp.plots import plot_learning_curve
from awmp.train import train

DEMO_ENV = "Pendulum-v1"
DEMO_ALGO = "sac-awmp"
DEMO_STEPS = 15_000


def demo_config(run_dir: str | None = None) -> TrainConfig:
    """The demo's config: the paper preset with small networks and short prior bursts."""
    cfg = preset("paper")
    cfg.algo = DEMO_ALGO
    cfg.env = DEMO_ENV
    cfg.total_steps = DEMO_STEPS
    cfg.warmup_steps = 1000
    cfg.eval_interval = 1000
    cfg.eval_episodes = 10
    cfg.run_dir = run_dir
    cfg.awmp.hidden = (128, 128)
    cfg.awmp.policy_hidden = (128, 128)
    cfg.awmp.prior_hidden = (128, 128)
    cfg.awmp.prior_interval = 2000
    cfg.awmp.prior_steps = 1000
    return cfg


def run_demo(run_dir: str | None = None) -> int:
    """Train SAC-AWMP (O = 4) on Pendulum-v1 for 15,000 steps: a few minutes on 2 CPU cores."""
    cfg = demo_config(run_dir)
    a = cfg.awmp
    print(
        f"awmp demo: {cfg.algo} on {cfg.env}, {cfg.total_steps} steps, paper preset with "
        f"O = {a.num_components}, networks {a.hidden}, prior burst {a.prior_steps} steps every "
        f"{a.prior_interval}"
    )
    t0 = time.perf_counter()
    out, summary = train(cfg)
    png = plot_learning_curve(out)
    print(
        f"\nfinal evaluation return: {summary['final_eval_return']:.1f} "
        f"(best {summary['best_eval_return']:.1f} at step {summary['best_eval_step']}) "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    print(f"run directory: {out}")
    print(f"learning curve: {png}")
    return 0
