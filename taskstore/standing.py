"""Where an unfinished task stands: what `taskstore wait`'s timeout, `taskstore show` and
the dashboard's task page say holds it up ("it waits for task 4; task 4 is ready in queue
default, but no live worker serves the queue").

Cheap reads only (the first pending dependencies, one queue's settings row, the live
workers' registry), since `show` and the task page ask on every look.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from taskstore.records import unserved_reason
from taskstore.states import TaskStatus

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore

#: how far a chain of waiting tasks is followed to the one holding it up
CHAIN_FOLLOWED = 20
#: pending dependencies named (a fan-in may wait for thousands)
NAMED = 12
#: statuses of a task that waits to start
NOT_STARTED = (TaskStatus.CREATED, TaskStatus.NOT_FINISHED, TaskStatus.WAITING)


async def standing(store: TaskStore, info: TaskInfo) -> str:
    """A sentence on the task: it is running (...), it is ready, but ..., or for a waiting
    task, it waits for tasks 4 and 5; task 4 is ready, but ... (the first one down the chain)."""
    pending = await _pending(store, info)
    if not pending:
        return f"it {await _state(store, info)}"
    head = pending[0]
    for _ in range(CHAIN_FOLLOWED):
        further = await _pending(store, head)
        if not further:
            break
        head = further[0]
    if head.status is TaskStatus.WAITING:  # the chain goes on past what is followed
        down = f"task {head.id}, {CHAIN_FOLLOWED} down the chain, waits for others in turn"
        return f"it waits for {_listed(pending)}; {down}"
    return f"it waits for {_listed(pending)}; task {head.id} {await _state(store, head)}"


def _listed(tasks: list[TaskInfo]) -> str:
    """task 4 / tasks 4 and 5 / tasks 4, 5 and 6 / tasks 4, ..., 15 and more (of NAMED)."""
    ids = [str(t.id) for t in tasks]
    if len(ids) == 1:
        return f"task {ids[0]}"
    if len(ids) == NAMED:
        return f"tasks {', '.join(ids)} and more"
    return f"tasks {', '.join(ids[:-1])} and {ids[-1]}"


async def held_up(store: TaskStore, info: TaskInfo) -> str | None:
    """`standing` of a task that waits to start; None for one running or finished."""
    return await standing(store, info) if info.status in NOT_STARTED else None


async def _pending(store: TaskStore, info: TaskInfo) -> list[TaskInfo]:
    if info.status is not TaskStatus.WAITING:
        return []
    async with store.reading() as conn:
        return await store.tasks.pending_dependencies(conn, info.id, NAMED)


async def _state(store: TaskStore, info: TaskInfo) -> str:
    """What holds up one task that is not waiting for another ("is ready, but ...")."""
    if info.status is TaskStatus.RUNNING:
        return f"is running (attempt {info.attempts}, on worker {info.worker_id})"
    if info.status not in NOT_STARTED:
        return f"is {info.status.value}"
    if info.run_at > dt.datetime.now(dt.UTC):
        return f"is scheduled for {info.run_at.isoformat(timespec='seconds')}"
    async with store.reading() as conn:
        settings = await store.flow.get(conn, info.queue)
        queues, names = await store.worker_registry.served(conn)
    if settings is not None and settings.paused:
        return f"is ready, but its queue {info.queue} is paused"
    reason = unserved_reason(info.queue, info.name, queues, names)
    if reason is not None:
        return f"is ready in queue {info.queue}, but {reason}"
    return "is ready, not yet claimed"
