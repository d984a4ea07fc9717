"""The persistent XLA compilation cache of the `awmp` command.

Compiling the jitted update, act and evaluation functions is most of the time a short command
(`awmp eval`, `awmp inspect`, the first step of `awmp train`) spends on a small CPU. The CLI keeps
compiled programs in `~/.cache/awmp/xla` (or `$XDG_CACHE_HOME/awmp/xla`), so the second run of
the same configuration loads them instead. A cached program is the program the compiler would
produce again: results do not change.

`AWMP_COMPILE_CACHE=off` turns it off; `AWMP_COMPILE_CACHE=DIR` puts it elsewhere; a
`JAX_COMPILATION_CACHE_DIR` set by the user wins (JAX reads it itself). The Python API does
not touch JAX's global settings: call `enable()` yourself if you want it there.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "AWMP_COMPILE_CACHE"
OFF = ("0", "off", "false", "no")
MIN_COMPILE_SECONDS = 0.0  # everything: a load of a few kB beats even a small compile


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "awmp" / "xla"


def enable() -> Path | None:
    """Turn the cache on for this process as the CLI does; returns its folder (None: off)."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    path = Path(setting).expanduser() if setting else default_dir()
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
