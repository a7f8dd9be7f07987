"""What every statement on the task table shares.

The table, status literals, the one description of a new task's columns (used by the
batched insert, the keyed insert and their parameters alike), the columns of a batch of
fenced endings, and `TaskStatements`, the base that holds a backend and its clock and
applies transitions from `taskstore.states.TRANSITIONS`; `run_blocking` runs its
statements on a blocking connection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    bindparam,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskstore.backends import Backend
from taskstore.errors import IllegalTransition, LeaseLost, TaskNotFound
from taskstore.models.base import UTCDateTime
from taskstore.models.task import TaskEntity, status_in
from taskstore.records import NewTask
from taskstore.states import Event, TaskStatus, sources, target

Executor = AsyncConnection | AsyncSession
T = TaskEntity.__table__
R = TypeVar("R")


def run_blocking(coro: Coroutine[Any, Any, R], connection: str) -> R:
    """Run a repository coroutine whose executor blocks (a producer's own connection):
    every await returns at once, so it never suspends and needs no event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(f"an enqueue on {connection} tried to wait on an event loop")


def status_literal(value: TaskStatus) -> Any:
    """A status as an SQL literal: partial-index predicates must match it as written."""
    return literal(value.value)


@dataclasses.dataclass(frozen=True, slots=True)
class NewColumn:
    """One value a new task carries into its INSERT."""

    name: str
    type: Any  # as bound in a batch (arrays / JSON)
    value: Callable[[NewTask], Any]
    bind_type: Any = None  # as bound alone, where it differs


NEW_TASK: tuple[NewColumn, ...] = (
    NewColumn("name", String(), lambda t: t.name),
    NewColumn("queue", String(), lambda t: t.queue),
    NewColumn("payload", Text(), lambda t: t.payload_json),
    NewColumn("priority", Integer(), lambda t: t.priority),
    NewColumn("max_attempts", Integer(), lambda t: t.max_attempts),
    NewColumn("run_at", DateTime(timezone=True), lambda t: t.run_at, UTCDateTime()),
    NewColumn("delay", Float(), lambda t: t.delay_seconds or None),  # no delay: due now
    NewColumn("concurrency_key", String(), lambda t: t.concurrency_key),
    NewColumn("trace_context", String(), lambda t: t.trace_context),
)
#: (name, type) pairs of a batch of new tasks, for `Backend.batch_source`
NEW_TASK_BATCH: list[tuple[str, Any]] = [(c.name, c.type) for c in NEW_TASK]
#: (name, type) pairs of a batch of fenced endings: (task id, fence, JSON document)
ENDING_BATCH: list[tuple[str, Any]] = [
    ("id", BigInteger()),
    ("fence", Integer()),
    ("doc", Text()),
]


def new_row(task: NewTask) -> tuple[Any, ...]:
    """A new task's values in `NEW_TASK` order (one row of a batch)."""
    return tuple(column.value(task) for column in NEW_TASK)


def new_params(task: NewTask) -> dict[str, Any]:
    """A new task's values bound by name (`new_task_values` over `bound_new_task()`)."""
    params = {f"p_{column.name}": column.value(task) for column in NEW_TASK}
    params["p_dedup_key"] = task.dedup_key
    return params


def bound_new_task() -> dict[str, Any]:
    """The `NEW_TASK` values as named bind parameters, for a statement of single rows."""
    return {c.name: bindparam(f"p_{c.name}", type_=c.bind_type or c.type) for c in NEW_TASK}


def new_task_values(source: Mapping[str, Any], backend: Backend) -> dict[str, Any]:
    """Table column -> expression for a new task whose values come from `source`
    (bind parameters or a batch's columns); the database clock fills the times."""
    now = backend.now()
    return {
        "name": source["name"],
        "queue": source["queue"],
        "payload": backend.json_from_text(source["payload"]),
        "priority": source["priority"],
        "max_attempts": source["max_attempts"],
        "run_at": func.coalesce(source["run_at"], backend.now_plus(source["delay"]), now),
        "created_at": now,
        "updated_at": now,
        "concurrency_key": source["concurrency_key"],
        "trace_context": source["trace_context"],
    }


class TaskStatements:
    """Base of the task statement groups: the backend, its clock, fenced transitions."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._now = backend.now()

    def _batch_params(self, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
        return self.backend.batch_values("batch", ENDING_BATCH, rows)

    async def _transition(
        self,
        conn: Executor,
        event: Event,
        task_id: int,
        values: dict[str, Any],
        fence: Any = None,
    ) -> TaskStatus:
        """Apply `event` to one task (matching `fence` too, if given) or raise why not."""
        where = [T.c.id == task_id, status_in(sources(event))]
        if fence is not None:
            where.append(fence)
        stmt = (
            update(T)
            .where(*where)
            .values(status=status_literal(target(event)), updated_at=self._now, **values)
            .returning(T.c.id)
        )
        if (await conn.execute(stmt)).first() is None:
            await self._explain_refusal(conn, event, task_id, fenced=fence is not None)
        return target(event)

    async def _explain_refusal(
        self, conn: Executor, event: Event, task_id: int, *, fenced: bool
    ) -> None:
        row = (await conn.execute(select(T.c.status).where(T.c.id == task_id))).first()
        if row is None:
            raise TaskNotFound(f"no task with id {task_id}")
        if fenced and row.status in sources(event):
            raise LeaseLost(f"task {task_id}: this worker no longer owns the attempt")
        if fenced:
            raise LeaseLost(f"task {task_id} is {row.status} now; this attempt's result is void")
        if event in (Event.REQUEUE, Event.WAIT_AGAIN):
            # Say what the operator asked for (retry), and what it needs.
            raise IllegalTransition(
                f"cannot retry task {task_id}: it is {row.status}"
                " (only a failed or cancelled task can be retried)"
            )
        raise IllegalTransition(f"cannot {event.value} task {task_id}: it is {row.status}")
