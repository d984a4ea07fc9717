"""`awmp train`: its flags (or --config-file, or --resume) -> a TrainConfig -> train(cfg) -> an
exit code.

`main(argv)` is the whole command; `parse_train_config` builds the config (preset, then the
config file's fields, then every flag; `--help` lists every field with its description), and
`run_train` trains it with the command's exit codes (awmp.errors.EXIT_CODES: 2 bad input,
3 diverged, 130/143 stopped). The `awmp` dispatcher (awmp.cli) and each cell of `awmp sweep`
(awmp.sweep.cell) run the command through `main`, so a sweep cell is the real `awmp train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import io
import json
import re
import sys
import typing
from decimal import Decimal, InvalidOperation

from awmp.errors import AwmpError, UserError, exit_code, stop_exit_code

__all__ = ["main", "parse_train_config", "run_train"]


def main(argv: list[str], on_step=None) -> int:
    """`awmp train ARGV...`: parse, train, and turn awmp's own errors into one line on stderr
    and their exit code. `on_step`: as for awmp.train.train (tests, a sweep cell's faults)."""
    try:
        return run_train(parse_train_config(argv), on_step=on_step)
    except AwmpError as e:  # anything else is a bug: it crashes with its traceback (exit 1)
        return _report(e)


def _report(error: AwmpError) -> int:
    """One line on stderr for one of awmp's own errors; its exit code (awmp.errors)."""
    from awmp.config import ConfigError

    msg = _flag_error(str(error)) if isinstance(error, ConfigError) else str(error)
    print(f"awmp: error: {msg}", file=sys.stderr)
    return exit_code(error)


def parse_train_config(argv: list[str]):
    """Build a TrainConfig from CLI flags: preset first, then the --config-file's fields, then
    every flag overrides them."""
    from awmp.config import ALGOS, PRESETS, load_config_file, preset, with_fields

    argv = _integer_budgets(_split_seed_list(argv))

    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--algo", default="sac")
    pre.add_argument("--preset", default="paper")
    pre.add_argument("--resume", default=None)
    pre.add_argument("--run-dir", default=None)
    pre.add_argument("--config-file", default=None)
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. `--algo` without a value: tyro says it best below
        known = argparse.Namespace(
            algo="sac", preset="paper", resume=None, run_dir=None, config_file=None
        )
    file_fields: dict = {}
    if known.config_file is not None:
        if _given(argv, "--resume"):
            raise _UsageError("--config-file cannot be combined with --resume (the run's own "
                              "config.json is its config)")  # fmt: skip
        file_fields = load_config_file(known.config_file)
        argv = _without(argv, "--config-file")
        # The file's algo and preset count as given, unless a flag says otherwise.
        if not _given(argv, "--algo"):
            known.algo = file_fields.get("algo", known.algo)
        if not _given(argv, "--preset"):
            known.preset = file_fields.get("preset", known.preset)
    if known.run_dir is not None and not known.run_dir.strip():
        raise _UsageError(
            "invalid --run-dir (run_dir)='': give a directory, or omit --run-dir for the default "
            "runs/<env>/<algo>/seed<seed>-<timestamp>"
        )
    if known.resume is not None and not known.resume.strip():
        raise _UsageError("invalid --resume (resume)='': give the run directory to continue")
    if known.resume is not None:  # the saved config is the default; flags must agree with it
        if _given(argv, "--run-dir"):
            raise _UsageError(
                f"--run-dir cannot be combined with --resume: a run continues in its own "
                f"directory ({known.resume})"
            )
        from awmp.train import load_run_config

        saved = load_run_config(known.resume)
        cfg = _tyro_cli(type(saved), default=saved, args=argv, prog="awmp train")
        _check_algo_flags(argv, cfg.algo)
        return cfg
    if known.algo not in ALGOS:
        raise _UsageError(
            f"invalid --algo (algo)={known.algo!r}: must be one of {', '.join(ALGOS)}"
        )
    if known.preset not in PRESETS:
        raise _UsageError(
            f"invalid --preset (preset)={known.preset!r}: must be one of {', '.join(PRESETS)}"
        )
    default = preset(known.preset)
    default.algo = known.algo
    if file_fields:
        file_fields = {**file_fields, "algo": known.algo, "preset": known.preset}
        default = with_fields(default, file_fields, known.config_file)
    cfg = _tyro_cli(
        type(default),
        default=default,
        args=argv,
        prog="awmp train",
        description=f"Train {_labels()} on a Gymnasium task. Flags override the preset. "
        "--config-file FILE (TOML, or JSON such as a run's config.json) sets any config field; "
        "flags override it.",
    )
    _check_algo_flags(argv, cfg.algo)
    return cfg


def _labels() -> str:
    """The registered algorithms' labels, as a list in prose ("SAC, SAC-AWMP or TD3")."""
    from awmp.algos.registry import ALGORITHMS

    labels = [a.label for a in ALGORITHMS.values()]
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else labels[0]


def _without(argv: list[str], flag: str) -> list[str]:
    """argv without `flag` and its value (`--x v` or `--x=v`)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out


def _given(argv: list[str], flag: str) -> bool:
    """Whether `flag` (or its underscore spelling) appears in argv, as `--x v` or `--x=v`."""
    names = {flag, flag.replace("-", "_")}
    return any(a.split("=", 1)[0] in names for a in argv if a.startswith("--"))


def _check_algo_flags(argv: list[str], algo: str) -> None:
    """Warn, once, about hyperparameter flags of another algorithm (`--algo td3 --sac.hidden 8
    8`): they are stored in config.json but do not change this run. (A warning, not a refusal,
    so one command line can carry every algorithm's flags, e.g. in a loop over --algo.)"""
    from awmp.algos.registry import SECTIONS

    ours = SECTIONS[algo]
    ignored, hints = [], []
    for arg in argv:
        name = arg.split("=", 1)[0]
        section = name[2:].split(".", 1)[0] if name.startswith("--") and "." in name else None
        section = section and section.replace("-", "_")  # tyro spells td3_awmp `--td3-awmp.`
        if section in SECTIONS.values() and section != ours and name not in ignored:
            ignored.append(name)
            alt = f"--{ours.replace('_', '-')}.{name.split('.', 1)[1]}"
            if alt in _config_flags() and alt not in hints:
                hints.append(alt)
    if ignored:
        others = ", ".join(
            sorted({_algo_of(n[2:].split(".", 1)[0].replace("-", "_")) for n in ignored})
        )
        one = len(ignored) == 1
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        print(
            f"awmp: warning: {', '.join(ignored)} {'applies' if one else 'apply'} only to "
            f"--algo {others}; this run is --algo {algo} and ignores {'it' if one else 'them'}"
            f"{hint}",
            file=sys.stderr,
        )


def _algo_of(section: str) -> str:
    from awmp.algos.registry import SECTIONS

    return next(a for a, s in SECTIONS.items() if s == section)


def _config_flags() -> dict[str, object]:
    """Every config flag of `awmp train` (--total-steps, --sac.hidden, --no-progress, ...) ->
    its field's type."""
    from awmp.config import TrainConfig

    flags: dict[str, object] = {}

    def add(cls, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            name = f.name.replace("_", "-")
            if dataclasses.is_dataclass(t):
                add(t, f"{prefix}{name}.")
                continue
            flags[f"--{prefix}{name}"] = t
            if t is bool:
                flags[f"--{prefix}no-{name}"] = t

    add(TrainConfig, "")
    return flags


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _integer_budgets(argv: list[str]) -> list[str]:
    """Integer flags written in scientific notation (`--total-steps 1e6`) as integers; a value
    that is not a whole number is left for the parser to refuse."""
    ints = {k for k, t in _config_flags().items() if t is int}
    ints |= {k.replace("-", "_") for k in ints}

    def whole(value: str) -> str:
        if not _SCIENTIFIC.fullmatch(value):
            return value
        try:
            d = Decimal(value)
        except InvalidOperation:
            return value
        return str(int(d)) if d == d.to_integral_value() else value

    out: list[str] = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if eq and name in ints:
            out.append(f"{name}={whole(value)}")
        elif i > 0 and argv[i - 1] in ints:
            out.append(whole(arg))
        else:
            out.append(arg)
    return out


def _flag_error(message: str) -> str:
    """A config error naming a field (`invalid total_steps=0: ...`) as the flag the user typed
    and the field: `invalid --total-steps (total_steps)=0: ...`."""
    m = re.match(r"invalid ([A-Za-z_][\w.]*)=", message)
    if not m:
        return message
    field = m.group(1)
    flag = "--" + field.replace("_", "-")
    return f"invalid {flag} ({field})={message[m.end() :]}"


class _UsageError(UserError):
    """Command-line arguments that do not parse."""


def _split_seed_list(argv: list[str]) -> list[str]:
    """`--seeds 0,1,2` (or `--seeds=0,1,2`) as tyro's `--seeds 0 1 2`."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--seeds="):
            out += ["--seeds", *arg.split("=", 1)[1].split(",")]
        elif i > 0 and argv[i - 1] == "--seeds" and "," in arg:
            out += [x for x in arg.split(",") if x]
        else:
            out.append(arg)
    return out


def _tyro_cli(*args, **kwargs):
    """tyro.cli, with its boxed parse error turned into one line (a _UsageError)."""
    import contextlib

    import tyro

    buf = io.StringIO()
    argv = kwargs.get("args") or []
    help_out = _Capture() if any(a in ("-h", "--help") for a in argv) else None
    try:
        with contextlib.redirect_stderr(buf):
            if help_out is None:
                return tyro.cli(*args, **kwargs)
            with contextlib.redirect_stdout(help_out):
                return tyro.cli(*args, **kwargs)
    except SystemExit as e:
        if e.code in (0, None):
            if help_out is not None:
                sys.stdout.write(_tidy_help(help_out.getvalue()))
            sys.stderr.write(buf.getvalue())
            raise
        raw = buf.getvalue().splitlines()
        lines = [line.strip(" \u2502\u256d\u256e\u2570\u256f|+") for line in raw]

        def rule(line: str) -> bool:  # a box's rule, drawn in Unicode or (no UTF-8) ASCII
            return not line.strip("\u2500- ")

        if raw and ("\u256d" in raw[0] or (len(lines) > 1 and lines[0] and rule(lines[1]))):
            lines = lines[1:]  # the box title ("Value error", ...)
        body: list[str] = []
        for line in lines:
            if rule(line):
                if body:
                    break  # the message ends at the box's first rule
                continue
            body.append(line)
        message = " ".join(body) or "invalid arguments"
        m = re.match(r"Unrecognized options?: (.*)", message)
        if m:
            unknown = [a for a in m.group(1).split(", ") if a.startswith("-")]
            close = [
                c
                for a in unknown
                for c in difflib.get_close_matches(a.split("=", 1)[0], _config_flags(), n=1)
            ]
            if close:
                message += f"; did you mean {', '.join(dict.fromkeys(close))}?"
        if "invalid literal for int()" in message:
            message += "; write a whole number, e.g. 1000000, 1_000_000 or 1e6"
        raise _UsageError(f"{message} (see awmp train --help)") from None


class _Capture(io.StringIO):
    """Captures what tyro writes to stdout while looking like it (boxes need UTF-8, colours a
    TTY), so the captured help is what tyro would have printed."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.__stdout__, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return bool(sys.__stdout__ and sys.__stdout__.isatty())


# tyro's rendering of optional and tuple fields, as a user would write them.
_HELP_FIXES = (
    ("--run-dir {None}|STR", "--run-dir DIR"),
    ("--resume {None}|STR", "--resume DIR"),
    ("--wandb-entity {None}|STR", "--wandb-entity NAME"),
    ("--wandb-group {None}|STR", "--wandb-group NAME"),
    ("--seeds [INT [INT ...]]", "--seeds S[,S...]"),
    ('seeds"). (default: )', 'seeds"). (default: none, one run with --seed)'),  # --seeds
    ("(default: )", "(default: none)"),
)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tidy_help(text: str) -> str:
    """`awmp train --help` with _HELP_FIXES applied, columns and box borders kept in place."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        plain = _ANSI.sub("", body)
        if not any(old in plain for old, _ in _HELP_FIXES):
            out.append(line)
            continue
        body = new = plain  # a fixed line loses its colours, not its text
        for old, fixed in _HELP_FIXES:
            new = new.replace(old, fixed.ljust(len(old)))
        grow = len(new) - len(body)
        if grow > 0:  # take the extra width back from the padding at the end, if there is some
            border = "\u2502" if new.endswith("\u2502") else ""
            core = new[: len(new) - len(border)]
            spare = len(core) - len(core.rstrip(" ")) - (1 if border else 0)
            if spare >= grow:
                new = core[: len(core) - grow] + border
            elif "(default: " in core:  # no room: the default note goes on a line of its own
                cut = core.index("(default: ")
                indent = len(core[1:]) - len(core[1:].lstrip(" ")) if border else 0
                first = core[:cut].rstrip(" ")
                second = core[0] * bool(border) + " " * indent + core[cut:].rstrip(" ")
                width = len(body) - len(border)
                new = first.ljust(width) + border + "\n" + second.ljust(width) + border
        out.append(new + line[len(line.rstrip("\r\n")) :])
    return "".join(out)


def cmd_train(argv: list[str]) -> int:
    return run_train(parse_train_config(argv))


def run_train(cfg, on_step=None) -> int:
    """train(cfg) with `awmp train`'s exit codes (0, 2 bad input, 3 diverged, 130/143 stopped);
    on success writes each run's learning curve (learning_curve.png, as `awmp demo` does) and
    prints the summary as JSON.
    `on_step`: as for awmp.train.train."""
    from awmp.train import train, train_seeds

    try:
        if cfg.seeds:  # a seed group: a summary per seed
            summary = train_seeds(cfg, on_step=on_step).summaries
            _plot_curves(summary)
        else:
            summary = train(cfg, on_step=on_step).summary
            _plot_curves([summary])
    except AwmpError as e:
        return _report(e)
    except KeyboardInterrupt as e:  # train() has printed where the run is and how to resume
        signum = getattr(e, "signum", None)
        if signum is None:
            print("\nawmp: interrupted (the last checkpoint, if any, is intact)", file=sys.stderr)
        return stop_exit_code(signum)
    print(json.dumps(summary, indent=2))
    return 0


def _plot_curves(summaries: list[dict]) -> None:
    """learning_curve.png in each run directory that has an evaluation; its path on stderr."""
    from awmp.plots import plot_learning_curve

    for summary in summaries:
        if summary.get("final_eval_step") is not None:
            png = plot_learning_curve(summary["run_dir"])
            print(f"awmp: learning curve: {png}", file=sys.stderr)
