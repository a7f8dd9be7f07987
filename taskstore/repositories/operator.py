"""Operator statements: cancel, retry (one or every failed task), purge."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from taskstore.backends import Backend
from taskstore.errors import IllegalTransition
from taskstore.models.task import status_in
from taskstore.repositories.history import HistoryStatements
from taskstore.repositories.task_table import Executor, T, status_literal
from taskstore.repositories.workflow import D, WorkflowStatements
from taskstore.states import ACTIVE, FINISHED, Event, TaskStatus, ordered, target
from taskstore.validation import check_task_id

_STOPPED = {"type": "Cancelled", "message": "cancelled by an operator while it ran"}


class OperatorStatements(WorkflowStatements, HistoryStatements):
    """What `taskstore cancel|retry|purge` and the dashboard's actions do."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._requeue_values = {
            "attempts": 0,
            "run_at": self._now,
            "finished_at": None,
            "worker_id": None,
            "result": None,
            "progress": None,
        }

    async def cancel(self, conn: Executor, task_id: int) -> TaskStatus:
        """Cancel a task that has not finished. A running one's worker notices at its next
        heartbeat and stops the handler; its late completion is refused by the fence."""
        return (await self.cancel_reporting(conn, task_id))[0]

    async def cancel_reporting(self, conn: Executor, task_id: int) -> tuple[TaskStatus, list[int]]:
        """`cancel`, and the ids of the tasks that waited for it, cancelled with it."""
        check_task_id(task_id)
        before = select(T.c.status, T.c.worker_id).where(T.c.id == task_id)
        was = (await conn.execute(before)).first()
        values = {"finished_at": self._now, "lease_expires_at": None}
        status = await self._transition(conn, Event.CANCEL, task_id, values)
        if was is not None and was.status == TaskStatus.RUNNING.value:
            # The attempt it stopped leaves the row: keep it in the attempts log.
            await self.record_attempts(
                conn, [task_id], worker_id=was.worker_id, outcome="cancelled", error=_STOPPED
            )
        return status, await self.after_failure(conn, [task_id])

    async def requeue(self, conn: Executor, task_id: int) -> TaskStatus:
        """Operator retry of a failed or cancelled task: a fresh set of attempts, due now,
        or waiting again while a dependency has not completed. A dependency that failed or
        was cancelled refuses it: the task would never run (retry that one instead)."""
        check_task_id(task_id)
        open_deps = await self._open_dependencies(conn, task_id)
        event = Event.WAIT_AGAIN if open_deps else Event.REQUEUE
        values = {**self._requeue_values, "error": None} if open_deps else self._requeue_values
        try:
            return await self._transition(conn, event, task_id, values)
        except IntegrityError:
            raise IllegalTransition(
                f"cannot retry task {task_id}: another live task holds its dedup key"
            ) from None

    async def _open_dependencies(self, conn: Executor, task_id: int) -> list[int]:
        """The task's dependencies not completed yet, locked so that none completes
        unseen (its completion would not wake a task that was not waiting yet)."""
        deps = (
            select(T.c.id, T.c.status)
            .join(D, D.c.depends_on_id == T.c.id)
            .where(D.c.task_id == task_id)
            .order_by(T.c.id)
            .with_for_update(read=True, of=T)
        )
        rows = [(dep, TaskStatus(status)) for dep, status in (await conn.execute(deps)).all()]
        for dep, status in rows:
            if status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                raise IllegalTransition(
                    f"cannot retry task {task_id}: its dependency {dep} is {status.value}"
                    f" (retry task {dep} with its dependents instead)"
                )
        return [dep for dep, status in rows if status is not TaskStatus.COMPLETED]

    def _failed_where(self, queue: str | None, name: str | None) -> Any:
        live = T.alias("live")
        key_free = or_(
            T.c.dedup_key.is_(None),
            ~exists().where(live.c.dedup_key == T.c.dedup_key, live.c.status.in_(ordered(ACTIVE))),
        )
        where = [T.c.status == TaskStatus.FAILED.value, key_free]
        if queue is not None:
            where.append(T.c.queue == queue)
        if name is not None:
            where.append(T.c.name == name)
        return and_(*where)

    async def count_failed(self, conn: Executor, *, queue: str | None, name: str | None) -> int:
        stmt = select(func.count()).where(self._failed_where(queue, name))
        return (await conn.execute(stmt)).scalar_one()

    async def requeue_failed(
        self, conn: Executor, *, queue: str | None, name: str | None, limit: int = 5000
    ) -> int:
        """Operator retry of up to `limit` failed tasks (skipping any whose dedup key a
        live task holds); returns how many were requeued."""
        picked = select(T.c.id).where(self._failed_where(queue, name)).limit(limit)
        stmt = (
            update(T)
            .where(T.c.id.in_(picked.scalar_subquery()))
            .values(
                status=status_literal(target(Event.REQUEUE)),
                updated_at=self._now,
                **self._requeue_values,
            )
        )
        return (await conn.execute(stmt)).rowcount or 0

    def _purgeable(self, older_than_seconds: float, statuses: frozenset[TaskStatus]) -> Any:
        if not statuses <= FINISHED:
            raise IllegalTransition("only finished tasks (completed, failed, cancelled) are purged")
        cutoff = self.backend.now_plus(literal(-float(older_than_seconds), Float))
        return and_(
            status_in(FINISHED),  # lets the planner use the finished-rows index
            T.c.status.in_([s.value for s in statuses]),
            T.c.finished_at < cutoff,
            # A task that a task not yet completed depends on keeps its result for it.
            or_(T.c.watched.is_(False), ~exists().where(*self._still_needed_by(T.c.id))),
        )

    async def count_purgeable(
        self,
        conn: Executor,
        *,
        older_than_seconds: float,
        statuses: frozenset[TaskStatus] = FINISHED,
    ) -> int:
        stmt = select(func.count()).where(self._purgeable(older_than_seconds, statuses))
        return (await conn.execute(stmt)).scalar_one()

    async def purge(
        self,
        conn: Executor,
        *,
        older_than_seconds: float,
        statuses: frozenset[TaskStatus] = FINISHED,
        limit: int = 5000,
    ) -> int:
        """Delete up to `limit` finished tasks that ended more than the given age ago."""
        picked = select(T.c.id).where(self._purgeable(older_than_seconds, statuses)).limit(limit)
        result = await conn.execute(delete(T).where(T.c.id.in_(picked.scalar_subquery())))
        return result.rowcount or 0
