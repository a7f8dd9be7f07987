"""TaskRepository: every statement that reads or writes the task table.

Statements are SQLAlchemy Core, built once per backend in ``__init__`` and reused with
bound parameters. Methods take the caller's connection or session and never commit: the
caller owns the transaction. Status changes take their legal source statuses from
`taskstore.states.TRANSITIONS`; writes that end or extend a claim are fenced on
(id, worker id, attempt), so a worker that lost its lease cannot overwrite a newer state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskstore.backends import Backend
from taskstore.engine import dumps_json
from taskstore.errors import IllegalTransition, LeaseLost, TaskNotFound
from taskstore.models.base import JSONText, UTCDateTime
from taskstore.models.periodic import PeriodicTick
from taskstore.models.task import TaskEntity, orphaned, status_in
from taskstore.records import ClaimedTask, NewTask, QueueStats, TaskInfo
from taskstore.states import (
    ACTIVE,
    CLAIMABLE,
    FINISHED,
    LEASED,
    Event,
    TaskStatus,
    ordered,
    sources,
    target,
)

Executor = AsyncConnection | AsyncSession
T = TaskEntity.__table__
P = PeriodicTick.__table__
_CLAIM_COLUMNS = (
    T.c.id,
    T.c.name,
    T.c.queue,
    T.c.payload,
    T.c.attempts,
    T.c.max_attempts,
    T.c.priority,
    T.c.run_at,
)
_LEASE_EXPIRED_ERROR = dumps_json(
    {
        "type": "LeaseExpired",
        "message": "the worker stopped renewing its lease (crashed or cut off)",
    }
)


def _status(value: TaskStatus) -> Any:
    return literal(value.value)


class TaskRepository:
    """Reads and fenced writes of `TaskEntity` rows for one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        b = backend
        self._now = b.now()
        self._insert_values = {
            "name": bindparam("p_name"),
            "queue": bindparam("p_queue"),
            # Bound as the JSON text the validator already produced: encoded once, not twice.
            "payload": bindparam("p_payload", type_=JSONText()),
            "priority": bindparam("p_priority"),
            "max_attempts": bindparam("p_max_attempts", type_=Integer),
            "dedup_key": bindparam("p_dedup_key"),
            "run_at": func.coalesce(
                bindparam("p_run_at", type_=UTCDateTime()),
                b.now_plus(bindparam("p_delay", type_=Float)),
            ),
            "created_at": self._now,
            "updated_at": self._now,
        }
        self._insert_plain = self._build_batch_insert()
        dedup_where = and_(T.c.dedup_key.is_not(None), status_in(ACTIVE))
        self._insert_dedup = (
            b.insert_ignoring_conflicts(T, ["dedup_key"], dedup_where)
            .values(self._insert_values)
            .returning(T.c.id, T.c.dedup_key)
        )
        self._live_by_key = select(T.c.dedup_key, T.c.id).where(
            T.c.dedup_key.in_(bindparam("p_keys", expanding=True)), status_in(ACTIVE)
        )
        self._claim = {
            (start, orphans): self._build_claim(start, orphans)
            for start in (True, False)
            for orphans in (True, False)
        }
        self._heartbeat = (
            update(T)
            .where(
                T.c.worker_id == bindparam("p_worker_id"),
                status_in(LEASED),
                b.ids_match(T.c.id, "p_ids"),
            )
            .values(lease_expires_at=b.now_plus(bindparam("p_lease", type_=Float)))
            .returning(T.c.id)
        )
        self._select_one = select(*T.c).where(T.c.id == bindparam("p_task_id"))
        self._end_batch_cache: dict[tuple[Any, ...], Any] = {}
        self._requeue_values = {
            "attempts": 0,
            "run_at": self._now,
            "finished_at": None,
            "worker_id": None,
            "result": None,
            "progress": None,
        }

    # ----------------------------------------------------------------- enqueue
    async def insert(self, conn: Executor, tasks: Sequence[NewTask]) -> list[int]:
        """Insert tasks; one returns the live task's id instead where its dedup key is taken.

        Plain rows go in one multi-row INSERT; rows with a dedup key go through
        ``ON CONFLICT DO NOTHING`` against the unique partial index, so two concurrent
        enqueuers can never both insert a live task with the same key.
        """
        ids: list[int | None] = [None] * len(tasks)
        plain = [i for i, t in enumerate(tasks) if t.dedup_key is None]
        if plain:
            rows = [_new_row(tasks[i]) for i in plain]
            params = self.backend.batch_values("new", NEW_COLUMNS, rows)
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

    def _build_batch_insert(self) -> Any:
        """One INSERT ... SELECT over a batch bound as arrays (or one JSON document): the
        statement text is the same for 1 row or 10,000, and the database clock sets run_at."""
        b = self.backend
        new = b.batch_source("new", NEW_COLUMNS)
        rows = select(
            new.c.name,
            new.c.queue,
            b.json_from_text(new.c.payload),
            new.c.priority,
            new.c.max_attempts,
            func.coalesce(new.c.run_at, b.now_plus(new.c.delay), self._now),
            self._now,
            self._now,
        )
        columns = [
            "name",
            "queue",
            "payload",
            "priority",
            "max_attempts",
            "run_at",
            "created_at",
            "updated_at",
        ]
        return b.returning_ids(insert(T).from_select(columns, rows), T.c.id, T.c.queue)

    async def _insert_keyed(self, conn: Executor, tasks: Sequence[NewTask]) -> dict[str, int]:
        by_key: dict[str, int] = {}
        pending = list({t.dedup_key: t for t in reversed(tasks)}.values())  # first per key wins
        for _ in range(5):  # a holder may finish between our INSERT and SELECT: try again
            result = await conn.execute(self._insert_dedup, [_params(t) for t in pending])
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
        the tick row and the task commit together.
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
        return task_id

    # ------------------------------------------------------------------- claim
    def _build_claim(self, start: bool, orphans: bool) -> Any:
        b = self.backend
        # Each form states one partial index's predicate literally, so the planner (SQLite's
        # above all) takes that index: batches filter orphans off the claim index; orphans
        # have a small index of their own.
        not_orphaned = or_(T.c.status == _status(TaskStatus.CREATED), T.c.worker_id.is_not(None))
        which = [orphaned()] if orphans else [status_in(CLAIMABLE), not_orphaned]
        picked: Select[Any] = (
            select(T.c.id)
            .where(*which, T.c.queue == bindparam("p_queue"), T.c.run_at <= self._now)
            .order_by(T.c.priority.desc(), T.c.run_at, T.c.id)
            .limit(bindparam("p_limit", type_=Integer))
        )
        values: dict[str, Any] = {
            "status": _status(target(Event.CLAIM_START if start else Event.CLAIM)),
            "worker_id": bindparam("p_worker_id"),
            "lease_expires_at": b.now_plus(bindparam("p_lease", type_=Float)),
            "updated_at": self._now,
        }
        if start:
            values |= {"attempts": T.c.attempts + 1, "started_at": self._now}
        return (
            update(T).where(b.claim_where(T.c.id, picked)).values(values).returning(*_CLAIM_COLUMNS)
        )

    async def claim(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        start: bool = True,
        orphans: bool = False,
    ) -> list[ClaimedTask]:
        """Claim up to `limit` due tasks of `queue`, best first.

        With ``start=True`` (the worker's hot path) claim and start are one statement:
        the tasks go straight to ``running`` and the attempt is counted. With
        ``start=False`` they are only ``assigned`` (prefetched) and `start` follows.
        ``orphans=True`` claims only tasks rescued after their worker died, which a worker
        runs one at a time and alone (see `taskstore.models.task.orphaned`); batches
        (the default) take every other claimable task.
        """
        if limit <= 0:
            return []
        params = {
            "p_queue": queue,
            "p_limit": limit,
            "p_worker_id": worker_id,
            "p_lease": lease_seconds,
        }
        rows = sorted(
            await self.backend.rows(conn, self._claim[start, orphans], params),
            key=_claim_order,  # RETURNING has no order
        )
        return [ClaimedTask(*row[:7]) for row in rows]

    async def start(self, conn: Executor, *, worker_id: str, task_ids: Iterable[int]) -> list[int]:
        """Start prefetched (assigned) tasks this worker owns; returns the ids started."""
        values = {"attempts": T.c.attempts + 1, "started_at": self._now}
        return sorted(await self._owned(conn, Event.START, worker_id, task_ids, values))

    async def _owned(
        self,
        conn: Executor,
        event: Event,
        worker_id: str,
        task_ids: Iterable[int],
        values: dict[str, Any],
    ) -> set[int]:
        """Apply `event` to those of `task_ids` this worker holds; returns the ids changed."""
        stmt = (
            update(T)
            .where(
                self.backend.ids_match(T.c.id, "p_ids"),
                T.c.worker_id == worker_id,
                status_in(sources(event)),
            )
            .values(status=_status(target(event)), updated_at=self._now, **values)
            .returning(T.c.id)
        )
        return set((await conn.execute(stmt, {"p_ids": list(task_ids)})).scalars())

    # ---------------------------------------------------------- fenced endings
    async def complete_many(
        self, conn: Executor, *, worker_id: str, done: Sequence[tuple[int, int, str | None]]
    ) -> set[int]:
        """Complete (task id, attempt, result JSON text) triples this worker owns.

        Returns the ids accepted; a triple whose fence no longer matches (lease lost,
        cancelled, already rescued) is left untouched and missing from the result.
        """
        extra = {"result": "doc", "progress": 1.0}
        return await self._end_batch(conn, Event.COMPLETE, worker_id, done, extra)

    async def interrupt_many(
        self, conn: Executor, *, worker_id: str, cut: Sequence[tuple[int, int, str | None]]
    ) -> set[int]:
        """Mark running tasks cut off (shutdown) as ``not_finished``; the doc is the error.
        The worker's id stays on the row: it handed the task back alive, so the task is
        no orphan (see `taskstore.models.task.orphaned`) and runs again in a batch."""
        extra = {"error": "doc"}
        return await self._end_batch(conn, Event.INTERRUPT, worker_id, cut, extra)

    async def release_many(
        self, conn: Executor, *, worker_id: str, task_ids: Sequence[int]
    ) -> set[int]:
        """Hand claimed-but-unstarted tasks back (``created``), attempts untouched."""
        values = {"worker_id": None, "lease_expires_at": None}
        return await self._owned(conn, Event.RELEASE, worker_id, task_ids, values)

    def _end_batch_statement(self, event: Event, extra: dict[str, Any]) -> Any:
        key = (event, tuple(sorted(extra.items())))
        stmt = self._end_batch_cache.get(key)
        if stmt is None:
            b = self.backend
            batch = b.batch_lookup("batch", ACK_COLUMNS)
            values: dict[str, Any] = {
                "status": _status(target(event)),
                "updated_at": self._now,
                "lease_expires_at": None,
            }
            if target(event) in FINISHED:
                values["finished_at"] = self._now
            for column, value in extra.items():
                values[column] = b.json_from_text(batch.c.doc) if value == "doc" else value
            stmt = (
                update(T)
                .where(
                    T.c.id == batch.c.id,
                    b.batch_filter(T.c.id, "batch"),
                    T.c.attempts == batch.c.attempt,
                    T.c.worker_id == bindparam("p_worker_id"),
                    status_in(sources(event)),
                )
                .values(values)
                .returning(T.c.id)
            )
            self._end_batch_cache[key] = stmt
        return stmt

    async def _end_batch(
        self,
        conn: Executor,
        event: Event,
        worker_id: str,
        rows: Sequence[tuple[int, int, str | None]],
        extra: dict[str, Any],
    ) -> set[int]:
        if not rows:
            return set()
        stmt = self._end_batch_statement(event, extra)
        params = {"p_worker_id": worker_id, **self.backend.batch_values("batch", ACK_COLUMNS, rows)}
        return {row[0] for row in await self.backend.rows(conn, stmt, params)}

    async def fail(
        self,
        conn: Executor,
        *,
        task_id: int,
        worker_id: str,
        attempt: int,
        error: dict[str, Any],
        retry_in: float | None,
    ) -> TaskStatus:
        """End a failed attempt: back to ``created`` after `retry_in` seconds, or ``failed``.

        Raises `LeaseLost` if this worker no longer owns that attempt.
        """
        event = Event.FAIL if retry_in is None else Event.RETRY
        values: dict[str, Any] = {"error": error, "lease_expires_at": None}
        if event is Event.RETRY:
            values |= {
                "run_at": self.backend.now_plus(literal(float(retry_in), Float)),
                "worker_id": None,
            }
        else:
            values["finished_at"] = self._now
        fence = and_(T.c.worker_id == worker_id, T.c.attempts == attempt)
        await self._transition(conn, event, task_id, values, fence)
        return target(event)

    async def set_progress(
        self, conn: Executor, *, task_id: int, worker_id: str, attempt: int, fraction: float
    ) -> bool:
        """Record progress of a running attempt; False if the attempt is no longer ours."""
        stmt = (
            update(T)
            .where(
                T.c.id == task_id,
                T.c.worker_id == worker_id,
                T.c.attempts == attempt,
                status_in(frozenset({TaskStatus.RUNNING})),
            )
            .values(progress=fraction, updated_at=self._now)
            .returning(T.c.id)
        )
        return (await conn.execute(stmt)).first() is not None

    # ------------------------------------------------------ leases and rescue
    async def heartbeat(
        self, conn: Executor, *, worker_id: str, lease_seconds: float, task_ids: Iterable[int]
    ) -> set[int]:
        """Extend, in one statement, the leases of those of `task_ids` this worker holds.

        Returns the ids still held; a task the worker runs that is missing was cancelled
        or rescued, and its handler should stop. Rows carrying this worker's id that it
        does not know (a claim whose reply was lost with the connection) are not renewed:
        their lease runs out and the rescuer hands them on.
        """
        params = {"p_worker_id": worker_id, "p_lease": lease_seconds, "p_ids": list(task_ids)}
        return set((await conn.execute(self._heartbeat, params)).scalars())

    async def rescue_expired(self, conn: Executor, *, limit: int = 1000) -> dict[int, TaskStatus]:
        """Take back tasks whose lease expired: ``not_finished`` to run again, or ``failed``
        once a running task has used its last attempt. Returns id -> new status."""
        exhausted = and_(
            T.c.status == _status(TaskStatus.RUNNING),
            T.c.max_attempts.is_not(None),
            T.c.attempts >= T.c.max_attempts,
        )
        picked = (
            select(T.c.id).where(status_in(LEASED), T.c.lease_expires_at < self._now).limit(limit)
        )
        new_status = case(
            (exhausted, _status(target(Event.FAIL))), else_=_status(target(Event.INTERRUPT))
        )
        stmt = (
            update(T)
            .where(self.backend.claim_where(T.c.id, picked), status_in(LEASED))
            .values(
                status=new_status,
                finished_at=case((exhausted, self._now), else_=null()),
                worker_id=None,
                lease_expires_at=None,
                updated_at=self._now,
                error=self.backend.json_from_text(literal(_LEASE_EXPIRED_ERROR)),
            )
            .returning(T.c.id, T.c.status)
        )
        return {r.id: TaskStatus(r.status) for r in (await conn.execute(stmt)).all()}

    # --------------------------------------------------------------- operator
    async def cancel(self, conn: Executor, task_id: int) -> TaskStatus:
        """Cancel a task that has not finished. A running one's worker notices at its next
        heartbeat and stops the handler; its late completion is refused by the fence."""
        values = {"finished_at": self._now, "lease_expires_at": None}
        return await self._transition(conn, Event.CANCEL, task_id, values)

    async def requeue(self, conn: Executor, task_id: int) -> TaskStatus:
        """Operator retry of a failed or cancelled task: a fresh set of attempts, due now."""
        try:
            return await self._transition(conn, Event.REQUEUE, task_id, self._requeue_values)
        except IntegrityError:
            raise IllegalTransition(
                f"cannot retry task {task_id}: another live task holds its dedup key"
            ) from None

    def _failed_where(self, queue: str | None, name: str | None) -> Any:
        live = T.alias("live")
        key_free = or_(
            T.c.dedup_key.is_(None),
            ~exists().where(live.c.dedup_key == T.c.dedup_key, live.c.status.in_(ordered(ACTIVE))),
        )
        where = [T.c.status == TaskStatus.FAILED.value, key_free]
        if queue is not None:
            where.append(T.c.queue == queue)
        if name is not None:
            where.append(T.c.name == name)
        return and_(*where)

    async def count_failed(self, conn: Executor, *, queue: str | None, name: str | None) -> int:
        stmt = select(func.count()).where(self._failed_where(queue, name))
        return (await conn.execute(stmt)).scalar_one()

    async def requeue_failed(
        self, conn: Executor, *, queue: str | None, name: str | None, limit: int = 5000
    ) -> int:
        """Operator retry of up to `limit` failed tasks (skipping any whose dedup key a
        live task holds); returns how many were requeued."""
        picked = select(T.c.id).where(self._failed_where(queue, name)).limit(limit)
        stmt = (
            update(T)
            .where(T.c.id.in_(picked.scalar_subquery()))
            .values(
                status=_status(target(Event.REQUEUE)), updated_at=self._now, **self._requeue_values
            )
        )
        return (await conn.execute(stmt)).rowcount or 0

    async def _transition(
        self,
        conn: Executor,
        event: Event,
        task_id: int,
        values: dict[str, Any],
        fence: Any = None,
    ) -> TaskStatus:
        where = [T.c.id == task_id, status_in(sources(event))]
        if fence is not None:
            where.append(fence)
        stmt = (
            update(T)
            .where(*where)
            .values(status=_status(target(event)), updated_at=self._now, **values)
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
        raise IllegalTransition(f"cannot {event.value} task {task_id}: it is {row.status}")

    # ------------------------------------------------------------------ reads
    async def get(self, conn: Executor, task_id: int) -> TaskInfo | None:
        row = (await conn.execute(self._select_one, {"p_task_id": task_id})).first()
        return None if row is None else TaskInfo.from_row(row)

    async def list(
        self,
        conn: Executor,
        *,
        status: TaskStatus | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[TaskInfo]:
        """Newest first; page with `before_id`."""
        stmt = select(*T.c).order_by(T.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(T.c.status == status.value)
        if queue is not None:
            stmt = stmt.where(T.c.queue == queue)
        if name is not None:
            stmt = stmt.where(T.c.name == name)
        if before_id is not None:
            stmt = stmt.where(T.c.id < before_id)
        return [TaskInfo.from_row(r) for r in (await conn.execute(stmt)).all()]

    async def stats(self, conn: Executor) -> list[QueueStats]:
        """Counts per queue and status, and the age of each queue's oldest due task."""
        now = (await conn.execute(select(type_coerce(self._now, UTCDateTime())))).scalar_one()
        claimable = status_in(CLAIMABLE)
        oldest = func.min(case((and_(claimable, T.c.run_at <= self._now), T.c.run_at)))
        stmt = select(T.c.queue, T.c.status, func.count(), type_coerce(oldest, UTCDateTime()))
        stmt = stmt.group_by(T.c.queue, T.c.status).order_by(T.c.queue)
        by_queue: dict[str, QueueStats] = {}
        for queue, status, count, due in (await conn.execute(stmt)).all():
            stats = by_queue.setdefault(queue, QueueStats(queue, {}, None))
            stats.counts[status] = count
            if due is not None:
                age = max(0.0, (now - due).total_seconds())
                if stats.oldest_pending_seconds is None or age > stats.oldest_pending_seconds:
                    by_queue[queue] = QueueStats(queue, stats.counts, age)
        return list(by_queue.values())

    async def any_due(
        self,
        conn: Executor,
        queues: Sequence[str],
        *,
        orphans: bool = False,
        waiting_seconds: float = 0.0,
    ) -> bool:
        """Is a task of `queues` claimable now (with ``orphans=True``: one rescued after its
        worker died, at least `waiting_seconds` ago)? A read: cheap, and no write lock."""
        which = orphaned() if orphans else status_in(CLAIMABLE)
        stmt = select(T.c.id).where(which, T.c.queue.in_(queues), T.c.run_at <= self._now).limit(1)
        if waiting_seconds > 0:
            since = self.backend.now_plus(literal(-float(waiting_seconds), Float))
            stmt = stmt.where(T.c.updated_at <= since)
        return (await conn.execute(stmt)).first() is not None

    async def claimable_counts(self, conn: Executor) -> dict[str, int]:
        """Tasks due now and waiting, per queue (answered from the claim index)."""
        stmt = (
            select(T.c.queue, func.count())
            .where(status_in(CLAIMABLE), T.c.run_at <= self._now)
            .group_by(T.c.queue)
        )
        return dict((await conn.execute(stmt)).all())

    async def throughput(self, conn: Executor, *, minutes: int = 60) -> list[dict[str, Any]]:
        """Completed and failed tasks per minute over the last `minutes` (oldest first)."""
        bucket = type_coerce(self.backend.minute_bucket(T.c.finished_at), UTCDateTime())
        since = self.backend.now_plus(literal(-60.0 * minutes, Float))
        stmt = (
            select(bucket.label("minute"), T.c.status, func.count())
            .where(status_in(frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})))
            .where(T.c.finished_at >= since)
            .group_by(bucket, T.c.status)
            .order_by(bucket)
        )
        points: dict[Any, dict[str, Any]] = {}
        for minute, status, count in (await conn.execute(stmt)).all():
            point = points.setdefault(minute, {"minute": minute, "completed": 0, "failed": 0})
            point[status] = count
        return list(points.values())

    async def finished_recently(
        self, conn: Executor, windows: Sequence[int] = (1, 5, 15)
    ) -> dict[str, dict[str, int]]:
        """Tasks completed / failed in each of the last N-minute windows."""
        columns = []
        for minutes in windows:
            since = self.backend.now_plus(literal(-60.0 * minutes, Float))
            for status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
                hit = and_(T.c.status == status.value, T.c.finished_at >= since)
                columns.append(func.count(case((hit, 1))).label(f"{status.value}_{minutes}"))
        oldest = self.backend.now_plus(literal(-60.0 * max(windows), Float))
        stmt = select(*columns).where(status_in(FINISHED), T.c.finished_at >= oldest)
        row = (await conn.execute(stmt)).one()._mapping
        return {
            f"{m}m": {
                s.value: row[f"{s.value}_{m}"] for s in (TaskStatus.COMPLETED, TaskStatus.FAILED)
            }
            for m in windows
        }

    def _purgeable(self, older_than_seconds: float, statuses: frozenset[TaskStatus]) -> Any:
        if not statuses <= FINISHED:
            raise IllegalTransition("only finished tasks (completed, failed, cancelled) are purged")
        cutoff = self.backend.now_plus(literal(-float(older_than_seconds), Float))
        return and_(
            status_in(FINISHED),  # lets the planner use the finished-rows index
            T.c.status.in_([s.value for s in statuses]),
            T.c.finished_at < cutoff,
        )

    async def count_purgeable(
        self,
        conn: Executor,
        *,
        older_than_seconds: float,
        statuses: frozenset[TaskStatus] = FINISHED,
    ) -> int:
        stmt = select(func.count()).where(self._purgeable(older_than_seconds, statuses))
        return (await conn.execute(stmt)).scalar_one()

    async def purge(
        self,
        conn: Executor,
        *,
        older_than_seconds: float,
        statuses: frozenset[TaskStatus] = FINISHED,
        limit: int = 5000,
    ) -> int:
        """Delete up to `limit` finished tasks that ended more than the given age ago."""
        picked = select(T.c.id).where(self._purgeable(older_than_seconds, statuses)).limit(limit)
        result = await conn.execute(delete(T).where(T.c.id.in_(picked.scalar_subquery())))
        return result.rowcount or 0


NEW_COLUMNS: list[tuple[str, Any]] = [
    ("name", String()),
    ("queue", String()),
    ("payload", Text()),
    ("priority", Integer()),
    ("max_attempts", Integer()),
    ("run_at", DateTime(timezone=True)),
    ("delay", Float()),
]
ACK_COLUMNS: list[tuple[str, Any]] = [("id", BigInteger()), ("attempt", Integer()), ("doc", Text())]


def _new_row(task: NewTask) -> tuple[Any, ...]:
    return (
        task.name,
        task.queue,
        task.payload_json,
        task.priority,
        task.max_attempts,
        task.run_at,
        task.delay_seconds or None,  # no delay: NULL, due now
    )


def _claim_order(row: Any) -> tuple[int, Any, int]:
    """Best first: priority (higher first), then due time, then enqueue order."""
    return (-row[6], row[7], row[0])


def _params(task: NewTask) -> dict[str, Any]:
    return {
        "p_name": task.name,
        "p_queue": task.queue,
        "p_payload": task.payload_json,
        "p_priority": task.priority,
        "p_max_attempts": task.max_attempts,
        "p_dedup_key": task.dedup_key,
        "p_run_at": task.run_at,
        "p_delay": task.delay_seconds,
    }
