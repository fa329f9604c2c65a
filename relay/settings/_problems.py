"""Pydantic validation errors, as an operator would want to read them.

Invariants: a location uses the keys of the configuration file (`sinks.oncall.url`),
never class names, union tags or validator names; a message never contains the
offending input (it may be a secret).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from relay.settings._base import PLAIN_FIELD_NAMES, SECRET_FIELD_NAMES
from relay.settings._root import Settings
from relay.settings._sinks import SINK_TYPES

Location = tuple[str | int, ...]


def translate_error(error: Mapping[str, Any], tree: Any) -> tuple[Location, str]:
    """One pydantic error about `tree` as (location in the file's keys, message)."""
    kind = error["type"]
    loc = _user_location(error["loc"], tree)
    ctx = error.get("ctx") or {}
    message = str(ctx["error"]) if kind == "value_error" and "error" in ctx else str(error["msg"])
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        message = f"invalid name: {_plain(message)}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = str(ctx.get("expected_tags", ", ".join(SINK_TYPES))).replace("'", "")
        got = ctx.get("tag")
        message = f"unknown type {got!r}" if got is not None else "required"
        loc = (*loc, "type")
        if expected:
            message += f"; use one of: {expected}"
    elif kind == "missing":
        name = loc[-1] if loc else ""
        message = "required"
        if name in SECRET_FIELD_NAMES and name not in PLAIN_FIELD_NAMES:
            message += f" (or {name}_file: a file holding it)"
    elif kind == "extra_forbidden":
        message = _unknown_key(loc, tree)
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "should be a mapping of keys to values"
    elif kind == "too_short" and ctx.get("min_length") == 1:
        message = "should not be empty"
    elif kind == "timezone_aware":
        message = "needs a timezone, like 2026-12-01T00:00:00Z"
    else:
        message = _plain(message)
    return loc, message


def _plain(message: str) -> str:
    return message.replace("Input should", "should").replace("String should", "should")


def _user_location(loc: Sequence[str | int], tree: Any) -> Location:
    """Drop the parts of a pydantic location that are not keys of the file.

    Those are the tags of discriminated unions (`slack` for a sink of that type) and
    validator names; a final part absent from the file is a missing key and is kept.
    """
    kept: list[str | int] = []
    node = tree
    for index, part in enumerate(loc):
        if _holds(node, part):
            node = node[part]
        elif index < len(loc) - 1 or (isinstance(node, dict) and node.get("type") == part):
            continue
        kept.append(part)
    return tuple(kept)


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _unknown_key(loc: Location, tree: Any) -> str:
    model = _model_at(loc[:-1], tree, Settings) if loc else None
    if model is None:
        return "unknown key"
    secret_fields: frozenset[str] = getattr(model, "secret_fields", frozenset())
    allowed = sorted([*model.model_fields, *(f"{name}_file" for name in secret_fields)])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key; expected one of: {', '.join(allowed)}"


def _model_at(loc: Location, tree: Any, root: type[BaseModel]) -> type[BaseModel] | None:
    """The settings model describing the mapping at `loc` of the tree, if any."""
    annotation: Any = root
    node = tree
    for part in loc:
        resolved = _unwrap(annotation, node)
        if isinstance(resolved, type) and issubclass(resolved, BaseModel):
            field = resolved.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(resolved) in (list, dict):
            annotation = get_args(resolved)[-1]
        else:
            return None
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    resolved = _unwrap(annotation, node)
    return resolved if isinstance(resolved, type) and issubclass(resolved, BaseModel) else None


def _unwrap(annotation: Any, node: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
            tag = node.get("type") if isinstance(node, dict) else None
            for option in options:
                field = getattr(option, "model_fields", {}).get("type")
                if field is not None and tag in get_args(field.annotation):
                    return option
            return None
        else:
            return annotation
