"""What a handler accepts, read once when it is registered.

A handler takes the context as its first positional parameter and its payload as keyword
arguments. `read_signature` refuses, at ``@task`` time, a handler that cannot be called that
way; `HandlerSignature.check` refuses, before anything is written, producer arguments that
the handler would refuse: missing, unknown, or (where annotated with plain JSON types:
str, int, float, bool, dict, list, and unions of those with None) of the wrong type.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from worker.errors import RegistrationError, WrongArguments

_NONE = type(None)
_PLAIN = (str, int, float, bool, dict, list)
_TAKES_CONTEXT = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
)
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclasses.dataclass(frozen=True)
class HandlerSignature:
    """The payload a handler accepts: names and, where checkable, types."""

    required: frozenset[str]
    accepted: frozenset[str] | None  # None: the handler takes **kwargs, any name goes
    types: Mapping[str, tuple[type, ...]]  # only the parameters whose types we check

    def check(self, task: str, payload: Mapping[str, Any]) -> None:
        """Raise `WrongArguments` (one line naming `task` and the argument) unless the
        handler would accept `payload` as its keyword arguments."""
        wrong = self.misfit(payload)
        if wrong is not None:
            raise WrongArguments(f"cannot enqueue {task}: {wrong}")
        for name, value in payload.items():
            allowed = self.types.get(name)
            if allowed is not None and not _matches(value, allowed):
                raise WrongArguments(
                    f"cannot enqueue {task}: argument {name!r} must be {_described(allowed)}, "
                    f"got {type(value).__name__} {_shown(value)}"
                )

    def misfit(self, payload: Mapping[str, Any]) -> str | None:
        """What is wrong with the names in `payload`: its missing and its unexpected
        arguments, both named (a misspelt key is both); None when they fit."""
        missing = sorted(self.required - payload.keys())
        unknown = [] if self.accepted is None else sorted(payload.keys() - self.accepted)
        said = [f"missing {_listed('argument', missing)}"] if missing else []
        if unknown:
            takes = ", ".join(sorted(self.accepted or ())) or "no arguments"
            said.append(f"unexpected {_listed('argument', unknown)} (it takes: {takes})")
        return "; ".join(said) or None


def read_signature(task: str, fn: Callable[..., Any]) -> HandlerSignature:
    """The handler's `HandlerSignature`; `RegistrationError` if it cannot be called as
    ``fn(ctx, **payload)``."""
    label = getattr(fn, "__qualname__", repr(fn))
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise RegistrationError(
            f"cannot register {task}: cannot read the signature of {label}"
        ) from None
    if not params or params[0].kind not in _TAKES_CONTEXT:
        raise RegistrationError(
            f"cannot register {task}: {label}() must take the context as its first "
            "positional parameter"
        )
    _check_context_slot(task, label, fn, params[0])
    payload = params[1:]
    positional = [p.name for p in payload if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if positional:
        raise RegistrationError(
            f"cannot register {task}: {label}() has positional-only "
            f"{_listed('parameter', positional)}, but the payload arrives as keyword arguments"
        )
    named = [p for p in payload if p.kind in _NAMED]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in payload)
    checked = {p.name: kinds for p in named if (kinds := _plain_types(_resolved(fn, p)))}
    return HandlerSignature(
        required=frozenset(p.name for p in named if p.default is p.empty),
        accepted=None if takes_any else frozenset(p.name for p in named),
        types=types.MappingProxyType(checked),
    )


def _check_context_slot(
    task: str, label: str, fn: Callable[..., Any], first: inspect.Parameter
) -> None:
    """Refuse a handler whose first parameter is plainly a payload value (``x: int``):
    written without the context, its first argument would silently receive it."""
    kinds = _plain_types(_resolved(fn, first))
    if kinds is None or kinds == (_NONE,):
        return
    raise RegistrationError(
        f"cannot register {task}: {label}() must take the context first, but its first "
        f"parameter is {first.name}: {_described(kinds)}; add one before it: "
        f"(ctx, {first.name}, ...)"
    )


def _resolved(fn: Callable[..., Any], param: inspect.Parameter) -> Any:
    """The parameter's annotation, evaluated if it is a string (``from __future__ import
    annotations``); one that cannot be evaluated (a name imported only for type checkers)
    is left unchecked, without disturbing the others."""
    annotation = param.annotation
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={param.name: annotation})
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    try:
        return typing.get_type_hints(holder, globalns=namespace, include_extras=True)[param.name]
    except Exception:
        return inspect.Parameter.empty


def _plain_types(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation allows, or None when it is not one we check."""
    if annotation is None or annotation is _NONE:
        return (_NONE,)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _plain_types(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        parts = [_plain_types(arg) for arg in typing.get_args(annotation)]
        if any(part is None for part in parts):
            return None
        return tuple(kind for part in parts if part for kind in part)
    if origin in (dict, list):
        return (origin,)
    return (annotation,) if annotation in _PLAIN else None


def _matches(value: Any, allowed: tuple[type, ...]) -> bool:
    return any(_is(value, kind) for kind in allowed)


def _is(value: Any, kind: type) -> bool:
    if kind is _NONE:
        return value is None
    if isinstance(value, bool):  # bool is an int to Python, never to a handler's annotation
        return kind is bool
    if kind is float:  # JSON has one number type: an int is a fine float
        return isinstance(value, int | float)
    if kind is list:  # a tuple arrives as a JSON list
        return isinstance(value, list | tuple)
    return isinstance(value, kind)


def _described(allowed: tuple[type, ...]) -> str:
    return " or ".join("None" if kind is _NONE else kind.__name__ for kind in allowed)


def _listed(noun: str, names: list[str]) -> str:
    quoted = ", ".join(repr(n) for n in names)
    return f"{noun} {quoted}" if len(names) == 1 else f"{noun}s {quoted}"


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
