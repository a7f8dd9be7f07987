"""TaskStore: the facade producers and operators use.

It owns an engine, validates input at the boundary and runs each operation in its own
short transaction, or in the caller's (``session=...``) without committing it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskstore import bulk, flow_admin, validation
from taskstore.backends.sqlite_inline import NOT_READ, read_inline
from taskstore.errors import InvalidInput, TaskNotFound
from taskstore.flow_admin import UNSET
from taskstore.graph import Graph
from taskstore.graph import resolve as resolve_graph
from taskstore.records import (
    NewTask,
    QueueInfo,
    QueueSettings,
    QueueStats,
    TaskInfo,
    Unserved,
    WorkerInfo,
    unserved_list,
)
from taskstore.states import FINISHED, TaskStatus
from taskstore.store_connections import StoreConnections
from taskstore.tracing import enqueue_span
from taskstore.waiting import Waiters


class TaskStore(StoreConnections):
    """Enqueue, inspect and manage tasks in one database."""

    # ---------------------------------------------------------------- enqueue
    async def enqueue(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str = "default",
        priority: int = 0,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        max_attempts: int | None = None,
        dedup_key: str | None = None,
        concurrency_key: str | None = None,
        depends_on: Sequence[int] | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """Enqueue one task and return its id (the live task's id if `dedup_key` is taken).

        With `session`, the insert joins the caller's transaction: workers see the task
        only once that transaction commits, and never if it rolls back. Tasks sharing a
        `concurrency_key` run at most the queue's `key_concurrency` at once. With
        `depends_on` (task ids) it waits until all of them completed, and is cancelled
        if one fails or is cancelled.
        """
        task = validation.new_task(
            name,
            payload,
            max_payload_bytes=self.settings.max_payload_bytes,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            dedup_key=dedup_key,
            concurrency_key=concurrency_key,
            depends_on=depends_on,
        )
        return (await self._insert([task], session, keys_allowed=False))[0]

    async def enqueue_many(
        self, tasks: Iterable[Mapping[str, Any]], *, session: AsyncSession | None = None
    ) -> list[int]:
        """Enqueue a batch in one round trip; ids come back in the order given.

        Each item has `enqueue`'s keyword names plus ``name`` and ``payload``. The whole
        batch is validated before anything is written.
        """
        limit = self.settings.max_payload_bytes
        batch = [validation.new_task_from_mapping(item, limit) for item in tasks]
        return await self._insert(batch, session) if batch else []

    async def enqueue_periodic(
        self,
        name: str,
        tick: dt.datetime,
        payload: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> int | None:
        """Enqueue the task for one tick of a schedule, once across all workers.

        Returns the new id, or None if another worker already enqueued that tick.
        """
        task = validation.new_task(
            name, payload, max_payload_bytes=self.settings.max_payload_bytes, **options
        )
        async with self.transaction() as conn:
            return await self.tasks.insert_periodic(conn, task, tick)

    async def _insert(
        self, batch: Sequence[NewTask], session: AsyncSession | None, *, keys_allowed: bool = True
    ) -> list[int]:
        """Plain rows are one statement (atomic alone: no BEGIN/COMMIT needed on
        PostgreSQL); rows with dedup keys or dependencies need a transaction of several."""
        if session is not None:
            validation.check_session(session)
        graph = resolve_graph(batch, keys_allowed=keys_allowed)
        with enqueue_span(batch) as batch:
            if graph is None and session is None and all(t.dedup_key is None for t in batch):
                async with self.statement() as conn:
                    return await self.tasks.insert(conn, batch)
            marked = await self._mark_apart(graph) if session is not None else None
            async with self._write(session) as conn:
                if graph is not None:
                    return await self.tasks.insert_graph(conn, batch, graph, marked)
                return await self.tasks.insert(conn, batch)

    async def _mark_apart(self, graph: Graph | None) -> dict[int, TaskStatus] | None:
        """PostgreSQL: dependencies marked in a short transaction of our own, as locking
        them in the caller's (open as long as it likes) would stall their workers'
        heartbeats and completions; the rescue sweep settles an ending that races this.
        SQLite: the caller's transaction holds the one write lock anyway."""
        if graph is None or not graph.external_ids or self.backend.writes_read_latest:
            return None
        async with self.transaction() as conn:
            return await self.tasks.mark_dependencies(conn, graph.external_ids)

    async def wait(self, task_id: int, *, timeout: float | None = None) -> TaskInfo:  # noqa: ASYNC109 (the contract)
        """Wait until the task has finished (completed, failed or cancelled) and return it;
        `TimeoutError` after `timeout` seconds. See `taskstore.waiting`."""
        await self._usable()
        self._waiters = self._waiters or Waiters(self)
        return await self._waiters.wait(task_id, timeout)

    # ----------------------------------------------------------------- reads
    async def get(self, task_id: int) -> TaskInfo | None:
        if not validation.is_task_id(task_id):  # 0, or past 64 bits (no driver takes 2**70)
            validation.check_id_type(task_id)
            return None
        found = await read_inline(
            self.backend, self.translate, lambda c: self.tasks.get(c, task_id)
        )
        if found is not NOT_READ:
            return found
        # PostgreSQL: one SELECT on a held autocommit link, no pool checkout or BEGIN.
        async with self.statement() if self._links else self.reading() as conn:
            return await self.tasks.get(conn, task_id)

    async def require(self, task_id: int) -> TaskInfo:
        """Like `get`, but a missing task is a `TaskNotFound` error."""
        if (info := await self.get(task_id)) is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return info

    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[TaskInfo]:
        """Tasks newest first, filtered; page with `before_id` (the last id seen)."""
        parsed = validation.parse_status(status) if status is not None else None
        if queue is not None:
            validation.check_queue(queue)
        if name is not None:
            validation.check_name(name)
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        async with self.reading() as conn:
            return await self.tasks.list(
                conn, status=parsed, queue=queue, name=name, limit=limit, before_id=before_id
            )

    async def stats(self) -> list[QueueStats]:
        async with self.reading() as conn:
            return await self.tasks.stats(conn)

    async def due_counts(self) -> dict[str, int]:
        """Claimable tasks due now, per queue; the other claimable ones are scheduled."""
        async with self.reading() as conn:
            return await self.tasks.claimable_counts(conn)

    async def throughput(self, minutes: int = 60) -> list[dict[str, Any]]:
        """Completed and failed tasks per minute over the last `minutes`."""
        async with self.reading() as conn:
            return await self.tasks.throughput(conn, minutes=minutes)

    async def finished_recently(self) -> dict[str, dict[str, int]]:
        """Completed / failed counts over the last 1, 5 and 15 minutes."""
        async with self.reading() as conn:
            return await self.tasks.finished_recently(conn)

    async def workers(self) -> list[WorkerInfo]:
        """Workers that sent a heartbeat recently (`alive`), newest registrations last."""
        async with self.reading() as conn:
            return await self.worker_registry.list(conn)

    async def unserved(self) -> list[Unserved]:
        """Claimable tasks no live worker can run (its queue unserved, or no handler of
        that name among the workers serving it): what `status` and the dashboard flag."""
        async with self.reading() as conn:
            waiting = await self.tasks.claimable_by_name(conn)
            queues, names = await self.worker_registry.served(conn)
        return unserved_list(waiting, queues, names)

    # ----------------------------------------------------------- flow control
    async def set_queue(
        self,
        queue: str,
        *,
        concurrency: int | None = UNSET,
        rate: str | None = UNSET,
        key_concurrency: int | None = UNSET,
    ) -> QueueSettings:
        """Limit a queue across every worker: at most `concurrency` running, `rate`
        (``N/PERIOD``, e.g. ``100/1s``) starts in any window, `key_concurrency` running per
        concurrency key. An argument left out keeps its value; None clears it. The queue
        need not have tasks yet."""
        options = {"concurrency": concurrency, "rate": rate, "key_concurrency": key_concurrency}
        flow_admin.changed(QueueSettings(queue), **options)  # refuse bad values before writing
        return await flow_admin.update(self, queue, lambda s: flow_admin.changed(s, **options))

    async def pause_queue(self, queue: str) -> QueueSettings:
        """Start nothing new from the queue (running tasks finish), on every worker."""
        return await flow_admin.update(self, queue, lambda s: dataclasses.replace(s, paused=True))

    async def resume_queue(self, queue: str) -> QueueSettings:
        return await flow_admin.update(self, queue, lambda s: dataclasses.replace(s, paused=False))

    async def queues(self) -> list[QueueInfo]:
        """Every queue with settings or tasks: paused, limits and counts per status."""
        return await flow_admin.queues(self)

    # -------------------------------------------------------------- operator
    async def cancel(self, task_id: int, *, session: AsyncSession | None = None) -> TaskStatus:
        """Cancel a task that has not finished (a running one stops cooperatively)."""
        async with self._write(session) as conn:
            return await self.tasks.cancel(conn, task_id)

    async def retry(
        self, task_id: int, *, with_dependents: bool = False, session: AsyncSession | None = None
    ) -> TaskStatus:
        """Run a failed or cancelled task again, with a fresh set of attempts; with
        `with_dependents`, what its failure cancelled waits for it again."""
        async with self._write(session) as conn:
            status = await self.tasks.requeue(conn, task_id)
            if with_dependents:
                await self.tasks.revive_dependents(conn, task_id)
            info = await self.tasks.get(conn, task_id)
            await self.backend.notify(conn, [info.queue] if info else [])
        return status

    async def retry_failed(
        self,
        *,
        queue: str | None = None,
        name: str | None = None,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Run every failed task (of a queue / name) again, in batches; returns the count."""
        return await bulk.retry_failed(self, queue, name, batch_size, progress)

    async def count_failed(self, *, queue: str | None = None, name: str | None = None) -> int:
        async with self.reading() as conn:
            return await self.tasks.count_failed(conn, queue=queue, name=name)

    async def count_purgeable(
        self, older_than: float | dt.timedelta, *, statuses: Iterable[TaskStatus | str] = FINISHED
    ) -> int:
        """How many tasks `purge` with the same arguments would delete."""
        seconds, wanted = validation.purge_args(older_than, statuses)
        async with self.reading() as conn:
            return await self.tasks.count_purgeable(
                conn, older_than_seconds=seconds, statuses=wanted
            )

    async def purge(
        self,
        older_than: float | dt.timedelta,
        *,
        statuses: Iterable[TaskStatus | str] = FINISHED,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished tasks that ended longer ago than `older_than`, in bounded batches
        (each its own short transaction, so workers are never blocked for long)."""
        seconds, wanted = validation.purge_args(older_than, statuses)
        return await bulk.purge(self, seconds, wanted, batch_size, progress)
