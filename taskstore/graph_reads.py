"""A task's place in its workflow, as the CLI and the dashboard show it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskstore.store import TaskStore


@dataclasses.dataclass(frozen=True, slots=True)
class TaskLinks:
    """The tasks one task waits for, and those waiting for it."""

    depends_on: list[int]
    dependents: list[int]


async def task_links(store: TaskStore, task_id: int) -> TaskLinks:
    async with store.reading() as conn:
        return TaskLinks(
            await store.tasks.dependencies(conn, task_id),
            await store.tasks.dependents(conn, task_id),
        )
