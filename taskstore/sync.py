"""Producing tasks from code without an event loop (Flask or Django views, scripts, cron).

`SyncTaskStore` runs a `TaskStore` on an event loop in a background thread and exposes
blocking methods; it is safe to share between threads. `enqueue_with` writes a task on a
*synchronous* SQLAlchemy connection or session of the caller's, so the task commits (or
rolls back) with the caller's own transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from taskstore import validation
from taskstore.backends import backend_for, backend_of
from taskstore.records import QueueStats, TaskInfo
from taskstore.repositories.tasks import TaskRepository
from taskstore.settings import Settings
from taskstore.states import TaskStatus
from taskstore.store import TaskStore

R = TypeVar("R")


class SyncTaskStore:
    """Blocking facade over `TaskStore`.

    ``with SyncTaskStore(url) as tasks: tasks.enqueue("pkg.fn", {"n": 1})``
    """

    def __init__(self, url: str | None = None) -> None:
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_cm.__enter__()
        try:
            self._store: TaskStore = self._portal.call(_open, url)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._portal.call(functools.partial(fn, *args, **kwargs))

    def enqueue(self, name: str, payload: Mapping[str, Any] | None = None, **options: Any) -> int:
        """`TaskStore.enqueue`, blocking (``session=`` is not available here)."""
        return self._call(self._store.enqueue, name, payload, **options)

    def enqueue_many(self, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
        return self._call(self._store.enqueue_many, list(tasks))

    def get(self, task_id: int) -> TaskInfo | None:
        return self._call(self._store.get, task_id)

    def stats(self) -> list[QueueStats]:
        return self._call(self._store.stats)

    def cancel(self, task_id: int) -> TaskStatus:
        return self._call(self._store.cancel, task_id)

    def retry(self, task_id: int) -> TaskStatus:
        return self._call(self._store.retry, task_id)

    def close(self) -> None:
        try:
            self._portal.call(self._store.close)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> SyncTaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _open(url: str | None) -> TaskStore:
    return await TaskStore.from_url(url).open()


class _SyncExecutor:
    """Lets the async repository run its statements on a blocking connection."""

    def __init__(self, conn: Connection | Session) -> None:
        self._conn = conn

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.execute(*args, **kwargs)


def _drive(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine that never really suspends (every await is a blocking call)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a blocking enqueue tried to wait on an event loop")


@functools.cache
def _repository(backend_name: str) -> TaskRepository:
    """Statements are built once per backend, as in the async store."""
    return TaskRepository(backend_for(backend_name))


def enqueue_with(
    conn: Connection | Session,
    name: str,
    payload: Mapping[str, Any] | None = None,
    **options: Any,
) -> int:
    """Enqueue on the caller's synchronous connection or session, inside its transaction.

    Nothing is committed here: the task becomes visible to workers when the caller commits,
    and vanishes if it rolls back. Takes `TaskStore.enqueue`'s keyword arguments.
    """
    limit = Settings.from_env().max_payload_bytes
    task = validation.new_task(name, payload, max_payload_bytes=limit, **options)
    bind = conn.connection() if isinstance(conn, Session) else conn
    backend = backend_of(bind)
    executor = _SyncExecutor(conn)
    [task_id] = _drive(_repository(backend.name).insert(executor, [task]))
    return task_id
