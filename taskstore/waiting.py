"""Waiting for a task to end: `TaskStore.wait`.

The waiter marks the task `watched`, so the statement that ends it also announces it: on
PostgreSQL one LISTEN connection per store (opened at the first wait) wakes every waiter
of that store, and a slow re-read every few seconds covers a notification lost with a
dropped connection. SQLite has no notifications: waiters read the status with a backoff
from 5 ms to a quarter of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from taskstore.errors import InvalidInput, TaskNotFound
from taskstore.records import TaskInfo
from taskstore.states import FINISHED


class _Store(Protocol):
    """What waiting needs of `taskstore.store.TaskStore` (which owns the `Waiters`)."""

    backend: Any
    engine: Any
    tasks: Any

    def transaction(self) -> Any: ...

    async def require(self, task_id: int) -> TaskInfo: ...


_RECHECK_SECONDS = 5.0  # with notifications: a re-read now and then, in case one was lost
_POLL_FIRST, _POLL_MAX = 0.005, 0.25  # without: the backoff of re-reads


class Waiters:
    """The waits of one store, and (on PostgreSQL) the LISTEN connection they share."""

    def __init__(self, store: _Store) -> None:
        self._store = store
        self._events: dict[int, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def wait(self, task_id: int, timeout: float | None) -> TaskInfo:  # noqa: ASYNC109
        """The task once it has finished; `TimeoutError` after `timeout` seconds."""
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if timeout is not None and (not number or timeout != timeout):  # NaN: no timeout
            raise InvalidInput(f"timeout must be a number of seconds, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        store = self._store
        info = await store.require(task_id)  # finished or unknown: said before any listening
        if info.status in FINISHED:
            return info
        notified = store.backend.notifies
        event = asyncio.Event()
        if notified:
            await self._listen(deadline)
        self._events.setdefault(task_id, set()).add(event)
        try:
            async with store.transaction() as conn:  # after LISTEN: no ending goes unheard
                if await store.tasks.watch(conn, task_id) is None:
                    raise TaskNotFound(f"no task with id {task_id}")
            pause = _RECHECK_SECONDS if notified else _POLL_FIRST
            late = f"task {task_id} did not finish within {timeout or 0:g}s"
            while True:
                info = await store.require(task_id)
                if info.status in FINISHED:
                    return info
                event.clear()
                await _sleep_or_event(event, _until(deadline, pause, late))
                if not notified:
                    pause = min(pause * 1.5, _POLL_MAX)
        finally:
            self._events[task_id].discard(event)
            if not self._events[task_id]:
                del self._events[task_id]

    async def _listen(self, deadline: float | None) -> None:
        if self._listener is None or self._listener.done():
            self._listening.clear()
            backend, engine = self._store.backend, self._store.engine
            self._listener = asyncio.create_task(backend.listen(engine, self._wake, endings=True))
        await _sleep_or_event(self._listening, _until(deadline, 30.0))
        if not self._listening.is_set():
            raise TimeoutError("could not listen for task endings in time")

    def _wake(self, payload: str) -> None:
        if payload == "*":  # (re)connected: anything may have ended meanwhile
            self._listening.set()
            ids = list(self._events)
        else:
            ids = [int(part) for part in payload.split(",") if part.isdigit()]
        for task_id in ids:
            for event in self._events.get(task_id, ()):
                event.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None


def _until(
    deadline: float | None, pause: float, late: str = "the task did not finish in time"
) -> float:
    """How long to sleep: `pause`, or less to wake at the deadline (`TimeoutError(late)`
    once it has passed)."""
    if deadline is None:
        return pause
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(late)
    return min(pause, left)


async def _sleep_or_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
