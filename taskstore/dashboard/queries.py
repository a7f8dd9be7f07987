"""The task list's own reads: how many tasks match, and the page above a given id.

`TaskStore.list` pages newest first from an upper bound; the dashboard also pages back
(towards newer tasks) and shows where a page sits among all matching tasks. Both are plain
Core statements on the task table, the same on every database, run in one read-only
transaction of the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select, true

from taskstore.dashboard.params import TaskFilter
from taskstore.models.task import TaskEntity
from taskstore.records import TaskInfo
from taskstore.store import TaskStore

T = TaskEntity.__table__


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """Tasks matching a filter: all of them, and those newer than a page's first row."""

    total: int
    newer: int


def _matching(filters: TaskFilter) -> ColumnElement[bool]:
    """The filter's conditions (status, queue, name), without its page bounds."""
    conditions = [
        column == value
        for column, value in (
            (T.c.status, filters.status),
            (T.c.queue, filters.queue),
            (T.c.name, filters.name),
        )
        if value is not None
    ]
    return and_(true(), *conditions)


def _above(filters: TaskFilter, after_id: int) -> Select[Any]:
    """The `limit + 1` matching tasks just above `after_id`, oldest first."""
    stmt = select(*T.c).where(_matching(filters), T.c.id > after_id)
    return stmt.order_by(T.c.id.asc()).limit(filters.limit + 1)


async def page_above(store: TaskStore, filters: TaskFilter, after_id: int) -> list[TaskInfo]:
    """Up to `limit + 1` tasks newer than `after_id`, oldest first."""
    async with store.reading() as conn:
        rows = (await conn.execute(_above(filters, after_id))).all()
    return [TaskInfo.from_row(row) for row in rows]


async def counts(store: TaskStore, filters: TaskFilter, newer_than: int | None) -> Counts:
    """How many tasks match `filters`, and how many of them have an id above `newer_than`."""
    newer = func.count(case((T.c.id > newer_than, 1))) if newer_than is not None else literal(0)
    stmt = select(func.count(), newer).select_from(T).where(_matching(filters))
    async with store.reading() as conn:
        total, above = (await conn.execute(stmt)).one()
    return Counts(total=total, newer=above)
