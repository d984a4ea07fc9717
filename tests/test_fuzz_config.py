"""Fuzz the config surface: every generated config or command line either trains a few steps or
is refused with one clear line (a ConfigError, EnvError, ... message; exit code 2 or 3), never a
traceback.

Configs start from a tiny valid one and have up to three fields replaced by values drawn from a
mix of valid, boundary and invalid ones (NaN, infinities, negatives, zero, wrong names), so about
half of them run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import small_config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reliability import compile_cache  # noqa: F401 - autouse fixture

from awmp.checkpoint import CheckpointError
from awmp.cli import main
from awmp.config import ConfigError
from awmp.envs import EnvError
from awmp.train import DivergenceError, RunDirError, train

CLEAR_ERRORS = (ConfigError, EnvError, RunDirError, CheckpointError, DivergenceError)

ints = st.integers(-3, 40)
floats = st.sampled_from([0.0, 1e-4, 0.005, 0.2, 0.99, 1.0, 1.5, -1.0, math.nan, math.inf, 1e3])
sizes = st.lists(st.integers(-1, 8), min_size=0, max_size=3).map(tuple)

TOP = {
    "algo": st.sampled_from(["sac", "td3", "sac-awmp", "ppo"]),
    "env": st.sampled_from(["Pendulum-v1", "CartPole-v1", "NoSuchEnv-v0", "", "test/Asym-v0"]),
    "seed": st.one_of(ints, st.just(2**31), st.just(-(2**40))),
    "total_steps": st.integers(-2, 30),
    "warmup_steps": ints,
    "buffer_size": ints,
    "updates_per_step": st.integers(-1, 3),
    "eval_interval": ints,
    "eval_episodes": st.integers(-1, 2),
    "log_interval": ints,
    "checkpoint_interval": ints,
    "keep_checkpoints": st.integers(-1, 3),
}
SECTIONS = {
    "sac": {"hidden": sizes, "batch_size": ints, "lr": floats, "tau": floats, "gamma": floats,
            "alpha": floats, "learn_alpha": st.booleans()},
    "td3": {"hidden": sizes, "batch_size": ints, "lr": floats, "gamma": floats,
            "policy_noise": floats, "noise_clip": floats, "policy_delay": st.integers(-1, 3),
            "exploration_noise": floats},
    "awmp": {"hidden": sizes, "policy_hidden": sizes, "prior_hidden": sizes, "batch_size": ints,
             "num_components": st.integers(-1, 3), "prior_interval": ints,
             "prior_steps": st.integers(-1, 5), "prior_batch_size": ints, "zeta": floats,
             "sigma": floats, "gating_temperature": floats, "alpha_pi": floats},
}  # fmt: skip
FIELDS = [(None, k) for k in TOP] + [(s, k) for s, fields in SECTIONS.items() for k in fields]


def _tiny():
    cfg = small_config()
    cfg.total_steps, cfg.warmup_steps, cfg.log_interval = 12, 4, 5
    cfg.eval_interval, cfg.checkpoint_interval = 12, 6
    cfg.td3.hidden, cfg.td3.batch_size = (8,), 4
    a = cfg.awmp
    a.hidden, a.policy_hidden, a.prior_hidden = (8,), (8,), (8,)
    a.num_components, a.batch_size = 2, 4
    a.prior_interval, a.prior_steps, a.prior_batch_size = 5, 2, 4
    cfg.sac.hidden, cfg.sac.batch_size = (8,), 4
    return cfg


@st.composite
def configs(draw):
    cfg = _tiny()
    for section, name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if section is None:
            setattr(cfg, name, draw(TOP[name]))
        else:
            setattr(getattr(cfg, section), name, draw(SECTIONS[section][name]))
    return cfg


def _assert_clear(message: str) -> None:
    assert message and "\n" not in message.strip(), repr(message)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs())
def test_fuzzed_configs_run_or_are_refused_clearly(cfg):
    run_dir = Path(tempfile.mkdtemp()) / "run"
    cfg.run_dir = str(run_dir)
    try:
        out, summary = train(cfg)
    except CLEAR_ERRORS as e:
        _assert_clear(str(e))
    else:
        assert summary["steps_done"] == cfg.total_steps
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)


FLAGS = [
    "--total-steps", "--warmup-steps", "--buffer-size", "--updates-per-step", "--eval-interval",
    "--eval-episodes", "--log-interval", "--checkpoint-interval", "--keep-checkpoints", "--seed",
    "--algo", "--env", "--preset", "--sac.hidden", "--sac.gamma", "--sac.lr", "--sac.alpha",
    "--sac.learn-alpha", "--td3.policy-delay", "--awmp.num-components", "--awmp.prior-steps",
    "--resume", "--run-dir", "--bogus", "--sac.nope", "-x",
]  # fmt: skip
TOKENS = ["0", "-1", "1", "3", "8", "nan", "inf", "abc", "", "1e9", "0.5", "True", "td3",
          "paper", "Pendulum-v1", "blocked/run"]  # fmt: skip
# Relative paths (--run-dir 8, --resume blocked/run) resolve inside a fresh temp directory.


@st.composite
def argv_lists(draw):
    extra = []
    for _ in range(draw(st.integers(0, 3))):
        extra.append(draw(st.sampled_from(FLAGS)))
        extra += draw(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=2))
    return extra


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(extra=argv_lists())
def test_fuzzed_command_lines_run_or_are_refused_clearly(extra):
    tmp = Path(tempfile.mkdtemp())
    (tmp / "blocked").write_text("")  # a file: blocked/run cannot be created
    cwd = os.getcwd()
    base = ["train", "--total-steps", "10", "--warmup-steps", "4", "--eval-interval", "10",
            "--eval-episodes", "1", "--log-interval", "5", "--no-progress",
            "--sac.hidden", "8", "--sac.batch-size", "4", "--td3.hidden", "8",
            "--td3.batch-size", "4", "--run-dir", str(tmp / "run")]  # fmt: skip
    err, out = io.StringIO(), io.StringIO()
    try:
        os.chdir(tmp)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main([*base, *extra])
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)
    text = err.getvalue()
    assert "Traceback" not in text
    assert code in (0, 2, 3), (code, text)
    if code:
        last = text.strip().splitlines()[-1]
        assert last.startswith("awmp: error: "), text


def test_one_config_diff_rule_for_resume_experiment_and_report():
    """config_diff: dotted fields set differently in both; a field one side lacks (another awmp
    version) is no difference; the non-experiment fields never are; lists equal tuples."""
    from awmp.config import NON_EXPERIMENT_FIELDS, config_diff, flatten, preset, to_dict

    a = to_dict(preset("paper"))
    b = json.loads(json.dumps(a))  # as read back from config.json: tuples became lists
    assert config_diff(a, b) == []
    b["sac"]["hidden"], b["total_steps"], b["progress"] = [8], 5, not a["progress"]
    del b["awmp"]["zeta"]
    assert config_diff(a, b) == ["sac.hidden", "total_steps"]
    assert config_diff(a, b, ignore=()) == ["progress", "sac.hidden", "total_steps"]
    assert "progress" in NON_EXPERIMENT_FIELDS and "run_dir" in NON_EXPERIMENT_FIELDS
    assert flatten({"a": {"b": [1, 2]}, "c": 3}) == {"a.b": (1, 2), "c": 3}


# ------------------------------------------------ every value is checked, wherever it comes from
# Config files (TOML and JSON) and flag lists that each carry one bad value: a wrong type, an
# unknown or misspelt key, an out-of-range or non-finite value. Parsed and validated in-process
# exactly as `awmp train` does before it trains (parse_train_config, then validate, the first
# thing train() does), with `awmp train`'s error report: exit 2 and one line, never a traceback.


def _annotations() -> list[tuple[str, object]]:
    """(dotted name, annotation) of every field a config file may set."""
    import dataclasses
    import typing

    from awmp.config import PLACE_FIELDS, TrainConfig

    hints, out = typing.get_type_hints(TrainConfig), []
    for f in dataclasses.fields(TrainConfig):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sub = typing.get_type_hints(tp)
            out += [(f"{f.name}.{g.name}", sub[g.name]) for g in dataclasses.fields(tp)]
        elif f.name not in PLACE_FIELDS:
            out.append((f.name, tp))
    return out


ANNOTATIONS = _annotations()
NAMES = {n for n, _ in ANNOTATIONS}


def _kind(tp) -> str:
    """The value kind of an annotation, stated independently of awmp.strict."""
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Literal:
        return "choice"
    if typing.get_origin(tp) is tuple:
        return "int_list" if args[0] is int else "str_list"
    if args and len(args) == 1:  # X | None
        return _kind(args[0])
    return {int: "int", float: "float", bool: "bool", str: "str"}[tp]


# Values of the wrong type for each kind (JSON/TOML values: no None).
WRONG = {
    "int": ["abc", 1.5, True, [1], {"a": 1}],
    "float": ["abc", True, [0.5], {"a": 1}],
    "bool": [1, "yes", 0.5, [True]],
    "str": [3, 1.5, True, ["x"], {"a": 1}],
    "choice": [3, True, ["mean"], {"a": 1}],
    "int_list": ["8", 8, [8, "x"], [1.5], [True], {"a": 1}],
    "str_list": ["a=1", 3, [1], [True]],
}
# Out-of-range values, from the documented ranges (README, `awmp train --help`).
OUT_OF_RANGE = [
    ("total_steps", 0), ("total_steps", -5), ("total_steps", 10**14), ("warmup_steps", -1),
    ("buffer_size", 0), ("updates_per_step", 0), ("eval_interval", -1), ("eval_episodes", 0),
    ("log_interval", 0), ("checkpoint_interval", -1), ("keep_checkpoints", 0), ("seed", -1),
    ("seed", 2**31), ("seeds", [1, 1]), ("algo", "ppo"), ("preset", "nope"),
    ("track", "tensorboard"), ("sac.gamma", 0.0), ("sac.gamma", 1.5), ("sac.lr", 0.0),
    ("sac.lr", -1e-3), ("sac.tau", 0.0), ("sac.tau", 2.0), ("sac.alpha", -0.1),
    ("sac.batch_size", 0), ("sac.hidden", []), ("sac.hidden", [8, 0]),
]  # fmt: skip
FLOATS = sorted(n for n, tp in ANNOTATIONS if _kind(tp) == "float")
BASE = {"algo": "sac", "env": "Pendulum-v1", "total_steps": 1000, "sac.batch_size": 16}


@st.composite
def _misspelt(draw, names):
    """A real name with one edit in its last part (deleted, doubled, swapped or replaced
    letter) that is no real name."""
    name = draw(st.sampled_from(sorted(names)))
    head, dot, last = name.rpartition(".")
    i = draw(st.integers(0, len(last) - 1))
    edit = draw(st.sampled_from(["delete", "double", "swap", "replace"]))
    c = draw(st.sampled_from("aeiorstx"))
    last = {
        "delete": last[:i] + last[i + 1 :],
        "double": last[:i] + last[i] + last[i:],
        "swap": last[:i] + last[i + 1 : i + 2] + last[i : i + 1] + last[i + 2 :],
        "replace": last[:i] + c + last[i + 1 :],
    }[edit]
    typo = head + dot + last
    assume(last and typo not in names and typo != name)
    return typo


@st.composite
def bad_fields(draw):
    """(what, key, value, must_name): one bad entry of a config file and what its refusal
    must say."""
    what = draw(st.sampled_from(["type", "unknown", "misspelt", "range", "nonfinite"]))
    if what == "type":
        key, tp = draw(st.sampled_from(ANNOTATIONS))
        return what, key, draw(st.sampled_from(WRONG[_kind(tp)])), key
    if what == "unknown":
        key = draw(st.from_regex(r"[a-z][a-z_]{2,10}(\.[a-z_]{1,8})?", fullmatch=True))
        assume(
            key.split(".")[0] not in NAMES | {"config", "run_dir", "resume"} and key not in NAMES
        )
        assume(not key.startswith(tuple(f"{s}." for s in ("sac", "awmp", "td3", "crossq"))))
        return what, key, draw(st.sampled_from([1, "x", 0.5])), "unknown config field"
    if what == "misspelt":
        key = draw(_misspelt(NAMES))
        assume(key.split(".")[0] not in ("run_dir", "resume", "config"))
        return what, key, 1, "did you mean"
    if what == "range":
        key, value = draw(st.sampled_from(OUT_OF_RANGE))
        return what, key, value, key
    key = draw(st.sampled_from(FLOATS))
    return what, key, draw(st.sampled_from([math.nan, math.inf, -math.inf])), key


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _refusal(argv: list[str]) -> tuple[int, str]:
    """`awmp train ARGV` up to the point where it would train: exit code and stderr."""
    from awmp.cli_train import _report, parse_train_config
    from awmp.config import validate
    from awmp.errors import AwmpError

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            validate(parse_train_config(argv))
            code = 0
        except AwmpError as e:
            code = _report(e)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def _assert_one_line_refusal(code, text: str, must_name: str) -> None:
    assert "Traceback" not in text, text
    assert code == 2, (code, text)
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("awmp: error: "), text
    assert must_name in lines[0], (must_name, lines[0])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(bad=bad_fields(), fmt=st.sampled_from(["toml", "json"]), nest=st.booleans())
def test_bad_config_files_are_refused_in_one_line(bad, fmt, nest):
    what, key, value, must_name = bad
    fields = {k: v for k, v in BASE.items() if k != key}
    fields[key] = value
    path = Path(tempfile.mkdtemp()) / f"cfg.{fmt}"
    try:
        if fmt == "json":
            data: dict = {}
            for k, v in fields.items():  # dotted keys, or nested tables
                head, dot, last = k.rpartition(".")
                if nest and dot:
                    data.setdefault(head, {})[last] = v
                else:
                    data[k] = v
            path.write_text(json.dumps(data))
        else:
            path.write_text(
                "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in fields.items())
            )
        code, text = _refusal(["--config-file", str(path)])
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    _assert_one_line_refusal(code, text, must_name)
    if what == "misspelt":  # the suggestion is a real field
        suggestion = text.split("did you mean ", 1)[1].split("?")[0]
        assert suggestion in NAMES, text


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


FLAG_NAMES = sorted(
    n for n in NAMES if n.split(".")[0] in ("sac",) or "." not in n
)  # the run's own section (--algo sac); others' flags only warn
WRONG_TOKENS = {
    "int": ["abc", "1.5", "nan", "inf", "[1]"],
    "float": ["abc", "[0.5]", "1,5", "0x"],
    "int_list": ["abc", "1.5", "nan"],
}


@st.composite
def bad_flags(draw):
    """(argv, must_name): a command line with one bad flag among good ones."""
    what = draw(st.sampled_from(["type", "unknown", "misspelt", "range", "nonfinite"]))
    good = draw(st.sampled_from([[], ["--env", "Pendulum-v1"], ["--sac.batch-size", "16"]]))
    if what == "type":
        name = draw(
            st.sampled_from([n for n in FLAG_NAMES if _kind(dict(ANNOTATIONS)[n]) in WRONG_TOKENS])
        )
        token = draw(st.sampled_from(WRONG_TOKENS[_kind(dict(ANNOTATIONS)[name])]))
        return [*good, _flag(name), token], _flag(name)
    if what == "unknown":
        name = draw(st.from_regex(r"--[a-z]{3,10}", fullmatch=True))
        assume(name[2:] not in {n.split(".")[0] for n in NAMES} | {"config-file", "help"})
        return [*good, name, "1"], "Unrecognized"
    if what == "misspelt":
        name = draw(_misspelt(set(FLAG_NAMES)))
        assume(not any(n.startswith(name) for n in NAMES))  # no unique prefix of a real flag
        return [*good, _flag(name), "1"], "did you mean"
    if what == "range":
        name, value = draw(
            st.sampled_from([(k, v) for k, v in OUT_OF_RANGE if not isinstance(v, list)])
        )
        token = str(value).lower() if not isinstance(value, str) else value
        return [*good, _flag(name), token], _flag(name)
    name = draw(st.sampled_from([n for n in FLOATS if n.startswith("sac.")]))
    return [*good, _flag(name), draw(st.sampled_from(["nan", "inf", "-inf"]))], _flag(name)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(bad=bad_flags())
def test_bad_flags_are_refused_in_one_line(bad):
    argv, must_name = bad
    code, text = _refusal(argv)
    _assert_one_line_refusal(code, text, must_name)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(key_tp=st.sampled_from(ANNOTATIONS), data=st.data())
def test_wrong_types_set_in_python_are_refused_before_training(key_tp, data):
    """The Python API: a wrong-typed value set on a config object is refused by validate (the
    first thing awmp.train does), naming the field and what it should be."""
    from awmp.config import ConfigError, preset, validate

    key, tp = key_tp
    value = data.draw(st.sampled_from(WRONG[_kind(tp)]))
    if isinstance(value, list) and _kind(tp) not in ("int_list", "str_list"):
        value = tuple(value)  # a tuple where a scalar belongs
    cfg = preset("paper")
    head, _, last = key.rpartition(".")
    setattr(getattr(cfg, head) if head else cfg, last, value)
    with pytest.raises(ConfigError, match=rf"^invalid {re.escape(key)}=.*: must be \w"):
        validate(cfg)


def test_setting_a_field_a_config_lacks_raises_at_once():
    """`cfg.sac.hiden = (8, 8)` raises (an AttributeError and awmp's ConfigError) with the
    nearest field, for the run config and every registered algorithm's section; real fields
    are set as before, a list on a tuple field stored as a tuple."""
    from awmp.algos.registry import ALGORITHMS
    from awmp.config import preset
    from awmp.errors import ConfigError

    cfg = preset("paper")
    with pytest.raises(AttributeError, match=r"no field 'hiden' \(did you mean hidden\?\)"):
        cfg.sac.hiden = (8, 8)
    assert not hasattr(cfg.sac, "hiden") and cfg.sac.hidden == (400, 400)
    with pytest.raises(ConfigError, match=r"no field 'total_step' \(did you mean total_steps\?\)"):
        cfg.total_step = 5
    for a in ALGORITHMS.values():
        section = getattr(cfg, a.section)
        with pytest.raises(AttributeError, match="no field 'bogus_field'"):
            section.bogus_field = 1
        name = next(iter(vars(section)))
        setattr(section, name, getattr(section, name))  # a real field: fine
    cfg.sac.hidden, cfg.seeds = [8, 8], [0, 1]
    assert cfg.sac.hidden == (8, 8) and cfg.seeds == (0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('total_steps = "abc"\n', "invalid total_steps='abc': must be an integer"),
        ("[sac]\nhiden = [8]\n", "unknown config field sac.hiden (did you mean sac.hidden?)"),
    ],
)
def test_bad_config_file_from_the_command_line(tmp_path, text, message):
    """The real `awmp train` process: exit 2, one line on stderr naming the file and field."""
    import subprocess
    import sys

    path = tmp_path / "c.toml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "awmp.cli", "train", "--config-file", str(path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"awmp: error: {path}: {message}", proc.stderr
