"""TaskContext: what a handler gets besides its payload."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskstore.errors import InvalidInput
from taskstore.records import ClaimedTask

if TYPE_CHECKING:
    from taskstore.consumer import Consumer
    from taskstore.store import TaskStore


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
    ) -> None:
        self.task_id = task.id
        self.name = task.name
        self.queue = task.queue
        self.attempt = task.attempt
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

    @property
    def used_session(self) -> AsyncSession | None:
        return self._session

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The attempt's session; it is committed (or rolled back) by the worker."""
        if self._session is None:
            self._session = self._consumer.session()
        yield self._session

    async def dependency_results(self) -> dict[int, Any]:
        """{task id: result} of the tasks this one depended on (all completed)."""
        return await self._consumer.dependency_results(self.task_id)

    async def enqueue(
        self, name: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> int:
        """Enqueue a follow-up task that exists only if this attempt completes."""
        async with self.session() as session:
            return await self._store.enqueue(name, payload, session=session, **options)

    async def set_progress(self, fraction: float) -> None:
        """Record progress (0.0 to 1.0) on the task row, visible in `taskstore show`."""
        if not isinstance(fraction, int | float) or not math.isfinite(fraction):
            raise InvalidInput(f"progress must be a number from 0 to 1, got {fraction!r}")
        self.progress = min(1.0, max(0.0, float(fraction)))
        await self._consumer.set_progress(self.task_id, self._fence, self.progress)
