"""What the templates show: values turned into display text (no markup in here).

The templates escape everything they print; these helpers only decide *what* to print:
a task's error as one line, its resolved attempt limit, JSON indented, entity columns.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from taskstore.durations import format_duration
from taskstore.errors import InvalidInput
from taskstore.flow_admin import parse_rate
from taskstore.formatting import DEFAULT_MAX_ATTEMPTS, applied_limit, error_summary, format_age
from taskstore.records import TaskInfo, Unserved
from taskstore.states import Event, TaskStatus, sources

STATUS_ORDER = [
    "waiting",
    "created",
    "assigned",
    "running",
    "not_finished",
    "completed",
    "failed",
    "cancelled",
]
RETRYABLE = sources(Event.REQUEUE)
CANCELLABLE = sources(Event.CANCEL)
DEFAULT_LIMIT_HINT = (
    f"enqueued without max_attempts: the worker applies the handler's "
    f"@task(max_attempts=...), which is {DEFAULT_MAX_ATTEMPTS} unless the handler sets it"
)
ERROR_LINE_WIDTH = 90
ERROR_HOVER_WIDTH = 1000  # the list's hover text: enough to read, not a whole traceback
CELL_WIDTH = 120
MAX_CAPTIONS_SHOWN = 200


def attempt_limit(task: TaskInfo) -> tuple[int, str | None]:
    """The attempt limit the worker applies (the row's own, else the one its last failure
    recorded, else the default) and, when not the row's, where it comes from: "handler",
    "@task default" or "default" (see `taskstore.formatting.applied_limit`)."""
    return applied_limit(task.max_attempts, task.error)


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "\u2026"


def error_text(error: Any) -> str:
    """``Type: message`` of a stored error (any other JSON shown as it is)."""
    if not error:
        return ""
    if not isinstance(error, dict):
        return json.dumps(error, ensure_ascii=False)
    return error_summary(error.get("type"), error.get("message"))


def error_line(error: Any, width: int = ERROR_LINE_WIDTH) -> str:
    """The first line of a task's error, at most `width` characters."""
    lines = error_text(error).strip().splitlines()
    return clip(lines[0], width) if lines else ""


def error_hover(error: Any) -> str:
    """The error as the task list's hover text shows it, a few lines at most."""
    return clip(error_text(error).strip(), ERROR_HOVER_WIDTH)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def relative(value: dt.datetime, now: dt.datetime) -> str:
    """``5.0m ago`` or ``in 2.0h``, in the CLI's age format."""
    seconds = (now - value).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"{format_age(seconds)} ago" if seconds > 0 else f"in {format_age(-seconds)}"


def seconds_since(value: dt.datetime, now: dt.datetime | None = None) -> float:
    return ((now or dt.datetime.now(dt.UTC)) - value).total_seconds()


def progress(value: float | None) -> str | None:
    return None if value is None else f"{value:.0%}"


def queue_limits(queues: dict[str, Any]) -> str:
    """``media:4, email`` (a queue without its own limit shares the concurrency)."""
    parts = [f"{q}:{n}" if n else str(q) for q, n in sorted(queues.items())]
    return ", ".join(parts) or "-"


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of any row, in first-seen order (user subclasses add their own)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def cell(value: Any) -> tuple[str, str | None]:
    """(shown text, full text when clipped JSON) for one entity value."""
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
        return clip(text, CELL_WIDTH), text
    return ("-" if value is None else str(value)), None


def retryable(status: TaskStatus) -> bool:
    return status in RETRYABLE


def cancellable(status: TaskStatus) -> bool:
    return status in CANCELLABLE


def rate(text: str | None) -> str | None:
    """A queue's rate in the units people type (``10/1m`` rather than ``10/60s``)."""
    if text is None:
        return None
    try:
        count, period = parse_rate(text)
    except InvalidInput:  # shown as stored rather than not at all
        return text
    return f"{count}/{format_duration(period)}"


def rate_hint(text: str | None) -> str:
    if text is None:
        return "no rate limit"
    count, _, period = (rate(text) or "").partition("/")
    return f"at most {count} starts in any {period}, across all workers"


def unserved(item: Unserved) -> str:
    """``3 tasks of app.record in queue default: no live worker serves the queue``."""
    tasks = "1 task" if item.count == 1 else f"{item.count:,} tasks"
    return f"{tasks} of {item.name} in queue {item.queue}: {item.reason}"
