"""TaskContext: what a handler gets besides its payload."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from taskstore.errors import InvalidInput
from taskstore.records import ClaimedTask

if TYPE_CHECKING:
    from taskstore.consumer import Consumer
    from taskstore.store import TaskStore
    from worker.registry import Registry

R = TypeVar("R")
#: set in an attempt's session's info while its handler runs (see `handler_ended`)
_IN_HANDLER = "taskstore.in_handler"


def _refuse_commit_in_handler(session: Session) -> None:
    if session.info.get(_IN_HANDLER):
        raise InvalidInput(
            "ctx.session() is committed with the task's completion: a commit in the handler"
            " would keep its rows though the attempt may still fail (for writes that must"
            " stay whatever happens, open a session of your own: store.sessions())"
        )


def handler_ended(session: AsyncSession) -> None:
    """The handler returned: the worker may commit its session with the completion."""
    session.info[_IN_HANDLER] = False


class TaskContext:
    """One attempt of one task, as seen from inside its handler.

    ``session()`` hands out a single `AsyncSession` per attempt. The worker commits it
    together with the task's completion (fenced), so results are written only if the
    attempt is still this worker's when it ends; a failure or a lost lease rolls it back.
    Prefer adding rows and letting the worker flush them at completion: on SQLite a flush
    takes the database's single write lock until the attempt ends.
    """

    def __init__(
        self,
        task: ClaimedTask,
        *,
        store: TaskStore,
        consumer: Consumer,
        max_attempts: int,
        resources: dict[str, Any],
        registry: Registry | None = None,
    ) -> None:
        self.task_id = task.id
        self.name = task.name
        self.queue = task.queue
        self.attempt = task.attempt
        #: how many times the task has been started, this run included: unlike `attempt`,
        #: snoozes, hand-backs and an operator's retries count too (a snooze loop's bound)
        self.runs = task.fence
        self._fence = task.fence
        #: the producer's W3C traceparent, if it traced (see `taskstore.contrib.otel`)
        self.trace_context = task.trace_context
        self.max_attempts = max_attempts
        self.worker_id = consumer.worker_id
        self.resources = resources
        self._store = store
        self._consumer = consumer
        self._session: AsyncSession | None = None
        self.progress: float | None = None
        self._registry = registry
        # The worker's loop: a plain def handler runs in a thread, and may await these
        # methods in a loop of its own (`asyncio.run(ctx.set_progress(0.5))`).
        self._loop = asyncio.get_running_loop()

    @property
    def used_session(self) -> AsyncSession | None:
        return self._session

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The attempt's session; it is committed (or rolled back) by the worker."""
        if asyncio.get_running_loop() is not self._loop:
            raise InvalidInput(
                "ctx.session() is for async handlers: a plain def handler runs in a thread "
                "of its own (make the handler async to write through the attempt's session)"
            )
        if self._session is None:
            self._session = self._consumer.session()
            self._session.info[_IN_HANDLER] = True
            event.listen(self._session.sync_session, "before_commit", _refuse_commit_in_handler)
        yield self._session

    async def dependency_results(self) -> dict[int, Any]:
        """{task id: result} of the tasks this one depended on (all completed)."""
        return await self._on_worker_loop(self._consumer.dependency_results(self.task_id))

    async def enqueue(
        self, name: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> int:
        """Enqueue a follow-up task that exists only if this attempt completes. A task
        this worker has a handler for takes that handler's queue and priority unless
        `options` give them (as its typed ``enqueue`` does)."""
        definition = self._registry.tasks.get(name) if self._registry is not None else None
        if definition is not None:
            options = {"queue": definition.queue, "priority": definition.priority, **options}
        return await self._on_worker_loop(self._enqueue(name, payload, options))

    async def _enqueue(
        self, name: str, payload: Mapping[str, Any] | None, options: dict[str, Any]
    ) -> int:
        async with self.session() as session:
            return await self._store.enqueue(name, payload, session=session, **options)

    async def set_progress(self, fraction: float) -> None:
        """Record progress (0.0 to 1.0) on the task row, visible in `taskstore show`."""
        if not isinstance(fraction, int | float) or not math.isfinite(fraction):
            raise InvalidInput(f"progress must be a number from 0 to 1, got {fraction!r}")
        self.progress = min(1.0, max(0.0, float(fraction)))
        await self._on_worker_loop(
            self._consumer.set_progress(self.task_id, self._fence, self.progress)
        )

    async def _on_worker_loop(self, call: Coroutine[Any, Any, R]) -> R:
        """Await `call` on the worker's loop, whose connections it uses, wherever the
        handler awaits it."""
        if asyncio.get_running_loop() is self._loop:
            return await call
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))
