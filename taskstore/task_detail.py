"""What `taskstore show` and the dashboard's task page add to a task's row: its place in
its workflow (dependencies and dependents) and its attempts log."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore


@dataclasses.dataclass(frozen=True, slots=True)
class TaskLinks:
    """The tasks one task waits for, those waiting for it, and its attempts."""

    depends_on: list[int]
    dependents: list[int]
    attempts_log: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        log = [
            {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in entry.items()}
            for entry in self.attempts_log
        ]
        return {"depends_on": self.depends_on, "dependents": self.dependents, "attempts_log": log}


async def task_links(store: TaskStore, info: TaskInfo) -> TaskLinks:
    async with store.reading() as conn:
        return TaskLinks(
            await store.tasks.dependencies(conn, info.id),
            await store.tasks.dependents(conn, info.id),
            await store.tasks.attempts_log(conn, info),
        )
