"""Typed configs, presets and validation.

Every field's docstring is what `awmp train --help` shows. Presets are functions that return a
fully resolved `TrainConfig`; the CLI parses `--algo`/`--preset` first, builds the preset and then
lets every other flag override it, so `--help` shows the preset's values as defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from awmp.errors import UserError

ALGOS = ("sac", "sac-awmp", "td3")
MAX_TOTAL_STEPS = 10**13  # beyond any machine's reach: a typo (e.g. 1e15), not a budget
PRESETS = ("paper", "reference-code")


class ConfigError(UserError):
    """An invalid configuration value; the message names the field, value and allowed range."""


@dataclass
class SACConfig:
    """SAC (Haarnoja et al. 2018b): twin Q + target Q, tanh-Gaussian policy."""

    hidden: tuple[int, ...] = (400, 400)
    """Hidden layer sizes of the policy and each critic (paper Table 2: (400, 400))."""
    batch_size: int = 100
    """Off-policy mini-batch size (paper Table 2: 100)."""
    lr: float = 3e-4
    """Adam learning rate for every network (paper Table 2: 3e-4)."""
    tau: float = 0.005
    """Polyak coefficient of the target critics (paper Table 2: 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (paper Table 2: 0.99)."""
    alpha: float = 0.2
    """Entropy temperature alpha; the initial value with `learn_alpha` (paper Table 1: 0.2)."""
    learn_alpha: bool = False
    """Learn alpha towards a target entropy of -act_dim (Haarnoja et al. 2018b)."""


@dataclass
class AWMPConfig:
    """SAC-AWMP (the paper's Algorithm 1); see docs/ALGORITHM.md for every switch."""

    num_components: int = 4
    """O, the number of policy components (paper: 4; Fig. 4 ablates 1, 2, 4, 8)."""
    hidden: tuple[int, ...] = (400, 400)
    """Hidden sizes of each critic and of V (paper Table 2: (400, 400))."""
    policy_hidden: tuple[int, ...] = (400, 400)
    """Hidden sizes of each policy component (Sec. 4.1: as SAC's policy, Table 2 (400, 400))."""
    prior_hidden: tuple[int, ...] = (400, 300)
    """Hidden sizes of the prior network P(h|s,a) (paper Section 3.1)."""
    batch_size: int = 100
    """B_off, the off-policy mini-batch size (paper Table 3: 100)."""
    lr: float = 3e-4
    """Adam learning rate of every network (paper Tables 2-3: 3e-4)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (paper Table 2)."""
    tau_v: float = 0.005
    """Polyak coefficient tau_V of the target value network (paper Table 2)."""
    tau_q: float = 0.001
    """Polyak coefficient tau_Q of the target critic used for gating (paper Table 3; Fig. 5)."""
    alpha_pi: float = 0.2
    """Entropy temperature of the policy components alpha_pi (paper Table 1)."""
    alpha_g: float = 0.001
    """Entropy temperature of the gating alpha_g (paper Table 3)."""
    gating_temperature: float = 1.0
    """Softmax temperature T of the gating rho(g|s) (eq. 16 has none: 1.0)."""
    acting: Literal["mixture", "weighted"] = "mixture"
    """How actions are executed: draw g ~ rho (mixture, eq. 15) or sum_g rho_g a_g (weighted)."""
    value_weights: Literal["gating", "prior"] = "gating"
    """Component weights u in the V target (eq. 21): gating rho (eq. 18) or prior h."""
    prior_action: Literal["policy", "buffer"] = "policy"
    """Action fed to the prior for h: the current policy's (Alg. 1 l.15) or the stored one."""
    prior_interval: int = 5000
    """M: environment steps between prior-network bursts; also the recent window (Table 3)."""
    prior_steps: int = 5000
    """Gradient steps of one prior burst (Table 3: 5000; reference-code preset: 5000 * O, O = 4)."""
    prior_batch_size: int = 50
    """B_on, the prior network's mini-batch from the most recent M transitions (Table 3: 50)."""
    sigma: float = 0.04
    """Perturbation scale of the prior's regulariser (Table 3: noise for MI regularisation)."""
    zeta: float = 0.1
    """Coefficient zeta of the MI in eq. 5 (Table 3: 0.1); < 0 reproduces the reference code."""
    c_marg: float = 1.0
    """Weight of the marginal entropy in the MI, eq. 6 (1.0; the reference code uses 4)."""
    recon_coef: float = 0.0
    """Weight of the reference code's decoder (L1 reconstruction) term; 0 disables it."""
    policy_delay: int = 1
    """Update the policy and targets every this many gradient steps (reference code: 2)."""
    gating_samples: Literal["shared", "independent", "mean"] = "shared"
    """Where rho (eq. 16-17) is evaluated: at the same component samples it weights (shared),
    at a second, independent set (independent) or at the component means (mean: rho is a
    function of s, so the V target's weights and the stored mixture density are exact)."""
    is_weights: Literal["eq11", "truncated", "tempered", "on-policy"] = "eq11"
    """Importance weights of the prior's batch: eq. 11 (exp(A/T)/mu), eq. 11 truncated at
    mean(w) sqrt(N) (Ionides 2008), tempered exp(A/T) mu^-lambda, or on-policy exp(A/T)."""
    is_lambda: float = 0.5
    """lambda in [0, 1], the power of 1/mu in the `tempered` importance weights."""
    adv_temperature: float = 1.0
    """T, the advantage temperature of the importance weights exp(A/T) (eq. 10 has none: 1)."""
    prior_reduction: Literal["mean", "reference-sum"] = "mean"
    """Reduction of eq. 5 over the B_on batch: `mean` (eq. 12-14) or the reference code's
    (conditional entropy and perturbation KL summed, marginal entropy and L1 averaged)."""
    prior_batch_reuse: int = 1
    """Prior gradient steps on each drawn B_on batch (reference code: O); divides prior_steps."""
    learn_alpha: bool = False
    """Learn alpha_pi (Haarnoja et al. 2018b) towards `target_entropy` per component, starting
    at alpha_pi; the paper fixes it (Table 1: 0.2). docs/ALGORITHM.md "Learned temperature"."""
    target_entropy: float | None = None
    """Target entropy of each component for `learn_alpha`; None: -act_dim."""
    prior_kl_grad: Literal["noisy", "both"] = "noisy"
    """Gradient of the regulariser KL(P(x) || P(x~)): through P(x~) only (noisy, as in virtual
    adversarial training) or through both sides (both: the reference code)."""


@dataclass
class TD3Config:
    """TD3 (Fujimoto et al. 2018): the hyperparameters of its paper (Section 6.1)."""

    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of the actor and each critic (TD3 paper, Section 6.1: (400, 300))."""
    batch_size: int = 100
    """Mini-batch size (TD3 paper, Section 6.1: 100)."""
    lr: float = 1e-3
    """Adam learning rate of the actor and the critics (TD3 paper, Section 6.1: 1e-3)."""
    tau: float = 0.005
    """Polyak coefficient of the target actor and critics (TD3 paper, Section 6.1: 0.005)."""
    gamma: float = 0.99
    """Discount factor, in (0, 1] (TD3 paper, Section 6.1: 0.99)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise on the [-1, 1] box (TD3 paper, Sec. 6.1: 0.2)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (TD3 paper, Section 6.1: 0.5)."""
    policy_delay: int = 2
    """Critic updates per actor and target update, d (TD3 paper, Section 5.2: 2)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise on the actor's action (TD3 paper, Sec. 6.1: 0.1)."""


@dataclass
class TrainConfig:
    """One training run: environment, algorithm, budget, evaluation and output."""

    algo: Literal["sac", "sac-awmp", "td3"] = "sac"
    """Algorithm to train."""
    env: str = "Pendulum-v1"
    """Gymnasium environment id with a bounded Box action space (e.g. Hopper-v5)."""
    seed: int = 0
    """Random seed of the agent, the training env and (offset) the evaluation env."""
    env_kwargs: Annotated[tuple[str, ...], tyro.conf.arg(metavar="KEY=VALUE...")] = ()
    """Keyword arguments of gymnasium.make, as KEY=VALUE (VALUE a TOML value, else a string),
    e.g. --env-kwargs ctrl_cost_weight=0.05 terminate_when_unhealthy=false."""
    seeds: tuple[int, ...] = ()
    """Train these seeds together in one process, e.g. --seeds 0,1,2,3,4 (then `seed` is unused):
    one agent, env, buffer and generator per seed, exactly as `--seed s` alone, with one vmapped
    update per step; one run directory per seed, <run-dir>/seed<s> or (no --run-dir)
    runs/<env>/<algo>/seed<s>-<timestamp> (README "Many seeds")."""
    total_steps: int = 1_000_000
    """Environment steps to train for."""
    preset: Literal["paper", "reference-code"] = "paper"
    """Hyperparameter preset the other flags override (paper = Tables 2-3)."""
    warmup_steps: int = 10_000
    """Uniform random actions before learning starts (the reference code's start_timesteps)."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (paper Table 2: 1e6)."""
    updates_per_step: int = 1
    """Gradient steps per environment step after warm-up (paper Table 2: 1)."""
    eval_interval: int = 5000
    """Environment steps between deterministic evaluations (the paper: 1000); 0: none."""
    eval_episodes: int = 10
    """Episodes per evaluation (paper: 10)."""
    log_interval: int = 1000
    """Environment steps between rows of train.csv losses and diagnostics."""
    run_dir: str | None = None
    """Run directory; default runs/<env>/<algo>/seed<seed>-<timestamp>. Never overwritten."""
    progress: bool = True
    """Show progress: a live bar on a terminal, else (nohup, Slurm, CI) a plain line on stderr
    every log_interval steps (step, steps/s, elapsed, ETA, last eval, losses). Off: silent."""
    checkpoint_interval: int = 0
    """Environment steps between checkpoints; 0 = auto: 5% of total_steps (README "Long runs")."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep (>= 1)."""
    resume: str | None = None
    """Continue this run directory from its newest checkpoint; other flags must match its config."""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC hyperparameters (used when algo = sac)."""
    awmp: AWMPConfig = field(default_factory=AWMPConfig)
    """SAC-AWMP hyperparameters (used when algo = sac-awmp)."""
    td3: TD3Config = field(default_factory=TD3Config)
    """TD3 hyperparameters (used when algo = td3)."""

    def algo_config(self) -> SACConfig | AWMPConfig | TD3Config:
        """The hyperparameter section of the selected algorithm."""
        return {"sac": self.sac, "sac-awmp": self.awmp, "td3": self.td3}[self.algo]


def preset(name: str = "paper") -> TrainConfig:
    """A fully resolved config for a named preset.

    `paper`: Table 2 (SAC) and Table 3 (SAC-AWMP) of the paper, ALGORITHM.md "Presets"; TD3
    with the hyperparameters of the TD3 paper (Fujimoto et al. 2018, Section 6.1).
    `reference-code`: the authors' reference code's choices for SAC-AWMP (ALGORITHM.md
    "Presets"), for ablations; SAC and TD3 are the same as `paper` under it.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; supported: {', '.join(PRESETS)}")
    cfg = TrainConfig(preset=name)  # type: ignore[arg-type]
    if name == "reference-code":
        # hzm2016/SAC-AWMP, code/methods/SAC_AWMP.py (commit c976cebf) and code/utils/model.py;
        # docs/ALGORITHM.md "Presets" maps each value to its line of code.
        o = cfg.awmp.num_components
        cfg.awmp = dataclasses.replace(
            cfg.awmp,
            acting="weighted",  # select_action: weighted_action=True, sum_g p_g a_g
            prior_action="buffer",  # calc_target_phi: self.option(state, action), stored a
            value_weights="prior",  # calc_target_phi: Q, log pi weighted by p_normalized (h)
            zeta=-0.1,  # train_option: + entropy_coeff (0.1) * critic_entropy (minimises MI)
            c_marg=4.0,  # train_option: c_ent = 4, times the *averaged* marginal entropy
            sigma=0.005,  # Option.forward: add_randn(xu, vat_noise=0.005)
            recon_coef=1.0,  # train_option: F.l1_loss(xu, decoded_xu), a mean, weight 1
            policy_hidden=(400, 300),  # GaussianPolicy1D components (ALGORITHM.md)
            policy_delay=2,  # train(): policy_freq = 2, targets with the actor
            # train(): every option_buffer_size (5000) iterations, 5000 draws x O reuses
            prior_steps=5000 * o,
            prior_batch_reuse=o,
            # weighted_entropy and kl are sums over the batch; weighted_mean, l1 are means
            prior_reduction="reference-sum",
            prior_kl_grad="both",  # kl(output_option, output_option_noise): no detach
        )
    return cfg


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"invalid {name}={value!r}: must be {allowed}")


def _check_finite(name: str, value: float) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value), name, value, "a finite number")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Raise ConfigError naming the first invalid field, its value and the allowed range."""
    _check(cfg.algo in ALGOS, "algo", cfg.algo, f"one of {', '.join(ALGOS)}")
    _check(cfg.preset in PRESETS, "preset", cfg.preset, f"one of {', '.join(PRESETS)}")
    _check(isinstance(cfg.env, str) and cfg.env != "", "env", cfg.env, "a Gymnasium env id")
    _check(0 <= cfg.seed < 2**31, "seed", cfg.seed, "an integer in [0, 2^31)")
    _check(
        all(isinstance(s, int) and 0 <= s < 2**31 for s in cfg.seeds)
        and len(set(cfg.seeds)) == len(cfg.seeds),
        "seeds",
        tuple(cfg.seeds),
        "distinct integers in [0, 2^31)",
    )
    _check(
        1 <= cfg.total_steps <= MAX_TOTAL_STEPS, "total_steps", cfg.total_steps,
        f">= 1 and <= {MAX_TOTAL_STEPS:.0e} (about 3 years at 100,000 steps/s)",
    )  # fmt: skip
    env_kwargs(cfg)  # KEY=VALUE entries, or ConfigError
    _check(cfg.warmup_steps >= 0, "warmup_steps", cfg.warmup_steps, ">= 0")
    _check(cfg.buffer_size >= 1, "buffer_size", cfg.buffer_size, ">= 1")
    _check(cfg.updates_per_step >= 1, "updates_per_step", cfg.updates_per_step, ">= 1")
    _check(cfg.eval_interval >= 0, "eval_interval", cfg.eval_interval, ">= 0 (0: no evaluation)")
    _check(cfg.eval_episodes >= 1, "eval_episodes", cfg.eval_episodes, ">= 1")
    _check(cfg.log_interval >= 1, "log_interval", cfg.log_interval, ">= 1")
    _check(cfg.checkpoint_interval >= 0, "checkpoint_interval", cfg.checkpoint_interval, ">= 0")
    _check(cfg.keep_checkpoints >= 1, "keep_checkpoints", cfg.keep_checkpoints, ">= 1")
    a = cfg.algo_config()
    prefix = {"sac": "sac", "sac-awmp": "awmp", "td3": "td3"}[cfg.algo]
    _check(0 < a.gamma <= 1, f"{prefix}.gamma", a.gamma, "in (0, 1]")
    _check(a.batch_size >= 1, f"{prefix}.batch_size", a.batch_size, ">= 1")
    _check(
        a.batch_size <= cfg.buffer_size,
        f"{prefix}.batch_size",
        a.batch_size,
        f"<= buffer_size ({cfg.buffer_size})",
    )
    _check(a.lr > 0 and math.isfinite(a.lr), f"{prefix}.lr", a.lr, "a finite number > 0")
    _check(
        len(a.hidden) >= 1 and all(h >= 1 for h in a.hidden),
        f"{prefix}.hidden",
        a.hidden,
        "one or more positive layer sizes",
    )
    if isinstance(a, SACConfig):
        _check(0 < a.tau <= 1, "sac.tau", a.tau, "in (0, 1]")
        _check(a.alpha >= 0 and math.isfinite(a.alpha), "sac.alpha", a.alpha, "finite and >= 0")
        _check(not (a.learn_alpha and a.alpha <= 0), "sac.alpha", a.alpha, "> 0 with learn_alpha")
    elif isinstance(a, TD3Config):
        _check(0 < a.tau <= 1, "td3.tau", a.tau, "in (0, 1]")
        _check(a.policy_noise >= 0, "td3.policy_noise", a.policy_noise, ">= 0")
        _check(a.noise_clip >= 0, "td3.noise_clip", a.noise_clip, ">= 0")
        _check(a.policy_delay >= 1, "td3.policy_delay", a.policy_delay, ">= 1")
        _check(a.exploration_noise >= 0, "td3.exploration_noise", a.exploration_noise, ">= 0")
    else:
        _check(1 <= a.num_components <= 64, "awmp.num_components", a.num_components, "in [1, 64]")
        _check(0 < a.tau_v <= 1, "awmp.tau_v", a.tau_v, "in (0, 1]")
        _check(0 < a.tau_q <= 1, "awmp.tau_q", a.tau_q, "in (0, 1]")
        _check(a.alpha_pi >= 0, "awmp.alpha_pi", a.alpha_pi, ">= 0")
        _check(a.alpha_g >= 0, "awmp.alpha_g", a.alpha_g, ">= 0")
        _check(a.gating_temperature > 0, "awmp.gating_temperature", a.gating_temperature, "> 0")
        _check(a.acting in ("mixture", "weighted"), "awmp.acting", a.acting, "mixture|weighted")
        _check(
            a.value_weights in ("gating", "prior"),
            "awmp.value_weights",
            a.value_weights,
            "gating|prior",
        )
        _check(
            a.prior_action in ("policy", "buffer"),
            "awmp.prior_action",
            a.prior_action,
            "policy|buffer",
        )
        _check(a.prior_interval >= 1, "awmp.prior_interval", a.prior_interval, ">= 1")
        _check(a.prior_steps >= 0, "awmp.prior_steps", a.prior_steps, ">= 0")
        _check(a.prior_batch_size >= 1, "awmp.prior_batch_size", a.prior_batch_size, ">= 1")
        _check(
            a.prior_batch_size <= min(a.prior_interval, cfg.buffer_size),
            "awmp.prior_batch_size",
            a.prior_batch_size,
            "<= prior_interval and <= buffer_size",
        )
        _check(a.sigma >= 0, "awmp.sigma", a.sigma, ">= 0")
        _check(a.c_marg >= 0, "awmp.c_marg", a.c_marg, ">= 0")
        _check(a.recon_coef >= 0, "awmp.recon_coef", a.recon_coef, ">= 0")
        _check(a.policy_delay >= 1, "awmp.policy_delay", a.policy_delay, ">= 1")
        for name, allowed in (
            ("gating_samples", ("shared", "independent", "mean")),
            ("is_weights", ("eq11", "truncated", "tempered", "on-policy")),
            ("prior_reduction", ("mean", "reference-sum")),
            ("prior_kl_grad", ("noisy", "both")),
        ):
            value = getattr(a, name)
            _check(value in allowed, f"awmp.{name}", value, "|".join(allowed))
        _check(0 <= a.is_lambda <= 1, "awmp.is_lambda", a.is_lambda, "in [0, 1]")
        _check(
            not (a.learn_alpha and a.alpha_pi <= 0), "awmp.alpha_pi", a.alpha_pi,
            "> 0 with learn_alpha (its initial value)",
        )  # fmt: skip
        _check(a.adv_temperature > 0, "awmp.adv_temperature", a.adv_temperature, "> 0")
        _check(
            a.prior_batch_reuse >= 1 and a.prior_steps % a.prior_batch_reuse == 0,
            "awmp.prior_batch_reuse",
            a.prior_batch_reuse,
            f">= 1 and a divisor of prior_steps ({a.prior_steps})",
        )
        _check(
            len(a.policy_hidden) >= 1 and all(h >= 1 for h in a.policy_hidden),
            "awmp.policy_hidden",
            a.policy_hidden,
            "one or more positive layer sizes",
        )
        _check(
            len(a.prior_hidden) >= 1 and all(h >= 1 for h in a.prior_hidden),
            "awmp.prior_hidden",
            a.prior_hidden,
            "one or more positive layer sizes",
        )
    for f in dataclasses.fields(a):
        v = getattr(a, f.name)
        if isinstance(v, float):
            _check_finite(f"{prefix}.{f.name}", v)
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> TrainConfig:
    """The config `to_dict` wrote (e.g. a run directory's config.json); unknown fields raise
    ConfigError: dropping them would let a resumed or reported run silently differ from the
    one that was saved."""
    d = dict(d)
    sections = {"sac": SACConfig, "awmp": AWMPConfig, "td3": TD3Config}
    unknown = sorted(d.keys() - {f.name for f in dataclasses.fields(TrainConfig)})
    built = {}
    for name, cls in sections.items():
        values = dict(d.pop(name, {}) or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown += sorted(f"{name}.{k}" for k in values.keys() - fields)
        built[name] = cls(**{k: v for k, v in values.items() if k in fields})
    if unknown:
        raise ConfigError(
            f"unknown config fields {', '.join(sorted(unknown))} (written by another awmp version?)"
        )
    sac, awmp, td3 = built["sac"], built["awmp"], built["td3"]
    td3.hidden = tuple(td3.hidden)
    sac.hidden = tuple(sac.hidden)
    awmp.hidden = tuple(awmp.hidden)
    awmp.prior_hidden = tuple(awmp.prior_hidden)
    awmp.policy_hidden = tuple(awmp.policy_hidden)
    d["seeds"] = tuple(d.get("seeds", ()))
    d["env_kwargs"] = tuple(d.get("env_kwargs", ()))
    return TrainConfig(**d, sac=sac, awmp=awmp, td3=td3)


# Fields that say where a run goes and how it is watched or saved, not what it computes: a
# resumed run may change them (rundir), an experiment cell ignores them (experiment), runs of
# one report group may differ in them (report).
NON_EXPERIMENT_FIELDS = ("run_dir", "resume", "progress", "checkpoint_interval", "keep_checkpoints")
# Of those, the ones that say where: a run's config.json used as a config file must not send
# the new run into the old run's directory.
PLACE_FIELDS = ("run_dir", "resume")


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config dict (or TOML table) as {"section.field": value}, lists as tuples (the
    config's own type for sequences, and hashable)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def config_diff(a: dict, b: dict, ignore: tuple[str, ...] = NON_EXPERIMENT_FIELDS) -> list[str]:
    """Dotted fields set differently in two config dicts (nested or flat), sorted. A field one
    of them lacks (written by another awmp version) is no difference; `ignore` never is."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in fa.keys() & fb.keys() if k not in ignore and fa[k] != fb[k])


def load_config_file(path: str) -> dict:
    """The fields of a config file: TOML (top-level fields, `[sac]`/`[awmp]`/`[td3]` tables or
    dotted keys such as `"sac.hidden"`) or JSON, including a run directory's config.json
    (`{"config": {...}}`, as RL Zoo's hyperparameter files). `run_dir` and `resume` are
    dropped. Raises ConfigError for a missing or unreadable file."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no config file {path!r}")
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix == ".json" else "TOML"
        raise ConfigError(f"{path}: not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of config fields")
    if isinstance(data.get("config"), dict):  # a run directory's config.json
        data = data["config"]
    nested: dict = {}
    for key, value in data.items():
        if "." in key:
            section, field_name = key.split(".", 1)
            nested.setdefault(section, {})[field_name] = value
        elif isinstance(value, dict):
            nested.setdefault(key, {}).update(value)
        elif key not in PLACE_FIELDS:
            nested[key] = value
    return nested


def with_fields(cfg: TrainConfig, fields: dict, where: str = "config file") -> TrainConfig:
    """`cfg` with `fields` (nested as `load_config_file` returns them) set; unknown fields raise
    ConfigError naming them (`from_dict`'s rule)."""
    d = to_dict(cfg)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    try:
        return from_dict(d)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def env_kwargs(cfg: TrainConfig) -> dict:
    """`cfg.env_kwargs` (KEY=VALUE strings) as gymnasium.make's keyword arguments; a VALUE that
    is a TOML value (0.05, false, "x", [1, 2]) is that value, anything else the plain string."""
    out = {}
    for item in cfg.env_kwargs:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid env_kwargs entry {item!r}: must be KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out
