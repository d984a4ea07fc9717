"""Why the mixture may not act as one (docs/RESULTS.md §3, "find out why"): per-state anatomy of a
trained SAC-AWMP policy along its own deterministic episodes.

For every visited state s it measures, with the run's final parameters:
- the gating rho(.|s) (eq. 16-17 at the component means, as in evaluation): its largest weight
  and its entropy (ln O = uniform);
- the prior h = P(.|s, a) at the executed action: the same two numbers;
- whether argmax rho and argmax h name the same component (chance: 1/O);
- the spread of the gating logits, max_g - min_g of (Qbar_1(s, a_g) - alpha log pi_g(a_g|s)),
  against the gating temperature T: rho can only be peaked where this spread is several T;
- how far apart the components' actions are: the mean distance |tanh(mu_g) - tanh(mu_k)| over
  pairs g < k (actions live in [-1, 1]^d), and its ratio to sqrt(d).

Usage: python experiments/mixture_anatomy.py RUN_DIR [RUN_DIR ...] [--episodes 3]
Prints one Markdown row per run.
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np

import awmp
from awmp.algos import sac_awmp
from awmp.algos.sac_awmp import squash_mean
from awmp.config import env_kwargs
from awmp.envs import make_env
from awmp.inspect import sharpness


def anatomy(run_dir: str, episodes: int, seed: int = 0) -> dict:
    policy = awmp.load(run_dir)
    if policy.config.algo != "sac-awmp":
        raise SystemExit(f"{run_dir}: a sac-awmp run is needed, not {policy.config.algo}")
    cfg = policy.config.awmp
    model = sac_awmp.build(policy.spec, cfg)
    nets = model.nets(policy.state)

    @jax.jit
    def per_state(obs, action):
        mean, log_std = model.policy_net.apply(policy.state.policy, obs)  # (O, B, d)
        a, logp = squash_mean(mean, log_std)
        obs_o = jnp.broadcast_to(obs, (a.shape[0], *obs.shape))
        q_bar1 = model.critic_net.apply(nets["target_critic"], obs_o, a)[0]  # (O, B)
        logits = (q_bar1 - model.alpha(nets) * logp).T  # (B, O), before / T
        rho, h = model.weights(policy.state, obs, action)
        return a, logits, rho, h

    env, _ = make_env(policy.config.env, **env_kwargs(policy.config))
    rec: dict[str, list] = {"a": [], "logits": [], "rho": [], "h": [], "ret": []}
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done, ret = False, 0.0
        while not done:
            o = np.asarray(obs, np.float32)[None]
            action = policy.act_normalized(o)
            a, logits, rho, h = (np.asarray(x) for x in per_state(jnp.asarray(o), action))
            rec["a"].append(a[:, 0])
            rec["logits"].append(logits[0])
            rec["rho"].append(rho[0])
            rec["h"].append(h[0])
            obs, r, term, trunc, _ = env.step(action[0].astype(np.float64))
            ret += float(r)
            done = term or trunc
        rec["ret"].append(ret)
    env.close()
    a, logits = np.asarray(rec["a"]), np.asarray(rec["logits"])  # (N, O, d), (N, O)
    rho, h = np.asarray(rec["rho"]), np.asarray(rec["h"])
    o, d = a.shape[1], a.shape[2]
    pairs = list(itertools.combinations(range(o), 2))
    dist = np.mean([np.linalg.norm(a[:, g] - a[:, j], axis=-1) for g, j in pairs], axis=0)
    spread = logits.max(1) - logits.min(1)
    sharp = sharpness([{"rho": rho, "h": h}])  # awmp inspect's per-state numbers
    return {
        "run": run_dir,
        "steps": len(rho),
        "return": float(np.mean(rec["ret"])),
        **{k: sharp[k] for k in ("rho_max", "rho_entropy", "h_max", "h_entropy")},
        "agree": sharp["argmax_agreement"],
        "logit_spread_over_T": float(np.median(spread) / cfg.gating_temperature),
        "component_distance": float(dist.mean()),
        "component_distance_rel": float(dist.mean() / np.sqrt(d)),
        "O": o,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--episodes", type=int, default=3)
    args = p.parse_args()
    print(
        "| run | steps | return | max ρ | H(ρ) | max h | H(h) | argmax ρ = argmax h | "
        "median logit spread / T | component distance (/√d) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in args.run_dirs:
        r = anatomy(run, args.episodes)
        print(
            f"| {r['run']} | {r['steps']} | {r['return']:.0f} | {r['rho_max']:.2f} | "
            f"{r['rho_entropy']:.2f} | {r['h_max']:.2f} | {r['h_entropy']:.2f} | "
            f"{r['agree']:.2f} | {r['logit_spread_over_T']:.2f} | "
            f"{r['component_distance']:.2f} ({r['component_distance_rel']:.2f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
