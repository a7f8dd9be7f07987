"""Reading tasks: one row, filtered lists, and the statistics operators and metrics use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, and_, bindparam, case, func, literal, select, type_coerce

from taskstore.backends import Backend
from taskstore.models.base import UTCDateTime
from taskstore.models.task import status_in
from taskstore.records import QueueStats, TaskInfo
from taskstore.repositories.task_table import Executor, T, TaskStatements
from taskstore.states import CLAIMABLE, FINISHED, TaskStatus


class TaskReads(TaskStatements):
    """Reads of the task table; none takes a write lock."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._select_one = select(*T.c).where(T.c.id == bindparam("p_task_id"))

    async def clock(self, conn: Executor) -> dt.datetime:
        """The database's clock now (what leases and schedules are compared with)."""
        return (await conn.execute(select(type_coerce(self._now, UTCDateTime())))).scalar_one()

    async def get(self, conn: Executor, task_id: int) -> TaskInfo | None:
        row = (await conn.execute(self._select_one, {"p_task_id": task_id})).first()
        return None if row is None else TaskInfo.from_row(row)

    async def list(
        self,
        conn: Executor,
        *,
        status: TaskStatus | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[TaskInfo]:
        """Newest first; page with `before_id`."""
        stmt = select(*T.c).order_by(T.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(T.c.status == status.value)
        if queue is not None:
            stmt = stmt.where(T.c.queue == queue)
        if name is not None:
            stmt = stmt.where(T.c.name == name)
        if before_id is not None:
            stmt = stmt.where(T.c.id < before_id)
        return [TaskInfo.from_row(r) for r in (await conn.execute(stmt)).all()]

    async def stats(self, conn: Executor) -> list[QueueStats]:
        """Counts per queue and status, and the age of each queue's oldest due task."""
        now = await self.clock(conn)
        claimable = status_in(CLAIMABLE)
        oldest = func.min(case((and_(claimable, T.c.run_at <= self._now), T.c.run_at)))
        stmt = select(T.c.queue, T.c.status, func.count(), type_coerce(oldest, UTCDateTime()))
        stmt = stmt.group_by(T.c.queue, T.c.status).order_by(T.c.queue)
        by_queue: dict[str, QueueStats] = {}
        for queue, status, count, due in (await conn.execute(stmt)).all():
            stats = by_queue.setdefault(queue, QueueStats(queue, {}, None))
            stats.counts[status] = count
            if due is not None:
                age = max(0.0, (now - due).total_seconds())
                if stats.oldest_pending_seconds is None or age > stats.oldest_pending_seconds:
                    by_queue[queue] = QueueStats(queue, stats.counts, age)
        return list(by_queue.values())

    async def claimable_counts(self, conn: Executor) -> dict[str, int]:
        """Tasks due now and waiting, per queue (answered from the claim index)."""
        stmt = (
            select(T.c.queue, func.count())
            .where(status_in(CLAIMABLE), T.c.run_at <= self._now)
            .group_by(T.c.queue)
        )
        return dict((await conn.execute(stmt)).all())

    async def waiting(self, conn: Executor, queues: Sequence[str]) -> tuple[int, float | None]:
        """Claimable tasks of `queues`, due or not (snoozed, waiting out a retry's backoff,
        enqueued with a delay): how many, and the seconds until the first is due (0 or
        less: it is due)."""
        first = type_coerce(func.min(T.c.run_at), UTCDateTime())
        stmt = select(func.count(), first, type_coerce(self._now, UTCDateTime())).where(
            status_in(CLAIMABLE), T.c.queue.in_(queues)
        )
        count, due, now = (await conn.execute(stmt)).one()
        return count, None if due is None else (due - now).total_seconds()

    async def claimable_by_name(self, conn: Executor) -> dict[tuple[str, str], int]:
        """Claimable tasks (due or scheduled) per (queue, name)."""
        stmt = (
            select(T.c.queue, T.c.name, func.count())
            .where(status_in(CLAIMABLE))
            .group_by(T.c.queue, T.c.name)
        )
        return {(queue, name): count for queue, name, count in (await conn.execute(stmt)).all()}

    async def throughput(self, conn: Executor, *, minutes: int = 60) -> list[dict[str, Any]]:
        """Completed and failed tasks per minute over the last `minutes` (oldest first)."""
        bucket = type_coerce(self.backend.minute_bucket(T.c.finished_at), UTCDateTime())
        since = self.backend.now_plus(literal(-60.0 * minutes, Float))
        stmt = (
            select(bucket.label("minute"), T.c.status, func.count())
            .where(status_in(frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})))
            .where(T.c.finished_at >= since)
            .group_by(bucket, T.c.status)
            .order_by(bucket)
        )
        points: dict[Any, dict[str, Any]] = {}
        for minute, status, count in (await conn.execute(stmt)).all():
            point = points.setdefault(minute, {"minute": minute, "completed": 0, "failed": 0})
            point[status] = count
        return list(points.values())

    async def finished_recently(
        self, conn: Executor, windows: Sequence[int] = (1, 5, 15)
    ) -> dict[str, dict[str, int]]:
        """Tasks completed / failed in each of the last N-minute windows."""
        columns = []
        for minutes in windows:
            since = self.backend.now_plus(literal(-60.0 * minutes, Float))
            for status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
                hit = and_(T.c.status == status.value, T.c.finished_at >= since)
                columns.append(func.count(case((hit, 1))).label(f"{status.value}_{minutes}"))
        oldest = self.backend.now_plus(literal(-60.0 * max(windows), Float))
        stmt = select(*columns).where(status_in(FINISHED), T.c.finished_at >= oldest)
        row = (await conn.execute(stmt)).one()._mapping
        return {
            f"{m}m": {
                s.value: row[f"{s.value}_{m}"] for s in (TaskStatus.COMPLETED, TaskStatus.FAILED)
            }
            for m in windows
        }
