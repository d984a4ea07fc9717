"""Helpers of the reliability tests (not a test module): run comparison, XLA compile cache.

Runs are compared on the final agent state (the final checkpoint's agent: every parameter,
optimizer moment, target network, key and counter), final_params.msgpack (the acting fields),
eval.csv and train.csv. The wall-clock columns (wall_s, steps_per_s) are the only ones left
out: they measure time, not the experiment.

The persistent XLA compilation cache:

Those tests train the same tiny configurations many times (reference, interrupted, resumed,
in subprocesses); compiling dominates their time on a small CPU. The cache reuses the identical
executables, which changes no number: the comparisons stay bitwise.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

_OPTIONS = {
    "jax_compilation_cache_dir": None,
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
}


def cache_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    path.mkdir(exist_ok=True)
    return str(path)


def subprocess_env(tmp_path_factory, **extra: str) -> dict[str, str]:
    """os.environ plus the cache settings, for `awmp` subprocesses."""
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=cache_dir(tmp_path_factory),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        JAX_PLATFORMS="cpu",
        **extra,
    )
    return env


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """Enable the cache for one test module, then put the previous settings back."""
    old = {k: getattr(jax.config, k) for k in _OPTIONS}
    new = {**_OPTIONS, "jax_compilation_cache_dir": cache_dir(tmp_path_factory)}
    for k, v in new.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()
    yield
    for k, v in old.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()


def logged_steps(run_dir: Path) -> list[int]:
    """The steps train.csv has logged so far (none while it does not exist yet)."""
    try:
        with open(run_dir / "train.csv", newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r["step"].isdigit()]
    except (OSError, KeyError):
        return []


def wait_past(
    proc: subprocess.Popen,
    run_dir: Path,
    past: int,
    *,
    timeout: float = 120,
    poll: float = 0.05,
    may_exit: bool = True,
    group: bool = False,
) -> None:
    """Block until the run has logged a step > past (its loop is running).

    may_exit: an exit before that returns (the caller checks the exit); otherwise it fails the
    test with the output. On timeout the process (its process group, if group) is killed and the
    test fails with the output.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if may_exit:
                return
            out = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before step {past}: {out}")
        if any(s > past for s in logged_steps(run_dir)):
            return
        time.sleep(poll)
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    raise AssertionError(f"no training progress within {timeout} s: {proc.communicate()}")


WALL_CLOCK_COLUMNS = ("wall_s", "steps_per_s")


def rows(path: Path) -> list[dict]:
    """A CSV log's rows without the wall-clock columns."""
    with open(path, newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in WALL_CLOCK_COLUMNS}
            for row in csv.DictReader(f)
        ]


def assert_same_run(reference: Path, other: Path) -> None:
    """Bitwise-equal final agent state and final_params.msgpack, equal eval.csv/train.csv
    (wall-clock aside)."""
    from conftest import final_state_bytes

    assert final_state_bytes(reference) == final_state_bytes(other), "final agent state differs"
    assert (reference / "final_params.msgpack").read_bytes() == (
        other / "final_params.msgpack"
    ).read_bytes(), "final acting parameters differ"
    for name in ("eval.csv", "train.csv"):
        ref, got = rows(reference / name), rows(other / name)
        assert ref, name
        assert ref == got, name
