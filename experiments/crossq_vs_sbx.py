"""Issue 14 §3: our CrossQ against SBX's CrossQ at equal settings, returns over seeds.

Both implementations train on the same task with the same settings and the same protocol:
`--warmup` uniform random actions, then one critic step per environment step (actor and
temperature every 3rd), and every `--eval-interval` steps `--eval-episodes` deterministic
episodes (tanh of the mean) on a separate evaluation env seeded with seed + 1,000,003, as awmp's
own runs do. The awmp run is a normal run directory (`awmp.train`); the SBX run writes the same
eval.csv columns and a summary.json into its own directory, so one table reads both.

Needs SBX, i.e. a throwaway venv (never the project's):
    python -m venv /tmp/bv && /tmp/bv/bin/pip install torch==2.13.0 && \
        /tmp/bv/bin/pip install -e '.[bench]'
Usage (one run per call, pinned to a core by the caller, e.g. taskset -c 0):
    python experiments/crossq_vs_sbx.py run --impl sbx --seed 0 --out runs/crossq-sbx
    python experiments/crossq_vs_sbx.py run --impl awmp --seed 0 --out runs/crossq-sbx
    python experiments/crossq_vs_sbx.py table runs/crossq-sbx     (needs only awmp)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

EVAL_SEED_OFFSET = 1_000_003  # awmp.seedrun's: the evaluation env never shares the train seed


def _settings(args) -> dict:
    """The settings both implementations share (CrossQ's paper defaults but the critic width)."""
    return {
        "env": args.env,
        "total_steps": args.steps,
        "warmup_steps": args.warmup,
        "eval_interval": args.eval_interval,
        "eval_episodes": args.eval_episodes,
        "critic_hidden": list(args.hidden),
        "actor_hidden": [256, 256],
        "batch_size": 256,
        "lr": 1e-3,
        "adam_b1": 0.5,
        "gamma": 0.99,
        "policy_delay": 3,
        "alpha_init": 1.0,
        "target_entropy": "-|A|",
        "brn_momentum": 0.99,
        "brn_warmup_steps": 100_000,
        "actor_brn": True,
    }


def run_awmp(args, run_dir: Path) -> dict:
    import awmp
    from awmp.config import TrainConfig

    cfg = TrainConfig()
    cfg.algo = "crossq"  # type: ignore[assignment]
    cfg.env, cfg.seed = args.env, args.seed
    cfg.total_steps, cfg.warmup_steps = args.steps, args.warmup
    cfg.eval_interval, cfg.eval_episodes = args.eval_interval, args.eval_episodes
    cfg.crossq.hidden = tuple(args.hidden)
    cfg.progress = False
    cfg.run_dir = str(run_dir)
    _, summary = awmp.train(cfg)
    return summary


def run_sbx(args, run_dir: Path) -> dict:
    import gymnasium as gym
    import optax
    from sbx import CrossQ
    from stable_baselines3.common.callbacks import BaseCallback

    run_dir.mkdir(parents=True, exist_ok=True)
    env = gym.make(args.env)
    eval_env = gym.make(args.env)
    eval_env.reset(seed=args.seed + EVAL_SEED_OFFSET)
    evals: list[dict] = []
    t0 = time.perf_counter()

    def evaluate(model, step: int) -> None:
        returns = []
        for _ in range(args.eval_episodes):
            obs, _ = eval_env.reset()
            done, ret = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                ret += float(reward)
                done = terminated or truncated
            returns.append(ret)
        evals.append({
            "step": step, "seed": args.seed, "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)), "episodes": len(returns),
            "wall_s": round(time.perf_counter() - t0, 3),
        })  # fmt: skip
        print(f"sbx seed {args.seed} step {step}: {evals[-1]['return_mean']:.1f}", flush=True)

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_interval == 0:
                evaluate(self.model, self.num_timesteps)
            return True

    model = CrossQ(
        "MlpPolicy",
        env,
        learning_rate=1e-3,
        buffer_size=args.steps,
        learning_starts=args.warmup,
        batch_size=256,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        policy_delay=3,
        ent_coef="auto_1.0",
        target_entropy="auto",
        policy_kwargs={
            "net_arch": {"pi": [256, 256], "qf": list(args.hidden)},
            "batch_norm": True,
            "batch_norm_actor": True,
            "batch_norm_momentum": 0.99,
            "renorm_warmup_steps": 100_000,
            "optimizer_class": optax.adam,
            "optimizer_kwargs": {"b1": 0.5},
        },
        seed=args.seed,
        verbose=0,
    )
    model.learn(total_timesteps=args.steps, callback=Eval())
    with open(run_dir / "eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(evals[0]))
        w.writeheader()
        w.writerows(evals)
    import sbx

    summary = {
        "impl": "sbx", "sbx_version": sbx.__version__, "env": args.env, "seed": args.seed,
        "total_steps": args.steps, "final_eval_return": evals[-1]["return_mean"],
        "final_eval_step": evals[-1]["step"], "wall_s": round(time.perf_counter() - t0, 3),
        "settings": _settings(args),
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def table(root: Path) -> str:
    """Final returns per implementation (mean, std, IQM with its 95% bootstrap CI) and the CI of
    the difference of means, from the runs under root/{awmp,sbx}/seed*."""
    from awmp.report import bootstrap_ci, bootstrap_diff_ci, iqm

    finals: dict[str, list[float]] = {}
    for impl in ("awmp", "sbx"):
        for d in sorted((root / impl).glob("seed*")):
            s = json.loads((d / "summary.json").read_text())
            finals.setdefault(impl, []).append(float(s["final_eval_return"]))
    lines = [
        "| implementation | seeds | final returns | mean ± std | IQM [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for impl, xs in finals.items():
        a = np.asarray(xs)
        lo, hi = bootstrap_ci(a)
        std = a.std(ddof=1) if a.size > 1 else 0.0
        lines.append(
            f"| {impl} | {a.size} | {', '.join(f'{x:.0f}' for x in a)} | {a.mean():.1f} ± "
            f"{std:.1f} | {iqm(a):.1f} [{lo:.1f}, {hi:.1f}] |"
        )
    if len(finals) == 2:
        d, lo, hi = bootstrap_diff_ci(np.asarray(finals["awmp"]), np.asarray(finals["sbx"]))
        lines.append(f"\nawmp − sbx, mean final return: {d:+.1f} [{lo:+.1f}, {hi:+.1f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--impl", choices=("awmp", "sbx"), required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--out", default="runs/crossq-sbx")
    r.add_argument("--env", default="Hopper-v5")
    r.add_argument("--steps", type=int, default=50_000)
    r.add_argument("--warmup", type=int, default=5000, help="CrossQ's learning starts")
    r.add_argument("--eval-interval", type=int, default=5000)
    r.add_argument("--eval-episodes", type=int, default=10)
    r.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="critic widths")
    t = sub.add_parser("table")
    t.add_argument("root")
    args = p.parse_args(argv)
    if args.cmd == "table":
        print(table(Path(args.root)))
        return 0
    run_dir = Path(args.out) / args.impl / f"seed{args.seed}"
    summary = (run_awmp if args.impl == "awmp" else run_sbx)(args, run_dir)
    print(json.dumps({k: summary[k] for k in ("final_eval_return", "wall_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
