"""`make demo`: a short real training run that visibly learns on a 2-core CPU."""

from __future__ import annotations

import time

from awmp.config import preset
from awmp.plots import plot_learning_curve
from awmp.train import train

DEMO_ENV = "Pendulum-v1"
DEMO_ALGO = "sac"
DEMO_STEPS = 15_000


def run_demo(run_dir: str | None = None) -> int:
    """Train SAC on Pendulum-v1 for 15,000 steps (paper preset, 1,000 warm-up steps)."""
    cfg = preset("paper")
    cfg.algo = DEMO_ALGO
    cfg.env = DEMO_ENV
    cfg.total_steps = DEMO_STEPS
    cfg.warmup_steps = 1000
    cfg.eval_interval = 1000
    cfg.eval_episodes = 10
    cfg.run_dir = run_dir
    print(f"awmp demo: {cfg.algo} on {cfg.env}, {cfg.total_steps} steps (paper preset)")
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
