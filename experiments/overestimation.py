"""How far a trained critic's Q lies above the return its own evaluation policy gets (the
measure of Fujimoto et al. 2018, Fig. 1): for TD3 and TD3-AWMP runs (docs/ALGORITHM.md,
"TD3-AWMP": its target picks the component by Q̄₁ and then uses Q̄₁ again inside the min, a
max over O noisy estimates).

For each run: the newest checkpoint's actor and critics (one consistent state); `--episodes`
deterministic episodes of the run's env (evaluation seed 10_000 + episode, as `awmp eval`); at
every visited state s_t with at least `--horizon` steps left, or any state of an episode that
terminated, the critic's Q₁(s_t, π(s_t)) and min(Q₁, Q₂)(s_t, π(s_t)) at the evaluation action
π(s_t), against the discounted return G_t = Σ_k γ^k r_{t+k} the same policy then collected.
Episodes cut by the time limit leave their last `--horizon` states out, so each G_t used
misses at most γ^horizon of its tail (0.99^300 ≈ 0.05 of a value scale).

Prints one row per run and writes the rows as JSON (`--out`): mean Q₁ − G, mean min-Q − G, mean
G, their ratio, the states used, and the checkpoint's step.

Usage: python experiments/overestimation.py RUN_DIR ... --episodes 5 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from awmp.algos import td3, td3_awmp
from awmp.config import env_kwargs
from awmp.envs import make_env
from awmp.evaluate import Policy

MODULES = {"td3": td3, "td3-awmp": td3_awmp}


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma G_{t+1}, G_T = 0 past the last reward (float64)."""
    g = np.zeros(len(rewards) + 1, np.float64)
    for t in range(len(rewards) - 1, -1, -1):
        g[t] = rewards[t] + gamma * g[t + 1]
    return g[:-1]


def measure(run_dir: Path, episodes: int, horizon: int) -> dict:
    policy = Policy(run_dir, which="checkpoint")
    cfg = policy.config
    if cfg.algo not in MODULES:
        raise SystemExit(f"overestimation: {run_dir} is {cfg.algo}; this measures {list(MODULES)}")
    algo_cfg = cfg.algo_config()
    model = MODULES[cfg.algo].build(policy.spec, algo_cfg)
    gamma = float(algo_cfg.gamma)
    state = policy.state

    @jax.jit
    def q_at_policy(obs):
        a = model.act_deterministic(state, obs)
        q = model.critic_net.apply(state.critic, obs, a)  # (2, B)
        return q[0], jnp.min(q, axis=0)

    env, _ = make_env(cfg.env, **env_kwargs(cfg))
    q1s, qmins, gs = [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        states, rewards, terminated = [], [], False
        while True:
            states.append(np.asarray(obs, np.float32))
            action = policy.act(obs, deterministic=True)
            obs, r, terminated, truncated, _ = env.step(action)
            rewards.append(float(r))
            if terminated or truncated:
                break
        g = discounted_returns(np.asarray(rewards), gamma)
        keep = len(states) if terminated else max(0, len(states) - horizon)
        if keep == 0:
            continue
        q1, qmin = q_at_policy(jnp.asarray(np.stack(states[:keep])))
        q1s.append(np.asarray(q1, np.float64))
        qmins.append(np.asarray(qmin, np.float64))
        gs.append(g[:keep])
    env.close()
    if not gs:
        raise SystemExit(f"overestimation: {run_dir}: no state with {horizon} steps left")
    q1, qmin, g = (np.concatenate(x) for x in (q1s, qmins, gs))
    return {
        "run": str(run_dir), "algo": cfg.algo, "env": cfg.env, "seed": cfg.seed,
        "num_components": getattr(algo_cfg, "num_components", 1),
        "checkpoint": str(policy.source.name), "states": int(g.size),
        "mean_G": float(g.mean()), "mean_Q1_minus_G": float((q1 - g).mean()),
        "mean_minQ_minus_G": float((qmin - g).mean()),
        "Q1_over_G": float(q1.mean() / g.mean()), "gamma": gamma, "horizon": horizon,
        "episodes": episodes,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=300)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    rows = [measure(Path(d), args.episodes, args.horizon) for d in args.run_dirs]
    print("| run | algo | O | states | mean G | mean Q1 − G | mean min Q − G | Q1 / G |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {Path(r['run']).name} | {r['algo']} | {r['num_components']} | {r['states']} "
            f"| {r['mean_G']:.1f} | {r['mean_Q1_minus_G']:+.1f} | {r['mean_minQ_minus_G']:+.1f} "
            f"| {r['Q1_over_G']:.2f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
