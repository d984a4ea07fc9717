"""The divergence guard: non-finite losses or a NaN in the agent state stop the run.

The fused train step also updates sticky per-metric "finite" flags and the step each first
failed (`update_flags`, on device, no sync). The host reads them, with a NaN scan of the whole
agent state, only at log steps and before every checkpoint (`check`): a divergence is reported
at most `log_interval` steps late, and a checkpoint is never written from a non-finite state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from awmp.errors import DivergenceError
from awmp.seedaxis import SeedAxis

__all__ = ["DivergenceError", "DivergenceGuard", "nan_report", "update_flags"]


def update_flags(flags: dict, metrics: dict, names: tuple[str, ...], step) -> dict:
    """Sticky per-metric finite flags and the env step each first failed (-1: never)."""
    now = jnp.stack([jnp.all(jnp.isfinite(metrics[k])) for k in names])
    first_bad = jnp.where(flags["finite"] & ~now, step, flags["first_bad"])
    return {"finite": flags["finite"] & now, "first_bad": first_bad}


def nan_report(state: Any) -> dict:
    """{top-level state field: any NaN}. Infinities are allowed here: SAC keeps log(alpha) =
    -inf for alpha = 0; a parameter that overflows makes the losses non-finite instead."""
    groups: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        name = jax.tree_util.keystr(path[:1]).strip(".[]'\"")
        groups.setdefault(name, []).append(jnp.any(jnp.isnan(leaf)))
    return {k: jnp.any(jnp.stack(v)) for k, v in groups.items()}


class DivergenceGuard:
    """The flags' initial value, and the host-side check of flags and state for every seed."""

    def __init__(self, names: tuple[str, ...], axis: SeedAxis) -> None:
        self.names, self.axis = names, axis
        self._nan_report = jax.jit(axis.map(nan_report, (0,)))
        self._checked_step = -1

    def initial_flags(self) -> dict:
        n, k = self.axis.n, len(self.names)
        return self.axis.to_device(
            {"finite": jnp.ones((n, k), bool), "first_bad": jnp.full((n, k), -1, jnp.int32)}
        )

    def update(self, flags: dict, metrics: dict, step) -> dict:
        """The flags after one train step's metrics (pure: runs inside the jitted step)."""
        return update_flags(flags, metrics, self.names, step)

    def check(self, step: int, flags: dict, state: Any, last_metrics: dict | None) -> list[dict]:
        """One finding per diverged seed: {seed (index), message, details}; [] when healthy.

        A step already found healthy is not checked again."""
        if self._checked_step == step:
            return []
        flags = self.axis.to_host(flags)
        nans = self.axis.to_host(self._nan_report(state))
        last = self.axis.to_host(last_metrics) if last_metrics is not None else {}
        findings = [self._finding(i, step, flags, nans, last) for i in range(self.axis.n)]
        findings = [f for f in findings if f is not None]
        if not findings:
            self._checked_step = step
        return findings

    def _finding(self, i: int, step: int, flags: dict, nans: dict, last: dict) -> dict | None:
        bad = [
            (int(first), name)
            for name, ok, first in zip(
                self.names, flags["finite"][i], flags["first_bad"][i], strict=True
            )
            if not ok
        ]
        nan_fields = sorted(k for k, v in nans.items() if v[i])
        if not bad and not nan_fields:
            return None
        if bad:
            first = min(x for x, _ in bad)
            what = ", ".join(name for x, name in bad if x == first)
            msg = f"training diverged: non-finite {what} at step {first} (detected at step {step})"
        else:
            msg = (
                f"training diverged: NaN in the agent state ({', '.join(nan_fields)}) "
                f"at step {step}"
            )
        details = {
            "nonfinite_metrics": {name: x for x, name in bad},
            "nan_state_fields": nan_fields,
            "last_metrics": {k: float(v[i]) for k, v in last.items()},
            "detected_at_step": step,
        }
        return {"seed": i, "message": msg, "details": details}
