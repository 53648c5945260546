"""Typed, validated views of config sections: dataclasses built from mappings with one-line errors.

Below both the engine and the tasks (each parses its own sections with `from_mapping`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from gankit.errors import ConfigError

T = TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, section: str) -> T:
    """Build dataclass `cls` from `data`, naming unknown keys and wrongly typed values."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        _check_type(f"{section}.{key}", value, hints[key])
    return cls(**data)


def _check_type(key: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if any(_matches(value, o) for o in options):
            return
    elif _matches(value, hint):
        return
    raise ConfigError(f"{key}: {value!r} is not a valid {_describe(hint)}.")


def _matches(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "value; choose one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return str(hint).replace("typing.", "")
