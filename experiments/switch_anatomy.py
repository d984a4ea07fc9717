"""Where a trained policy loses return on awmp/Switch-v0, and whether the mixture could do better
(docs/RESULTS.md §3, the premise: "find out why").

Switch-v0's optimal action is sign(c), a jump at the cue c = 0 (src/awmp/tasks.py). A policy
that is continuous in c must pass through small actions near c = 0 and is slow there. For each
run this measures, on N episodes drawn as the env draws them (cue c = u^3):

- the regret (optimal return - return) per band of |c|, and each band's share of the mean
  regret (band mass P(|c| < x) = x^(1/3): [0, 1e-3) 10%, [1e-3, 1e-2) 11.5%, [1e-2, 0.1)
  24.9%, [0.1, 1] 53.6%), and the fraction of episodes that end on the wrong side;
- the policy's resolution: the smallest |c| on a log grid (1e-6 ... 1, both signs, at
  p in {-0.5, 0, 0.5}) from which on every action points the right way with |a| >= 0.5, and
  the one from which on its sign alone is right;
- the critic's resolution: the same for the sign of Q(s, +1) - Q(s, -1) (SAC: its critic Q_1
  from the final checkpoint; SAC-AWMP: Qbar_1, the target critic its gate reads);
- for SAC-AWMP, whether the components specialise: the fraction of components that switch
  sign across the boundary by themselves (action < 0 at c = -0.1 and > 0 at c = +0.1; 1.0 means
  every component learned the whole ramp), and the gate's median largest weight max ρ on the
  grid near the boundary (|c| < 0.01) and away from it (|c| >= 0.1); uniform is 1/O;
- for SAC-AWMP, how the prior splits the states: at each episode's first state and its
  evaluation action, h's favourite component; the share of each component's states that lie
  on its majority side of c = 0 (averaged over components by their counts; 0.5 is no split by
  side, 1.0 a clean one), and the median largest h;
- for SAC-AWMP, the regret under three ways of acting with the same final parameters: the
  ρ-weighted blend of the component means (the run's own evaluation, eq. 16-17 at the means,
  ALGORITHM.md "§4 evaluation"), the mean of the most probable component (argmax ρ), and a
  component drawn from ρ (its mean, no action noise). The blend is continuous in c whatever
  the components do; argmax is not.

The episodes are stepped as one batch with the env's own dynamics (p <- clip(p + 0.1 a, -1, 1),
r = -|p - g|), from the env's own reset draws, and checked against gymnasium's env step by step
on the first episodes.

Usage: python experiments/switch_anatomy.py RUN_DIR [RUN_DIR ...] [--episodes 4000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import awmp
from awmp.algos import sac as algos_sac
from awmp.algos import sac_awmp
from awmp.envs import make_env
from awmp.tasks import SPEED, SWITCH_ID, SWITCH_STEPS

BANDS = (0.0, 1e-3, 1e-2, 1e-1, 1.0 + 1e-9)
GRID = np.concatenate([-np.logspace(0, -6, 61), np.logspace(-6, 0, 61)])  # c, both signs


def starts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(p0, c) of n episodes, as env.reset(seed=seed + k) draws them."""
    env, _ = make_env(SWITCH_ID)
    obs = np.array([env.reset(seed=seed + k)[0] for k in range(n)], np.float32)
    env.close()
    return obs[:, 0].astype(np.float64), obs[:, 1].astype(np.float64)


def rollout(act, p0: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns and final positions of the batch of episodes under `act` (obs (B, 2) float32 ->
    actions (B, 1))."""
    p, g = p0.copy(), np.where(c >= 0, 1.0, -1.0)
    ret = np.zeros_like(p)
    for _ in range(SWITCH_STEPS):
        obs = np.stack([p, c], 1).astype(np.float32)
        a = np.clip(np.asarray(act(obs), np.float64)[:, 0], -1.0, 1.0)
        p = np.clip(p + SPEED * a, -1.0, 1.0)
        ret -= np.abs(p - g)
    return ret, p


def check_against_env(act, seed: int, episodes: int = 3) -> None:
    """The batched rollout gives gymnasium's returns on the first episodes (to rounding)."""
    env, _ = make_env(SWITCH_ID)
    p0, c = starts(episodes, seed)
    mine, _ = rollout(act, p0, c)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(np.asarray(act(obs[None]), np.float64)[0])
            ret, done = ret + float(r), term or trunc
        if abs(ret - mine[k]) > 1e-4 * max(1.0, abs(ret)):
            raise SystemExit(f"batched rollout {mine[k]} != env {ret} (episode {k})")
    env.close()


def optimal_return(p0: np.ndarray, c: np.ndarray) -> np.ndarray:
    dist = np.abs(p0 - np.where(c >= 0, 1.0, -1.0))
    j = np.arange(1, SWITCH_STEPS + 1)
    return -np.maximum(dist[:, None] - SPEED * j, 0.0).sum(1)


def resolution(values: np.ndarray, ok_magnitude: np.ndarray | None = None) -> float:
    """Smallest |c| of GRID from which on (for every larger |c|, both signs, every p) the sign
    of `values` (P, len(GRID)) is sign(c), and `ok_magnitude` holds where given."""
    ok = np.sign(values) == np.sign(GRID)
    if ok_magnitude is not None:
        ok &= ok_magnitude
    ok = ok.all(0)
    mags = np.abs(GRID)
    bad = mags[~ok]
    if bad.size == 0:
        return float(mags.min())
    above = mags[mags > bad.max()]
    return float(above.min()) if above.size else float("inf")


def grid_obs(p: float) -> np.ndarray:
    return np.stack([np.full_like(GRID, p), GRID], 1).astype(np.float32)


def analyse(run_dir: str, episodes: int, seed: int) -> dict:
    policy = awmp.load(run_dir)
    if policy.config.env != SWITCH_ID:
        raise SystemExit(f"{run_dir}: an {SWITCH_ID} run is needed, not {policy.config.env}")
    algo = policy.config.algo
    modes = {"own evaluation": lambda o: policy.act_normalized(o)}
    critic = None
    if algo == "sac-awmp":
        model = sac_awmp.build(policy.spec, policy.config.awmp)
        nets = model.nets(policy.state)

        @jax.jit
        def components(obs):  # tanh(mu_g) (O, B, d) and rho (B, O), as evaluation has them
            a, log_rho = model.mean_actions(policy.state, obs)
            return a, jnp.exp(log_rho)

        def argmax(o):
            a, rho = (np.asarray(x) for x in components(jnp.asarray(o)))
            return a[np.argmax(rho, 1), np.arange(len(o))]

        rng = np.random.default_rng(seed)

        def sampled(o):
            a, rho = (np.asarray(x, np.float64) for x in components(jnp.asarray(o)))
            u = rng.random(len(o))[:, None]
            g = (np.cumsum(rho, 1) < u).sum(1).clip(0, rho.shape[1] - 1)
            return a[g, np.arange(len(o))]

        modes["argmax ρ component"] = argmax
        modes["component drawn from ρ"] = sampled

        def critic(o, a):
            return model.critic_net.apply(nets["target_critic"], o, a)[0]

        critic_name = "Qbar_1 (target critic, as the gate reads it)"
    elif algo == "sac":
        ckpts = sorted((Path(run_dir) / "checkpoints").glob("step_*.ckpt"))
        if ckpts and int(ckpts[-1].stem.split("_")[1]) == policy.config.total_steps:
            full = awmp.load(run_dir, which=str(ckpts[-1]))
            model = algos_sac.build(full.spec, full.config.algo_config())
            params = full.state.critic

            def critic(o, a):
                return model.critic_net.apply(params, o, a)[0]

            critic_name = "Q_1 (critic, final checkpoint)"

    check_against_env(modes["own evaluation"], seed)
    p0, c = starts(episodes, seed)
    opt = optimal_return(p0, c)
    band = np.digitize(np.abs(c), BANDS) - 1
    out = {"run": run_dir, "algo": algo, "episodes": episodes, "modes": {}}
    for name, act in modes.items():
        ret, p_end = rollout(act, p0, c)
        regret = opt - ret
        out["modes"][name] = {
            "return": float(ret.mean()),
            "regret": float(regret.mean()),
            "wrong_side": float(np.mean(np.sign(p_end) != np.sign(np.where(c >= 0, 1.0, -1.0)))),
            "band_regret": [float(regret[band == b].mean()) for b in range(len(BANDS) - 1)],
            "band_share": [
                float(regret[band == b].sum() / regret.sum()) for b in range(len(BANDS) - 1)
            ],
            "band_n": [int((band == b).sum()) for b in range(len(BANDS) - 1)],
        }
    ps = (-0.5, 0.0, 0.5)
    acts = np.stack([np.asarray(modes["own evaluation"](grid_obs(p)))[:, 0] for p in ps])
    out["policy_resolution"] = resolution(acts, np.abs(acts) >= 0.5)
    out["policy_sign_resolution"] = resolution(acts)
    if "argmax ρ component" in modes:
        am = np.stack([np.asarray(modes["argmax ρ component"](grid_obs(p)))[:, 0] for p in ps])
        out["argmax_resolution"] = resolution(am, np.abs(am) >= 0.5)
        # Does each component solve the whole task by itself (its own ramp across c = 0), or do
        # the components specialise by side with the gate switching between them?
        switchers, near, far = [], [], []
        for p in ps:
            a, rho = (np.asarray(x) for x in components(jnp.asarray(grid_obs(p))))
            lo, hi = np.argmin(np.abs(GRID + 0.1)), np.argmin(np.abs(GRID - 0.1))
            switchers.append(np.mean((a[:, lo, 0] < 0) & (a[:, hi, 0] > 0)))
            near.append(rho.max(1)[np.abs(GRID) < 1e-2])
            far.append(rho.max(1)[np.abs(GRID) >= 0.1])
        out["switchers"] = float(np.mean(switchers))  # fraction of components, mean over p
        out["rho_max_near"] = float(np.median(np.concatenate(near)))
        out["rho_max_far"] = float(np.median(np.concatenate(far)))
        # The prior's split: at the episodes' first states and the evaluation action, the share
        # of each component's states (those where h names it) on its majority side of c = 0.
        obs = np.stack([p0, c], 1).astype(np.float32)
        _, h = model.weights(
            policy.state, jnp.asarray(obs), jnp.asarray(modes["own evaluation"](obs))
        )
        fav = np.asarray(h).argmax(1)
        pure = [max(np.mean(c[fav == g] >= 0), np.mean(c[fav == g] < 0)) for g in np.unique(fav)]
        counts = [np.sum(fav == g) for g in np.unique(fav)]
        out["prior_side_purity"] = float(np.average(pure, weights=counts))
        out["prior_max_h"] = float(np.median(np.asarray(h).max(1)))
    if critic is not None:
        gaps = []
        for p in ps:
            o = jnp.asarray(grid_obs(p))
            plus = np.asarray(critic(o, jnp.ones((len(GRID), 1))))
            minus = np.asarray(critic(o, -jnp.ones((len(GRID), 1))))
            gaps.append(plus - minus)
        out["critic"] = critic_name
        out["critic_resolution"] = resolution(np.stack(gaps))
    return out


def fmt_res(x: float) -> str:
    return "none" if x == float("inf") else f"{x:.0e}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--episodes", type=int, default=4000)
    p.add_argument("--seed", type=int, default=50_000, help="first reset seed of the episodes")
    args = p.parse_args()
    head = " | ".join(f"|c| in [{a:g}, {b:g})" for a, b in zip(BANDS[:-1], BANDS[1:]))
    print(
        f"| run | acting | return | regret | regret by band: {head} (share of regret) | "
        "wrong side | policy / argmax / critic resolution |"
    )
    mixtures = []
    for run in args.run_dirs:
        r = analyse(run, args.episodes, args.seed)
        if "switchers" in r:
            mixtures.append(r)
        res = f"{fmt_res(r['policy_resolution'])} (sign {fmt_res(r['policy_sign_resolution'])})"
        if "argmax_resolution" in r:
            res += f" / {fmt_res(r['argmax_resolution'])}"
        if "critic_resolution" in r:
            res += f" / {fmt_res(r['critic_resolution'])}"
        for name, m in r["modes"].items():
            bands = " | ".join(
                f"{x:.1f} ({s:.0%})" for x, s in zip(m["band_regret"], m["band_share"])
            )
            print(
                f"| {r['run']} | {name} | {m['return']:.2f} | {m['regret']:.2f} | {bands} | "
                f"{m['wrong_side']:.1%} | {res} |",
                flush=True,
            )
    if mixtures:
        print(
            "\n| run | components switching by themselves | max ρ, abs(c) < 0.01 | "
            "max ρ, abs(c) >= 0.1 | prior's split by side of c | median max h |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for r in mixtures:
            print(
                f"| {r['run']} | {r['switchers']:.2f} | {r['rho_max_near']:.2f} | "
                f"{r['rho_max_far']:.2f} | {r['prior_side_purity']:.2f} | {r['prior_max_h']:.2f} |"
            )


if __name__ == "__main__":
    main()
