"""Attempt history: rows for the attempts that did not complete, and the attempts log.

An attempt that fails, is retried, loses its lease or is cut off at shutdown leaves a
`TaskAttempt` row, written in the same transaction as the ending itself. A completing
attempt writes none: its start, end and worker are on the task's row, which the log
reads as the last entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, bindparam, insert, literal, select

from taskstore.models.attempt import TaskAttempt
from taskstore.records import TaskInfo
from taskstore.repositories.task_table import Executor, T, TaskStatements
from taskstore.states import TaskStatus

A = TaskAttempt.__table__
_COLUMNS = [
    "task_id",
    "attempt",
    "worker_id",
    "started_at",
    "finished_at",
    "outcome",
    "error_type",
    "error_message",
]
_SHOWN = _COLUMNS[1:]  # all but the task id
#: statuses whose current attempt is on the task row (not in the history)
_ON_ROW = {TaskStatus.RUNNING: "running", TaskStatus.COMPLETED: "completed"}


class HistoryStatements(TaskStatements):
    """Writes and reads of `taskstore_task_attempts`."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        # The attempt's start comes from the task row (an ending leaves started_at alone).
        rows = select(
            T.c.id,
            # The row's attempts after the ending: one less than the attempt if uncharged.
            T.c.attempts + bindparam("p_uncharged", type_=Integer),
            bindparam("p_worker_id"),
            T.c.started_at,
            self._now,
            bindparam("p_outcome"),
            bindparam("p_error_type"),
            bindparam("p_error_message"),
        ).where(T.c.id.in_(bindparam("p_ids", expanding=True)))
        self._record = insert(A).from_select(_COLUMNS, rows)
        self._rescued = insert(A).from_select(
            _COLUMNS,
            select(
                T.c.id,
                T.c.attempts,
                bindparam("p_worker_id"),
                T.c.started_at,
                self._now,
                literal("lease_expired"),
                literal("LeaseExpired"),
                literal("the worker stopped renewing its lease (crashed or cut off)"),
            ).where(T.c.id.in_(bindparam("p_ids", expanding=True))),
        )

    async def record_attempts(
        self,
        conn: Executor,
        ids: Sequence[int],
        *,
        worker_id: str | None,
        outcome: str,
        error: dict[str, Any] | None = None,
        charged: bool = True,
    ) -> None:
        """History rows for attempts that just ended without completing (`charged`: the
        ending counted the attempt against the task's budget)."""
        if not ids:
            return
        error = error or {}
        params = {
            "p_ids": list(ids),
            "p_uncharged": 0 if charged else 1,
            "p_worker_id": worker_id,
            "p_outcome": outcome,
            "p_error_type": _text(error.get("type"), 200),
            "p_error_message": _text(error.get("message"), 2000),
        }
        await conn.execute(self._record, params)

    async def record_rescued(self, conn: Executor, workers: Mapping[int, str | None]) -> None:
        """History rows for rescued attempts: task id -> the worker that lost the lease."""
        by_worker: dict[str | None, list[int]] = {}
        for task_id, worker_id in sorted(workers.items()):
            by_worker.setdefault(worker_id, []).append(task_id)
        for worker_id, ids in by_worker.items():
            await conn.execute(self._rescued, {"p_ids": ids, "p_worker_id": worker_id})

    async def attempts_log(self, conn: Executor, info: TaskInfo) -> list[dict[str, Any]]:
        """Every attempt of the task, oldest first: the history rows, then the attempt on
        the task's row when it is running or completed. Each entry's `number` counts the
        task's runs (1, 2, ...); its `attempt` is its place in the budget of attempts it
        ran under, which repeats after an uncharged ending or an operator's retry."""
        stmt = select(*(A.c[name] for name in _SHOWN)).where(A.c.task_id == info.id)
        log = [dict(row._mapping) for row in await conn.execute(stmt.order_by(A.c.id))]
        if info.status in _ON_ROW and info.started_at is not None:
            log.append(
                {
                    "attempt": info.attempts,
                    "worker_id": info.worker_id,
                    "started_at": info.started_at,
                    "finished_at": info.finished_at,
                    "outcome": _ON_ROW[info.status],
                    "error_type": None,
                    "error_message": None,
                }
            )
        return [{"number": number, **entry} for number, entry in enumerate(log, 1)]


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]
