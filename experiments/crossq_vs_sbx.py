"""Our CrossQ against SBX's CrossQ at equal settings, returns over seeds.

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
    python experiments/crossq_vs_sbx.py step --updates 300 --every 30 [--alpha-loss log]
        (both updates from the same networks, batches and noise; docs/results/crossq-sbx/)
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


def _sbx_to_ours(sbx_model, ours_state):
    """Our CrossQState holding SBX's initial networks (parameters and BRN running statistics)."""
    import jax.numpy as jnp

    a_par, a_st = sbx_model.policy.actor_state.params, sbx_model.policy.actor_state.batch_stats
    q_par = sbx_model.policy.qf_state.params["VmapCritic_0"]
    q_st = sbx_model.policy.qf_state.batch_stats["VmapCritic_0"]

    def stats(st):  # SBX keeps r_max and d_max as variables too; ours are constants
        return {k: {"mean": v["mean"], "var": v["var"], "steps": jnp.asarray(v["steps"], jnp.int32)}
                for k, v in st.items()}  # fmt: skip

    actor = _sbx_to_ours_actor(a_par)
    (critic_name,) = ours_state.critic.keys()
    out = ours_state.replace(
        actor=actor, actor_stats=stats(a_st),
        critic={critic_name: dict(q_par)}, critic_stats={critic_name: stats(q_st)},
    )  # fmt: skip
    # Same tree layout as our own init (names, shapes), or the mapping above is wrong.
    import jax

    for mine, theirs in ((ours_state.actor, out.actor), (ours_state.critic, out.critic),
                         (ours_state.actor_stats, out.actor_stats),
                         (ours_state.critic_stats, out.critic_stats)):  # fmt: skip
        a = jax.tree_util.tree_map(lambda x: (x.shape, str(x.dtype)), mine)
        b = jax.tree_util.tree_map(lambda x: (x.shape, str(x.dtype)), theirs)
        assert a == b, (a, b)
    return out


def step_compare(args) -> str:
    """Both implementations' updates from the same networks on the same batches with the same
    noise, side by side: after each update, the largest differences of Q(s, a) and of the actor's
    mean and sigma on a fixed probe batch (relative), of the parameters (in Adam steps) and alpha,
    next to how far our own update drifts from a 1e-7 perturbation of its start (the yardstick).

    Noise is matched through the keys: our update splits its key K into (next, k_next, k_pi) and
    SBX's update_critic splits K into (next, noise, dropout), so k_next is SBX's noise key; SBX's
    update_actor splits its key into (next, dropout, noise), so calling it with K gives k_pi.
    `--alpha-loss log` swaps our temperature loss alpha (H - H_target) for SBX 0.28's
    log(alpha) (H - H_target), to tell that choice's effect from anything else.
    """
    import gymnasium as gym
    import jax
    import jax.numpy as jnp
    import tensorflow_probability.substrates.jax as tfp
    from sbx import CrossQ as SBXCrossQ

    import awmp.algos.crossq as ours_mod
    from awmp.distributions import gaussian_log_prob, log_det_tanh_jacobian
    from awmp.envs import EnvSpec

    # SBX draws the Gaussian noise through TFP (MultivariateNormalDiag.sample), which maps a key
    # to other numbers than jax.random.normal does; our sampler takes its noise the same way here
    # (only in this comparison), so both updates see the same eps for the same key.
    def tfp_noise_sample(key, mean, log_std):
        eps = tfp.distributions.MultivariateNormalDiag(
            jnp.zeros_like(mean), jnp.ones_like(mean)
        ).sample(seed=key)
        u = mean + jnp.exp(log_std) * eps
        return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - log_det_tanh_jacobian(u)

    ours_mod.sample_tanh_gaussian = tfp_noise_sample
    if args.alpha_loss == "log":
        ours_mod.temperature_loss = lambda log_alpha, gap: log_alpha * gap  # SBX 0.28's form
    env = gym.make(args.env)
    sbx_model = SBXCrossQ(
        "MlpPolicy", env, learning_rate=1e-3, batch_size=256, policy_delay=3, ent_coef="auto_1.0",
        policy_kwargs={"net_arch": {"pi": [256, 256], "qf": list(args.hidden)},
                       "batch_norm_momentum": 0.99, "renorm_warmup_steps": 100_000,
                       "optimizer_class": __import__("optax").adam,
                       "optimizer_kwargs": {"b1": 0.5}},
        seed=args.seed,
    )  # fmt: skip
    spec = EnvSpec(env.observation_space.shape[0], env.action_space.shape[0])
    cfg = ours_mod.CrossQConfig(hidden=tuple(args.hidden))
    algo = ours_mod.CrossQ(spec, cfg)
    state = _sbx_to_ours(sbx_model, algo.init(jax.random.PRNGKey(0)))
    update = jax.jit(algo.update)
    # The yardstick: our own update from the same start with every critic parameter moved by a
    # relative 1e-7 (float32 rounding), to show how fast float differences alone grow in training.
    noise = jax.random.PRNGKey(7)
    state_p = state.replace(
        critic=jax.tree_util.tree_map(
            lambda x: x * (1 + 1e-7 * jax.random.normal(noise, x.shape)), state.critic
        )
    )

    # Real transitions under uniform random actions (CrossQ's warm-up), one batch per update.
    rng = np.random.default_rng(args.seed)
    obs, _ = env.reset(seed=args.seed)
    rows = []
    for _ in range(args.updates * 256):
        a = rng.uniform(-1, 1, spec.act_dim).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        rows.append((obs, a, r, nxt, float(term)))
        obs = env.reset()[0] if term or trunc else nxt
    f32 = lambda xs: jnp.asarray(np.asarray(xs, np.float32))  # noqa: E731

    actor_s, qf_s, ent_s = (sbx_model.policy.actor_state, sbx_model.policy.qf_state,
                            sbx_model.ent_coef_state)  # fmt: skip
    target_entropy = jnp.asarray(-float(spec.act_dim), jnp.float32)

    def gap(mine, theirs) -> float:  # the largest parameter difference, in Adam steps (lr)
        d = jax.tree_util.tree_map(lambda x, y: float(jnp.max(jnp.abs(x - y))), mine, theirs)
        return max(jax.tree_util.tree_leaves(d)) / 1e-3

    def rel(x, y) -> float:  # the largest output difference relative to the largest output
        return float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-12))

    # The functions both sides compute, on a fixed probe batch (eval mode: running statistics).
    probe_o = f32([row[0] for row in rows[:256]])
    probe_a = f32([row[1] for row in rows[:256]])

    def q_of(state):
        return algo.nets.critic_eval.apply(_vars_of(state.critic, state.critic_stats), probe_o,
                                           probe_a)  # fmt: skip

    def outputs(state, actor_s, qf_s):
        q_mine = algo.nets.critic_eval.apply(_vars_of(state.critic, state.critic_stats), probe_o,
                                             probe_a)  # fmt: skip
        q_theirs = qf_s.apply_fn({"params": qf_s.params, "batch_stats": qf_s.batch_stats},
                                 probe_o, probe_a, train=False)[..., 0]  # fmt: skip
        mean_mine, log_std_mine = algo.policy_eval(state, probe_o)
        dist = actor_s.apply_fn({"params": actor_s.params, "batch_stats": actor_s.batch_stats},
                                probe_o, train=False)  # fmt: skip
        return (rel(q_mine, q_theirs), rel(mean_mine, dist.distribution.loc),
                rel(jnp.exp(log_std_mine), dist.distribution.stddev()))  # fmt: skip

    lines = ["| update | actor step | q_loss ours / SBX | Q(s, a) | actor mean | actor σ |"
             " critic params | actor params | alpha ours / SBX | Q(s, a), ours v ours + 1e-7 |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = jax.random.split(jax.random.PRNGKey(1000 + args.seed), args.updates)
    for t in range(args.updates):
        chunk = rows[t * 256 : (t + 1) * 256]
        o, a, r, n, d = (f32([row[i] for row in chunk]) for i in range(5))
        batch = {"obs": o, "action": a, "reward": r, "next_obs": n, "terminated": d}
        state = state.replace(key=keys[t])
        state, m = update(state, batch)
        state_p, _ = update(state_p.replace(key=keys[t]), batch)
        qf_s, (q_loss_sbx, _), _ = SBXCrossQ.update_critic(
            actor_s, qf_s, ent_s, o, a, n, r, d, jnp.full_like(r, 0.99), keys[t]
        )
        actor_step = (t + 1) % 3 == 0
        if actor_step:
            actor_s, qf_s, _, _, entropy = SBXCrossQ.update_actor(actor_s, qf_s, ent_s, o, keys[t])
            ent_s, _ = SBXCrossQ.update_temperature(target_entropy, ent_s, entropy)
        if (t + 1) % args.every and t + 1 != args.updates:
            continue
        alpha_sbx = float(jnp.exp(ent_s.params["log_ent_coef"]))
        q_name = next(iter(state.critic))
        dq, dmean, dstd = outputs(state, actor_s, qf_s)
        lines.append(
            f"| {t + 1} | {'yes' if actor_step else ''} | {float(m['q_loss']):.5g} / "
            f"{float(q_loss_sbx):.5g} | {dq:.1e} | {dmean:.1e} | {dstd:.1e} | "
            f"{gap(state.critic[q_name], dict(qf_s.params['VmapCritic_0'])):.2g} | "
            f"{gap(state.actor, _sbx_to_ours_actor(actor_s.params)):.2g} | "
            f"{float(jnp.exp(state.log_alpha)):.6f} / {alpha_sbx:.6f} | "
            f"{rel(q_of(state_p), q_of(state)):.1e} |"
        )
    return "\n".join(lines)


def _vars_of(params, stats) -> dict:
    return {"params": params, "batch_stats": stats}


def _sbx_to_ours_actor(a_par):
    """SBX's actor parameters in our layout: our last layer is one Dense of 2|A| outputs (mean,
    log sigma), SBX's two Dense layers of |A| (Dense_2: mean, Dense_3: log sigma)."""
    import jax.numpy as jnp

    out = {k: v for k, v in a_par.items() if k not in ("Dense_2", "Dense_3")}
    out["Dense_2"] = {
        n: jnp.concatenate([a_par["Dense_2"][n], a_par["Dense_3"][n]], axis=-1)
        for n in ("kernel", "bias")
    }
    return out


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
    c = sub.add_parser("step", help="one update at a time, same networks, batches and noise")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--env", default="Hopper-v5")
    c.add_argument("--updates", type=int, default=30)
    c.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="critic widths")
    c.add_argument("--every", type=int, default=1, help="print every N-th update")
    c.add_argument("--alpha-loss", choices=("ours", "log"), default="ours")
    t = sub.add_parser("table")
    t.add_argument("root")
    args = p.parse_args(argv)
    if args.cmd == "step":
        print(step_compare(args))
        return 0
    if args.cmd == "table":
        print(table(Path(args.root)))
        return 0
    run_dir = Path(args.out) / args.impl / f"seed{args.seed}"
    summary = (run_awmp if args.impl == "awmp" else run_sbx)(args, run_dir)
    print(json.dumps({k: summary[k] for k in ("final_eval_return", "wall_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
