"""Building option dataclasses (model and training configurations) from plain dicts, with checks."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

from insertgen.core.errors import InsertgenError


def parse_assignments(pairs, what: str) -> dict[str, object]:
    """``["key=value", ...]`` -> {key: value}; a value is read as JSON when it is JSON (numbers, true /
    false, null, lists), else kept as text. ``what`` names the source in the error for a pair without ``=``."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise InsertgenError(f"{what} expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _accepts(annotation, value) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    return True


def from_dict(cls, values: dict):
    """``cls(**values)`` after checking that every key is a field of ``cls`` and every value has the
    field's type; raises ValueError naming the offending option."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; known: {sorted(names)}")
    for key, value in values.items():
        if not _accepts(hints[key], value):
            raise ValueError(f"option {key}={value!r} should be of type {hints[key]}")
    converted = {k: (float(v) if hints[k] is float else v) for k, v in values.items()}
    return cls(**converted)
