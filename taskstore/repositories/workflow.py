"""Workflow statements: dependency edges, and what a task's ending does to its dependents.

- Enqueue (`link`): the dependencies named by id are locked and marked `watched`
  first, so a dependency's ending, however it races the enqueue, sees the new edges; a
  task with a dependency not yet completed starts ``waiting``.
- Completion (`settle`): waiting dependents whose every dependency has completed become
  ``created``. It only looks (each check is idempotent), so running it again, or from the
  maintenance sweep (`settle_all`), never promotes early and never twice.
- Failure or cancellation (`cancel_dependents`): waiting dependents are cancelled with a
  ``DependencyFailed`` error naming the dependency, transitively down the graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update

from taskstore.errors import InvalidInput
from taskstore.models.dependency import TaskDependency
from taskstore.models.task import status_in
from taskstore.records import TaskInfo
from taskstore.repositories.task_table import Executor, T, TaskStatements, status_literal
from taskstore.states import Event, TaskStatus, sources, target

D = TaskDependency.__table__
_DEAD = (TaskStatus.FAILED, TaskStatus.CANCELLED)
_WAITING = frozenset({TaskStatus.WAITING})


class WorkflowStatements(TaskStatements):
    """Reads and writes of `taskstore_task_deps` and of the tasks waiting on them."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._mark_parents = (
            update(T)
            .where(T.c.id.in_(bindparam("p_ids", expanding=True)))
            .values(watched=True)
            .returning(T.c.id, T.c.status)
        )
        parent = T.alias("parent")
        unmet = exists().where(
            D.c.task_id == T.c.id,
            parent.c.id == D.c.depends_on_id,
            parent.c.status != TaskStatus.COMPLETED.value,
        )
        ready = [status_in(sources(Event.READY)), ~unmet]
        self._promote = self._build_promote(
            [*ready, T.c.id.in_(self._dependents_of(bindparam("p_ids", expanding=True)))]
        )
        self._promote_all = self._build_promote(ready)
        waiting = T.alias("waiting")
        self._dead_edges = (
            select(D.c.task_id, D.c.depends_on_id, parent.c.name, parent.c.status)
            .join(waiting, waiting.c.id == D.c.task_id)
            .join(parent, parent.c.id == D.c.depends_on_id)
            .where(
                D.c.depends_on_id.in_(bindparam("p_ids", expanding=True)),
                waiting.c.status == TaskStatus.WAITING.value,
            )
            .order_by(D.c.task_id, D.c.depends_on_id)
        )
        self._dead_with_waiters = (
            select(D.c.depends_on_id)
            .distinct()
            .join(waiting, waiting.c.id == D.c.task_id)
            .join(parent, parent.c.id == D.c.depends_on_id)
            .where(
                waiting.c.status == TaskStatus.WAITING.value,
                parent.c.status.in_([s.value for s in _DEAD]),
            )
        )
        self._cancel_waiting = (
            update(T)
            .where(T.c.id == bindparam("p_id"), status_in(_WAITING))
            .values(
                status=status_literal(target(Event.CANCEL)),
                error=bindparam("p_error", type_=T.c.error.type),
                finished_at=self._now,
                updated_at=self._now,
            )
            .returning(T.c.id)
        )

    @staticmethod
    def _still_needed_by(task_id: Any) -> list[Any]:
        """Conditions of an EXISTS: a task that has not completed depends on `task_id`.
        Not only a waiting one: a dependent reads its dependencies' results when it runs,
        which may be long after they completed (scheduled later, a paused queue, a
        backlog), and a failed or cancelled one may be retried."""
        dependent = T.alias("dependent")
        return [
            D.c.depends_on_id == task_id,
            dependent.c.id == D.c.task_id,
            dependent.c.status != TaskStatus.COMPLETED.value,
        ]

    @staticmethod
    def _dependents_of(ids: Any) -> Any:
        return select(D.c.task_id).where(D.c.depends_on_id.in_(ids))

    def _build_promote(self, where: list[Any]) -> Any:
        return (
            update(T)
            .where(*where)
            .values(status=status_literal(target(Event.READY)), updated_at=self._now)
            .returning(T.c.id, T.c.queue)
        )

    # ------------------------------------------------------------------ enqueue
    async def mark_dependencies(self, conn: Executor, ids: Iterable[int]) -> dict[int, TaskStatus]:
        """Mark the existing tasks of `ids` as having dependents (locking them until
        `conn` commits); their statuses, by id (one that does not exist is left out)."""
        found: dict[int, TaskStatus] = {}
        for part in _chunks(sorted(ids)):  # PostgreSQL takes at most 32,767 parameters
            rows = await conn.execute(self._mark_parents, {"p_ids": part})
            found.update((task_id, TaskStatus(status)) for task_id, status in rows.all())
        return found

    async def lock_dependencies(
        self, conn: Executor, ids: Sequence[int], marked: Mapping[int, TaskStatus] | None = None
    ) -> set[int]:
        """Lock the existing tasks named as dependencies and mark them as having
        dependents (those in `marked` were, apart); returns those not completed yet. One
        that does not exist, failed or was cancelled is refused (nothing written: the
        caller's transaction rolls back)."""
        if not ids:
            return set()
        found = dict(marked or {})
        found.update(await self.mark_dependencies(conn, set(ids) - set(found)))
        missing = sorted(set(ids) - set(found))
        if missing:
            raise InvalidInput(f"depends_on names no task: {', '.join(map(str, missing))}")
        for task_id, status in sorted(found.items()):
            if status in _DEAD:
                raise InvalidInput(
                    f"dependency {task_id} is {status.value}: a task waiting for it would never run"
                )
        return {task_id for task_id, status in found.items() if status != TaskStatus.COMPLETED}

    async def link(
        self,
        conn: Executor,
        edges: Sequence[tuple[int, int]],
        new_parents: Iterable[int],
        waiting: Iterable[int],
    ) -> None:
        """Write (task, dependency) edges, mark `new_parents` (tasks of this batch others
        depend on) as having dependents, and make `waiting` wait. Dependencies from
        earlier calls were marked by `lock_dependencies`."""
        rows = [{"task_id": task, "depends_on_id": dep} for task, dep in edges]
        for part in _chunks(rows):
            await conn.execute(insert(D), part)
        for part in _chunks(sorted(set(new_parents))):
            await conn.execute(update(T).where(T.c.id.in_(part)).values(watched=True))
        for part in _chunks(sorted(set(waiting))):
            await conn.execute(
                update(T)
                .where(T.c.id.in_(part))
                .values(status=TaskStatus.WAITING.value, updated_at=self._now)
            )

    # ------------------------------------------------------------------ endings
    async def after_completion(self, conn: Executor, watched: Sequence[int]) -> None:
        """Watched tasks completed: promote their ready dependents, wake their waiters."""
        if watched:
            await self.settle(conn, watched)
            await self.backend.announce_endings(conn, list(watched))

    async def after_failure(self, conn: Executor, ended: Sequence[int]) -> list[int]:
        """Tasks failed or were cancelled: cancel what waits on them, wake waiters.
        Returns the ids cancelled with them."""
        if not ended:
            return []
        cancelled = await self.cancel_dependents(conn, ended)
        await self.backend.announce_endings(conn, [*ended, *cancelled])
        return cancelled

    async def settle(self, conn: Executor, finished: Sequence[int]) -> list[int]:
        """After `finished` completed: promote their dependents that wait for nothing
        more. Returns the ids promoted (their queues are notified)."""
        if not finished:
            return []
        rows = (await conn.execute(self._promote, {"p_ids": list(finished)})).all()
        await self._wake(conn, rows)
        return [row[0] for row in rows]

    async def settle_all(self, conn: Executor) -> list[int]:
        """Promote every waiting task whose dependencies have all completed, and cancel
        every one with a dependency that failed or was cancelled: a sweep that repairs
        what an interrupted ending left undone, or an ending that raced an enqueue whose
        edges it could not see yet. Returns the ids promoted."""
        rows = (await conn.execute(self._promote_all)).all()
        await self._wake(conn, rows)
        dead = list((await conn.execute(self._dead_with_waiters)).scalars())
        if dead:
            cancelled = await self.cancel_dependents(conn, dead)
            await self.backend.announce_endings(conn, cancelled)
        return [row[0] for row in rows]

    async def _wake(self, conn: Executor, rows: Sequence[Any]) -> None:
        if rows:
            await self.backend.notify(conn, sorted({row[1] for row in rows}))

    async def cancel_dependents(self, conn: Executor, ended: Sequence[int]) -> list[int]:
        """`ended` failed or were cancelled: cancel every task waiting on them, and on
        those, down the graph. Returns the ids cancelled."""
        cancelled: list[int] = []
        frontier = list(ended)
        while frontier:
            rows = (await conn.execute(self._dead_edges, {"p_ids": frontier})).all()
            first: dict[int, tuple[int, str, str]] = {}
            for task_id, dep_id, dep_name, dep_status in rows:
                first.setdefault(task_id, (dep_id, dep_name, dep_status))
            frontier = []
            for task_id, dead in first.items():
                params = {"p_id": task_id, "p_error": _dependency_failed(*dead)}
                if (await conn.execute(self._cancel_waiting, params)).first() is not None:
                    frontier.append(task_id)
            cancelled += frontier
        return cancelled

    async def watch(self, conn: Executor, task_id: int) -> TaskStatus | None:
        """Mark a task as waited for (its ending will be announced); its status now, or
        None if there is no such task."""
        stmt = update(T).where(T.c.id == task_id).values(watched=True).returning(T.c.status)
        status = (await conn.execute(stmt)).scalar_one_or_none()
        return None if status is None else TaskStatus(status)

    async def revive_dependents(self, conn: Executor, task_id: int) -> list[int]:
        """After an operator retry of `task_id`: the tasks it got cancelled (a
        ``DependencyFailed`` error), down the graph, wait again, except those that still
        wait for another failed or cancelled task: their error, if it named a task
        retried now, names that other one instead. Returns the ids that wait again."""
        alive, revived, frontier = {task_id}, [], [task_id]
        while frontier:
            candidates = await conn.execute(
                select(T.c.id, T.c.error)
                .join(D, D.c.task_id == T.c.id)
                .where(D.c.depends_on_id.in_(frontier), T.c.status == TaskStatus.CANCELLED.value)
            )
            frontier = []
            for candidate, error in candidates.all():
                if not isinstance(error, dict) or error.get("type") != "DependencyFailed":
                    continue  # cancelled for its own reasons: not ours to undo
                holding = await self._dead_left(conn, candidate, alive)
                if holding is None:
                    frontier.append(candidate)
                elif error.get("dependency") in alive:  # its error named one retried now
                    named = (
                        update(T)
                        .where(T.c.id == candidate)
                        .values(error=_dependency_failed(*holding), updated_at=self._now)
                    )
                    await conn.execute(named)
            if frontier:
                await conn.execute(
                    update(T)
                    .where(T.c.id.in_(frontier), status_in(sources(Event.WAIT_AGAIN)))
                    .values(
                        status=status_literal(target(Event.WAIT_AGAIN)),
                        error=None,
                        finished_at=None,
                        updated_at=self._now,
                    )
                )
                alive.update(frontier)
                revived += frontier
        return revived

    async def _dead_left(
        self, conn: Executor, task_id: int, alive: set[int]
    ) -> tuple[int, str, str] | None:
        """The task's first failed or cancelled dependency not among `alive` (retried):
        (id, name, status), or None if there is none."""
        rows = await conn.execute(
            select(T.c.id, T.c.name, T.c.status)
            .join(D, D.c.depends_on_id == T.c.id)
            .where(D.c.task_id == task_id, T.c.status.in_([s.value for s in _DEAD]))
            .order_by(T.c.id)
        )
        return next((tuple(row) for row in rows.all() if row[0] not in alive), None)

    # -------------------------------------------------------------------- reads
    async def dependencies(self, conn: Executor, task_id: int) -> list[int]:
        stmt = select(D.c.depends_on_id).where(D.c.task_id == task_id).order_by(D.c.depends_on_id)
        return list((await conn.execute(stmt)).scalars())

    async def dead_dependencies(self, conn: Executor, task_id: int) -> list[int]:
        """The task's dependencies that failed or were cancelled: while there is one,
        the task cannot be retried on its own."""
        stmt = (
            select(T.c.id)
            .join(D, D.c.depends_on_id == T.c.id)
            .where(D.c.task_id == task_id, T.c.status.in_([s.value for s in _DEAD]))
            .order_by(T.c.id)
        )
        return list((await conn.execute(stmt)).scalars())

    async def pending_dependencies(
        self, conn: Executor, task_id: int, limit: int
    ) -> list[TaskInfo]:
        """The first `limit` of the task's dependencies that have not completed, by id."""
        stmt = (
            select(T)
            .join(D, D.c.depends_on_id == T.c.id)
            .where(D.c.task_id == task_id, T.c.status != status_literal(TaskStatus.COMPLETED))
            .order_by(T.c.id)
            .limit(limit)
        )
        return [TaskInfo.from_row(row) for row in await conn.execute(stmt)]

    async def dependents(self, conn: Executor, task_id: int) -> list[int]:
        stmt = select(D.c.task_id).where(D.c.depends_on_id == task_id).order_by(D.c.task_id)
        return list((await conn.execute(stmt)).scalars())

    async def workflow(self, conn: Executor, task_id: int, limit: int = 200) -> list[Any]:
        """The workflow a task belongs to (every task linked to it through dependencies,
        either way; at most `limit`): rows of (id, name, status, [dependency ids])."""
        edges: set[tuple[int, int]] = set()
        seen, frontier = {task_id}, [task_id]
        while frontier and len(seen) < limit:
            rows = await conn.execute(
                select(D.c.task_id, D.c.depends_on_id).where(
                    or_(D.c.task_id.in_(frontier), D.c.depends_on_id.in_(frontier))
                )
            )
            edges.update((a, b) for a, b in rows.all())
            found = {n for edge in edges for n in edge} - seen
            frontier = sorted(found)[: limit - len(seen)]
            seen.update(frontier)
        tasks = await conn.execute(
            select(T.c.id, T.c.name, T.c.status).where(T.c.id.in_(sorted(seen))).order_by(T.c.id)
        )
        needs: dict[int, list[int]] = {}
        for task, dep in sorted(edges):
            if task in seen and dep in seen:
                needs.setdefault(task, []).append(dep)
        return [(i, name, status, needs.get(i, [])) for i, name, status in tasks.all()]

    async def dependency_results(self, conn: Executor, task_id: int) -> dict[int, Any]:
        """{dependency id: its result} of a task."""
        stmt = (
            select(T.c.id, T.c.result)
            .join(D, and_(D.c.depends_on_id == T.c.id, D.c.task_id == task_id))
            .order_by(T.c.id)
        )
        return {row[0]: row[1] for row in await conn.execute(stmt)}


def _chunks(items: list[Any], size: int = 5000) -> list[list[Any]]:
    """Statements bind at most a few thousand values each (the drivers' limits)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _dependency_failed(dep_id: int, dep_name: str, dep_status: str) -> dict[str, Any]:
    """The error of a task cancelled because a dependency of it failed or was cancelled."""
    return {
        "type": "DependencyFailed",
        "message": f"dependency {dep_id} ({dep_name}) ended {dep_status}",
        "dependency": dep_id,
    }
