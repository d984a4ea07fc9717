"""final_params.msgpack and best_params.msgpack hold the acting parameters only
(`Agent.acting_fields`), the checkpoints the whole state. `awmp.load` acts exactly as the whole
final state does: the fields it fills with NaN are never read. Files of the whole state (runs
before this format) still load."""

from __future__ import annotations

import shutil

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

import awmp
from awmp import checkpoint
from awmp.algos.registry import ALGORITHMS
from awmp.evaluate import BEST_PARAMS_FILE, PARAMS_FILE, ParamsError, params_bytes

TOTAL_STEPS = 200

# final_params.msgpack / to_bytes(whole final state) of the tiny runs below, measured: sac 0.092,
# sac-awmp 0.260, td3 0.083, crossq 0.123, td3-awmp 0.260 (the AWMP variants keep the target
# critic, for the gating, and the prior, for `awmp inspect`). The bounds leave a margin.
MAX_RATIO = {
    "sac": 0.15, "sac-awmp": 0.35, "td3": 0.15, "crossq": 0.2, "td3-awmp": 0.35, "sac-gmm": 0.35
}  # fmt: skip


def _config(algo: str, run_dir):
    cfg = small_config(algo, run_dir=str(run_dir))
    cfg.total_steps, cfg.warmup_steps, cfg.eval_interval = TOTAL_STEPS, 100, 100
    a = cfg.awmp
    a.hidden = a.policy_hidden = a.prior_hidden = (32, 32)
    a.batch_size, a.prior_interval, a.prior_steps = 16, 100, 20
    t = cfg.td3_awmp
    t.hidden = t.prior_hidden = (32, 32)
    t.batch_size, t.prior_interval, t.prior_steps = 16, 100, 20
    return cfg


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def run(request, tmp_path_factory):
    """A finished tiny run of each registered algorithm (one prior burst for the AWMP ones)."""
    run_dir, _ = awmp.train(_config(request.param, tmp_path_factory.mktemp(request.param) / "r"))
    return request.param, run_dir


def _final_state(run_dir):
    """The whole final state: the newest checkpoint of a finished run is the final step's."""
    full = awmp.load(run_dir, which="checkpoint")
    assert full.source == checkpoint.list_checkpoints(run_dir)[-1][1]
    assert full.source.name == f"step_{TOTAL_STEPS:012d}.ckpt"
    return full


def _obs(policy, n: int = 7) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(1), (n, policy.spec.obs_dim))


def _outputs(policy, state) -> dict[str, np.ndarray]:
    """Everything acting computes from `state`: deterministic and stochastic actions (and the
    behaviour density extras), and the AWMP variants' inspection weights (rho, h)."""
    obs = _obs(policy)
    out = {"det": policy.agent.act_deterministic(state, obs)}
    new, out["stoch"], extras = policy.agent.act(state, obs)
    out["key_after"] = getattr(new, "key", None)
    out.update({f"extra_{k}": v for k, v in extras.items()})
    weights = getattr(policy.agent.act.__self__, "weights", None)
    if weights is not None:
        out["rho"], out["h"] = weights(state, obs)
    return {k: np.asarray(v) for k, v in out.items() if v is not None}


def test_params_files_hold_the_acting_fields_only_and_are_small(run):
    algo, run_dir = run
    full = _final_state(run_dir)
    names = full.agent.acting_fields
    assert names is not None
    whole = flax.serialization.to_bytes(jax.device_get(full.state))
    for name in (PARAMS_FILE, BEST_PARAMS_FILE):
        data = (run_dir / name).read_bytes()
        assert set(flax.serialization.msgpack_restore(data)) == set(names), name
    final = (run_dir / PARAMS_FILE).read_bytes()
    assert final == params_bytes(full.agent, full.state)  # the final state's acting fields
    ratio = len(final) / len(whole)
    print(f"{algo}: final_params {len(final)} B, whole state {len(whole)} B, ratio {ratio:.3f}")
    assert ratio < MAX_RATIO[algo], (len(final), len(whole))
    # no optimiser state and no counter, whatever the algorithm calls them
    assert not any(n.endswith("_opt") or n.endswith("step") for n in names)


def test_load_acts_exactly_as_the_whole_final_state(run):
    """Deterministic and stochastic actions (and SAC-AWMP / TD3-AWMP's inspection weights) of
    the acting-only file equal those of the whole final state from the final checkpoint, bit
    for bit; the fields the file does not hold are NaN (integers 0) and never read."""
    _, run_dir = run
    full = _final_state(run_dir)
    policy = awmp.load(run_dir)
    assert set(policy.restored) == set(policy.agent.acting_fields)
    saved, ckpt = policy.state, full.state
    for name in flax.serialization.to_state_dict(saved):
        a, b = jax.tree.leaves(getattr(saved, name)), jax.tree.leaves(getattr(ckpt, name))
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert getattr(x, "weak_type", False) == getattr(y, "weak_type", False), name
            if name in policy.restored:
                assert np.array_equal(np.asarray(x), np.asarray(y)), name
            elif jnp.issubdtype(x.dtype, jnp.inexact):
                assert np.all(np.isnan(np.asarray(x))), name
            else:
                assert not np.any(np.asarray(x)), name
    ours, theirs = _outputs(policy, saved), _outputs(policy, ckpt)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert np.all(np.isfinite(ours[k])), k
        assert np.array_equal(ours[k], theirs[k]), k
    # Through the Policy API: batch and single observations, deterministic and stochastic.
    obs = np.asarray(_obs(policy))
    assert np.array_equal(policy.act(obs), full.act(obs))
    assert np.array_equal(policy.act(obs[0]), full.act(obs[0]))
    for _ in range(2):  # the key advances alike
        assert np.array_equal(policy.act(obs, deterministic=False), full.act(obs, False))
    best = awmp.load(run_dir, which="best")
    assert best.restored == policy.restored
    assert np.all(np.isfinite(best.act(obs))) and np.all(np.isfinite(best.act(obs, False)))


def test_every_acting_field_is_read(run):
    """acting_fields names nothing that acting ignores: filling any one of them as well (NaN,
    integers 0) changes some output of acting."""
    _, run_dir = run
    full = _final_state(run_dir)
    reference = _outputs(full, full.state)
    for name in full.agent.acting_fields:
        field = getattr(full.state, name)
        if not jax.tree.leaves(field):
            continue  # an empty subtree (e.g. CrossQ's actor_stats without actor_brn)
        filled = jax.tree.map(
            lambda x: jnp.full_like(x, jnp.nan if jnp.issubdtype(x.dtype, jnp.inexact) else 0),
            field,
        )
        got = _outputs(full, full.state.replace(**{name: filled}))
        assert any(not np.array_equal(got[k], reference[k]) for k in reference), name


def test_a_whole_state_file_of_an_older_run_still_loads(run, tmp_path):
    """final_params.msgpack as runs wrote it before (to_bytes of the whole state) loads as the
    whole state, leaf for leaf."""
    _, run_dir = run
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    full = _final_state(old)
    (old / PARAMS_FILE).write_bytes(flax.serialization.to_bytes(jax.device_get(full.state)))
    policy = awmp.load(old)
    assert policy.restored == tuple(flax.serialization.to_state_dict(full.state))
    for x, y in zip(jax.tree.leaves(policy.state), jax.tree.leaves(full.state), strict=True):
        assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))
    obs = np.asarray(_obs(policy))
    assert np.array_equal(policy.act(obs), full.act(obs))
    assert np.array_equal(policy.act(obs, False), full.act(obs, False))


def test_a_file_of_other_fields_is_one_clear_error(run, tmp_path):
    """A parameters file whose fields or shapes are not the configured algorithm's (another
    algorithm, config or version) is one ParamsError naming what differs."""
    algo, run_dir = run
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    state = _final_state(bad).state
    first, *_ = names = awmp.load(bad).restored
    (bad / PARAMS_FILE).write_bytes(
        flax.serialization.to_bytes(jax.device_get({first: getattr(state, first)}))
    )
    with pytest.raises(
        ParamsError, match=rf"holds the fields \['{first}'\]; the configured {algo}"
    ):
        awmp.load(bad)
    # the right fields, one array of another shape
    fields = jax.device_get({n: getattr(state, n) for n in names})
    fields[first] = jax.tree.map(lambda x: np.zeros((*x.shape, 2), x.dtype), fields[first])
    (bad / PARAMS_FILE).write_bytes(flax.serialization.to_bytes(fields))
    with pytest.raises(ParamsError, match=f"the configured {algo} expects"):
        awmp.load(bad)
    # a truncated file (final_params.msgpack is written in place at the end)
    (bad / PARAMS_FILE).write_bytes((run_dir / PARAMS_FILE).read_bytes()[:100])
    with pytest.raises(ParamsError, match="cannot be read"):
        awmp.load(bad)
