"""Deterministic evaluation episodes and the saved-policy API (`awmp.load`).

final_params.msgpack and best_params.msgpack hold the acting parameters only: the state fields
the algorithm's `Agent.acting_fields` names (the policy, its key, whatever else acting reads),
as {field: subtree} in flax.serialization's msgpack. Optimiser states, targets that acting does
not read and counters stay in the checkpoints, which hold the whole state. `awmp.load` fills
the missing fields with NaN (integers: 0), so reading one by mistake gives NaN actions, and
still reads the files of older runs that hold the whole state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from awmp import algos
from awmp.config import env_kwargs, validate
from awmp.envs import EnvFactory, check_factory, make_env, make_env_from, recorded_factory
from awmp.errors import UserError
from awmp.runfiles import MissingRunFileError, read_config

PARAMS_FILE = "final_params.msgpack"  # the final agent's acting parameters
BEST_PARAMS_FILE = "best_params.msgpack"  # the acting parameters at the best evaluation so far


class ParamsError(UserError):
    """A parameters file does not fit the configured algorithm (other algorithm or version)."""


def acting_params(agent: algos.Agent, state: Any) -> dict[str, Any]:
    """{field: subtree} of the state fields acting reads (`agent.acting_fields`); every field
    when the algorithm names none."""
    names = agent.acting_fields
    if names is None:
        names = tuple(flax.serialization.to_state_dict(state))
    return {name: getattr(state, name) for name in names}


def params_bytes(agent: algos.Agent, state: Any) -> bytes:
    """The contents of final_params.msgpack / best_params.msgpack for `state` (on any device):
    `acting_params` in flax.serialization's msgpack."""
    return flax.serialization.to_bytes(jax.device_get(acting_params(agent, state)))


def _placeholder(leaf: Any) -> np.ndarray:
    """NaN of the leaf's shape for floats, zeros for integers and booleans."""
    if jnp.issubdtype(leaf.dtype, jnp.inexact):
        return np.full(leaf.shape, np.nan, leaf.dtype)
    return np.zeros(leaf.shape, leaf.dtype)


def restore_params(
    template: Any, agent: algos.Agent, data: bytes, where: str
) -> tuple[Any, tuple[str, ...]]:
    """The agent state from a parameters file, with the template's structure, dtypes and weak
    types, and the names of the fields the file held.

    `template`: the algorithm's init state or its `jax.eval_shape`. A file of the acting fields
    (`params_bytes`) gives a state whose other fields are NaN (integers: 0); a file of the whole
    state (runs before the acting-only format, or an algorithm without `acting_fields`) gives
    the whole state. Raises ParamsError when the file's fields or shapes do not fit.
    """
    from awmp.checkpoint import weak_array

    try:
        saved = flax.serialization.msgpack_restore(data)
    except Exception as e:  # noqa: BLE001 - truncated or not msgpack
        raise ParamsError(f"{where} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(saved, dict):
        raise ParamsError(f"{where} is not a parameters file")
    expected = flax.serialization.to_state_dict(template)
    acting = agent.acting_fields if agent.acting_fields is not None else tuple(expected)
    if set(saved) not in (set(expected), set(acting)):
        raise ParamsError(
            f"{where} holds the fields {sorted(saved)}; the configured {agent.name} expects "
            f"{sorted(acting)} (or the whole state, {sorted(expected)}): it was written by a "
            "different algorithm, config or version"
        )
    filled = jax.tree.map(_placeholder, template)
    merged = {**flax.serialization.to_state_dict(filled), **saved}
    try:
        state = flax.serialization.from_state_dict(filled, merged)
    except ValueError as e:
        raise ParamsError(f"{where} does not fit the configured {agent.name}: {e}") from None
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = jax.tree.leaves(state)
    if len(leaves) != len(paths):
        raise ParamsError(
            f"{where} has {len(leaves)} arrays, the configured {agent.name} expects {len(paths)}"
        )
    out = []
    for (path, leaf), value in zip(paths, leaves, strict=True):
        value = np.asarray(value)
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise ParamsError(
                f"{where}: {jax.tree_util.keystr(path)} has shape {value.shape} {value.dtype}, "
                f"the configured {agent.name} expects {leaf.shape} {leaf.dtype}"
            )
        out.append(weak_array(value) if getattr(leaf, "weak_type", False) else jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out), tuple(n for n in expected if n in saved)


def run_episodes(
    act_fn: Callable[[np.ndarray], np.ndarray],
    env,
    episodes: int,
    on_frame: Callable[[], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Roll out `episodes` episodes with `act_fn(obs (1, obs_dim)) -> action (1, act_dim)`.

    The env is reset without a seed, so successive evaluations continue its RNG stream.
    `on_frame`, if given, is called after every reset and step (e.g. to render a frame).
    """
    returns, lengths = [], []
    for _ in range(episodes):
        obs, _ = env.reset()
        if on_frame is not None:
            on_frame()
        done, ret, length = False, 0.0, 0
        while not done:
            action = act_fn(np.asarray(obs, np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(np.asarray(action, np.float64))
            if on_frame is not None:
                on_frame()
            ret += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(ret)
        lengths.append(length)
    return returns, lengths


class Policy:
    """A trained policy loaded from a run directory.

    `act(obs, deterministic=True)` takes one observation (obs_dim,) or a batch (B, obs_dim) and
    returns actions in the environment's own action bounds, with the same leading shape.
    `state`: the agent state. From final_params.msgpack / best_params.msgpack only the fields
    acting reads (`restored`, the algorithm's `Agent.acting_fields`) hold saved values, the
    others are NaN (integers: 0); from a checkpoint (`which="checkpoint"` or a .ckpt path),
    and from the files of runs before the acting-only format, it is the whole state.
    """

    def __init__(
        self,
        run_dir: str | Path,
        which: str = "final",
        eval_action: str | None = None,
        env: EnvFactory | None = None,
    ) -> None:
        run_dir = Path(run_dir)
        _check_which(which)
        # RunFileError (MissingRunFileError without config.json) names what is wrong.
        _, self.config = read_config(run_dir)
        source = _params_source(run_dir, which)
        if eval_action is not None:  # re-score a SAC-AWMP run's parameters another way
            if self.config.algo != "sac-awmp":
                raise EvalActionError(
                    f"eval_action applies to sac-awmp runs; {run_dir} is {self.config.algo}"
                )
            self.config.awmp.eval_action = eval_action
            validate(self.config)  # the config's own check names the allowed values
        # A run trained with an env factory is loaded with the same one (awmp.train's `env`).
        check_factory(recorded_factory(run_dir), env, str(run_dir), "awmp.load(run_dir, env=...)")
        self.env_factory = env
        if env is not None:
            made, self.spec = make_env_from(env)
        else:
            made, self.spec = make_env(self.config.env, **env_kwargs(self.config))
        self._low = np.asarray(made.unwrapped.action_space.low, np.float64)
        self._high = np.asarray(made.unwrapped.action_space.high, np.float64)
        self.action_dtype = np.dtype(made.unwrapped.action_space.dtype)  # what `act` returns
        made.close()
        self.agent = algos.get(self.config.algo).make_agent(self.spec, self.config.algo_config())
        # Only the structure is needed to read the saved values: eval_shape traces `init`
        # without running it (initialising every network eagerly took most of a load).
        template = jax.eval_shape(self.agent.init, jax.random.PRNGKey(0))
        if source.suffix == ".ckpt":  # the agent inside a checkpoint (e.g. after kill -9)
            from awmp import checkpoint

            saved = checkpoint.load(source).agent
            self.state = checkpoint.restore_agent(template, saved, f"checkpoint {source}")
            self.restored = tuple(flax.serialization.to_state_dict(template))
        else:
            self.state, self.restored = restore_params(
                template, self.agent, source.read_bytes(), str(source)
            )
        self.source = source
        self._det = jax.jit(self.agent.act_deterministic)
        self._stoch = jax.jit(self.agent.act)

    def _batch(self, obs: np.ndarray) -> tuple[np.ndarray, bool]:
        """`obs` as a float32 batch (B, obs_dim), and whether it was one observation."""
        obs = np.asarray(obs, np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.spec.obs_dim:
            raise ValueError(
                f"expected an observation of shape ({self.spec.obs_dim},) or "
                f"(B, {self.spec.obs_dim}), got {obs.shape}"
            )
        return (obs[None], True) if obs.ndim == 1 else (obs, False)

    def act_normalized(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions in [-1, 1]^d (the agent's own box) for one observation (obs_dim,) or a batch
        (B, obs_dim), with the same leading shape."""
        batch, single = self._batch(obs)
        if deterministic:
            a = np.asarray(self._det(self.state, jnp.asarray(batch)))
        else:
            self.state, action, _ = self._stoch(self.state, jnp.asarray(batch))
            a = np.asarray(action)
        return a[0] if single else a

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions in the environment's own bounds and in its action space's dtype
        (`action_dtype`, e.g. float32) for one observation (obs_dim,) or a batch (B, obs_dim),
        with the same leading shape."""
        # In float64: (a + 1) in float32 would round to float32's step near 1 (1.2e-7). The
        # bounds are values of the space's dtype, so rounding to it stays within them.
        a = np.clip(np.asarray(self.act_normalized(obs, deterministic), np.float64), -1.0, 1.0)
        action = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        action = np.clip(action, self._low, self._high)
        if not np.issubdtype(self.action_dtype, np.floating):  # an integer Box: the nearest
            action = np.rint(action)
        return action.astype(self.action_dtype)


class LoadArgumentError(UserError):
    """An argument of `awmp.load` that is no allowed value (e.g. `which="nonsense"`)."""


WHICH = ("final", "best", "checkpoint")


def _check_which(which: object) -> None:
    """LoadArgumentError unless `which` is one of WHICH or a checkpoint file's path."""
    ok = isinstance(which, (str, os.PathLike)) and (
        str(which) in WHICH or str(which).endswith(".ckpt") or Path(which).is_file()
    )
    if not ok:
        raise LoadArgumentError(
            f"invalid which={which!r}: must be one of {', '.join(WHICH)} or a checkpoint "
            "file's path (.ckpt)"
        )


def _params_source(run_dir: Path, which: str) -> Path:
    """The file `which` names: "final" (final_params.msgpack), "best" (best_params.msgpack),
    "checkpoint" (the newest checkpoint) or a checkpoint file's path."""
    if which == "final":
        path = run_dir / PARAMS_FILE
        hint = "a finished run; which='checkpoint' loads an unfinished one"
    elif which == "best":
        path = run_dir / BEST_PARAMS_FILE
        hint = "written at each new best evaluation"
    elif which == "checkpoint":
        from awmp.checkpoint import list_checkpoints

        found = list_checkpoints(run_dir)
        if not found:
            raise MissingRunFileError(run_dir, "no checkpoint", f"{run_dir} has no checkpoint")
        return found[-1][1]
    else:
        path, hint = Path(which), "which: final, best, checkpoint or a checkpoint file"
    if not path.is_file():
        raise MissingRunFileError(run_dir, f"no {path.name} ({hint})")
    return path


class EvalActionError(UserError):
    """An eval_action override that does not apply to the run."""


def load(
    run_dir: str | Path,
    which: str = "final",
    eval_action: str | None = None,
    env: EnvFactory | None = None,
) -> Policy:
    """The policy of a run directory: its final parameters (`which="final"`), those of its best
    evaluation ("best"), of its newest checkpoint ("checkpoint", e.g. after kill -9), or of a
    given checkpoint file. `eval_action` ("blend" or "argmax", SAC-AWMP only) overrides the
    run's deterministic action (`awmp.eval_action`; the parameters are the same either way).
    `env`: the env factory a run trained with one was trained with (awmp.train's `env`)."""
    return Policy(run_dir, which, eval_action, env)


class VideoError(UserError):
    """A video was asked for and cannot be made (the extra is missing, or the env cannot render)."""


def _video_writer():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise VideoError(
            "--video needs imageio and imageio-ffmpeg: pip install 'awmp[video]'"
        ) from None
    return imageio


def evaluate_run(
    run_dir: str | Path,
    episodes: int = 10,
    seed: int = 12345,
    video: str | Path | None = None,
    eval_action: str | None = None,
    which: str = "final",
) -> dict:
    """Evaluate a saved run's deterministic policy on fresh episodes; with `video`, also film
    them (every episode, one after another, into one MP4; any algorithm); with `eval_action`, a
    SAC-AWMP run's parameters acting by that rule instead of the run's own. `which`: the
    parameters, as for `load` ("final", "best", "checkpoint" or a checkpoint file)."""
    policy = load(run_dir, which=which, eval_action=eval_action)
    frames: list = []
    kwargs = {}
    if video is not None:
        imageio = _video_writer()
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo renders offscreen
        kwargs["render_mode"] = "rgb_array"
    env, _ = make_env(policy.config.env, seed=seed, **env_kwargs(policy.config), **kwargs)
    on_frame = (lambda: frames.append(env.render())) if video is not None else None
    try:
        returns, lengths = run_episodes(
            lambda o: policy.act_normalized(o, True), env, episodes, on_frame
        )
    except Exception as e:
        if video is None:
            raise
        raise VideoError(f"{policy.config.env} could not render: {type(e).__name__}: {e}") from e
    fps = int(env.metadata.get("render_fps") or 30)
    env.close()
    extra = {}
    if video is not None:
        if not frames or frames[0] is None:
            raise VideoError(f"{policy.config.env} returned no frames (no rgb_array rendering)")
        path = Path(video)
        path.parent.mkdir(parents=True, exist_ok=True)
        with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(np.asarray(frame, np.uint8))
        extra = {"video": str(path), "frames": len(frames)}
    return {
        "run_dir": str(run_dir),
        "params": str(policy.source),
        "episodes": episodes,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        **(
            {"eval_action": policy.config.awmp.eval_action}
            if policy.config.algo == "sac-awmp"
            else {}
        ),
        "returns": returns,
        "lengths": lengths,
        **extra,
    }
