"""Setting a queue's flow control: validation, the rate spelling, and the write.

`TaskStore.set_queue`, `pause_queue`, `resume_queue` and `queues` delegate here. Every
change is one transaction that also notifies workers (PostgreSQL), so a pause reaches
them at once; without notifications they read settings again within a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import Any, Protocol

from taskstore import validation
from taskstore.backends import Backend
from taskstore.durations import EXAMPLES, parse_duration
from taskstore.errors import InvalidInput
from taskstore.records import QueueInfo, QueueSettings
from taskstore.repositories.flow import FlowStatements
from taskstore.repositories.tasks import TaskRepository


class StoreParts(Protocol):
    """What these functions use of a `TaskStore` (which delegates to them)."""

    backend: Backend
    flow: FlowStatements
    tasks: TaskRepository

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

    def reading(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


#: notification payload prefix: "the settings of this queue changed"
SETTINGS_PREFIX = "settings:"
UNSET: Any = object()
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_MAX_RATE = 1_000_000
_MAX_PERIOD = 86_400.0
_MIN_PERIOD = 0.001


def parse_rate(text: str) -> tuple[int, float]:
    """``N/PERIOD`` (``100/1s``, ``10/1m``, ``5/s``) -> (N, seconds)."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(f"invalid rate {text!r} (N/PERIOD, e.g. 100/1s, 10/1m)")
    count, period_text = int(match[1]), match[2]
    if period_text[0].isalpha():
        period_text = "1" + period_text  # "5/s" is five a second
    try:
        period = parse_duration(period_text)
    except InvalidInput:
        raise InvalidInput(
            f"invalid rate {text!r}: the period {match[2]!r} is not a duration ({EXAMPLES})"
        ) from None
    if not 1 <= count <= _MAX_RATE:
        raise InvalidInput(f"invalid rate {text!r}: N must be from 1 to {_MAX_RATE:,}")
    if not _MIN_PERIOD <= period <= _MAX_PERIOD:
        # (below a millisecond the database clocks cannot tell the windows apart)
        raise InvalidInput(f"invalid rate {text!r}: the period must be from 0.001s to 1d")
    return count, period


def _limit(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise InvalidInput(
            f"{what} must be a whole number from 1 to 1,000,000 (or none), got {value!r}"
        )
    return value


def changed(
    current: QueueSettings, *, concurrency: Any, rate: Any, key_concurrency: Any
) -> QueueSettings:
    """`current` with the given changes applied (UNSET leaves one, None clears it)."""
    changes: dict[str, Any] = {}
    if concurrency is not UNSET:
        changes["concurrency"] = _limit(concurrency, "concurrency")
    if key_concurrency is not UNSET:
        changes["key_concurrency"] = _limit(key_concurrency, "key_concurrency")
    if rate is not UNSET:
        count, period = (None, None) if rate is None else parse_rate(rate)
        changes |= {"rate_limit": count, "rate_period": period}
    return dataclasses.replace(current, **changes)


async def update(store: StoreParts, queue: str, change: Any) -> QueueSettings:
    """Apply `change(current) -> new` to the queue's settings in one transaction."""
    validation.check_queue(queue)
    async with store.transaction() as conn:
        current = await store.flow.get(conn, queue, lock=True) or QueueSettings(queue)
        new = change(current)
        await store.flow.save(conn, new)
        await store.backend.notify(conn, [SETTINGS_PREFIX + queue])
    return new


async def queues(store: StoreParts) -> list[QueueInfo]:
    """Every queue with settings or tasks: its flow control and counts per status. A
    queue back at the defaults with no task is left out (a mistyped name, paused and
    resumed, would otherwise stay listed for good)."""
    async with store.reading() as conn:
        settings = {s.name: s for s in await store.flow.all(conn) if s.limited}
        counts = {s.queue: s.counts for s in await store.tasks.stats(conn)}
    out = []
    for name in sorted(settings.keys() | counts.keys()):
        s = settings.get(name) or QueueSettings(name)
        info = QueueInfo(name, s.paused, s.concurrency, s.rate, s.key_concurrency, {})
        out.append(dataclasses.replace(info, counts=counts.get(name, {})))
    return out
