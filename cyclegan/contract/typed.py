"""Strict loading of typed dataclasses from parsed YAML/JSON: every value checked against its annotation.

Shared by the run configuration (:mod:`cyclegan.config`) and the generator card (:mod:`cyclegan.contract.card`):
unknown keys and wrong types raise the caller's error class with the dotted key in the message, and numbers must
be finite. Conversions are lossless only (``1.0`` -> ``1`` for an int, ``"1e-3"`` -> ``0.001`` for a float,
because YAML 1.1 reads an exponent without a dot as a string); nothing else is guessed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


def build(cls: type[T], data: Any, error: type[Exception], prefix: str = "") -> T:
    """``cls(**data)`` with every field checked; raises ``error`` naming the dotted key."""
    where = prefix.rstrip(".") or "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(names)})"
            raise error(f"unknown key '{prefix}{key}'{hint}")
        kwargs[key] = coerce(value, hints[key], prefix + str(key), error)
    return cls(**kwargs)


def coerce(value: Any, annotation: Any, key: str, error: type[Exception]) -> Any:
    """``value`` checked against one annotation (see the module docstring)."""
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if value is False and "no" in choices:
            value = "no"  # YAML 1.1 reads a bare `no` (e.g. train.mixed_precision=no) as false
        if isinstance(value, bool) or value not in choices:
            raise error(f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if value is None:
            if len(args) < len(get_args(annotation)):
                return None
            raise error(f"{key}: null is not allowed")
        problems = []
        for arg in args:
            try:
                return coerce(value, arg, key, error)
            except error as exc:
                problems.append(str(exc))
        raise error(problems[0] if len(problems) == 1 else f"{key}: invalid value {value!r}")
    if origin is tuple:
        items = get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise error(f"{key}: expected a list, got {value!r}")
        if len(items) == 2 and items[1] is Ellipsis:
            items = (items[0],) * len(value)
        if len(value) != len(items):
            raise error(f"{key}: expected {len(items)} values, got {len(value)}")
        return tuple(coerce(v, t, f"{key}[{i}]", error) for i, (v, t) in enumerate(zip(value, items)))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise error(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise error(f"{key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise error(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        number = _number(value)
        if number is None:
            raise error(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise error(f"{key}: expected a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise error(f"{key}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        return build(annotation, value, error, key + ".")
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")  # a programming error


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return None
    return None
