"""`awmp bench`: side-by-side training throughput, ours vs Stable-Baselines3 and SBX.

Method (docs/BENCHMARKS.md):
- Every contender trains on the same task for `warmup + burn_in + window` environment steps with
  one gradient step per env step; throughput = `window` / wall time of the last `window` steps
  (warm-up, jit compilation and the first updates are excluded). Evaluation is outside the window.
- Contenders run interleaved (A B C ... A B C ...) for `reps` repetitions in one process, so slow
  drift of a shared machine hits all of them alike; the table reports the median per contender.
- SAC-AWMP's prior burst (prior_steps gradient steps every prior_interval env steps) is timed on
  its own and amortised: steps/s = 1 / (t_step + t_burst / prior_interval), where t_step is
  measured in a window with no burst.
- "outside update" = 1 - t_update / t_step, where t_update is the bare jitted fused train step
  (update + act) on a fixed batch, timed in the same repetition.
- FLOP efficiency = (FLOPs of one update, counted from the layer shapes) x bare updates/s, over
  the machine's measured dense-matmul rate at the same shapes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from awmp import compile_cache
from awmp.config import TrainConfig, preset
from awmp.logger import window_steps_per_second


@dataclass
class Contender:
    name: str
    run: Callable[[int], dict]  # rep -> {"steps_per_s": ..., optional extras}
    results: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# FLOP counting (documented in docs/BENCHMARKS.md)
# A dense layer (in -> out) on a batch B costs 2·B·in·out FLOPs forward; its backward pass costs
# 2·B·in·out for the input gradient and 2·B·in·out for the weight gradient. Biases and
# activations are ignored (O(B·out)).


def _mlp_shapes(inp: int, hidden: tuple[int, ...], out: int) -> list[tuple[int, int]]:
    dims = [inp, *hidden, out]
    return list(zip(dims[:-1], dims[1:]))


def _fwd(b: int, shapes: list[tuple[int, int]]) -> int:
    return sum(2 * b * i * o for i, o in shapes)


def sac_update_flops(obs_dim: int, act_dim: int, hidden: tuple[int, ...], batch: int) -> int:
    """FLOPs of one SAC update (twin critic, one actor), counted from the layer shapes."""
    q = _mlp_shapes(obs_dim + act_dim, hidden, 1)
    pi = _mlp_shapes(obs_dim, hidden, 2 * act_dim)
    f_q, f_pi = _fwd(batch, q), _fwd(batch, pi)
    flops = 0
    flops += f_pi + 2 * f_q  # target: actor on s', twin target critic on (s', a')
    flops += 2 * (3 * f_q)  # critic loss: twin forward + backward (input and weight grads)
    flops += 3 * f_pi  # actor loss: actor forward + backward
    flops += 2 * (2 * f_q)  # ... through the twin critic: forward + input-gradient backward
    return flops


def sac_update_shapes(obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> list[tuple[int, int]]:
    return _mlp_shapes(obs_dim + act_dim, hidden, 1) + _mlp_shapes(obs_dim, hidden, 2 * act_dim)


def matmul_rate(batch: int, shapes: list[tuple[int, int]], seconds: float = 1.0) -> float:
    """Measured FLOP/s of jitted dense matmuls (B, in) @ (in, out) at the given shapes."""
    key = jax.random.PRNGKey(0)
    xs = [jax.random.normal(key, (batch, i)) for i, _ in shapes]
    ws = [jax.random.normal(key, (i, o)) for i, o in shapes]

    @jax.jit
    def run(xs, ws):
        # 8 chained repetitions per call so dispatch overhead is negligible
        acc = 0.0
        for _ in range(8):
            for x, w in zip(xs, ws):
                acc = acc + jnp.max(x @ w)
            xs = [x * 1.0000001 for x in xs]
        return acc

    run(xs, ws).block_until_ready()
    flops_per_call = 8 * sum(2 * batch * i * o for i, o in shapes)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run(xs, ws).block_until_ready()
        n += 1
    return n * flops_per_call / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# Our contenders


def _our_config(
    algo: str, env: str, steps: int, warmup: int, setting: str, crossq_hidden=None, **awmp
) -> TrainConfig:
    cfg = preset("paper")
    cfg.algo = algo  # type: ignore[assignment]
    cfg.env = env
    cfg.total_steps = steps
    cfg.warmup_steps = warmup
    cfg.eval_interval = steps
    cfg.eval_episodes = 1
    cfg.log_interval = 500
    cfg.progress = False
    if setting == "256":
        for section in (cfg.sac, getattr(cfg, "td3", None)):
            if section is not None:
                section.hidden, section.batch_size = (256, 256), 256
    if crossq_hidden is not None:
        cfg.crossq.hidden = tuple(crossq_hidden)
    for k, v in awmp.items():
        setattr(cfg.awmp, k, v)
    return cfg


def _bare_update_seconds(cfg: TrainConfig, iters: int = 200) -> float:
    """Seconds per fused train step (update + act) on a fixed batch, jitted, no env or buffer."""
    from awmp import algos
    from awmp.envs import make_env

    env, spec = make_env(cfg.env)
    env.close()
    agent = algos.get(cfg.algo).make_agent(spec, cfg.algo_config())
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    b = cfg.algo_config().batch_size
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(1, b, spec.obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, (1, b, spec.act_dim)).astype(np.float32),
        "reward": rng.normal(size=(1, b)).astype(np.float32),
        "next_obs": rng.normal(size=(1, b, spec.obs_dim)).astype(np.float32),
        "terminated": np.zeros((1, b), np.float32),
    }
    for name, shape in agent.extra_fields.items():
        batch[name] = np.zeros((1, b, *shape), np.float32)
    obs = jnp.zeros((1, spec.obs_dim))
    step = algos.make_train_step(agent)
    out = step(state, batch, obs)
    jax.block_until_ready(out)
    state = out[0]
    t0 = time.perf_counter()
    for _ in range(iters):
        state, action, _, _ = step(state, batch, obs)
        np.asarray(action)  # the loop needs the action on the host every step
    return (time.perf_counter() - t0) / iters


def ours(
    name: str,
    algo: str,
    env: str,
    setting: str,
    warmup: int,
    burn_in: int,
    window: int,
    bare: bool = False,
    **awmp,
) -> Contender:
    def run(rep: int) -> dict:
        import awmp as api

        steps = warmup + burn_in + window
        cfg = _our_config(algo, env, steps, warmup, setting, **awmp)
        with tempfile.TemporaryDirectory() as tmp:
            cfg.run_dir = str(Path(tmp) / "run")
            run_dir, _ = api.train(cfg)
            sps = window_steps_per_second(run_dir, warmup + burn_in, steps)
        out = {"steps_per_s": sps}
        if algo == "sac-awmp":
            t_burst = _prior_burst_seconds(cfg)
            out["step_only_steps_per_s"] = sps
            out["burst_s"] = t_burst
            out["steps_per_s"] = 1.0 / (1.0 / sps + t_burst / cfg.awmp.prior_interval)
        if bare:
            t_up = _bare_update_seconds(cfg)
            out["bare_updates_per_s"] = 1.0 / t_up
            out["outside_update_share"] = max(0.0, 1.0 - t_up * sps)
        return out

    return Contender(name, run)


def _prior_burst_seconds(cfg: TrainConfig) -> float:
    """Wall time of one SAC-AWMP prior burst (prior_steps gradient steps), jitted and warm."""
    from awmp import algos
    from awmp.buffer import ReplayBuffer
    from awmp.envs import make_env

    env, spec = make_env(cfg.env)
    env.close()
    agent = algos.get(cfg.algo).make_agent(spec, cfg.awmp)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    m = cfg.awmp.prior_interval
    buf = ReplayBuffer(m, spec.obs_dim, spec.act_dim, agent.extra_fields)
    rng = np.random.default_rng(0)
    for _ in range(m):
        buf.add(
            obs=rng.normal(size=spec.obs_dim),
            action=rng.uniform(-1, 1, spec.act_dim),
            reward=0.0,
            next_obs=rng.normal(size=spec.obs_dim),
            terminated=0.0,
            **{k: 0.0 for k in agent.extra_fields},
        )
    apply = jax.jit(agent.hook.apply)
    times = []
    for _ in range(2):  # first call compiles
        t0 = time.perf_counter()
        # grad_steps > 0: a burst is due (the loop skips bursts only during random warm-up)
        data = agent.hook.draw(m * 10, buf, rng, 1)
        if data is None:
            raise RuntimeError("no prior burst was drawn: the burst timing would be empty")
        state, metrics = apply(state, data)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    return times[-1]


# ---------------------------------------------------------------------------------------------
# Peers (installed by `pip install '.[bench]'`)


def peer(
    name: str,
    lib: str,
    env: str,
    warmup: int,
    burn_in: int,
    window: int,
    crossq_hidden: tuple[int, ...] | None = None,
) -> Contender:
    """SB3's or SBX's SAC (256x256, batch 256), or with `crossq_hidden` SBX's CrossQ at our
    CrossQ's defaults (CrossQConfig: actor 256x256 with BRN, critics `crossq_hidden` with BRN,
    batch 256, lr 1e-3, Adam b1 0.5, policy delay 3, learned alpha from 1.0)."""

    def run(rep: int) -> dict:
        import gymnasium as gym

        if lib == "sb3":
            import torch
            from stable_baselines3 import SAC
            from stable_baselines3.common.callbacks import BaseCallback

            torch.set_num_threads(torch.get_num_threads())
            kw = {"device": "cpu"}
        elif crossq_hidden is None:
            from sbx import SAC
            from stable_baselines3.common.callbacks import BaseCallback

            kw = {}
        else:
            import optax
            from sbx import CrossQ as SAC
            from stable_baselines3.common.callbacks import BaseCallback

            kw = {"learning_rate": 1e-3, "policy_delay": 3, "ent_coef": "auto_1.0"}
        marks: dict[int, float] = {}
        start, end = warmup + burn_in, warmup + burn_in + window

        class Clock(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps in (start, end):
                    marks[self.num_timesteps] = time.perf_counter()
                return True

        policy_kwargs: dict = {"net_arch": [256, 256]}
        if crossq_hidden is not None:
            policy_kwargs = {
                "net_arch": {"pi": [256, 256], "qf": list(crossq_hidden)},
                "batch_norm": True, "batch_norm_actor": True, "batch_norm_momentum": 0.99,
                "renorm_warmup_steps": 100_000, "optimizer_class": optax.adam,
                "optimizer_kwargs": {"b1": 0.5},
            }  # fmt: skip
        model = SAC(
            "MlpPolicy",
            gym.make(env),
            policy_kwargs=policy_kwargs,
            batch_size=256,
            learning_starts=warmup,
            train_freq=1,
            gradient_steps=1,
            buffer_size=end,
            seed=rep,
            verbose=0,
            **kw,
        )
        model.learn(total_timesteps=end, callback=Clock())
        return {"steps_per_s": window / (marks[end] - marks[start])}

    return Contender(name, run)


def peers_available() -> dict[str, bool]:
    avail = {}
    for lib, mod in (("sb3", "stable_baselines3"), ("sbx", "sbx")):
        try:
            __import__(mod)
            avail[lib] = True
        except Exception:  # noqa: BLE001 - any import failure means "not installed"
            avail[lib] = False
    return avail


# ---------------------------------------------------------------------------------------------


def build_contenders(env: str, warmup: int, burn_in: int, window: int, quick: bool) -> list:
    from awmp.config import ALGOS

    w = (warmup, burn_in, window)
    cs = [
        ours("ours SAC 256x256/b256", "sac", env, "256", *w, bare=True),
        ours("ours SAC paper", "sac", env, "paper", *w, bare=True),
    ]
    if "sac-awmp" in ALGOS:
        for o in (1, 2, 4, 8) if not quick else (4,):
            cs.append(
                ours(
                    f"ours SAC-AWMP O={o} paper",
                    "sac-awmp",
                    env,
                    "paper",
                    *w,
                    bare=(o == 4),
                    num_components=o,
                )
            )
    if "td3" in ALGOS:
        cs.append(ours("ours TD3 256x256/b256", "td3", env, "256", *w))
    avail = peers_available()
    if avail["sb3"]:
        cs.append(peer("SB3 SAC 256x256/b256", "sb3", env, *w))
    if avail["sbx"]:
        cs.append(peer("SBX SAC 256x256/b256", "sbx", env, *w))
    return cs


def crossq_contenders(
    env: str, warmup: int, burn_in: int, window: int, hidden: tuple[int, ...]
) -> list[Contender]:
    """Our CrossQ and SBX's at equal settings (critics `hidden`) (docs/RESULTS.md §4)."""
    w = (warmup, burn_in, window)
    label = "x".join(map(str, hidden))
    cs = [ours(f"ours CrossQ critics {label}", "crossq", env, "paper", *w, crossq_hidden=hidden)]
    if peers_available()["sbx"]:
        cs.append(peer(f"SBX CrossQ critics {label}", "sbx", env, *w, crossq_hidden=hidden))
    return cs


def _layout_main(args) -> int:
    from awmp import layout_bench

    if (
        args.reps < 1
        or args.window < 500
        or any(v % 500 for v in (args.window, args.burn_in, args.warmup))
    ):
        print(
            "awmp: error: --layout needs --reps >= 1 and --warmup/--burn-in/--window multiples "
            "of 500 (train.csv's rows), window >= 500",
            file=sys.stderr,
        )
        return 2
    result = layout_bench.layout_bench(
        args.env, args.algo, args.warmup, args.burn_in, args.window, args.reps, args.hidden,
        log=lambda m: print(m, flush=True),
    )  # fmt: skip
    print(layout_bench.table(result))
    layout_bench.write(result, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="awmp bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median)")
    p.add_argument("--warmup", type=int, default=1000, help="random steps before learning")
    p.add_argument("--burn-in", type=int, default=500, help="learning steps before the window")
    p.add_argument("--window", type=int, default=1000, help="measured environment steps")
    p.add_argument("--quick", action="store_true", help="SAC-AWMP at O=4 only")
    p.add_argument("--out", default="bench.json", help="where to write the JSON results")
    p.add_argument(
        "--layout", action="store_true",
        help="instead: runs per hour of the ways to place runs on this machine's cores (pinned "
        "processes, unpinned, vmapped seeds; awmp.layout_bench) with --algo",
    )  # fmt: skip
    p.add_argument("--algo", default="sac", help="--layout: the algorithm to run (default sac)")
    p.add_argument(
        "--crossq", action="store_true",
        help="instead: our CrossQ against SBX's CrossQ at equal settings (critics --hidden, "
        "default 2048 2048 as in the CrossQ paper)",
    )  # fmt: skip
    p.add_argument(
        "--hidden", nargs="+", default=None,
        help="--layout: network sizes (default: preset); --crossq: critic widths",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.layout:
        return _layout_main(args)
    crossq_hidden = None
    if args.crossq:
        try:
            crossq_hidden = tuple(int(h) for h in (args.hidden or (2048, 2048)))
        except ValueError:
            crossq_hidden = ()
        if not crossq_hidden or min(crossq_hidden) < 1:
            print(
                f"awmp: error: --hidden needs positive integers, got {args.hidden}", file=sys.stderr
            )
            return 2
    if args.reps < 1 or args.window < 500 or args.window % 500 or args.burn_in % 500:
        print(
            "awmp: error: need --reps >= 1 and --window/--burn-in multiples of 500 (window >= 500)",
            file=sys.stderr,
        )
        return 2
    # Repetitions compile the same programs again: a persistent XLA cache makes that a load
    # (compilation is outside every measured window, so no figure changes).
    compile_cache.enable()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    avail = peers_available()
    missing = [k for k, v in avail.items() if not v]
    if missing:
        print(
            f"note: {', '.join(missing)} not installed; install with "
            "`pip install torch==2.13.0 && pip install -e '.[bench]'` to compare",
            flush=True,
        )
    if crossq_hidden is not None:
        cs = crossq_contenders(args.env, args.warmup, args.burn_in, args.window, crossq_hidden)
    else:
        cs = build_contenders(args.env, args.warmup, args.burn_in, args.window, args.quick)
    t0 = time.perf_counter()
    for rep in range(args.reps):
        for c in cs:
            r = c.run(rep)
            c.results.append(r)
            print(
                f"rep {rep + 1}/{args.reps}  {c.name:<28} {r['steps_per_s']:8.1f} steps/s",
                flush=True,
            )

    def med(c: Contender, key: str) -> float | None:
        vals = [r[key] for r in c.results if key in r]
        return statistics.median(vals) if vals else None

    rows = {c.name: {k: med(c, k) for k in c.results[0]} | {"runs": c.results} for c in cs}
    if crossq_hidden is not None:
        eff, ratios = {}, {}
        if len(cs) == 2:
            ratios["ours CrossQ / SBX CrossQ"] = (
                rows[cs[0].name]["steps_per_s"] / rows[cs[1].name]["steps_per_s"]
            )
    else:
        eff, ratios = _sac_figures(args.env, rows)
    result = {
        "env": args.env,
        "reps": args.reps,
        "warmup": args.warmup,
        "burn_in": args.burn_in,
        "window": args.window,
        "wall_s": time.perf_counter() - t0,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "contenders": rows,
        "flop_efficiency": eff,
        "ratios": ratios,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"{'contender':<30}{'steps/s (median)':>18}{'outside update':>16}")
    for name, r in rows.items():
        share = r.get("outside_update_share")
        print(f"{name:<30}{r['steps_per_s']:>18.1f}{'' if share is None else f'{share:.0%}':>16}")
    print()
    for name, e in eff.items():
        print(
            f"FLOP efficiency {name}: {e['efficiency']:.0%} ({e['update_flops'] / 1e6:.1f} "
            f"MFLOP/update x {e['bare_updates_per_s']:.0f} updates/s over "
            f"{e['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s matmul)"
        )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    print(f"\nwritten {args.out} in {result['wall_s']:.0f} s")
    return 0


def _sac_figures(env_id: str, rows: dict) -> tuple[dict, dict]:
    """FLOP efficiency of our SAC and the throughput ratios of the default benchmark."""
    from awmp.envs import make_env

    env, spec = make_env(env_id)
    env.close()
    eff = {}
    for name, hidden, batch in (
        ("ours SAC 256x256/b256", (256, 256), 256),
        ("ours SAC paper", (400, 400), 100),
    ):
        flops = sac_update_flops(spec.obs_dim, spec.act_dim, hidden, batch)
        rate = matmul_rate(batch, sac_update_shapes(spec.obs_dim, spec.act_dim, hidden))
        ups = rows[name]["bare_updates_per_s"]
        eff[name] = {
            "update_flops": flops,
            "matmul_flops_per_s": rate,
            "bare_updates_per_s": ups,
            "efficiency": flops * ups / rate,
        }
    ratios = {}
    ours256 = rows["ours SAC 256x256/b256"]["steps_per_s"]
    for peer_name in ("SB3 SAC 256x256/b256", "SBX SAC 256x256/b256"):
        if peer_name in rows:
            ratios[f"ours SAC / {peer_name.split()[0]} SAC"] = (
                ours256 / rows[peer_name]["steps_per_s"]
            )
    if "ours SAC-AWMP O=4 paper" in rows:
        ratios["SAC-AWMP O=4 cost / SAC (paper), per env step"] = (
            rows["ours SAC paper"]["steps_per_s"] / rows["ours SAC-AWMP O=4 paper"]["steps_per_s"]
        )
    return eff, ratios
