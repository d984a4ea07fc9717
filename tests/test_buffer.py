"""Replay buffer: ring semantics, uniform and most-recent-M sampling, extra fields."""

from __future__ import annotations

import numpy as np
import pytest

from awmp.buffer import ReplayBuffer


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(
            obs=np.full(2, i),
            action=np.full(1, i),
            reward=i,
            next_obs=np.full(2, i + 1),
            terminated=0.0,
            log_mu=-float(i),
        )


def test_ring_overwrites_oldest_and_keeps_fields():
    buf = ReplayBuffer(5, 2, 1, {"log_mu": ()})
    _fill(buf, 8)
    assert len(buf) == 5
    assert sorted(buf.data["reward"].tolist()) == [3, 4, 5, 6, 7]
    i = int(np.where(buf.data["reward"] == 6)[0][0])
    assert buf.data["log_mu"][i] == -6.0
    np.testing.assert_array_equal(buf.data["next_obs"][i], [7, 7])
    assert buf.data["obs"].dtype == np.float32


def test_uniform_sampling_covers_only_stored():
    buf = ReplayBuffer(100, 2, 1, {"log_mu": ()})
    _fill(buf, 10)
    batch = buf.sample(np.random.default_rng(0), 5000)
    assert set(batch["reward"].tolist()) == set(range(10))
    assert batch["obs"].shape == (5000, 2) and batch["log_mu"].shape == (5000,)


def test_recent_sampling_only_last_m_even_after_wrap():
    buf = ReplayBuffer(7, 2, 1, {"log_mu": ()})
    _fill(buf, 23)  # wrapped three times; newest rewards 18..22
    batch = buf.sample_recent(np.random.default_rng(1), 4000, m=5)
    assert set(batch["reward"].tolist()) == {18, 19, 20, 21, 22}
    # m larger than what is stored falls back to everything stored
    batch = buf.sample_recent(np.random.default_rng(1), 4000, m=100)
    assert set(batch["reward"].tolist()) == set(range(16, 23))


def test_add_requires_every_field():
    buf = ReplayBuffer(3, 2, 1, {"log_mu": ()})
    with pytest.raises(KeyError, match="missing.*log_mu"):
        buf.add(
            obs=np.zeros(2), action=np.zeros(1), reward=0.0, next_obs=np.zeros(2), terminated=0.0
        )


def test_empty_and_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 2, 1)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2, 1).sample(np.random.default_rng(), 4)
