"""Human output for the CLIs: aligned tables and ages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskstore.durations import parse_duration

__all__ = ["format_age", "parse_duration", "table"]  # parse_duration: its old home

# A task enqueued without max_attempts runs under its handler's @task(max_attempts=...),
# whose default is 3, as is the worker's limit for a name it does not know. The store never
# imports the worker, so the value is repeated here; a test checks both stay equal.
DEFAULT_MAX_ATTEMPTS = 3


def applied_limit(max_attempts: int | None, error: Any) -> tuple[int, str | None]:
    """The attempt limit a task runs under, and where it comes from when it is not the
    task's own. Its last failure recorded what the worker applied: ``"handler"`` (its
    handler's @task sets it) or ``"@task default"`` (the handler sets none); before any
    failure, ``"default"`` (nothing ran yet that knew the handler's)."""
    if max_attempts is not None:
        return max_attempts, None
    recorded = error.get("max_attempts") if isinstance(error, dict) else None
    if type(recorded) is int:
        by_default = error.get("max_attempts_from") == "default"
        return recorded, "@task default" if by_default else "handler"
    return DEFAULT_MAX_ATTEMPTS, "default"


def attempt_limit(max_attempts: int | None, error: Any) -> str:
    """A task's attempt limit as `show` prints it: its own, or the applied one and why."""
    limit, source = applied_limit(max_attempts, error)
    if source == "handler":
        return f"{limit} (its handler's @task)"
    if source == "@task default":
        return f"{limit} (the @task default: its handler sets none)"
    if source == "default":
        return f"{limit} (default, unless its handler's @task sets max_attempts)"
    return str(limit)


def error_summary(kind: Any, message: Any) -> str:
    """``Type: message``, or the type alone when the message is empty (a bare
    ``CancelledError``, a ``KeyboardInterrupt``)."""
    return ": ".join(str(part) for part in (kind, message) if part not in (None, ""))


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned to their widest cell; numbers right-aligned."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [all(_is_number(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
