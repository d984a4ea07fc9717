"""The Peaks-v0 statistic of docs/RESULTS.md section 6: each run's soft value per step relative to
the entropy-regularized optimum, V = mean over contexts c of [E r(a; c) + alpha H(pi(.|c)) - J*(c)]
(<= 0, higher is better), with pi the run's stochastic behaviour policy.

For each run directory (awmp/Peaks-v0; its final parameters, or a checkpoint by step or path):
- the contexts: `--contexts` (200) points c ~ U(-1, 1)^2 from one NumPy generator of
  `--context-seed` (12345), rounded to float32 as PeaksEnv rounds its context, the same for
  every run (their SHA-256 is in each row's settings);
- per context, `--draws` (8192) actions from the run's own stochastic `act`, the one training
  acts with (awmp.load's Policy: SAC's tanh-Gaussian sample, SAC-GMM's component-then-sample,
  SAC-AWMP's components with their gating rho and the draw g ~ rho, its real acting code), on
  the observation c repeated `--draws` times; the key is the run's saved one and advances
  from call to call;
- E r: the mean of tasks.peaks_reward over the draws (clipped to the box, as the env does);
- H: the Kozachenko-Leonenko k-nearest-neighbour estimate on the same draws (`--k` 4),
  H = psi(N) - psi(k) + log c_d + (d/N) sum_i log r_i, r_i the distance from draw i to its k-th
  nearest other draw, c_d the volume of the unit d-ball. One estimator for every algorithm,
  since SAC-AWMP's behaviour density has no closed form. tests/test_soft_value.py checks it
  against exact entropies: at N = 8192, k = 4 its bias is about -0.01 nats on smooth
  tanh-Gaussians and mixtures (standard deviation about 0.013 per estimate), and about +0.03
  for a tanh-Gaussian whose mass piles up at the box's edges (sigma 1.5). Draws that coincide
  exactly (float32 actions saturated at +-1) would give log 0; such distances are floored at
  FLOOR (the float32 spacing at 1) and counted in the row ("ties");
- J*(c): tasks.peaks_soft_optimum (quadrature), at the run's alpha;
- mode coverage: how many of the four peaks (+-m_1, +-m_2) hold at least 10% of the draws
  within Euclidean distance 0.2 (exploratory).

alpha is the run's configured temperature (sac, sac-gmm, crossq: `alpha`; sac-awmp:
`alpha_pi`; 0.2 under the paper preset). A run that learns its temperature (`learn_alpha`) is
refused: the statistic compares runs at one fixed alpha, and J* depends on it. `--alpha`
overrides the temperature for every run (then TD3 and TD3-AWMP runs, whose `act` is stochastic
but which have no temperature, can be scored too).

Per run: V (mean over contexts), its standard error over contexts (sample SD / sqrt(n)), the
mean E r, mean H, mean coverage, and the fraction of contexts where V > -0.26 (what no
diagonal tanh-Gaussian reaches: tasks.PeaksEnv); one line printed per run, and with `--out`
one JSON row per (run_dir, step), merged into the file's earlier rows (a row of the same
run_dir and step is replaced), with the per-context values.

Usage: python experiments/soft_value.py RUN_DIR [RUN_DIR ...] [--contexts 200] [--draws 8192]
       [--k 4] [--context-seed 12345] [--checkpoint STEP_OR_PATH] [--alpha A] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from awmp.tasks import PEAKS_ID, peaks_modes, peaks_reward, peaks_soft_optimum

CONTEXT_SEED = 12345
GAUSSIAN_BOUND = -0.26  # no diagonal tanh-Gaussian's soft value reaches this (tasks.PeaksEnv)
COVER_RADIUS = 0.2  # a draw within this distance of a peak counts for it
COVER_SHARE = 0.1  # a peak is covered when it holds at least this share of the draws
FLOOR = float(np.spacing(np.float32(1.0)))  # 1.2e-7: the smallest distance counted (ties)
ALPHA_FIELD = {"sac": "alpha", "sac-gmm": "alpha", "crossq": "alpha", "sac-awmp": "alpha_pi"}

Sampler = Callable[[np.ndarray, int], np.ndarray]  # (context (2,), n) -> actions (n, 2)


def make_contexts(n: int, seed: int = CONTEXT_SEED) -> np.ndarray:
    """(n, 2) contexts c ~ U(-1, 1)^2 from default_rng(seed), rounded to float32 as PeaksEnv
    rounds its context (so the policy's observation and the reward's context agree), float64."""
    c = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 2))
    return c.astype(np.float32).astype(np.float64)


def contexts_digest(contexts: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(contexts, np.float64).tobytes()).hexdigest()


def kl_entropy(x: np.ndarray, k: int = 4) -> tuple[float, int]:
    """The Kozachenko-Leonenko estimate of the differential entropy (nats) of the density the
    rows of `x` (N, d) are drawn from, and how many k-th neighbour distances were 0 (floored at
    FLOOR): psi(N) - psi(k) + log c_d + (d/N) sum_i log r_i."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    if not 1 <= k < n:
        raise ValueError(f"k = {k} needs 1 <= k < N = {n}")
    r = cKDTree(x).query(x, k=k + 1)[0][:, k]  # column 0 is the point itself
    ties = int(np.count_nonzero(r < FLOOR))
    log_ball = 0.5 * d * math.log(math.pi) - float(gammaln(0.5 * d + 1.0))
    h = digamma(n) - digamma(k) + log_ball + d * float(np.mean(np.log(np.maximum(r, FLOOR))))
    return float(h), ties


def mode_coverage(a: np.ndarray, c: np.ndarray) -> int:
    """How many of the four peaks (+-m_1, +-m_2) of context c hold at least COVER_SHARE of the
    actions `a` (N, 2) within Euclidean distance COVER_RADIUS."""
    m = peaks_modes(c)
    covered = 0
    for s1 in (1.0, -1.0):
        for s2 in (1.0, -1.0):
            dist = np.hypot(a[:, 0] - s1 * m[0], a[:, 1] - s2 * m[1])
            covered += int(np.mean(dist <= COVER_RADIUS) >= COVER_SHARE)
    return covered


_J_STAR: dict[tuple[float, float, float], float] = {}


def soft_optimum(c: np.ndarray, alpha: float) -> float:
    """tasks.peaks_soft_optimum, remembered across runs of one invocation."""
    key = (float(c[0]), float(c[1]), float(alpha))
    if key not in _J_STAR:
        _J_STAR[key] = peaks_soft_optimum(np.asarray(c, np.float64), alpha)
    return _J_STAR[key]


def per_context(
    sampler: Sampler, contexts: np.ndarray, alpha: float, draws: int, k: int
) -> dict[str, np.ndarray]:
    """For every context: E r, H, J*, V = E r + alpha H - J*, mode coverage and ties, from
    `draws` actions of `sampler(c, draws)`."""
    out: dict[str, list] = {"reward": [], "entropy": [], "j_star": [], "v": [], "coverage": []}
    out["ties"] = []
    for c in contexts:
        a = np.asarray(sampler(c, draws), np.float64)
        if a.shape != (draws, 2):
            raise ValueError(f"the sampler returned shape {a.shape}, expected ({draws}, 2)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"non-finite actions at context {c.tolist()}")
        clipped = np.clip(a, -1.0, 1.0)  # what the env executes
        er = float(np.mean(peaks_reward(clipped, c)))
        h, ties = kl_entropy(a, k)
        j = soft_optimum(c, alpha)
        for name, value in (("reward", er), ("entropy", h), ("j_star", j)):
            out[name].append(value)
        out["v"].append(er + alpha * h - j)
        out["coverage"].append(mode_coverage(clipped, c))
        out["ties"].append(ties)
    return {name: np.asarray(v) for name, v in out.items()}


def summarise(pc: dict[str, np.ndarray]) -> dict:
    """The run's numbers from `per_context`'s arrays."""
    v = pc["v"]
    n = v.size
    return {
        "soft_value": float(v.mean()),
        "soft_value_se": float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        "mean_reward": float(pc["reward"].mean()),
        "mean_entropy": float(pc["entropy"].mean()),
        "mean_coverage": float(pc["coverage"].mean()),
        "frac_above_bound": float(np.mean(v > GAUSSIAN_BOUND)),
        "above_bound": bool(v.mean() > GAUSSIAN_BOUND),
        "ties": int(pc["ties"].sum()),
    }


# -- runs ----------------------------------------------------------------------------------------


def run_alpha(run_dir: Path, cfg, override: float | None) -> tuple[float, str]:
    """(alpha, where it came from); SystemExit (one line) when the run has no fixed one."""
    if override is not None:
        return float(override), "--alpha"
    section = cfg.algo_config()
    name = ALPHA_FIELD.get(cfg.algo)
    if name is None or not hasattr(section, name):
        raise SystemExit(
            f"soft_value: {run_dir} is {cfg.algo}, which has no entropy temperature; this scores "
            f"{', '.join(ALPHA_FIELD)} (or any algorithm with --alpha)"
        )
    if getattr(section, "learn_alpha", False):
        raise SystemExit(
            f"soft_value: {run_dir} learns its temperature ({cfg.algo} learn_alpha); the "
            "statistic is defined at one fixed alpha: pass --alpha"
        )
    return float(getattr(section, name)), f"{cfg.algo}.{name}"


def check_run(run_dir: Path, alpha: float | None) -> tuple[dict, object, float, str]:
    """(config.json's content, TrainConfig, alpha, its source) of a run this script can score;
    SystemExit with one line otherwise (before any run is scored)."""
    from awmp.errors import UserError
    from awmp.runfiles import read_config

    try:
        meta, cfg = read_config(run_dir)
    except UserError as e:
        raise SystemExit(f"soft_value: {e}") from None
    if cfg.env != PEAKS_ID:
        raise SystemExit(f"soft_value: {run_dir} is a {cfg.env} run; this scores {PEAKS_ID} runs")
    return (meta, cfg, *run_alpha(run_dir, cfg, alpha))


_CKPT = re.compile(r"^step_(\d+)\.ckpt$")


def params_file(run_dir: Path, checkpoint: str | None) -> tuple[str, int]:
    """(awmp.load's `which`, the step of those parameters): the final parameters (None), the
    checkpoint of a step ("10000") or a checkpoint file (a path, or one relative to run_dir)."""
    from awmp import checkpoint as ckpt
    from awmp.runfiles import read_json

    if checkpoint is None:
        summary = run_dir / "summary.json"
        if not summary.is_file():
            raise SystemExit(f"soft_value: {run_dir} has no summary.json (not finished)")
        return "final", int(read_json(summary, run_dir)["steps_done"])
    if checkpoint.isdigit():
        found = dict(ckpt.list_checkpoints(run_dir))
        if int(checkpoint) not in found:
            have = ", ".join(map(str, sorted(found))) or "none"
            raise SystemExit(
                f"soft_value: {run_dir} has no checkpoint at step {checkpoint} (it has: {have})"
            )
        return str(found[int(checkpoint)]), int(checkpoint)
    path = Path(checkpoint)
    if not path.is_file():
        path = run_dir / checkpoint
    if not path.is_file():
        raise SystemExit(f"soft_value: no checkpoint file {checkpoint} (nor {path})")
    m = _CKPT.match(path.name)
    return str(path), int(m.group(1)) if m else int(ckpt.load(path).loop.step)


def policy_sampler(policy) -> Sampler:
    """Draws from the loaded run's stochastic `act` (the function training acts with), on the
    observation c repeated n times; each call advances the policy's key."""

    def sample(c: np.ndarray, n: int) -> np.ndarray:
        obs = np.repeat(np.asarray(c, np.float32)[None], n, axis=0)
        return policy.act_normalized(obs, deterministic=False)

    return sample


def variant_name(config: dict) -> str:
    from awmp.report import variant_of

    diff = variant_of(config)
    return ", ".join(f"{k}={v}" for k, v in diff.items()) or "default"


def measure(run_dir: Path, args: argparse.Namespace, contexts: np.ndarray) -> dict:
    import awmp

    meta, cfg, alpha, alpha_source = check_run(run_dir, args.alpha)
    which, step = params_file(run_dir, args.checkpoint)
    policy = awmp.load(run_dir, which=which)
    pc = per_context(policy_sampler(policy), contexts, alpha, args.draws, args.k)
    return {
        "run_dir": str(run_dir),
        "run": str(Path(*run_dir.parts[-4:])),  # ENV/ALGO/VARIANT/seedK-Nsteps
        "algo": cfg.algo,
        "variant": variant_name(meta["config"]),
        "seed": cfg.seed,
        "step": step,
        "params": str(policy.source),
        "alpha": alpha,
        "alpha_source": alpha_source,
        **summarise(pc),
        "settings": {
            "contexts": len(contexts),
            "draws": args.draws,
            "k": args.k,
            "context_seed": args.context_seed,
            "contexts_sha256": contexts_digest(contexts),
            "bound": GAUSSIAN_BOUND,
            "cover_radius": COVER_RADIUS,
            "cover_share": COVER_SHARE,
        },
        "per_context": {
            "context": contexts.tolist(),
            **{k: v.tolist() for k, v in pc.items() if k != "ties"},
        },
    }


def line(row: dict) -> str:
    return (
        f"{row['run']} step {row['step']}: V {row['soft_value']:+.4f} ± {row['soft_value_se']:.4f} "
        f"(SE over {row['settings']['contexts']} contexts), E r {row['mean_reward']:.4f}, "
        f"H {row['mean_entropy']:+.3f}, alpha {row['alpha']:g}, coverage "
        f"{row['mean_coverage']:.2f} of 4, V > {GAUSSIAN_BOUND} in "
        f"{100 * row['frac_above_bound']:.0f}% of contexts"
        + (f", {row['ties']} tied draws" if row["ties"] else "")
    )


def merge(path: Path, rows: list[dict]) -> list[dict]:
    """The file's earlier rows with `rows` added; a row of the same (run_dir, step) replaced."""
    old = json.loads(path.read_text()) if path.is_file() else []
    if not isinstance(old, list):
        raise SystemExit(f"soft_value: {path} does not hold a list of rows")
    new = {(r["run_dir"], r["step"]) for r in rows}
    kept = [r for r in old if (r.get("run_dir"), r.get("step")) not in new]
    if len(kept) < len(old):
        print(
            f"soft_value: replaced {len(old) - len(kept)} earlier row(s) in {path}", file=sys.stderr
        )
    return kept + rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="awmp/Peaks-v0 run directories")
    ap.add_argument("--contexts", type=int, default=200)
    ap.add_argument("--draws", type=int, default=8192, help="actions per context")
    ap.add_argument("--k", type=int, default=4, help="the estimator's neighbour")
    ap.add_argument("--context-seed", type=int, default=CONTEXT_SEED)
    ap.add_argument(
        "--checkpoint", default=None,
        help="a checkpoint's step (e.g. 10000) or file instead of the final parameters",
    )  # fmt: skip
    ap.add_argument("--alpha", type=float, default=None, help="override every run's alpha")
    ap.add_argument("--out", default=None, help="merge the rows into this JSON file")
    args = ap.parse_args(argv)
    if args.contexts < 2 or not 1 <= args.k < args.draws:
        ap.error("need --contexts >= 2 and 1 <= --k < --draws")
    if args.alpha is not None and not (args.alpha > 0 and math.isfinite(args.alpha)):
        ap.error("--alpha must be finite and > 0")
    runs = [Path(r) for r in args.runs]
    for r in runs:  # refuse before scoring anything
        check_run(r, args.alpha)
        params_file(r, args.checkpoint)
    contexts = make_contexts(args.contexts, args.context_seed)
    rows = []
    for r in runs:
        row = measure(r, args, contexts)
        print(line(row), flush=True)
        rows.append(row)
    if args.out:
        out = Path(args.out)
        out.write_text(json.dumps(merge(out, rows), indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
