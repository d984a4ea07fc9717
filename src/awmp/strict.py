"""Config dataclasses that refuse what they do not declare: unknown attributes at once
(`StrictFields`), values of the wrong type on validation (`check_types`).

Every config section (`RunConfig`, each algorithm's config) derives from `StrictFields`, so
`cfg.sac.hiden = (8, 8)` raises UnknownFieldError naming the nearest field instead of adding an
attribute nothing reads. `check_types` checks every field against its annotation; awmp.config
runs it on every config, whatever it came from (flags, a config file, the Python API).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Literal, Union

from awmp.errors import ConfigError, UnknownFieldError

__all__ = ["StrictFields", "check_types", "did_you_mean", "expected", "make_strict", "matches"]


class StrictFields:
    """Mixin of a config dataclass: setting an attribute that is not one of its fields raises
    UnknownFieldError (an AttributeError and a ConfigError) with a "did you mean"; a list set
    on a tuple-valued field (`hidden`, `seeds`, ...) is stored as a tuple."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        fields = _field_names(type(self))
        if name not in fields:
            raise UnknownFieldError(
                f"{type(self).__name__} has no field {name!r}{did_you_mean(name, fields)}"
            )
        if isinstance(value, list) and name in _tuple_fields(type(self)):
            value = tuple(value)
        object.__setattr__(self, name, value)


def make_strict(cls: type) -> type:
    """Give the config dataclass `cls` StrictFields' attribute guard unless it has one (or its
    own `__setattr__`, as a frozen dataclass does); returns `cls`."""
    if cls.__setattr__ is object.__setattr__:
        cls.__setattr__ = StrictFields.__setattr__  # type: ignore[method-assign]
    return cls


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


@functools.cache
def _tuple_fields(cls: type) -> frozenset[str]:
    hints = _hints(cls)
    return frozenset(n for n in _field_names(cls) if typing.get_origin(hints.get(n)) is tuple)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def did_you_mean(name: str, candidates: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for the candidate nearest to `name`, or '' when none is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def matches(value: object, tp: Any) -> bool:
    """Whether `value` has type `tp` (a field annotation: int, float, bool, str, None, Literal,
    X | Y, tuple[X, ...], a dataclass). An int is a float; a bool is neither."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if tp is type(None) or tp is None:
        return value is None
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return _is_int(value)
    if tp is float:
        return _is_int(value) or isinstance(value, float)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(matches(v, a) for v, a in zip(value, args))
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return True  # a type this check does not know: the field's own checks apply


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURAL = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def expected(tp: Any) -> str:
    """What a value of type `tp` is, in words ('an integer', 'one of mean, shared', ...)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None) or tp is None:
        return "None"
    if origin in (Union, types.UnionType):
        return " or ".join(expected(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if tp in _NAMES:
        return _NAMES[tp]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {_PLURAL.get(args[0], expected(args[0]))}"
    if dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} fields"
    return getattr(tp, "__name__", str(tp))


def check_types(obj: object, prefix: str = "") -> None:
    """Raise ConfigError `invalid FIELD=VALUE: must be WHAT` for the first field of the config
    dataclass `obj` (and its sections) whose value does not match its annotation, or a float
    field that is not finite."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value, tp = getattr(obj, f.name), hints[f.name]
        name = f"{prefix}{f.name}"
        if not matches(value, tp):
            raise ConfigError(f"invalid {name}={value!r}: must be {expected(tp)}")
        if dataclasses.is_dataclass(tp):
            check_types(value, f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"invalid {name}={value!r}: must be a finite number")
