"""The project's errors and the exit codes the `awmp` command gives them.

    AwmpError                  every error awmp raises on purpose
      UserError (ValueError)   bad input: config, env, run directory, checkpoint, experiment,
                               sweep options, report input; exit 2, one line, no traceback
        ConfigError            an invalid config value (`require` raises it)
          UnknownFieldError    (also AttributeError) setting a config attribute that is no field
        RunDirError            a run directory that cannot be used (awmp.rundir)
          RunLockError         another process holds the run directory (awmp.runlock)
        RunFileError           a damaged run file, named with what is wrong (awmp.runfiles)
          MissingRunFileError  (also FileNotFoundError) a run file that is not there
        LoadArgumentError      a bad argument to awmp.load, e.g. which="nonsense" (awmp.evaluate)
        ReportError, StudyError  nothing to report; a comparison or plan awmp report can't read
      DivergenceError          training produced non-finite numbers; exit 3

Anything else is a bug: `awmp` lets it crash with its traceback (exit 1), never "bad input".
Signals are not errors: awmp.trainer.TrainingInterrupted (a KeyboardInterrupt) exits 130/143.
"""

from __future__ import annotations

import signal


class AwmpError(Exception):
    """Base of every error awmp raises on purpose."""


class UserError(AwmpError, ValueError):
    """Bad input from the user: fix the input and try again (exit 2).

    Also a ValueError, as these errors always were, so existing `except ValueError` still works.
    """


class ConfigError(UserError):
    """An invalid configuration value; the message names the field, value and allowed range."""


class UnknownFieldError(ConfigError, AttributeError):
    """Setting an attribute a config object does not have (`cfg.sac.hiden = (8, 8)`); the
    message suggests the nearest field. Also an AttributeError, as `__slots__` would raise."""


def require(ok: bool, name: str, value: object, allowed: str) -> None:
    """Raise ConfigError `invalid NAME=VALUE: must be ALLOWED` unless `ok` (config checks)."""
    if not ok:
        raise ConfigError(f"invalid {name}={value!r}: must be {allowed}")


class DivergenceError(AwmpError, RuntimeError):
    """Training produced non-finite losses or parameters; the last good checkpoint is kept."""


EXIT_CRASH = 1  # an unexpected exception: a bug, reported with its traceback
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # non-finite losses or parameters; the last good checkpoint is kept
EXIT_SIGINT = 130  # 128 + SIGINT: stopped after a step, checkpoint written
EXIT_SIGTERM = 143  # 128 + SIGTERM: likewise

# The one table from error classes to exit codes, most specific first.
EXIT_CODES: tuple[tuple[type[AwmpError], int], ...] = (
    (DivergenceError, EXIT_DIVERGED),
    (UserError, EXIT_BAD_INPUT),
)


def stop_exit_code(signum: int | None) -> int:
    """The exit code of a run or sweep stopped by a signal: 143 for SIGTERM, else 130 (SIGINT;
    None, a bare KeyboardInterrupt, is Ctrl-C)."""
    return EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT


def exit_code(error: AwmpError) -> int:
    """The exit code of one of awmp's own errors (EXIT_CODES)."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_CRASH
