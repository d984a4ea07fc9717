"""Checkpoints: everything a run needs to continue bit for bit, written atomically.

A checkpoint holds the agent's whole state pytree (parameters, optimizer states, targets, JAX
keys, counters, whatever an algorithm keeps there), the NumPy generator of the loop (replay
sampling, warm-up actions, SAC-AWMP's burst indices), the filled part of the replay buffer, the
loop's counters and accumulators (current observation, pending action, episode return/length,
episodes not yet logged, evaluation history, last hook metrics) and the exact state of the
training and evaluation environments.

File format (`checkpoints/step_<step>.ckpt`): MAGIC, payload length (uint64 LE), SHA-256 of the
payload, payload = msgpack (flax.serialization) of a dict of NumPy arrays, numbers and strings.
Numbers that msgpack cannot hold (PCG64's 128-bit state) travel in a JSON string. Written to a
temp file, fsynced, renamed over, then the directory is fsynced: a crash at any moment leaves
the previous checkpoints complete; only the newest `keep` are kept.

Environment state (`capture_env`/`restore_env`): every wrapper layer's plain attributes (numbers,
strings, NumPy arrays: TimeLimit's `_elapsed_steps`, Pendulum's `state`, ...), the env's
`np_random` state and, for MuJoCo envs, the integration state (`mj_getState` with
`mjSTATE_INTEGRATION`: qpos, qvel, act, warm start, ctrl, ...) plus a snapshot of the whole
`mjData`, because Ant and Humanoid read derived quantities (`xpos`, `xipos`) before stepping,
and after `mj_step` those lag one substep behind the integration state.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from awmp.errors import UserError

FORMAT_VERSION = 1
MAGIC = b"AWMPCKPT"
_HEADER = struct.Struct("<8sQ32s")  # magic, payload length, sha256(payload)
CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{12})\.ckpt$")


class CheckpointError(UserError):
    """A checkpoint cannot be read (truncated, corrupted, incompatible) or cannot be written."""


@dataclass
class LoopState:
    """The training loop's own variables at the end of an environment step."""

    step: int
    obs: np.ndarray
    pending: dict[str, np.ndarray] | None  # action/extras computed for `obs`, None in warm-up
    ep_ret: float
    ep_len: int
    finished: list[list[float]] = field(default_factory=list)  # [return, length] not yet logged
    evals: list[dict] = field(default_factory=list)
    last_hook_metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0  # wall-clock seconds of training so far, across resumes


@dataclass
class Checkpoint:
    """A loaded, verified checkpoint (arrays are NumPy)."""

    path: Path
    meta: dict
    agent: dict
    buffer: dict
    envs: dict
    loop: LoopState


# ----------------------------------------------------------------------------- agent state


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def capture_agent(state: Any) -> dict:
    """Flatten the agent's state pytree to {index: array} with paths, dtypes and weak types."""
    leaves_with_paths, _ = jax.tree_util.tree_flatten_with_path(state)
    arrays, info = {}, []
    host = jax.device_get(
        [jax.random.key_data(x) if _is_key(x) else x for _, x in leaves_with_paths]
    )
    for i, ((path, leaf), value) in enumerate(zip(leaves_with_paths, host, strict=True)):
        arrays[str(i)] = np.asarray(value)
        info.append(
            {
                "path": jax.tree_util.keystr(path),
                "key_impl": str(jax.random.key_impl(leaf)) if _is_key(leaf) else None,
                "weak_type": bool(getattr(leaf, "weak_type", False)),
            }
        )
    return {"arrays": arrays, "info": json.dumps(info)}


def weak_array(value: np.ndarray) -> jax.Array:
    """`value` as a weakly typed array of its own dtype, like the live state's leaf was (shared
    by checkpoint and parameter-file restores, awmp.evaluate)."""
    scalar = jnp.asarray(value.item()) if value.ndim == 0 else None
    if scalar is not None and scalar.dtype == value.dtype:
        return scalar  # a Python scalar is weakly typed: the public way
    try:  # other shapes/dtypes: JAX has no public API for a weak type
        from jax._src.lax.lax import _convert_element_type

        return _convert_element_type(jnp.asarray(value), value.dtype, weak_type=True)
    except (ImportError, TypeError):
        return jnp.asarray(value)


def restore_agent(template: Any, saved: dict, where: str) -> Any:
    """The agent state pytree from a checkpoint, checked leaf by leaf against `template`.

    `template` is the algorithm's init state (or its `jax.eval_shape`). Leaves get back their
    dtype and weak type, so the restored state hits the same compiled functions as the live one.
    """
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    info = json.loads(saved["info"])
    if len(info) != len(leaves_with_paths):
        raise CheckpointError(
            f"{where}: the agent state has {len(info)} arrays, the configured algorithm expects "
            f"{len(leaves_with_paths)}; it was written by a different algorithm or version"
        )
    out = []
    for i, ((path, leaf), meta) in enumerate(zip(leaves_with_paths, info, strict=True)):
        value = np.asarray(saved["arrays"][str(i)])
        name = jax.tree_util.keystr(path)
        if meta["key_impl"] is not None:
            out.append(jax.random.wrap_key_data(jnp.asarray(value), impl=meta["key_impl"]))
            continue
        if name != meta["path"] or value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise CheckpointError(
                f"{where}: agent state {meta['path']} has shape {value.shape} {value.dtype}, the "
                f"configured algorithm expects {name} with {leaf.shape} {leaf.dtype}"
            )
        out.append(weak_array(value) if meta["weak_type"] else jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out)


# ----------------------------------------------------------------------------- environments


def _layers(env: Any) -> list:
    """The wrapper chain, outermost first, down to the unwrapped env."""
    import gymnasium as gym

    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _plain(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, (np.ndarray, np.generic)) and value.dtype != object


def _mujoco_data(unwrapped: Any):
    if "mujoco" not in sys.modules:
        return None
    import mujoco

    data, model = getattr(unwrapped, "data", None), getattr(unwrapped, "model", None)
    if isinstance(data, mujoco.MjData) and isinstance(model, mujoco.MjModel):
        return mujoco, model, data
    return None


def capture_env(env: Any) -> dict:
    """A snapshot of `env` that `restore_env` puts back into a fresh env of the same id."""
    layers = []
    for layer in _layers(env):
        attrs = {
            k: (np.array(v) if isinstance(v, np.ndarray) else v)
            for k, v in vars(layer).items()
            if _plain(v)
        }
        layers.append({"class": type(layer).__name__, "attrs": attrs})
    unwrapped = env.unwrapped
    rng = getattr(unwrapped, "_np_random", None)
    out: dict = {
        "layers": layers,
        "np_random": json.dumps(rng.bit_generator.state) if rng is not None else "",
        "mujoco": None,
    }
    mj = _mujoco_data(unwrapped)
    if mj is not None:
        mujoco, model, data = mj
        sig = mujoco.mjtState.mjSTATE_INTEGRATION
        integration = np.empty(mujoco.mj_stateSize(model, sig), np.float64)
        mujoco.mj_getState(model, data, integration, sig)
        out["mujoco"] = {
            "version": mujoco.__version__,
            "integration": integration,
            "mjdata": zlib.compress(data.__getstate__(), 1),
        }
    return out


def restore_env(env: Any, saved: dict, where: str) -> list[str]:
    """Put a `capture_env` snapshot into `env` (already made and reset); return warnings."""
    warnings = []
    layers = _layers(env)
    classes = [type(layer).__name__ for layer in layers]
    saved_classes = [s["class"] for s in saved["layers"]]
    if classes != saved_classes:
        raise CheckpointError(
            f"{where}: the environment's wrappers {saved_classes} differ from this one's {classes}"
        )
    for layer, s in zip(layers, saved["layers"], strict=True):
        for k, v in s["attrs"].items():
            setattr(layer, k, np.array(v) if isinstance(v, np.ndarray) else v)
    unwrapped = env.unwrapped
    if saved["np_random"]:
        state = json.loads(saved["np_random"])
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        unwrapped._np_random = np.random.Generator(bit_generator)
    if saved["mujoco"] is not None:
        mj = _mujoco_data(unwrapped)
        if mj is None:
            raise CheckpointError(
                f"{where}: the checkpoint has MuJoCo state, the env is not MuJoCo"
            )
        mujoco, model, data = mj
        sig = mujoco.mjtState.mjSTATE_INTEGRATION
        integration = np.asarray(saved["mujoco"]["integration"], np.float64)
        if integration.shape != (mujoco.mj_stateSize(model, sig),):
            raise CheckpointError(f"{where}: the MuJoCo state has the wrong size for this model")
        try:  # the whole mjData, so derived quantities match too (same MuJoCo version only)
            snapshot = mujoco.MjData.__new__(mujoco.MjData)
            snapshot.__setstate__(zlib.decompress(saved["mujoco"]["mjdata"]))
            mujoco.mj_copyData(data, model, snapshot)
        except Exception as e:  # noqa: BLE001 - any failure falls back to the integration state
            warnings.append(
                f"MuJoCo data snapshot from {saved['mujoco']['version']} not readable by "
                f"{mujoco.__version__} ({e}); derived quantities recomputed, the continuation "
                "may differ in the last bits"
            )
        mujoco.mj_setState(model, data, integration, sig)
        if warnings:
            mujoco.mj_forward(model, data)
    return warnings


# ----------------------------------------------------------------------------- buffer


def capture_buffer(buffer: Any) -> dict:
    """The filled part of the replay buffer (a full ring is stored whole)."""
    return {
        "pos": int(buffer.pos),
        "size": int(buffer.size),
        "capacity": int(buffer.capacity),
        "data": {k: v[: buffer.size] for k, v in buffer.data.items()},
    }


def restore_buffer(buffer: Any, saved: dict, where: str) -> None:
    """Fill `buffer` from a checkpoint's; a larger buffer takes a saved ring that never wrapped
    (an extended run: its capacity min(buffer_size, total_steps) grew with total_steps)."""
    size, pos, capacity = int(saved["size"]), int(saved["pos"]), int(saved["capacity"])
    grown = capacity < buffer.capacity and pos == size % capacity
    if (capacity != buffer.capacity and not grown) or set(saved["data"]) != set(buffer.data):
        raise CheckpointError(
            f"{where}: the replay buffer (capacity {saved['capacity']}, fields "
            f"{sorted(saved['data'])}) does not match this run's (capacity {buffer.capacity}, "
            f"fields {sorted(buffer.data)})"
        )
    for k, arr in buffer.data.items():
        value = np.asarray(saved["data"][k])
        if value.shape != (size, *arr.shape[1:]):
            raise CheckpointError(f"{where}: replay field {k} has shape {value.shape}")
        arr[:size] = value
    buffer.size, buffer.pos = size, size % buffer.capacity if grown else pos


# ----------------------------------------------------------------------------- files


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CKPT_DIR


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete-looking checkpoint files, oldest first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # some filesystems cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, *chunks: bytes) -> None:
    """Write `chunks` to `path` so that a crash leaves either the old file or the new one.

    Chunks, not one joined blob: a checkpoint is mostly replay buffer, and joining would hold
    one more copy of it in memory.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def encode(tree: dict) -> tuple[bytes, bytes]:
    """(header, payload) of a checkpoint file."""
    payload = flax.serialization.msgpack_serialize(tree)
    return _HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest()), payload


def decode(blob: bytes, where: str) -> dict:
    if len(blob) < _HEADER.size:
        raise CheckpointError(f"{where} is truncated ({len(blob)} bytes)")
    magic, length, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CheckpointError(f"{where} is not an awmp checkpoint (bad magic bytes)")
    payload = blob[_HEADER.size :]
    if len(payload) != length:
        raise CheckpointError(f"{where} is truncated ({len(payload)} of {length} payload bytes)")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{where} is corrupted (SHA-256 checksum mismatch)")
    try:
        return flax.serialization.msgpack_restore(payload)
    except Exception as e:  # noqa: BLE001 - a checksum-valid but unreadable payload
        raise CheckpointError(f"{where} cannot be decoded ({type(e).__name__}: {e})") from None


def save(
    run_dir: Path,
    *,
    meta: dict,
    agent_state: Any,
    rng: np.random.Generator,
    buffer: Any,
    envs: dict[str, Any],
    loop: LoopState,
    keep: int,
) -> Path:
    """Write the checkpoint of `loop.step` atomically; then drop all but the newest `keep`.

    Raises CheckpointError (naming the file and the OS error) when the write fails, e.g. a full
    disk; the previous checkpoints are untouched then.
    """
    d = checkpoint_dir(run_dir)
    path = d / f"step_{loop.step:012d}.ckpt"
    meta = {
        **meta,
        "format_version": FORMAT_VERSION,
        "step": loop.step,
        "rng": rng.bit_generator.state,
        "loop": {
            "ep_ret": loop.ep_ret,
            "ep_len": loop.ep_len,
            "finished": loop.finished,
            "evals": loop.evals,
            "last_hook_metrics": loop.last_hook_metrics,
            "wall_s": loop.wall_s,
        },
    }
    tree = {
        "meta": json.dumps(meta),
        "agent": capture_agent(agent_state),
        "buffer": capture_buffer(buffer),
        "envs": {name: capture_env(env) for name, env in envs.items()},
        "obs": np.asarray(loop.obs),
        "pending": loop.pending if loop.pending is not None else {},
    }
    try:
        d.mkdir(exist_ok=True)
        for stale in d.glob(".step_*.tmp-*"):  # left by a crash mid-write
            stale.unlink()
        atomic_write(path, *encode(tree))
    except OSError as e:
        previous = list_checkpoints(run_dir)
        kept = f"; {previous[-1][1]} (step {previous[-1][0]}) is intact" if previous else ""
        raise CheckpointError(
            f"cannot write checkpoint {path}: {e.strerror or e}{kept}; fix the cause and resume "
            f"with: awmp train --resume {run_dir}"
        ) from None
    for _, old in list_checkpoints(run_dir)[:-keep]:
        try:
            old.unlink()
        except OSError:
            pass
    return path


def load(path: Path) -> Checkpoint:
    """Read and verify one checkpoint file."""
    where = f"checkpoint {path}"
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {where}: {e.strerror or e}") from None
    tree = decode(blob, where)
    try:
        meta = json.loads(tree["meta"])
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{where} has format version {meta.get('format_version')}, this awmp reads "
                f"{FORMAT_VERSION}"
            )
        lp = meta["loop"]
        loop = LoopState(
            step=int(meta["step"]),
            obs=np.asarray(tree["obs"]),
            pending=tree["pending"] or None,
            ep_ret=float(lp["ep_ret"]),
            ep_len=int(lp["ep_len"]),
            finished=[list(x) for x in lp["finished"]],
            evals=list(lp["evals"]),
            last_hook_metrics=dict(lp["last_hook_metrics"]),
            wall_s=float(lp["wall_s"]),
        )
        return Checkpoint(Path(path), meta, tree["agent"], tree["buffer"], tree["envs"], loop)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{where} is missing data ({type(e).__name__}: {e})") from None


def load_latest(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint of `run_dir`, verified; None when the run has none yet.

    A damaged newest checkpoint is refused (not silently skipped): the message names the
    previous one, which the user can resume from by moving the damaged file away.
    """
    found = list_checkpoints(run_dir)
    if not found:
        return None
    try:
        return load(found[-1][1])
    except CheckpointError as e:
        hint = (
            f"; move it away to resume from the previous checkpoint {found[-2][1].name} "
            f"(step {found[-2][0]})"
            if len(found) > 1
            else "; it is the only checkpoint: move it away to restart the run from step 0"
        )
        raise CheckpointError(f"{e}{hint}") from None


def restore_rng(saved_state: dict) -> np.random.Generator:
    bit_generator = getattr(np.random, saved_state["bit_generator"])()
    bit_generator.state = saved_state
    return np.random.Generator(bit_generator)
