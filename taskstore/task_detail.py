"""What `taskstore show` and the dashboard's task page add to a task's row: its place in
its workflow (dependencies and dependents), its attempts log, and what holds it up."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from taskstore.standing import held_up

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore


#: the most tasks of a workflow the dashboard's task page lists (the nearest ones)
WORKFLOW_SHOWN = 200


@dataclasses.dataclass(frozen=True, slots=True)
class TaskLinks:
    """The tasks one task waits for, those waiting for it, and its attempts."""

    depends_on: list[int]
    dependents: list[int]
    attempts_log: list[dict[str, Any]]
    #: the whole workflow, in levels (a level's tasks wait only for earlier levels):
    #: [[{"id", "name", "status", "depends_on"}, ...], ...]; empty for a lone task
    workflow: list[list[dict[str, Any]]] = dataclasses.field(default_factory=list)
    #: dependencies that failed or were cancelled (the task cannot be retried alone)
    dead_dependencies: list[int] = dataclasses.field(default_factory=list)
    #: what holds up a task that waits to start (`taskstore.standing.held_up`)
    held_up: str | None = None

    def to_json(self) -> dict[str, Any]:
        log = [
            {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in entry.items()}
            for entry in self.attempts_log
        ]
        return {
            "depends_on": self.depends_on,
            "dependents": self.dependents,
            "attempts_log": log,
            "held_up": self.held_up,
        }

    @property
    def workflow_size(self) -> int:
        return sum(map(len, self.workflow))

    @property
    def workflow_cut(self) -> bool:
        """Has the workflow more than `WORKFLOW_SHOWN` tasks? (Then one more is listed.)"""
        return self.workflow_size > WORKFLOW_SHOWN


async def task_links(store: TaskStore, info: TaskInfo, *, graph: bool = False) -> TaskLinks:
    """The task's links and attempts; with `graph`, its whole workflow too (the dashboard)."""
    async with store.reading() as conn:
        depends_on = await store.tasks.dependencies(conn, info.id)
        dependents = await store.tasks.dependents(conn, info.id)
        linked = graph and bool(depends_on or dependents)
        # One past the cap tells a workflow of exactly WORKFLOW_SHOWN from a larger one.
        rows = await store.tasks.workflow(conn, info.id, WORKFLOW_SHOWN + 1) if linked else []
        dead = await store.tasks.dead_dependencies(conn, info.id) if depends_on else []
        log = await store.tasks.attempts_log(conn, info)
    held = await held_up(store, info)
    return TaskLinks(depends_on, dependents, log, _levels(rows), dead, held)


def _levels(rows: list[Any]) -> list[list[dict[str, Any]]]:
    """Tasks by level: a task's level is one past its deepest dependency's."""
    needs = {task_id: deps for task_id, _, _, deps in rows}
    level: dict[int, int] = {}

    def depth(task_id: int, path: frozenset[int] = frozenset()) -> int:
        if task_id not in level:
            parents = [d for d in needs.get(task_id, []) if d in needs and d not in path]
            level[task_id] = 1 + max((depth(d, path | {task_id}) for d in parents), default=-1)
        return level[task_id]

    out: list[list[dict[str, Any]]] = []
    for task_id, name, status, deps in rows:
        at = depth(task_id)
        out.extend([] for _ in range(at + 1 - len(out)))
        out[at].append({"id": task_id, "name": name, "status": status, "depends_on": deps})
    return out
