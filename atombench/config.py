"""Typed configs: dataclasses with defaults, filled from plain dicts (YAML) with every problem reported.

A plug-in declares its hyper-parameters as a dataclass; :func:`parse` turns a user mapping into an instance,
collecting a :class:`~atombench.errors.Problem` per unknown key (with a suggestion), wrong type or failed
``__post_init__`` check, each located by its key path. Nothing is coerced silently except what YAML itself
gets wrong: PyYAML reads ``5e-4`` as a string, so a float field accepts a string that parses as a float.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import ConfigError, Problem, short, suggest

C = TypeVar("C")


class Invalid(ValueError):
    """Raised by a config's ``__post_init__`` (or a field check) for an impossible value."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _number(value: Any) -> float | None:
    """``value`` as a float field reads it (a number, or a string such as ``5e-4`` that PyYAML left as text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _nonfinite(value: Any) -> bool:
    number = _number(value)
    return number is not None and not math.isfinite(number)


def _convert(value: Any, tp: Any, path: str, problems: list[Problem]) -> Any:
    """``value`` checked against the annotation ``tp``; appends a Problem and returns None if it does not fit."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool) and {"on", "off"} <= set(choices):  # YAML 1.1 reads on/off as booleans
            value = "on" if value else "off"
        if value in choices and not isinstance(value, bool):
            return value
        problems.append(Problem(path, f"must be one of {', '.join(map(repr, choices))}, got {short(value)}"
                                + suggest(value[:100] if isinstance(value, str) else short(value), [str(c) for c in choices])))
        return None
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if float in args and _nonfinite(value):  # the float's own refusal says more than the union's types
            return _convert(value, float, path, problems)
        for arg in args:
            if arg is type(None):
                continue
            trial: list[Problem] = []
            out = _convert(value, arg, path, trial)
            if not trial:
                return out
        problems.append(Problem(path, f"expected {_type_name(tp)}, got {type(value).__name__} {short(value)}"))
        return None
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        if isinstance(value, (list, tuple)):
            out = [_convert(v, item_tp, f"{path}[{i}]", problems) for i, v in enumerate(value)]
            return tuple(out) if origin is tuple else out
        problems.append(Problem(path, f"expected a list, got {type(value).__name__} {short(value)}"))
        return None
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return dict(value)
        problems.append(Problem(path, f"expected a mapping, got {type(value).__name__} {short(value)}"))
        return None
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a mapping, got {type(value).__name__} {short(value)}"))
            return None
        return _parse_into(tp, value, path, problems)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = _number(value)
        if number is not None and not math.isfinite(number):  # .inf / .nan: no setting of a suite means them
            problems.append(Problem(path, f"must be a finite number, got {short(value)}"))
            return None
        if number is not None:
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    problems.append(Problem(path, f"expected {_type_name(tp)}, got {type(value).__name__} {short(value)}"))
    return None


def _parse_into(cls: type[C], data: dict, path: str, problems: list[Problem]) -> C | None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    ok = True
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            problems.append(Problem(where, f"unknown key{suggest(str(key), fields)}; "
                                           f"valid keys: {', '.join(sorted(fields))}"))
            ok = False
            continue
        before = len(problems)
        kwargs[key] = _convert(value, hints[key], where, problems)
        ok &= len(problems) == before
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in missing:
        problems.append(Problem(f"{path}.{name}" if path else name, "required key is missing"))
        ok = False
    if not ok:
        return None
    try:
        return cls(**kwargs)
    except Invalid as exc:
        problems.append(Problem(path, str(exc)))
        return None


def parse(cls: type[C], data: dict | None, path: str = "", source: str | None = None) -> C:
    """An instance of the dataclass ``cls`` from ``data``; raises :class:`ConfigError` listing every problem."""
    problems: list[Problem] = []
    out = _convert(data if data is not None else {}, cls, path, problems)
    if problems:
        raise ConfigError(problems, source)
    return out


def collect(cls: type[C], data: Any, path: str, problems: list[Problem]) -> C | None:
    """Like :func:`parse`, but appends problems to ``problems`` (to report a whole document at once)."""
    return _convert(data if data is not None else {}, cls, path, problems)


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return _jsonable(dataclasses.asdict(cfg))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def check(cond: bool, message: str) -> None:
    """Raise :class:`Invalid` with ``message`` unless ``cond``: for config ``__post_init__`` checks."""
    if not cond:
        raise Invalid(message)
