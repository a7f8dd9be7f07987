"""A Django task call as a taskstore payload: ``{"args": [...], "kwargs": {...}}``.

Arguments are normalised as Django's own backends do (tuples become lists, bytes text);
anything that would not survive JSON unchanged is refused before a row is written, with
the ``TypeError`` Django's backends raise for such arguments, in one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.json import normalize_json


def payload_of(task_path: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The payload for calling `task_path` with `args` and `kwargs`."""
    try:
        payload = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot enqueue {task_path}: arguments must be JSON ({exc})") from None
    problem = _not_json(payload["args"], "args") or _not_json(payload["kwargs"], "kwargs")
    if problem:
        raise TypeError(f"cannot enqueue {task_path}: arguments must be JSON ({problem})")
    return payload


def arguments_of(payload: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) back from a payload (a row written by `payload_of`)."""
    args = payload.get("args") or []
    kwargs = payload.get("kwargs") or {}
    return (list(args) if isinstance(args, list) else [args]), (
        dict(kwargs) if isinstance(kwargs, dict) else {}
    )


def _not_json(value: Any, path: str) -> str | None:
    """Why `value` would change on its way through JSON, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value}, which JSON cannot hold"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the non-string key {key!r}"
            if found := _not_json(item, f"{path}[{key!r}]"):
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _not_json(item, f"{path}[{index}]"):
                return found
    return None
