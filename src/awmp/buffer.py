"""Replay buffer: a preallocated float32 ring in NumPy.

Stores obs, action, reward, next_obs and `terminated` (true termination only: a time-limit
truncation is *not* terminal, so the learner bootstraps through it), plus any named extra
fields (SAC-AWMP stores `log_mu`, the behaviour density of each action, for eq. 10).
"""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """A fixed-capacity ring buffer with uniform and most-recent-M sampling."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        extra_fields: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"invalid capacity={capacity!r}: must be >= 1")
        self.capacity = int(capacity)
        self.data: dict[str, np.ndarray] = {
            "obs": np.zeros((capacity, obs_dim), np.float32),
            "action": np.zeros((capacity, act_dim), np.float32),
            "reward": np.zeros((capacity,), np.float32),
            "next_obs": np.zeros((capacity, obs_dim), np.float32),
            "terminated": np.zeros((capacity,), np.float32),
        }
        for name, shape in (extra_fields or {}).items():
            if name in self.data:
                raise ValueError(f"extra field {name!r} clashes with a built-in field")
            self.data[name] = np.zeros((capacity, *shape), np.float32)
        self.pos = 0  # next write index
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, **transition: np.ndarray | float) -> None:
        """Add one transition; every field of the buffer must be given."""
        missing = self.data.keys() - transition.keys()
        extra = transition.keys() - self.data.keys()
        if missing or extra:
            raise KeyError(
                f"transition fields mismatch: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        for name, value in transition.items():
            self.data[name][self.pos] = value
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _gather(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {name: arr[idx] for name, arr in self.data.items()}

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """A batch drawn uniformly (with replacement) from everything stored."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self._gather(rng.integers(0, self.size, size=batch_size))

    def recent_indices(
        self, rng: np.random.Generator, shape: tuple[int, ...], m: int
    ) -> np.ndarray:
        """Indices drawn uniformly from the most recent min(m, size) transitions."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        m = min(int(m), self.size)
        back = rng.integers(1, m + 1, size=shape)  # 1 = newest
        return (self.pos - back) % self.capacity

    def sample_recent(
        self, rng: np.random.Generator, batch_size: int, m: int
    ) -> dict[str, np.ndarray]:
        """A batch drawn uniformly from the most recent min(m, size) transitions."""
        return self._gather(self.recent_indices(rng, (batch_size,), m))
