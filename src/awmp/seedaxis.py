"""The seed axis: N seeds' device values stacked on a leading axis, every device call vmapped.

This is the one place that knows about it. With one seed there is no axis at all (`map` is
the function itself, and `to_device`/`to_host` drop and add the axis), so a single-seed run
computes exactly what the plain loop computes: a vmap of one would also turn `lax.cond` into a
select that runs both branches and change the last bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class SeedAxis:
    """Map, stack, index and move pytrees along the leading seed axis of `n` seeds."""

    def __init__(self, n: int) -> None:
        self.n = n

    def map(self, fn: Callable, in_axes: tuple) -> Callable:
        """`fn` over the seed axis of the arguments whose in_axes entry is 0 (vmap for n > 1)."""
        return jax.vmap(fn, in_axes=in_axes) if self.n > 1 else fn

    def to_device(self, tree: Any) -> Any:
        """Host arrays with a leading seed axis -> what the mapped functions take."""
        return tree if self.n > 1 else jax.tree.map(lambda x: x[0], tree)

    def to_host(self, tree: Any) -> Any:
        """Outputs of the mapped functions -> NumPy with a leading seed axis (one transfer)."""
        tree = jax.device_get(tree)
        return tree if self.n > 1 else jax.tree.map(lambda x: np.asarray(x)[None], tree)

    def index(self, tree: Any, i: int) -> Any:
        """Seed i's part of a device value."""
        return tree if self.n == 1 else jax.tree.map(lambda x: x[i], tree)

    def stack(self, trees: list) -> Any:
        """Per-seed device values (e.g. initial states) -> one value on the seed axis."""
        return trees[0] if self.n == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *trees)

    def stack_host(self, dicts: list[dict]) -> dict:
        """Per-seed host batches -> what the mapped functions take, with no copy for one seed."""
        if self.n == 1:  # no seed axis: the batch goes to the device as sampled, unstacked
            return dicts[0]
        return {k: np.stack([d[k] for d in dicts]) for k in dicts[0]}
