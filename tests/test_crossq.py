"""CrossQ (Bhatt et al., ICLR 2024): the batch-renormalisation layer against a float64 NumPy
reference (train and eval modes, running statistics, the r_max/d_max warm-up), the critic target
and losses against NumPy, the joint forward pass, smoke, resume and report."""

from __future__ import annotations

import csv
import json
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

import awmp
from awmp.algos import crossq
from awmp.algos.crossq import CrossQConfig
from awmp.cli import main as cli_main
from awmp.config import ConfigError, preset, validate
from awmp.distributions import LOG_STD_MAX, LOG_STD_MIN
from awmp.envs import EnvSpec
from awmp.networks import BatchRenorm

EPS, MOM, R_MAX, D_MAX = 1e-3, 0.99, 3.0, 5.0


class NumpyBRN:
    """Ioffe (2017), Algorithm 1, written out in float64 with CrossQ's warm-up (r_max = 1,
    d_max = 0 until `warmup` train steps have been taken)."""

    def __init__(self, dim: int, warmup: int, momentum=MOM, eps=EPS, r_max=R_MAX, d_max=D_MAX):
        self.mean, self.var, self.steps = np.zeros(dim), np.ones(dim), 0
        self.warmup, self.m, self.eps, self.r_max, self.d_max = warmup, momentum, eps, r_max, d_max

    def eval(self, x, scale, bias):
        return (x - self.mean) / np.sqrt(self.var + self.eps) * scale + bias

    def train(self, x, scale, bias):
        mu_b = x.mean(axis=0)
        var_b = ((x - mu_b) ** 2).mean(axis=0)
        sigma_b, sigma = np.sqrt(var_b + self.eps), np.sqrt(self.var + self.eps)
        r_max, d_max = (self.r_max, self.d_max) if self.steps >= self.warmup else (1.0, 0.0)
        r = np.clip(sigma_b / sigma, 1 / r_max, r_max)
        d = np.clip((mu_b - self.mean) / sigma, -d_max, d_max)
        out = ((x - mu_b) / sigma_b * r + d) * scale + bias
        self.mean = self.m * self.mean + (1 - self.m) * mu_b
        self.var = self.m * self.var + (1 - self.m) * var_b
        self.steps += 1
        return out, r, d


def _brn_apply(warmup: int):
    train_layer = BatchRenorm(True, warmup_steps=warmup)
    eval_layer = BatchRenorm(False, warmup_steps=warmup)
    train = jax.jit(lambda v, x: train_layer.apply(v, x, mutable=["batch_stats"]))
    evaluate = jax.jit(eval_layer.apply)
    return eval_layer, train, evaluate


@pytest.mark.parametrize("warmup", [0, 3, 100])
def test_batch_renorm_matches_numpy_over_steps(warmup):
    """Ten train steps on shifted, scaled batches (so r and d leave [1/3, 3] and [-5, 5] and the
    clipping acts after the warm-up), eval after each; running statistics after each update."""
    dim, batch = 4, 32
    rng = np.random.default_rng(warmup)
    eval_layer, train, evaluate = _brn_apply(warmup)
    variables = eval_layer.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)))
    scale = rng.uniform(0.5, 2.0, dim)
    bias = rng.normal(size=dim)
    variables = {
        "params": {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias)},
        "batch_stats": variables["batch_stats"],
    }
    ref = NumpyBRN(dim, warmup)
    clipped_r = clipped_d = 0
    for k in range(10):
        loc = rng.normal(scale=8.0, size=dim) if k % 2 else rng.normal(size=dim)
        spread = rng.choice([0.05, 1.0, 20.0], size=dim)
        x = (loc + spread * rng.normal(size=(batch, dim))).astype(np.float32)
        x64 = x.astype(np.float64)
        np.testing.assert_allclose(
            np.asarray(evaluate(variables, x)), ref.eval(x64, scale, bias), rtol=2e-4, atol=2e-4
        )
        out, updated = train(variables, x)
        expected, r, d = ref.train(x64, scale, bias)
        np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-4, atol=2e-4)
        variables = {"params": variables["params"], "batch_stats": updated["batch_stats"]}
        stats = jax.tree.map(np.asarray, updated["batch_stats"])
        np.testing.assert_allclose(stats["mean"], ref.mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats["var"], ref.var, rtol=1e-5, atol=1e-5)
        assert int(stats["steps"]) == ref.steps == k + 1
        if ref.steps - 1 < warmup:
            assert np.all(r == 1.0) and np.all(d == 0.0)  # plain batch norm during the warm-up
        else:
            clipped_r += int(np.any(np.isclose(np.abs(np.log(r)), np.log(R_MAX))))
            clipped_d += int(np.any(np.isclose(np.abs(d), D_MAX)))
    if warmup < 10:
        assert clipped_r and clipped_d  # the clipping was exercised after the warm-up


def test_batch_renorm_warmup_switches_from_batch_norm_to_renorm():
    """Before the warm-up the output is batch-normalised with the batch's own statistics (zero
    mean per feature); after it, the running statistics pull it (r, d != 1, 0)."""
    eval_layer, train, _ = _brn_apply(2)
    variables = eval_layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    x = jnp.asarray(np.random.default_rng(0).normal(5.0, 3.0, (64, 2)), jnp.float32)
    means = []
    for _ in range(3):
        out, upd = train(variables, x)
        variables = {"params": variables["params"], "batch_stats": upd["batch_stats"]}
        means.append(np.abs(np.asarray(out).mean(axis=0)).max())
    assert means[0] < 1e-5 and means[1] < 1e-5  # steps 0, 1 < warm-up 2: batch norm
    assert means[2] > 1.0  # step 2: d = clip((5 - mu) / sigma, -5, 5) shifts the output


def test_batch_renorm_gradient_treats_r_and_d_as_constants():
    """Ioffe 2017, Sec. 3: r and d are stop-gradient; mu_B and sigma_B are not. The float64
    finite-difference gradient of sum(w * out) with r and d frozen matches the layer's."""
    dim, batch = 3, 16
    rng = np.random.default_rng(1)
    train_layer = BatchRenorm(True, warmup_steps=0)
    variables = BatchRenorm(False).init(jax.random.PRNGKey(0), jnp.zeros((1, dim)))
    stats = {"mean": jnp.asarray([1.0, -2.0, 0.5]), "var": jnp.asarray([0.2, 4.0, 1.0]),
             "steps": jnp.asarray(5, jnp.int32)}  # fmt: skip
    variables = {"params": variables["params"], "batch_stats": stats}
    x = rng.normal(size=(batch, dim))
    w = rng.normal(size=(batch, dim))

    def f(xx):
        out, _ = train_layer.apply(variables, xx, mutable=["batch_stats"])
        return jnp.sum(out * w)

    grad = np.asarray(jax.grad(f)(jnp.asarray(x, jnp.float32)), np.float64)
    ref = NumpyBRN(dim, 0)
    ref.mean, ref.var, ref.steps = np.asarray(stats["mean"], float), np.asarray(stats["var"]), 5
    _, r, d = ref.train(x, 1.0, 0.0)

    def g(xx):  # r, d frozen at their values for x
        mu_b = xx.mean(axis=0)
        sigma_b = np.sqrt(((xx - mu_b) ** 2).mean(axis=0) + EPS)
        return np.sum(((xx - mu_b) / sigma_b * r + d) * w)

    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        num[idx] = (g(x + e) - g(x - e)) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=2e-3, atol=2e-3)
    assert np.abs(num).max() > 0.1  # not a vacuous comparison


# ----------------------------------------------------------------------------- the algorithm

OBS, ACT, B = 3, 2, 8


def _hand_batch(rng: np.random.Generator, b: int = B) -> dict:
    return {
        "obs": rng.normal(size=(b, OBS)).astype(np.float32),
        "action": rng.uniform(-1, 1, (b, ACT)).astype(np.float32),
        "reward": rng.normal(size=b).astype(np.float32),
        "next_obs": rng.normal(2.0, 1.5, size=(b, OBS)).astype(np.float32),
        "terminated": (rng.uniform(size=b) < 0.3).astype(np.float32),
    }


def _jnp(batch: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in batch.items()}


def _randomise(variables: dict, rng: np.random.Generator, steps: int) -> dict:
    """Non-trivial BRN statistics (`steps` train calls taken) and BRN scales and biases."""

    def stat(path, x):
        name = path[-1].key
        if name == "steps":
            return jnp.full_like(x, steps)
        v = rng.normal(0.0, 0.5, x.shape) if name == "mean" else rng.uniform(0.3, 2.0, x.shape)
        return jnp.asarray(v, jnp.float32)

    def param(path, x):
        if "BatchRenorm" not in path[-2].key:
            return x
        v = (
            rng.uniform(0.5, 1.5, x.shape)
            if path[-1].key == "scale"
            else rng.normal(0, 0.2, x.shape)
        )
        return jnp.asarray(v, jnp.float32)

    return {
        "params": jax.tree_util.tree_map_with_path(param, variables["params"]),
        "batch_stats": jax.tree_util.tree_map_with_path(stat, variables["batch_stats"]),
    }


def _setup(warmup: int, seed: int = 0, steps: int = 5):
    """Nets and variables with running statistics after `steps` train calls (the renorm
    corrections act when steps >= warmup)."""
    cfg = CrossQConfig(hidden=(16, 12), policy_hidden=(8, 8), brn_warmup_steps=warmup)
    nets = crossq.make_nets(EnvSpec(OBS, ACT), cfg)
    kc, ka = jax.random.split(jax.random.PRNGKey(seed))
    critic = nets.critic_eval.init(kc, jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    actor = nets.actor_eval.init(ka, jnp.zeros((1, OBS)))
    rng = np.random.default_rng(seed + 100)
    return cfg, nets, _randomise(critic, rng, steps), _randomise(actor, rng, steps)


def _np_net(variables: dict, x: np.ndarray, train: bool, warmup: int, member=None):
    """A BRN network (BRN on the input, Dense -> ReLU -> BRN per hidden layer, linear output)
    in float64 NumPy; returns the output and each BRN layer's new (mean, var, steps)."""
    params, stats = variables["params"], variables["batch_stats"]

    def leaf(tree, name, key):
        v = np.asarray(tree[name][key], np.float64)
        return v[member] if member is not None else v

    n_hidden = sum(name.startswith("Dense") for name in params) - 1
    new_stats = []

    def brn(k, h):
        name = f"BatchRenorm_{k}"
        ref = NumpyBRN(h.shape[1], warmup)
        ref.mean, ref.var = leaf(stats, name, "mean"), leaf(stats, name, "var")
        ref.steps = int(leaf(stats, name, "steps"))
        scale, bias = leaf(params, name, "scale"), leaf(params, name, "bias")
        out = ref.train(h, scale, bias)[0] if train else ref.eval(h, scale, bias)
        new_stats.append((ref.mean, ref.var, ref.steps))
        return out

    def dense(i, h):
        return h @ leaf(params, f"Dense_{i}", "kernel") + leaf(params, f"Dense_{i}", "bias")

    h = brn(0, x)
    for i in range(n_hidden):
        h = brn(i + 1, np.maximum(dense(i, h), 0.0))
    return dense(n_hidden, h), new_stats


def _np_critic(variables: dict, obs, act, train: bool, warmup: int):
    """Both critics in NumPy: Q (2, N) and the new statistics of each member."""
    x = np.concatenate([obs, act], axis=1).astype(np.float64)
    member = {"params": variables["params"]["Vmap_BRNQNet_0"],
              "batch_stats": variables["batch_stats"]["Vmap_BRNQNet_0"]}  # fmt: skip
    outs = [_np_net(member, x, train, warmup, member=j) for j in range(2)]
    return np.stack([o[0][:, 0] for o in outs]), [o[1] for o in outs]


@pytest.mark.parametrize("warmup", [0, 100])  # after / before the BRN warm-up
def test_critic_target_and_loss_match_numpy(warmup):
    cfg, nets, critic, _ = _setup(warmup)
    rng = np.random.default_rng(1)
    batch = _hand_batch(rng)
    next_a = rng.uniform(-1, 1, (B, ACT)).astype(np.float32)
    next_logp = rng.normal(size=B).astype(np.float32)
    alpha, gamma = 0.3, 0.97
    fn = jax.jit(
        lambda p, s, b, a, lp: crossq.critic_loss(nets, p, s, b, a, lp, jnp.float32(alpha), gamma)
    )
    loss, (q_now, y, new_stats) = fn(
        critic["params"], critic["batch_stats"], _jnp(batch), next_a, next_logp
    )

    # NumPy: one train-mode pass over [(s, a); (s', a')], then the soft target and the loss.
    q, stats = _np_critic(
        critic,
        np.concatenate([batch["obs"], batch["next_obs"]]),
        np.concatenate([batch["action"], next_a]),
        train=True,
        warmup=warmup,
    )
    q_np, q_next = q[:, :B], q[:, B:]
    y_np = batch["reward"] + gamma * (1 - batch["terminated"]) * (
        q_next.min(axis=0) - alpha * next_logp.astype(np.float64)
    )
    loss_np = 0.5 * np.sum(np.mean((q_np - y_np) ** 2, axis=1))
    np.testing.assert_allclose(np.asarray(q_now), q_np, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(y), y_np, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(loss), loss_np, rtol=1e-4)
    got = new_stats["Vmap_BRNQNet_0"]
    for j in range(2):
        for k, (mean, var, steps) in enumerate(stats[j]):
            layer = got[f"BatchRenorm_{k}"]
            np.testing.assert_allclose(np.asarray(layer["mean"][j]), mean, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(layer["var"][j]), var, rtol=1e-5, atol=1e-5)
            assert int(layer["steps"][j]) == steps == 6  # one BRN step per joint pass
    term = batch["terminated"] == 1
    np.testing.assert_allclose(np.asarray(y)[term], batch["reward"][term], rtol=1e-6)


def test_joint_pass_eval_mode_equals_separate_passes_and_train_mode_does_not():
    """Eval mode normalises each row with the running statistics: the joint pass equals two
    separate passes. Train mode normalises with the statistics of the whole joint batch: it
    equals the NumPy pass over the concatenation (test above) and differs from two separate
    train-mode passes, which would each see only their half."""
    _, nets, critic, _ = _setup(0)
    batch = _jnp(_hand_batch(np.random.default_rng(2)))
    next_a = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (B, ACT)), jnp.float32)
    obs = jnp.concatenate([batch["obs"], batch["next_obs"]])
    act = jnp.concatenate([batch["action"], next_a])
    joint = nets.critic_eval.apply(critic, obs, act)
    sep = jnp.concatenate(
        [
            nets.critic_eval.apply(critic, batch["obs"], batch["action"]),
            nets.critic_eval.apply(critic, batch["next_obs"], next_a),
        ],
        axis=1,
    )
    np.testing.assert_allclose(np.asarray(joint), np.asarray(sep), rtol=1e-6, atol=1e-6)

    q_now, q_next, _ = crossq.joint_critic_pass(
        nets, critic["params"], critic["batch_stats"], batch, next_a
    )
    alone, _ = nets.critic_train.apply(
        critic, batch["obs"], batch["action"], mutable=["batch_stats"]
    )
    assert np.max(np.abs(np.asarray(q_now) - np.asarray(alone))) > 1e-2


def test_no_gradient_through_the_target_half():
    """The critic's gradient equals that of 1/2 sum_j mean (Q_j(s,a) - y0)^2 with y0 a fixed
    array (the target of the same pass): nothing flows through Q_j(s', a') except via the shared
    batch statistics of the current half. Without the stop-gradient the gradient differs."""
    _, nets, critic, _ = _setup(0)
    rng = np.random.default_rng(4)
    batch = _jnp(_hand_batch(rng))
    next_a = jnp.asarray(rng.uniform(-1, 1, (B, ACT)), jnp.float32)
    next_logp = jnp.asarray(rng.normal(size=B), jnp.float32)
    params, stats = critic["params"], critic["batch_stats"]
    alpha, gamma = jnp.float32(0.2), 0.99

    def loss(p):
        return crossq.critic_loss(nets, p, stats, batch, next_a, next_logp, alpha, gamma)[0]

    y0 = crossq.critic_loss(nets, params, stats, batch, next_a, next_logp, alpha, gamma)[1][1]

    def fixed_target(p):
        q_now, _, _ = crossq.joint_critic_pass(nets, p, stats, batch, next_a)
        return 0.5 * jnp.sum(jnp.mean((q_now - y0) ** 2, axis=1))

    def through_target(p):  # what a missing stop-gradient would give
        q_now, q_next, _ = crossq.joint_critic_pass(nets, p, stats, batch, next_a)
        y = batch["reward"] + gamma * (1 - batch["terminated"]) * (
            jnp.min(q_next, axis=0) - alpha * next_logp
        )
        return 0.5 * jnp.sum(jnp.mean((q_now - y) ** 2, axis=1))

    g, g_fixed, g_through = (
        jax.flatten_util.ravel_pytree(jax.grad(f)(params))[0]
        for f in (loss, fixed_target, through_target)
    )
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_fixed), rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(np.asarray(g) - np.asarray(g_through))) > 1e-3


@pytest.mark.parametrize("warmup", [0, 100])
def test_actor_loss_matches_numpy(warmup):
    """J_pi = mean(alpha log pi(a~|s) - min_j Q_j(s, a~)): the actor's forward pass in train
    mode (its BRN statistics move), the critics in eval mode, in float64 NumPy."""
    _, nets, critic, actor = _setup(warmup, seed=3)
    rng = np.random.default_rng(5)
    obs = rng.normal(size=(B, OBS)).astype(np.float32)
    key, alpha = jax.random.PRNGKey(7), 0.4
    loss, (logp, new_stats) = jax.jit(
        lambda p: crossq.actor_loss(
            p, nets, actor["batch_stats"], critic, obs, key, jnp.float32(alpha)
        )
    )(actor["params"])

    out, stats = _np_net(actor, obs.astype(np.float64), train=True, warmup=warmup)
    mean, log_std = out[:, :ACT], np.clip(out[:, ACT:], LOG_STD_MIN, LOG_STD_MAX)
    eps = np.asarray(jax.random.normal(key, (B, ACT)), np.float64)
    u = mean + np.exp(log_std) * eps
    a = np.tanh(u)
    logp_np = np.sum(
        -0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2), axis=1
    )
    q, _ = _np_critic(critic, obs, a, train=False, warmup=warmup)
    loss_np = np.mean(alpha * logp_np - q.min(axis=0))
    np.testing.assert_allclose(np.asarray(logp), logp_np, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(float(loss), loss_np, rtol=1e-3, atol=1e-3)
    for k, (m, v, steps) in enumerate(stats):
        layer = new_stats[f"BatchRenorm_{k}"]
        np.testing.assert_allclose(np.asarray(layer["mean"]), m, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(layer["var"]), v, rtol=1e-5, atol=1e-5)
        assert int(layer["steps"]) == steps == 6


def test_temperature_loss_gradient():
    """Eq. 18 with alpha = exp(log alpha): dJ/dlog alpha = alpha (H - H_target)."""
    for log_alpha, gap in ((np.log(0.5), 2.0), (np.log(3.0), -0.7)):
        g = jax.grad(crossq.temperature_loss)(jnp.float32(log_alpha), jnp.float32(gap))
        assert float(g) == pytest.approx(np.exp(log_alpha) * gap, rel=1e-6)


def _tree_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b)))


def test_update_schedule_statistics_and_temperature():
    """The critic and its BRN statistics move every step; the actor, its statistics and the
    temperature every third (policy delay 3), the temperature by one Adam step of eq. 18."""
    cfg = CrossQConfig(hidden=(16, 16), policy_hidden=(8, 8), batch_size=B)
    agent = crossq.make_agent(EnvSpec(OBS, ACT), cfg)
    states = [agent.init(jax.random.PRNGKey(0))]
    update = jax.jit(agent.update)
    batch = _jnp(_hand_batch(np.random.default_rng(0)))
    metrics = []
    for _ in range(6):
        state, m = update(states[-1], batch)
        states.append(state)
        metrics.append(m)
    for t in range(1, 7):
        prev, cur = states[t - 1], states[t]
        moved = t % 3 == 0
        assert not _tree_equal(prev.critic, cur.critic), t
        assert not _tree_equal(prev.critic_stats, cur.critic_stats), t
        assert _tree_equal(prev.actor, cur.actor) != moved, t
        assert _tree_equal(prev.actor_stats, cur.actor_stats) != moved, t
        assert (float(prev.log_alpha) == float(cur.log_alpha)) != moved, t
    steps = jax.tree.leaves(states[-1].critic_stats)
    assert all(int(x.max()) == 6 for x in steps if x.dtype == jnp.int32)
    assert all(int(x) == 2 for x in jax.tree.leaves(states[-1].actor_stats) if x.dtype == jnp.int32)
    # First Adam step on log alpha (default betas): -lr * sign(alpha (H - H_target)).
    entropy = float(metrics[2]["entropy"])
    expected = -cfg.lr * np.sign(entropy + ACT)
    assert float(states[3].log_alpha) == pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------- CLI, API, report


def test_crossq_config_defaults_and_validation():
    cfg = preset("paper")
    cfg.algo = "crossq"
    c = validate(cfg).crossq
    assert (c.hidden, c.policy_hidden, c.batch_size, c.lr) == ((2048, 2048), (256, 256), 256, 1e-3)
    assert (c.adam_b1, c.adam_b2, c.policy_delay, c.brn_momentum) == (0.5, 0.999, 3, 0.99)
    assert (c.alpha, c.learn_alpha, c.brn_warmup_steps) == (1.0, True, 100_000)
    # The paper-size agent's state, built abstractly (no 2048-wide compute).
    state = jax.eval_shape(crossq.make_agent(EnvSpec(11, 3), c).init, jax.random.PRNGKey(0))
    dense = state.critic["Vmap_BRNQNet_0"]
    assert dense["Dense_0"]["kernel"].shape == (2, 14, 2048)
    assert dense["Dense_1"]["kernel"].shape == (2, 2048, 2048)
    assert state.critic_stats["Vmap_BRNQNet_0"]["BatchRenorm_2"]["mean"].shape == (2, 2048)
    assert state.actor["Dense_1"]["kernel"].shape == (256, 256)
    assert not hasattr(state, "target_critic")  # no target networks
    for field, value, message in (
        ("policy_delay", 0, r"crossq.policy_delay=0: must be >= 1"),
        ("brn_momentum", 1.0, r"crossq.brn_momentum=1.0"),
        ("brn_r_max", 0.5, r"crossq.brn_r_max=0.5"),
        ("policy_hidden", (), r"crossq.policy_hidden"),
    ):
        bad = preset("paper")
        bad.algo = "crossq"
        setattr(bad.crossq, field, value)
        with pytest.raises(ConfigError, match=message):
            validate(bad)


def test_crossq_trains_from_the_cli_and_appears_in_the_report(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--algo", "crossq", "--env", "Pendulum-v1", "--total-steps", "300",
            "--warmup-steps", "100", "--eval-interval", "150", "--eval-episodes", "1",
            "--crossq.hidden", "32", "32", "--crossq.policy-hidden", "16", "16",
            "--crossq.batch-size", "16", "--no-progress", "--run-dir", str(run)]  # fmt: skip
    assert cli_main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps_done"] == 300 and math.isfinite(summary["final_eval_return"])
    assert json.loads((run / "config.json").read_text())["config"]["algo"] == "crossq"
    with open(run / "train.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"q_loss", "pi_loss", "q_mean", "entropy", "alpha"} <= set(rows[-1])
    assert math.isfinite(float(rows[-1]["q_loss"]))
    state = awmp.load(run, which="checkpoint").state  # the whole final state
    n = int(state.step)
    assert 200 <= n <= 201  # one update per step after the 100 warm-up steps
    # n critic steps and n // 3 actor steps of BRN statistics, all in the saved state.
    int_leaves = [x for x in jax.tree.leaves(state.critic_stats) if x.dtype == np.int32]
    assert int_leaves and all(np.all(np.asarray(x) == n) for x in int_leaves)
    int_leaves = [x for x in jax.tree.leaves(state.actor_stats) if x.dtype == np.int32]
    assert int_leaves and all(int(x) == n // 3 for x in int_leaves)

    out = tmp_path / "report"
    assert cli_main(["report", str(run), "--out", str(out)]) == 0
    assert "| Pendulum-v1 | crossq |" in (out / "report.md").read_text()


def test_crossq_trains_from_the_python_api_deterministically(tmp_path):
    def cfg(name):
        c = small_config(algo="crossq", run_dir=str(tmp_path / name))
        c.crossq.hidden, c.crossq.policy_hidden, c.crossq.batch_size = (16,), (8,), 8
        c.total_steps = 200
        return c

    run_a, summary = awmp.train(cfg("a"))
    run_b, _ = awmp.train(cfg("b"))
    assert summary["steps_done"] == 200
    a = awmp.load(run_a, which="checkpoint").state  # the whole final states
    b = awmp.load(run_b, which="checkpoint").state
    assert _tree_equal(a, b)
    init = crossq.make_agent(EnvSpec(3, 1), cfg("x").crossq).init(jax.random.PRNGKey(0))
    assert not _tree_equal(init.critic, a.critic) and not _tree_equal(init.actor, a.actor)


# CrossQ learns Pendulum-v1: the mean of the last three evaluations (steps 4,000-6,000) >= -400.
# Calibration (paper preset for CrossQ but critics (256, 256) and actor (64, 64); 1,000 warm-up
# steps; 10 evaluation episodes every 1,000 steps), evaluations at 1k..6k by seed:
#   0: -1704 -1472 -783 -133 -177 -161 (last three -157)
#   1: -1526 -522 -101 -179 -180 -139 (-166)
#   2: -1456 -775 -192 -159 -134 -155 (-149)
#   3: -1478 -983 -203 -239 -184 -203 (-209)
#   4: -1477 -1129 -279 -232 -159 -152 (-181)
# Worst seed -209: ~190 margin; untrained -1,450 to -1,700. CI runs seed 0 (~2 minutes on the
# shared 2-core machine). docs/ALGORITHM.md "Baseline: CrossQ" has the table.
PENDULUM_STEPS = 6000
PENDULUM_THRESHOLD = -400.0


@pytest.mark.slow
def test_crossq_learns_pendulum(tmp_path):
    cfg = preset("paper")
    cfg.algo, cfg.env, cfg.seed = "crossq", "Pendulum-v1", 0
    cfg.total_steps, cfg.warmup_steps = PENDULUM_STEPS, 1000
    cfg.eval_interval, cfg.eval_episodes = 1000, 10
    cfg.crossq.hidden, cfg.crossq.policy_hidden = (256, 256), (64, 64)
    cfg.progress = False
    cfg.run_dir = str(tmp_path / "pendulum")
    run_dir, summary = awmp.train(cfg)
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows[-3:]] == [4000, 5000, 6000]
    last3 = np.mean([float(r["return_mean"]) for r in rows[-3:]])
    assert last3 >= PENDULUM_THRESHOLD, (last3, summary)


def test_a_seed_in_a_vmapped_group_is_the_seed_alone(tmp_path):
    """`--seeds 0,1` vmaps the whole state, BRN statistics included: seed 1 of the group ends
    where seed 1 alone does (to float rounding, as tests/test_multiseed.py checks for SAC)."""

    def cfg(name, seeds):
        c = small_config(algo="crossq", run_dir=str(tmp_path / name), seeds=seeds)
        c.crossq.hidden, c.crossq.policy_hidden, c.crossq.batch_size = (16,), (8,), 8
        c.total_steps, c.eval_interval = 200, 200
        return c

    awmp.train_seeds(cfg("alone", (1,)))
    awmp.train_seeds(cfg("group", (0, 1)))
    alone = awmp.load(tmp_path / "alone" / "seed1", which="checkpoint").state  # whole states
    group = awmp.load(tmp_path / "group" / "seed1", which="checkpoint").state
    assert int(alone.step) == int(group.step) > 0
    for name in ("actor", "actor_stats", "critic", "critic_stats", "log_alpha"):
        for x, y in zip(
            jax.tree.leaves(getattr(alone, name)),
            jax.tree.leaves(getattr(group, name)),
            strict=True,
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-5)
