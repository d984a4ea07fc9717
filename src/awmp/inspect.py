"""`awmp inspect RUN_DIR --episodes 1`: look inside a trained mixture (SAC-AWMP, TD3-AWMP or
SAC-GMM).

Rolls out the run's deterministic policy and records, at every step, the gating weights
rho(g|s) (eq. 16, at the component means, as in evaluation), the prior's weights
h = P(g|s, a) (Section 3.1) at the executed action, and where each component acts (its
deterministic action: tanh of its mean, or TD3-AWMP's mu_g(s)). For SAC-GMM, rho is the
mixture weights w(g|s) and h the components' responsibilities w_g pi_g(a|s) / pi(a|s) for the
executed action (it has no prior). Writes into --out (default RUN_DIR/inspect):

- `weights_episode<k>.png`: rho and h per component over each episode;
- `component_usage.png`: how often each component is the active one (argmax rho), and the
  prior's argmax h, over all steps;
- `component_by_observation.png`: the active component against each of the first four
  observation dimensions (on awmp/Switch-v0: which component serves which side of c = 0);
- `component_actions.png`: each component's action (one panel per action dimension, up to
  two) against the first observation dimension, drawn darker where the component weighs more
  (rho): where each component acts, e.g. on awmp/Fork-v0 or awmp/Peaks-v0 which mode it serves;
- `weights.csv`: episode, t, observation, action, reward, rho_g, h_g and each component's
  action (`comp<g>_action<i>`) per step;
- `inspect.json`: the files, returns, component usage, `sharpness` (per-state largest weight
  and entropy of rho and of h, and how often their argmax agree, averaged over all steps) and
  `components` (per component: mean and standard deviation of its action over all steps, its
  mean weight rho and the fraction of steps it is the active one);
- a warning (on stderr and in inspect.json's notes) when the prior has not been trained: O = 1
  (its bursts are skipped), or a run stopped before its first burst;
- with `--video`: `episode<k>.mp4`, MuJoCo offscreen frames (MUJOCO_GL=egl) with the active
  component written on each frame. Needs imageio with its ffmpeg plugin (`pip install
  awmp[video]`); when it or rendering is unavailable, the reason is printed and the plots are
  still written.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from awmp.config import env_kwargs
from awmp.errors import UserError


class InspectError(UserError):
    """The run cannot be inspected (not a finished mixture run)."""


MIXTURES = ("sac-awmp", "td3-awmp", "sac-gmm")  # the mixture-policy algorithms
WEIGHT_LABELS = {  # what rho and h are, per algorithm (plots)
    "sac-gmm": ("weights w(g|s)", "responsibility of g for a"),
}
DEFAULT_LABELS = ("gating ρ(g|s)", "prior h = P(g|s,a)")
MIXTURES_TEXT = f"{', '.join(MIXTURES[:-1])} or {MIXTURES[-1]}"


def first_prior_burst(cfg) -> int | None:
    """The environment step after which a mixture run's prior network is first trained, or None
    when it never is (O = 1 or prior_steps = 0: the loop skips the bursts). Bursts come every
    `prior_interval` steps, from the first such step after the first gradient step (the end of
    the warm-up; awmp.algos.prior.draw_prior_data)."""
    a = cfg.algo_config()
    if a.num_components == 1 or a.prior_steps == 0:
        return None
    return (max(cfg.warmup_steps, 1) // a.prior_interval + 1) * a.prior_interval


def prior_note(cfg, steps_done: int | None) -> str | None:
    """Why the h of a mixture run whose parameters are of step `steps_done` says nothing (the
    prior network is its random initialisation), or None when its prior has been trained (or
    the algorithm has none: SAC-GMM's h is its responsibilities)."""
    a = cfg.algo_config()
    if not hasattr(a, "prior_steps"):
        return None
    if a.num_components == 1:
        return (
            "O = 1: the prior is never trained (the loop skips its bursts: h is 1 for every "
            "state), so h says nothing"
        )
    if a.prior_steps == 0:
        return "prior_steps = 0: the prior is never trained, so h is its random initialisation"
    first = first_prior_burst(cfg)
    if steps_done is not None and steps_done < first:
        return (
            f"the prior has not been trained yet: its first burst comes after step {first} "
            f"(warm-up {cfg.warmup_steps}, prior_interval {a.prior_interval}) and these "
            f"parameters are of step {steps_done}, so h is its random initialisation"
        )
    return None


def _steps_done(run_dir: Path) -> int | None:
    """summary.json's steps_done (the step of final_params.msgpack); None if unreadable."""
    try:
        return int(json.loads((run_dir / "summary.json").read_text())["steps_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mixture_model(policy):
    """The loaded run's algorithm object, whose `weights(state, obs, action) -> (rho, h)` the
    rollout records (the same method in every mixture)."""
    from awmp.algos import sac_awmp, sac_gmm, td3_awmp

    build = {"sac-awmp": sac_awmp.build, "td3-awmp": td3_awmp.build, "sac-gmm": sac_gmm.build}
    return build[policy.config.algo](policy.spec, policy.config.algo_config())


def component_actions_fn(model, algo: str):
    """(state, obs (B, s)) -> each component's deterministic action (O, B, d): tanh of its mean
    (SAC-AWMP, SAC-GMM) or mu_g(s) (TD3-AWMP)."""
    if algo == "sac-awmp":
        return lambda state, obs: model.mean_actions(state, obs)[0]
    if algo == "td3-awmp":
        return lambda state, obs: model.actor_net.apply(state.actor, obs)
    return model.component_actions


def rollout_weights(policy, episodes: int, seed: int, render: bool = False) -> list[dict]:
    """Deterministic episodes of a loaded mixture policy with rho and h at every step."""
    import jax
    import jax.numpy as jnp

    from awmp.envs import make_env

    model = _mixture_model(policy)
    weights = jax.jit(model.weights)
    components = jax.jit(component_actions_fn(model, policy.config.algo))
    kwargs = {"render_mode": "rgb_array"} if render else {}
    env, _ = make_env(policy.config.env, **env_kwargs(policy.config), **kwargs)
    out = []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            rec = {"obs": [], "action": [], "reward": [], "rho": [], "h": [], "frames": []}
            rec["components"] = []  # (O, d) per step: where each component acts
            done = False
            while not done:
                o = jnp.asarray(np.asarray(obs, np.float32)[None])
                action = policy.act_normalized(o, deterministic=True)  # (1, d) in [-1, 1]
                rho, h = weights(policy.state, o, jnp.asarray(action))
                rec["components"].append(np.asarray(components(policy.state, o))[:, 0])
                if render:
                    rec["frames"].append(env.render())
                obs_next, reward, terminated, truncated, _ = env.step(action[0].astype(np.float64))
                rec["obs"].append(np.asarray(obs, np.float32))
                rec["action"].append(action[0])
                rec["reward"].append(float(reward))
                rec["rho"].append(np.asarray(rho)[0])
                rec["h"].append(np.asarray(h)[0])
                obs, done = obs_next, terminated or truncated
            out.append({k: np.asarray(v) if k != "frames" else v for k, v in rec.items()})
    finally:
        env.close()
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_weights(
    ep: dict, title: str, path: Path, labels: tuple[str, str] = DEFAULT_LABELS
) -> Path:
    """rho and h per component against the step of one episode."""
    plt = _plt()
    num = ep["rho"].shape[1]
    t = np.arange(len(ep["rho"]))
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for ax, key, label in ((axes[0], "rho", labels[0]), (axes[1], "h", labels[1])):
        ax.stackplot(t, ep[key].T, labels=[f"component {g}" for g in range(num)], alpha=0.85)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right", ncol=min(num, 4))
    axes[0].set_title(title)
    axes[1].set_xlabel("step of the episode")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_usage(episodes: list[dict], path: Path) -> tuple[Path, dict]:
    """Histogram of the active component (argmax rho) and of argmax h over all steps."""
    plt = _plt()
    num = episodes[0]["rho"].shape[1]
    rho_arg = np.concatenate([np.argmax(e["rho"], axis=1) for e in episodes])
    h_arg = np.concatenate([np.argmax(e["h"], axis=1) for e in episodes])
    rho_counts = np.bincount(rho_arg, minlength=num)
    h_counts = np.bincount(h_arg, minlength=num)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(num)
    ax.bar(x - 0.2, rho_counts / rho_arg.size, width=0.4, label="argmax ρ (active component)")
    ax.bar(x + 0.2, h_counts / h_arg.size, width=0.4, label="argmax h (prior)")
    ax.set_xticks(x)
    ax.set_xlabel("component")
    ax.set_ylabel("fraction of steps")
    ax.set_title(f"component usage over {len(episodes)} episode(s), {rho_arg.size} steps")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    usage = {"rho_argmax": rho_counts.tolist(), "h_argmax": h_counts.tolist()}
    return path, usage


def sharpness(episodes: list[dict]) -> dict:
    """How decided rho and h are per state, averaged over all steps: the largest weight and the
    entropy in nats (uniform over O components: 1/O and ln O), and how often argmax rho and
    argmax h name the same component (chance 1/O). docs/RESULTS.md §3 reads these."""
    rho = np.concatenate([e["rho"] for e in episodes])
    h = np.concatenate([e["h"] for e in episodes])

    def entropy(p: np.ndarray) -> float:
        return float(np.mean(-(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1)))

    return {
        "rho_max": float(rho.max(axis=1).mean()),
        "rho_entropy": entropy(rho),
        "h_max": float(h.max(axis=1).mean()),
        "h_entropy": entropy(h),
        "argmax_agreement": float(np.mean(rho.argmax(axis=1) == h.argmax(axis=1))),
        "uniform_entropy": float(np.log(rho.shape[1])),
    }


def plot_component_by_obs(episodes: list[dict], path: Path, max_dims: int = 4) -> Path:
    """Which component is active (argmax rho) against each of the first observation
    dimensions: on awmp/Switch-v0 (obs = position, cue) it shows which serves which side."""
    plt = _plt()
    obs = np.concatenate([e["obs"] for e in episodes])
    active = np.concatenate([np.argmax(e["rho"], axis=1) for e in episodes])
    dims = min(obs.shape[1], max_dims)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, active.size)
    fig, axes = plt.subplots(1, dims, figsize=(3.2 * dims, 3.2), sharey=True, squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.scatter(obs[:, i], active + jitter, s=4, alpha=0.4, c=active, cmap="tab10", vmin=0,
                   vmax=9)  # fmt: skip
        ax.set_xlabel(f"observation[{i}]")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("active component (argmax ρ)")
    axes[0][0].set_yticks(range(episodes[0]["rho"].shape[1]))
    fig.suptitle(f"active component by observation ({active.size} steps)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_component_actions(episodes: list[dict], path: Path) -> Path:
    """Where each component acts: its action against observation[0], one panel per action
    dimension (up to two), each point drawn with opacity rho_g (its weight in that state)."""
    plt = _plt()
    obs = np.concatenate([e["obs"] for e in episodes])[:, 0]
    comp = np.concatenate([e["components"] for e in episodes])  # (T, O, d)
    rho = np.concatenate([e["rho"] for e in episodes])  # (T, O)
    dims = min(comp.shape[2], 2)
    fig, axes = plt.subplots(1, dims, figsize=(4.2 * dims, 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        for g in range(comp.shape[1]):
            colour = np.tile(np.array(plt.cm.tab10(g % 10)), (len(obs), 1))
            colour[:, 3] = np.clip(rho[:, g], 0.05, 1.0)
            ax.scatter(obs, comp[:, g, i], s=6, color=colour, label=f"component {g}")
        ax.set_xlabel("observation[0]")
        ax.set_ylabel(f"component's action[{i}]")
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"where each component acts ({len(obs)} steps; opacity = weight)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def component_summary(episodes: list[dict]) -> list[dict]:
    """Per component: mean and standard deviation of its action over all steps, its mean
    weight rho and the fraction of steps it is the active one (argmax rho)."""
    comp = np.concatenate([e["components"] for e in episodes])  # (T, O, d)
    rho = np.concatenate([e["rho"] for e in episodes])
    active = np.argmax(rho, axis=1)
    return [
        {
            "mean_action": comp[:, g].mean(axis=0).tolist(),
            "std_action": comp[:, g].std(axis=0).tolist(),
            "mean_weight": float(rho[:, g].mean()),
            "active_fraction": float(np.mean(active == g)),
        }
        for g in range(comp.shape[1])
    ]


def write_csv(episodes: list[dict], path: Path) -> Path:
    obs_dim, act_dim = episodes[0]["obs"].shape[1], episodes[0]["action"].shape[1]
    num = episodes[0]["rho"].shape[1]
    cols = ["episode", "t", *(f"obs{i}" for i in range(obs_dim))]
    cols += [*(f"action{i}" for i in range(act_dim)), "reward"]
    cols += [*(f"rho{g}" for g in range(num)), *(f"h{g}" for g in range(num))]
    cols += [f"comp{g}_action{i}" for g in range(num) for i in range(act_dim)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for k, e in enumerate(episodes):
            for t in range(len(e["reward"])):
                w.writerow(
                    [k, t, *e["obs"][t], *e["action"][t], e["reward"][t], *e["rho"][t], *e["h"][t]]
                    + list(e["components"][t].ravel())
                )
    return path


def write_video(ep: dict, path: Path, fps: int = 30) -> Path:
    """Frames with the active component (argmax rho) written on each; needs imageio-ffmpeg."""
    import imageio.v2 as imageio
    from PIL import Image, ImageDraw

    active = np.argmax(ep["rho"], axis=1)
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1) as writer:
        for frame, g, rho in zip(ep["frames"], active, ep["rho"], strict=True):
            img = Image.fromarray(np.asarray(frame))
            draw = ImageDraw.Draw(img)
            draw.rectangle((0, 0, img.width, 18), fill=(0, 0, 0))
            draw.text((4, 3), f"component {g}  rho={rho[g]:.2f}", fill=(255, 255, 0))
            writer.append_data(np.asarray(img))
    return path


def inspect_run(
    run_dir: str | Path, episodes: int = 1, out: str | Path | None = None, seed: int = 0,
    video: bool = False,
) -> dict:  # fmt: skip
    """Roll out, plot and (optionally) film a mixture run (`MIXTURES`); return what was
    written."""
    from awmp.evaluate import load
    from awmp.runfiles import read_config

    run_dir = Path(run_dir)
    algo = read_config(run_dir)[1].algo  # RunFileError: no, or a damaged, config.json
    if algo not in MIXTURES:
        raise InspectError(
            f"awmp inspect needs a mixture run ({MIXTURES_TEXT}); {run_dir} is a {algo} run"
        )
    policy = load(run_dir)  # RunFileError, ParamsError: names what is missing or damaged
    out = Path(out) if out else run_dir / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    note = prior_note(policy.config, _steps_done(run_dir))
    if note is not None:
        notes.append(f"warning: {note}")
    render = False
    if video:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            notes.append("no video: imageio-ffmpeg is not installed (pip install 'awmp[video]')")
        else:
            os.environ.setdefault("MUJOCO_GL", "egl")
            render = True
    try:
        eps = rollout_weights(policy, episodes, seed, render=render)
    except Exception as e:  # rendering failures surface at reset/render; retry without frames
        if not render:
            raise
        notes.append(f"no video: rendering failed ({type(e).__name__}: {e})")
        render = False
        eps = rollout_weights(policy, episodes, seed, render=False)
    files = []
    env_id = policy.config.env
    for k, e in enumerate(eps):
        title = f"{env_id}, episode {k}: return {np.sum(e['reward']):.1f}, {len(e['reward'])} steps"
        labels = WEIGHT_LABELS.get(policy.config.algo, DEFAULT_LABELS)
        files.append(plot_weights(e, title, out / f"weights_episode{k}.png", labels))
    usage_png, usage = plot_usage(eps, out / "component_usage.png")
    files += [usage_png, plot_component_by_obs(eps, out / "component_by_observation.png")]
    files.append(plot_component_actions(eps, out / "component_actions.png"))
    files.append(write_csv(eps, out / "weights.csv"))
    if render:
        for k, e in enumerate(eps):
            if not e["frames"] or e["frames"][0] is None:
                notes.append("no video: the environment returned no frames")
                break
            try:
                files.append(write_video(e, out / f"episode{k}.mp4"))
            except Exception as e2:  # codec or plugin problems: say so, keep the plots
                notes.append(f"no video: writing failed ({type(e2).__name__}: {e2})")
                break
    result = {
        "run_dir": str(run_dir),
        "out": str(out),
        "files": [str(f) for f in files],
        "returns": [float(np.sum(e["reward"])) for e in eps],
        "usage": usage,
        "sharpness": sharpness(eps),
        "components": component_summary(eps),
        "notes": notes,
    }
    (out / "inspect.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="awmp inspect",
        description="Plot the weights rho and h of a trained mixture policy and where each "
        "component acts (SAC-AWMP, TD3-AWMP or SAC-GMM).",
    )
    p.add_argument("run_dir", help="a finished sac-awmp, td3-awmp or sac-gmm run directory")
    p.add_argument("--episodes", type=int, default=1, help="deterministic episodes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode's reset")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/inspect)")
    p.add_argument("--video", action="store_true", help="also write an MP4 per episode")
    args = p.parse_args(argv)
    if args.episodes < 1:
        print(f"awmp: error: invalid episodes={args.episodes}: must be >= 1", file=sys.stderr)
        return 2
    try:
        result = inspect_run(args.run_dir, args.episodes, args.out, args.seed, args.video)
    except (UserError, FileNotFoundError) as e:
        print(f"awmp: error: {e}", file=sys.stderr)
        return 2
    for note in result["notes"]:
        print(note, file=sys.stderr)
    print(
        json.dumps(
            {k: result[k] for k in ("out", "files", "returns", "usage", "sharpness", "components")},
            indent=2,
        )
    )
    return 0
