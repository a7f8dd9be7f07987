"""Producer statements: insert new tasks (batched, deduplicated, periodic ticks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import and_, bindparam, delete, insert, select, update

from taskstore.backends import Backend
from taskstore.errors import IllegalTransition
from taskstore.graph import Graph
from taskstore.models.periodic import PeriodicTick
from taskstore.models.task import status_in
from taskstore.records import NewTask
from taskstore.repositories.task_table import (
    NEW_TASK_BATCH,
    Executor,
    T,
    bound_new_task,
    new_params,
    new_row,
    new_task_values,
)
from taskstore.repositories.workflow import WorkflowStatements
from taskstore.states import ACTIVE, TaskStatus

P = PeriodicTick.__table__
#: how long a periodic tick's record outlives it (it keeps a late worker from running it twice)
TICKS_KEPT = dt.timedelta(days=1)


class EnqueueStatements(WorkflowStatements):
    """Inserts of new tasks; ids come back in the order the tasks were given."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._insert_plain = self._build_batch_insert()
        # One task alone: its values bound directly, nothing to pack and unpack.
        bound = new_task_values(bound_new_task(), backend)
        self._insert_one = backend.returning_ids(insert(T).values(bound), T.c.id, T.c.queue)
        dedup_where = and_(T.c.dedup_key.is_not(None), status_in(ACTIVE))
        keyed_values = {**bound, "dedup_key": bindparam("p_dedup_key")}
        self._insert_dedup = (
            backend.insert_ignoring_conflicts(T, ["dedup_key"], dedup_where)
            .values(keyed_values)
            .returning(T.c.id, T.c.dedup_key)
        )
        self._live_by_key = select(T.c.dedup_key, T.c.id).where(
            T.c.dedup_key.in_(bindparam("p_keys", expanding=True)), status_in(ACTIVE)
        )

    def _build_batch_insert(self) -> object:
        """One INSERT ... SELECT over a batch bound as arrays (or one JSON document): the
        statement text is the same for 1 row or 10,000, and the database clock sets run_at."""
        b = self.backend
        new = b.batch_source("new", NEW_TASK_BATCH)
        values = new_task_values(new.c, b)
        rows = select(*values.values())
        return b.returning_ids(insert(T).from_select(list(values), rows), T.c.id, T.c.queue)

    async def insert(self, conn: Executor, tasks: Sequence[NewTask]) -> list[int]:
        """Insert tasks; one returns the live task's id instead where its dedup key is taken.

        Plain rows go in one multi-row INSERT; rows with a dedup key go through
        ``ON CONFLICT DO NOTHING`` against the unique partial index, so two concurrent
        enqueuers can never both insert a live task with the same key.
        """
        ids: list[int | None] = [None] * len(tasks)
        plain = [i for i, t in enumerate(tasks) if t.dedup_key is None]
        if len(plain) == 1:
            params = new_params(tasks[plain[0]])
            [row] = await self.backend.rows(conn, self._insert_one, params)
            ids[plain[0]] = row[0]
        elif plain:
            rows = [new_row(tasks[i]) for i in plain]
            params = self.backend.batch_values("new", NEW_TASK_BATCH, rows)
            # Ids come from a sequence (PostgreSQL) or the rowid (SQLite) in the order the
            # SELECT feeds rows to the INSERT: sorted, they line up with the input.
            new_ids = sorted(
                row[0] for row in await self.backend.rows(conn, self._insert_plain, params)
            )
            for i, task_id in zip(plain, new_ids, strict=True):
                ids[i] = task_id
        keyed = [i for i, t in enumerate(tasks) if t.dedup_key is not None]
        if keyed:
            by_key = await self._insert_keyed(conn, [tasks[i] for i in keyed])
            for i in keyed:
                ids[i] = by_key[tasks[i].dedup_key]  # type: ignore[index]
            await self.backend.notify(conn, [tasks[i].queue for i in keyed])
        return ids  # type: ignore[return-value]

    async def insert_graph(
        self,
        conn: Executor,
        tasks: Sequence[NewTask],
        graph: Graph,
        marked: Mapping[int, TaskStatus] | None = None,
    ) -> list[int]:
        """Insert a batch with dependencies, in the caller's transaction: the dependencies
        it names by id are locked first (see `lock_dependencies`; those in `marked` were,
        apart), then the tasks, edges and waiting statuses are written."""
        open_deps = await self.lock_dependencies(conn, graph.external_ids, marked)
        ids = await self.insert(conn, tasks)
        edges = [(ids[t], ids[d]) for t, d in graph.inner]
        edges += [(ids[t], dep) for t, dep in graph.outer]
        waiting = {ids[t] for t, _ in graph.inner}
        waiting |= {ids[t] for t, dep in graph.outer if dep in open_deps}
        await self.link(conn, edges, [ids[d] for _, d in graph.inner], waiting)
        return ids

    async def _insert_keyed(self, conn: Executor, tasks: Sequence[NewTask]) -> dict[str, int]:
        by_key: dict[str, int] = {}
        pending = list({t.dedup_key: t for t in reversed(tasks)}.values())  # first per key wins
        for _ in range(5):  # a holder may finish between our INSERT and SELECT: try again
            result = await conn.execute(self._insert_dedup, [new_params(t) for t in pending])
            by_key.update({row.dedup_key: row.id for row in result.all()})
            missing = [t.dedup_key for t in pending if t.dedup_key not in by_key]
            if not missing:
                return by_key
            live = await conn.execute(self._live_by_key, {"p_keys": missing})
            by_key.update({row.dedup_key: row.id for row in live.all()})
            pending = [t for t in pending if t.dedup_key not in by_key]
            if not pending:
                return by_key
        raise IllegalTransition("dedup key kept changing hands; enqueue again")

    async def insert_periodic(self, conn: Executor, task: NewTask, tick: dt.datetime) -> int | None:
        """Enqueue `task` for a periodic tick unless some worker already did.

        Returns the new id, or None when the tick was taken. Call inside one transaction:
        the tick row and the task commit together. The schedule's ticks older than
        `TICKS_KEPT` go: workers only ever try the latest due tick.
        """
        claim_tick = (
            self.backend.insert_ignoring_conflicts(P, ["name", "tick"])
            .values(name=task.name, tick=tick)
            .returning(P.c.name)
        )
        if (await conn.execute(claim_tick)).first() is None:
            return None
        [task_id] = await self.insert(conn, [task])
        await conn.execute(
            update(P).where(P.c.name == task.name, P.c.tick == tick).values(task_id=task_id)
        )
        await conn.execute(delete(P).where(P.c.name == task.name, P.c.tick < tick - TICKS_KEPT))
        return task_id
