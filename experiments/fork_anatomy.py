"""What a trained policy does on awmp/Fork-v0 (docs/RESULTS.md §3, question 6).

Fork's reward has two modes, a = +0.6 (better when c > 0) and a = -0.6 (better when c < 0),
with a valley between (src/awmp/tasks.py). For each run, on a grid of 2,001 cues c in [-1, 1]
(uniform, as the env draws them; nothing moves within an episode, so an episode's return is
50 r(a(c); c) for the deterministic action a(c)), it measures:

- the mean return and the regret (optimal 50 (1 + |c|)/2 minus return), in all and per band
  of |c|: [0, 0.1), [0.1, 0.5), [0.5, 1];
- where the policy acts: the fraction of cues on the right mode (|a - 0.6 sign(c)| < 0.15),
  on the wrong mode (|a + 0.6 sign(c)| < 0.15) and elsewhere (the valley or beyond the modes);
- for SAC-AWMP: the same fractions for the mean of each component, whether each component
  sits on one mode for every cue (a specialist) or switches with c, the gate's median largest
  weight max ρ, and the return of acting with the argmax-ρ component's mean instead of the
  ρ-weighted blend (the run's own evaluation);
- given SAC and SAC-AWMP runs together, the difference of their grid scores (SAC-AWMP's blend
  and argmax, each against SAC) with awmp.report's bootstrap CIs and exact permutation p.

Usage: python experiments/fork_anatomy.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import awmp
from awmp import report
from awmp.algos import sac_awmp
from awmp.tasks import FORK_ID, FORK_MODE, FORK_STEPS, FORK_WIDTH, fork_reward

CUES = np.linspace(-1.0, 1.0, 2001)
BANDS = (0.0, 0.1, 0.5, 1.0 + 1e-9)


def where(a: np.ndarray) -> dict[str, float]:
    """Fractions of the cues with the action on the right mode, the wrong mode, elsewhere."""
    s = np.where(CUES >= 0, 1.0, -1.0)
    right = np.abs(a - FORK_MODE * s) < FORK_WIDTH
    wrong = np.abs(a + FORK_MODE * s) < FORK_WIDTH
    return {
        "right": float(right.mean()),
        "wrong": float(wrong.mean()),
        "elsewhere": float((~right & ~wrong).mean()),
    }


def returns(a: np.ndarray) -> dict:
    ret = FORK_STEPS * fork_reward(np.clip(a, -1, 1), CUES)
    regret = FORK_STEPS * (1 + np.abs(CUES)) / 2 - ret
    band = np.digitize(np.abs(CUES), BANDS) - 1
    return {
        "return": float(ret.mean()),
        "regret": float(regret.mean()),
        "band_regret": [float(regret[band == b].mean()) for b in range(len(BANDS) - 1)],
        **where(a),
    }


def analyse(run_dir: str) -> dict:
    policy = awmp.load(run_dir)
    if policy.config.env != FORK_ID:
        raise SystemExit(f"{run_dir}: an {FORK_ID} run is needed, not {policy.config.env}")
    obs = CUES[:, None].astype(np.float32)
    out = {"run": run_dir, "algo": policy.config.algo}
    out["own evaluation"] = returns(np.asarray(policy.act_normalized(obs))[:, 0])
    if policy.config.algo == "sac-awmp":
        model = sac_awmp.build(policy.spec, policy.config.awmp)

        @jax.jit
        def components(o):  # tanh(mu_g) (O, B, d) and rho (B, O), as evaluation has them
            a, log_rho = model.mean_actions(policy.state, o)
            return a, jnp.exp(log_rho)

        a, rho = (np.asarray(x) for x in components(jnp.asarray(obs)))  # (O, N, 1), (N, O)
        out["argmax ρ component"] = returns(a[np.argmax(rho, 1), np.arange(len(CUES)), 0])
        out["components"] = []
        for g in range(a.shape[0]):
            ag = a[g, :, 0]
            on_plus = np.abs(ag - FORK_MODE) < FORK_WIDTH
            on_minus = np.abs(ag + FORK_MODE) < FORK_WIDTH
            out["components"].append(
                {
                    **where(ag),
                    "on +0.6": float(on_plus.mean()),
                    "on -0.6": float(on_minus.mean()),
                    "mean ρ": float(rho[:, g].mean()),
                }
            )
        out["rho_max"] = float(np.median(rho.max(1)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+")
    args = p.parse_args()
    bands = " | ".join(f"regret, abs(c) in [{a:g}, {b:.1f})" for a, b in zip(BANDS, BANDS[1:]))
    print(f"| run | acting | return | regret | {bands} | right mode | wrong mode | elsewhere |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    comps, results = [], []
    for run in args.run_dirs:
        r = analyse(run)
        results.append(r)
        for name in ("own evaluation", "argmax ρ component"):
            if name in r:
                m = r[name]
                b = " | ".join(f"{x:.2f}" for x in m["band_regret"])
                print(
                    f"| {run} | {name} | {m['return']:.2f} | {m['regret']:.2f} | {b} | "
                    f"{m['right']:.0%} | {m['wrong']:.0%} | {m['elsewhere']:.0%} |",
                    flush=True,
                )
        if "components" in r:
            comps.append(r)
    by_algo: dict[str, list[dict]] = {}
    for r in results:
        by_algo.setdefault(r["algo"], []).append(r)
    if "sac" in by_algo and "sac-awmp" in by_algo:
        # Question 6b's reading: each rule's grid score against SAC's, with awmp.report's
        # statistics (bootstrap CIs of the difference, exact permutation p).
        b = np.array([r["own evaluation"]["return"] for r in by_algo["sac"]])
        print(
            "\n| grid score | SAC-AWMP | SAC | Δ mean [95% CI] | Δ IQM [95% CI] | permutation p |"
        )
        print("|---|---|---|---:|---:|---:|")
        for name in ("own evaluation", "argmax ρ component"):
            a = np.array([r[name]["return"] for r in by_algo["sac-awmp"]])
            cis = [report.bootstrap_diff_ci(a, b, stat) for stat in ("mean", "iqm")]
            ci = " | ".join(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in cis)
            print(
                f"| SAC-AWMP {name} − SAC | {', '.join(f'{x:.2f}' for x in a)} | "
                f"{', '.join(f'{x:.2f}' for x in b)} | {ci} | {report.permutation_p(a, b):.3f} |"
            )
    if comps:
        print("\n| run | component | mean ρ | on +0.6 | on -0.6 | right mode | wrong mode |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in comps:
            for g, c in enumerate(r["components"]):
                print(
                    f"| {r['run']} | {g} | {c['mean ρ']:.2f} | {c['on +0.6']:.0%} | "
                    f"{c['on -0.6']:.0%} | {c['right']:.0%} | {c['wrong']:.0%} |"
                )
            print(f"| {r['run']} | median max ρ | {r['rho_max']:.2f} | | | | |")


if __name__ == "__main__":
    main()
