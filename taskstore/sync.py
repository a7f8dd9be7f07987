"""Producing tasks from code without an event loop (Flask or Django views, scripts, cron).

`SyncTaskStore` runs a `TaskStore` on an event loop in a background thread and exposes
blocking methods; it is safe to share between threads, and a process that never closes it
still exits (it is closed at interpreter exit; enqueues already returned are committed).
`enqueue_with` writes a task on a *synchronous* SQLAlchemy connection or session of the
caller's, so the task commits (or rolls back) with the caller's own transaction.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from taskstore import validation
from taskstore.backends import backend_for, backend_of
from taskstore.background import BackgroundLoop
from taskstore.errors import InvalidInput
from taskstore.graph import Graph
from taskstore.graph import resolve as resolve_graph
from taskstore.logs import get_logger
from taskstore.records import NewTask, QueueStats, TaskInfo
from taskstore.repositories.task_table import run_blocking
from taskstore.repositories.tasks import TaskRepository
from taskstore.settings import Settings
from taskstore.states import TaskStatus
from taskstore.store import TaskStore

log = get_logger("taskstore.sync")
#: How long interpreter exit waits for a store nobody closed to close its connections.
EXIT_CLOSE_SECONDS = 5.0


class SyncTaskStore:
    """Blocking facade over `TaskStore`.

    ``with SyncTaskStore(url) as tasks: tasks.enqueue("pkg.fn", {"n": 1})``, or keep one
    per process (``tasks = SyncTaskStore()``) and let interpreter exit close it.
    """

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._forked = False  # set in a forked child (see `_forget_the_parents`)
        self._fork_lock = threading.Lock()
        self._start()
        _STORES.add(self)

    def _start(self) -> None:
        self._loop = BackgroundLoop("taskstore-sync")
        try:
            self._store: TaskStore = self._loop.call(_open, self._url)
        except BaseException:
            self._loop.stop()
            raise
        # Holds the loop and the store, never `self`: it runs when the store is collected
        # or at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _close_at_exit, self._loop, self._store)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        _refuse_in_event_loop(method)
        if self._forked:
            self._reopen()
        if not self._finalizer.alive:
            raise RuntimeError("this SyncTaskStore is closed")
        fn = getattr(self._store, method)
        return self._loop.call(functools.partial(fn, *args, **kwargs))

    def _reopen(self) -> None:
        """First use in a forked child (gunicorn --preload, multiprocessing): the loop's
        thread stayed in the parent, and the parent's connections are the parent's to
        use and close; this process opens its own."""
        with self._fork_lock:
            if self._forked:
                self._start()
                self._forked = False

    def _forget_the_parents(self) -> None:
        """In a child just forked, before any other thread runs: neither use nor close
        (at exit) what the parent's loop holds."""
        self._fork_lock = threading.Lock()  # it may have been held by a parent's thread
        if self._finalizer.detach() is not None:
            self._forked = True
            self._loop.abandon()
            # Kept: collected here, the parent's pooled connections would be "cleaned up"
            # against a loop this process does not run (warnings, and nothing to gain).
            self._parents = (self._loop, self._store)

    @property
    def settings(self) -> Settings:
        return self._store.settings

    def enqueue(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        session: Connection | Session | None = None,
        **options: Any,
    ) -> int:
        """`TaskStore.enqueue`, blocking. ``session`` is a *synchronous* SQLAlchemy session
        or connection: the task joins its transaction (see `enqueue_with`)."""
        if session is not None:
            return _enqueue_on(session, name, payload, self.settings.max_payload_bytes, options)
        return self._call("enqueue", name, payload, **options)

    def enqueue_many(
        self, tasks: Iterable[Mapping[str, Any]], *, session: Connection | Session | None = None
    ) -> list[int]:
        """`TaskStore.enqueue_many`, blocking; ``session`` as in `enqueue`."""
        if session is not None:
            limit = self.settings.max_payload_bytes
            batch = [validation.new_task_from_mapping(item, limit) for item in tasks]
            return _insert_on(session, batch) if batch else []
        return self._call("enqueue_many", list(tasks))

    def get(self, task_id: int) -> TaskInfo | None:
        return self._call("get", task_id)

    def stats(self) -> list[QueueStats]:
        return self._call("stats")

    def cancel(self, task_id: int) -> TaskStatus:
        return self._call("cancel", task_id)

    def retry(self, task_id: int) -> TaskStatus:
        return self._call("retry", task_id)

    def wait(self, task_id: int, *, timeout: float | None = None) -> TaskInfo:
        """`TaskStore.wait`, blocking."""
        return self._call("wait", task_id, timeout=timeout)

    def close(self) -> None:
        """Close the connections and stop the background loop (idempotent)."""
        self._forked = False  # a forked child that never used it has nothing to close
        if self._finalizer.detach() is None:
            return
        if self._loop.in_loop_thread:  # cannot wait for the loop from inside it
            raise RuntimeError("SyncTaskStore.close() called from its own event loop")
        try:
            self._loop.call(self._store.close)
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncTaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _open(url: str | None) -> TaskStore:
    store = TaskStore.from_url(url)
    try:
        return await store.open()
    except BaseException:
        await store.close()
        raise


_STORES: weakref.WeakSet[SyncTaskStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forget_the_parents()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(loop: BackgroundLoop, store: TaskStore) -> None:
    """Close a store its owner never closed, without ever holding the process up for long."""
    if loop.in_loop_thread:  # collected on the loop's own thread, which cannot wait on itself
        threading.Thread(target=_close_at_exit, args=(loop, store), daemon=True).start()
        return
    try:
        loop.call_within(EXIT_CLOSE_SECONDS, store.close)
    except Exception as exc:  # the database went away: nothing left to flush
        log.warning("closing an unclosed SyncTaskStore failed", error=str(exc))
    loop.stop(timeout=EXIT_CLOSE_SECONDS)


def _refuse_in_event_loop(method: str) -> None:
    """Blocking an event loop's thread stalls all it runs; in a worker on SQLite it can
    wait forever for the write lock the blocked loop holds."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise InvalidInput(
        f"SyncTaskStore.{method}() blocks, and this thread runs an event loop (an async "
        f"handler or view?): use the async API there (await TaskStore.{method}(); in a "
        "handler ctx.enqueue(); in Django aenqueue())"
    )


class _SyncExecutor:
    """Lets the async repository run its statements on a blocking connection."""

    def __init__(self, conn: Connection | Session) -> None:
        self._conn = conn

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.execute(*args, **kwargs)


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
    return _enqueue_on(conn, name, payload, Settings.from_env().max_payload_bytes, options)


def _enqueue_on(
    conn: Connection | Session,
    name: str,
    payload: Mapping[str, Any] | None,
    max_payload_bytes: int,
    options: Mapping[str, Any],
) -> int:
    task = validation.new_task(name, payload, max_payload_bytes=max_payload_bytes, **options)
    [task_id] = _insert_on(conn, [task])
    return task_id


def _insert_on(conn: Connection | Session, batch: list[NewTask]) -> list[int]:
    if not isinstance(conn, Connection | Session):
        raise InvalidInput(
            f"session must be a synchronous SQLAlchemy Session or Connection, got "
            f"{type(conn).__name__} (an AsyncSession goes to TaskStore.enqueue)"
        )
    graph = resolve_graph(batch)
    bind = conn.connection() if isinstance(conn, Session) else conn
    repository = _repository(backend_of(bind).name)
    if graph is not None:
        marked = _mark_apart(bind, repository, graph)
        inserting = repository.insert_graph(_SyncExecutor(conn), batch, graph, marked)
        return run_blocking(inserting, "a blocking connection")
    return run_blocking(repository.insert(_SyncExecutor(conn), batch), "a blocking connection")


def _mark_apart(
    bind: Connection, repository: TaskRepository, graph: Graph
) -> dict[int, TaskStatus] | None:
    """As the async store does: on PostgreSQL the dependencies are marked in a short
    transaction of our own, on a connection of our own, as locking them in the caller's
    (open as long as it likes) would stall their workers' heartbeats and endings."""
    if not graph.external_ids or repository.backend.writes_read_latest:
        return None
    with bind.engine.begin() as apart:
        marking = repository.mark_dependencies(_SyncExecutor(apart), graph.external_ids)
        return run_blocking(marking, "a blocking connection")
