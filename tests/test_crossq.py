"""CrossQ (Bhatt et al., ICLR 2024): the batch-renormalisation layer against a float64 NumPy
reference (train and eval modes, running statistics, the r_max/d_max warm-up), the critic target
and losses against NumPy, the joint forward pass, smoke, resume and report."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
