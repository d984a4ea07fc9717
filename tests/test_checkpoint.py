"""awmp.checkpoint on its own: env state, agent pytrees, file integrity, CSV truncation."""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from awmp import checkpoint
from awmp.checkpoint import CheckpointError
from awmp.envs import make_env
from awmp.logger import LogResumeError, truncate_csv


def _rollout(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((obs.copy(), reward, terminated, truncated))
        if terminated or truncated:
            out.append(env.reset()[0].copy())
    return out


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and x[1:] == y[1:]
        if isinstance(x, tuple)
        else np.array_equal(x, y)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5", "Ant-v5"])
def test_env_snapshot_continues_bit_for_bit_in_a_fresh_env(env_id):
    """Mid-episode snapshot -> a fresh env (other seed) continues with identical transitions,
    episode resets (the env's RNG) and time-limit truncation included."""
    env, spec = make_env(env_id, seed=3)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (260, spec.act_dim))
    _rollout(env, actions[:37])
    snap = checkpoint.capture_env(env)
    expected = _rollout(env, actions[37:])
    if env_id != "Ant-v5":  # (Ant rarely falls in 223 random steps; it tests derived data)
        assert any(not isinstance(x, tuple) for x in expected)  # an episode ended: reset too

    fresh, _ = make_env(env_id, seed=12345)
    assert checkpoint.restore_env(fresh, snap, "test") == []
    assert _same(_rollout(fresh, actions[37:]), expected)


def test_mujoco_snapshot_holds_the_integration_state():
    import mujoco

    env, spec = make_env("Hopper-v5", seed=0)
    _rollout(env, np.full((20, spec.act_dim), 0.3))
    snap = checkpoint.capture_env(env)
    u = env.unwrapped
    sig = mujoco.mjtState.mjSTATE_INTEGRATION
    want = np.empty(mujoco.mj_stateSize(u.model, sig))
    mujoco.mj_getState(u.model, u.data, want, sig)
    assert np.array_equal(snap["mujoco"]["integration"], want)
    # qacc_warmstart is part of it: the solver's warm start is restored, not only qpos/qvel.
    assert np.any(u.data.qacc_warmstart != 0)


def test_env_snapshot_refuses_another_env():
    a, _ = make_env("Pendulum-v1", seed=0)
    b, _ = make_env("Hopper-v5", seed=0)
    with pytest.raises(CheckpointError, match="wrappers|MuJoCo"):
        checkpoint.restore_env(a, checkpoint.capture_env(b), "test")


def test_agent_state_round_trip_keeps_values_dtypes_weak_types_and_keys():
    state = {
        "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "count": jnp.asarray(7, jnp.int32),
        "weak": jnp.asarray(0.5) * 2,  # a weakly typed scalar
        "legacy_key": jax.random.PRNGKey(4),
        "typed_key": jax.random.key(5),
    }
    assert state["weak"].weak_type
    saved = checkpoint.capture_agent(state)
    tree = checkpoint.decode(b"".join(checkpoint.encode({"agent": saved})), "test")["agent"]
    back = checkpoint.restore_agent(jax.eval_shape(lambda: state), tree, "test")
    for k in ("w", "count", "weak", "legacy_key"):
        assert back[k].dtype == state[k].dtype and back[k].weak_type == state[k].weak_type, k
        assert np.array_equal(back[k], state[k]), k
    assert np.array_equal(
        jax.random.key_data(back["typed_key"]), jax.random.key_data(state["typed_key"])
    )
    assert jnp.array_equal(
        jax.random.normal(back["typed_key"]), jax.random.normal(state["typed_key"])
    )


def test_agent_state_of_another_shape_is_refused():
    saved = checkpoint.capture_agent({"w": jnp.zeros((2, 3))})
    with pytest.raises(CheckpointError, match=r"shape \(2, 3\).*expects.*\(4, 3\)"):
        checkpoint.restore_agent({"w": jnp.zeros((4, 3))}, saved, "test")


def test_file_integrity_checks():
    header, payload = checkpoint.encode({"x": np.arange(10.0)})
    blob = header + payload
    assert hashlib.sha256(payload).digest() in header
    assert np.array_equal(checkpoint.decode(blob, "f")["x"], np.arange(10.0))
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.decode(blob[:-1], "f")
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.decode(blob[:5], "f")
    flipped = bytearray(blob)
    flipped[-3] ^= 1
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.decode(bytes(flipped), "f")
    with pytest.raises(CheckpointError, match="not an awmp checkpoint"):
        checkpoint.decode(b"x" * len(blob), "f")


def test_atomic_write_replaces_whole_files_only(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    checkpoint.atomic_write(path, b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(OSError):
        checkpoint.atomic_write(path, b"new", b"er")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    checkpoint.atomic_write(path, b"new", b"er")
    assert path.read_bytes() == b"newer"


def test_truncate_csv_keeps_rows_up_to_the_step_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"step,seed,x\r\n10,0,1.5\r\n20,0,2.5\r\n30,0,3.5\r\n40,0,4")
    truncate_csv(path, ("step", "seed", "x"), 30)
    assert path.read_bytes() == b"step,seed,x\r\n10,0,1.5\r\n20,0,2.5\r\n30,0,3.5\r\n"
    truncate_csv(path, ("step", "seed", "x"), 15)
    assert path.read_bytes() == b"step,seed,x\r\n10,0,1.5\r\n"
    with pytest.raises(LogResumeError, match="has columns"):
        truncate_csv(path, ("step", "seed", "y"), 15)


def test_divergence_guard_flags_are_sticky_and_keep_the_first_step():
    from awmp.guard import nan_report, update_flags

    names = ("a_loss", "b_loss")
    guard = {"finite": jnp.ones(2, bool), "first_bad": jnp.full(2, -1, jnp.int32)}
    history = [(5, 1.0, 2.0), (6, np.inf, 2.0), (7, 1.0, np.nan), (8, 1.0, 2.0)]
    for step, a, b in history:
        guard = update_flags(
            guard, {"a_loss": jnp.asarray(a), "b_loss": jnp.asarray(b)}, names, step
        )
    # a failed first at 6, b at 7; both stay failed although step 8 was finite again.
    assert guard["finite"].tolist() == [False, False]
    assert guard["first_bad"].tolist() == [6, 7]

    state = {"actor": {"w": jnp.ones(3)}, "critic": {"w": jnp.array([1.0, jnp.nan])},
             "log_alpha": jnp.asarray(-jnp.inf), "key": jax.random.PRNGKey(0)}  # fmt: skip
    report = nan_report(state)
    assert {k: bool(v) for k, v in report.items()} == {
        "actor": False,
        "critic": True,
        "log_alpha": False,  # -inf is a valid log(alpha) for alpha = 0; only NaN counts
    }
