"""`TaskEntity`: one row per task; the table *is* the queue.

The indexes are shaped by the queries that run hot:
- claim: a partial index over claimable rows only, in claim order, so finished history
  never sits in the claimer's way; a second, tiny one over the orphaned rows among them
  (rescued from a dead worker, rerun one at a time) finds those without walking the queue;
- heartbeat / rescue: one partial index over leased rows only (a handful at any time; the
  rescuer scans all of them, which is cheaper than keeping a second index on every claim);
- dedup: a unique partial index, so "one live task per key" is enforced by the database;
- retention: a partial index over finished rows by finish time.
Ids are never reused, on SQLite too (AUTOINCREMENT), so an id always names one task.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base, JSONDocument
from taskstore.models.status_sql import for_sqlite, in_list, status_in
from taskstore.states import ACTIVE, CLAIMABLE, FINISHED, LEASED, TaskStatus

TaskId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: alias of the rowid


def orphaned() -> Any:
    """Tasks rescued after their worker died: ``not_finished`` with nobody's id on them (a
    worker that cuts a task off at shutdown leaves its own). One of them may be what killed
    that worker, so each runs alone. A literal predicate, like `status_in`."""
    return text(in_list(frozenset({TaskStatus.NOT_FINISHED})) + " AND worker_id IS NULL")


def keyed_claimable() -> Any:
    """Claimable tasks with a concurrency key: under the queue's key limit, a key's tasks
    start in (priority, id) order, so the keyed claim reads each key's first few here.
    A literal predicate, like `status_in`."""
    return text(in_list(CLAIMABLE) + " AND concurrency_key IS NOT NULL")


class TaskEntity(Base):
    """A unit of work: a registered handler's name, a JSON payload and its lifecycle."""

    __tablename__ = "taskstore_tasks"

    id: Mapped[int] = mapped_column(TaskId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(64), server_default="default")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16), server_default=TaskStatus.CREATED.value)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Every claim counts, and nothing sets it back (an operator retry resets `attempts`):
    # with `worker_id`, it fences a worker's writes, so no two attempts share a fence.
    claims: Mapped[int] = mapped_column(Integer, server_default="0")
    # NULL means "whatever the handler's @task(max_attempts=...) says".
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None]
    progress: Mapped[float | None] = mapped_column(Float)
    result: Mapped[Any | None] = mapped_column(JSONDocument)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    #: tasks sharing a key run at most the queue's `key_concurrency` at once
    concurrency_key: Mapped[str | None] = mapped_column(String(255))
    #: the producer's W3C traceparent (OpenTelemetry), continued by each attempt's span
    trace_context: Mapped[str | None] = mapped_column(String(512))
    #: a task depends on this one or a caller waits for it: its ending is announced (the
    #: dependents settled, waiters notified); other endings skip that work
    watched: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    # AUTOINCREMENT: SQLite would otherwise hand out max(id) + 1, giving a purged task's id
    # to a new one (PostgreSQL's sequence never goes back).
    __table_args__ = (
        CheckConstraint(status_in(frozenset(TaskStatus)), name="status_valid"),
        {"sqlite_autoincrement": True},
    )

    def __repr__(self) -> str:
        return f"<TaskEntity id={self.id} name={self.name!r} status={self.status}>"


def _in_claim_order(name: str, where: Any) -> Index:
    """A partial index in the order claims take rows: queue, priority, due time, id."""
    columns = (TaskEntity.queue, TaskEntity.priority.desc(), TaskEntity.run_at, TaskEntity.id)
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


_in_claim_order("ix_taskstore_tasks_claim", status_in(CLAIMABLE))
_in_claim_order("ix_taskstore_tasks_orphaned", orphaned())
_leased_where = status_in(LEASED)
Index(
    "ix_taskstore_tasks_worker",
    TaskEntity.worker_id,
    postgresql_where=_leased_where,
    sqlite_where=_leased_where,
)
# Flow control counts what runs per queue (and per concurrency key) at every limited claim.
Index(
    "ix_taskstore_tasks_running",
    TaskEntity.queue,
    TaskEntity.concurrency_key,
    postgresql_where=_leased_where,
    sqlite_where=_leased_where,
)
# The keyed claim reads, per key, its first tasks in the key's own order.
Index(
    "ix_taskstore_tasks_key_order",
    TaskEntity.queue,
    TaskEntity.concurrency_key,
    TaskEntity.priority.desc(),
    TaskEntity.id,
    postgresql_where=keyed_claimable(),
    sqlite_where=keyed_claimable(),
)
# Settling sweeps look at waiting tasks only (few, next to the finished history).
_waiting_where = status_in(frozenset({TaskStatus.WAITING}))
Index(
    "ix_taskstore_tasks_waiting",
    TaskEntity.id,
    postgresql_where=_waiting_where,
    sqlite_where=_waiting_where,
)
Index(
    "uq_taskstore_tasks_dedup_key",
    TaskEntity.dedup_key,
    unique=True,
    postgresql_where=text("dedup_key IS NOT NULL AND " + in_list(ACTIVE)),
    sqlite_where=text("dedup_key IS NOT NULL AND " + for_sqlite(ACTIVE)),
)
_finished_where = status_in(FINISHED)
Index(
    "ix_taskstore_tasks_finished",
    TaskEntity.finished_at,
    postgresql_where=_finished_where,
    sqlite_where=_finished_where,
)
