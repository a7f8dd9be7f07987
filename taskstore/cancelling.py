"""Cancel as an operator asks for it: once is enough, and what went with it is named.

`taskstore cancel` and the dashboard's cancel share this. Cancelling a task that is
already cancelled is not an error: what the operator wants holds. The tasks that waited
for it, cancelled with it down the workflow, are those the same write cancelled.
"""

from __future__ import annotations

import dataclasses

from taskstore.errors import IllegalTransition
from taskstore.states import TaskStatus
from taskstore.store import TaskStore


@dataclasses.dataclass(frozen=True, slots=True)
class Cancelled:
    """What one cancel did."""

    status: TaskStatus
    already: bool  # it was cancelled before: nothing changed
    with_it: list[int]  # ids of the tasks that waited for it, cancelled with it


async def cancel_once(store: TaskStore, task_id: int) -> Cancelled:
    """Cancel `task_id`; a finished task other than a cancelled one is refused
    (`IllegalTransition`), an unknown one too (`TaskNotFound`)."""
    try:
        async with store.transaction() as conn:
            status, with_it = await store.tasks.cancel_reporting(conn, task_id)
    except IllegalTransition:
        if (await store.require(task_id)).status is not TaskStatus.CANCELLED:
            raise
        return Cancelled(TaskStatus.CANCELLED, already=True, with_it=[])
    return Cancelled(status, already=False, with_it=sorted(with_it))
