"""Worker statements: claim, fenced endings of attempts, leases, rescue.

Every write that ends or extends a claim matches (id, worker id, attempt), so a worker
that lost its lease can never overwrite a newer state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    literal,
    null,
    or_,
    select,
    update,
)

from taskstore.backends import Backend
from taskstore.jsoncodec import dumps_json
from taskstore.models.queue import without_flow_control
from taskstore.models.task import orphaned, status_in
from taskstore.records import ClaimedTask
from taskstore.repositories.due_probe import DueProbes
from taskstore.repositories.history import HistoryStatements
from taskstore.repositories.task_table import (
    ENDING_BATCH,
    Executor,
    T,
    status_literal,
)
from taskstore.repositories.workflow import WorkflowStatements
from taskstore.states import CLAIMABLE, FINISHED, LEASED, Event, TaskStatus, sources, target

Ending = tuple[int, int, str | None]  # (task id, fence, JSON document or None)
CLAIM_COLUMNS = (
    T.c.id,
    T.c.name,
    T.c.queue,
    T.c.payload,
    T.c.attempts,
    T.c.max_attempts,
    T.c.priority,
    T.c.run_at,
    T.c.trace_context,
    T.c.claims,
)
_LEASE_EXPIRED_ERROR = dumps_json(
    {
        "type": "LeaseExpired",
        "message": "the worker stopped renewing its lease (crashed or cut off)",
    }
)


class LeaseStatements(WorkflowStatements, HistoryStatements):
    """What a worker does to the tasks it claims and holds."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._due = DueProbes(backend, self._now)
        self._claim = {
            (orphans, skip): self._build_claim(orphans, skip=skip)
            for orphans in (True, False)
            for skip in (True, False)
        }
        self._fail = {retry: self._build_fail(retry) for retry in (True, False)}
        self._heartbeat = (
            update(T)
            .where(
                T.c.worker_id == bindparam("p_worker_id"),
                status_in(LEASED),
                backend.ids_match(T.c.id, "p_ids"),
            )
            .values(lease_expires_at=backend.now_plus(bindparam("p_lease", type_=Float)))
            .returning(T.c.id)
        )
        # A run handed back unstarted or cut off by a graceful stop is not charged.
        uncharged = T.c.attempts - 1
        self._complete = self._build_ending(
            Event.COMPLETE, {"progress": 1.0}, doc_into="result"
        ).returning(T.c.watched)
        delay = bindparam("p_delay", type_=Float)
        later = backend.now_plus(delay)
        # Handed back with no delay, a task keeps its place in line (FIFO within a
        # priority), as if never claimed: not behind every task that fell due meanwhile.
        in_place = case((delay > 0, later), else_=T.c.run_at)
        interrupted = {"attempts": uncharged, "run_at": in_place}
        self._interrupt = self._build_ending(Event.INTERRUPT, interrupted, "error")
        released = {"attempts": uncharged, "worker_id": None, "run_at": in_place}
        self._release = self._build_ending(Event.RELEASE, released)
        self._release_noted = self._build_ending(Event.RELEASE, released, doc_into="error")
        snoozed = {**released, "run_at": later}  # asked to run later: behind what is due
        self._snooze = self._build_ending(Event.SNOOZE, snoozed)

    # ------------------------------------------------------------------- claim
    def _claimable(self, orphans: bool, skip: bool = False, plain: bool = False) -> list[Any]:
        # Each form states one partial index's predicate literally, so the planner (SQLite's
        # above all) takes that index: batches filter orphans off the claim index; orphans
        # have a small index of their own.
        not_orphaned = or_(
            T.c.status == status_literal(TaskStatus.CREATED), T.c.worker_id.is_not(None)
        )
        which = [orphaned()] if orphans else [status_in(CLAIMABLE), not_orphaned]
        # `skip`: leave out the names bound as ``p_skip`` (another worker has their handler).
        extra = [self.backend.none_of(T.c.name, "p_skip")] if skip else []
        # `plain`: the claim of a queue its worker believes has no flow control, which may
        # have gained some since it looked (see `without_flow_control`).
        extra += [without_flow_control(bindparam("p_queue"))] if plain else []
        return [*which, T.c.queue == bindparam("p_queue"), T.c.run_at <= self._now, *extra]

    def _claim_values(self) -> dict[str, Any]:
        return {
            "status": status_literal(target(Event.CLAIM_START)),
            "worker_id": bindparam("p_worker_id"),
            "lease_expires_at": self.backend.now_plus(bindparam("p_lease", type_=Float)),
            "updated_at": self._now,
            "attempts": T.c.attempts + 1,
            "claims": T.c.claims + 1,
            "started_at": self._now,
        }

    def _build_claim(self, orphans: bool, limit: Any = None, *, skip: bool = False) -> Any:
        """The claim statement; `limit` (an SQL expression) defaults to ``p_limit``."""
        b = self.backend
        picked: Select[Any] = (
            select(T.c.id)
            .where(*self._claimable(orphans, skip, plain=limit is None))
            .order_by(T.c.priority.desc(), T.c.run_at, T.c.id)
            .limit(bindparam("p_limit", type_=Integer) if limit is None else limit)
        )
        return (
            update(T)
            .where(b.claim_where(T.c.id, picked))
            .values(self._claim_values())
            .returning(*CLAIM_COLUMNS)
        )

    async def claim(self, conn: Executor, **options: Any) -> list[ClaimedTask]:
        """`claim_later` (same keywords), its records made at once."""
        return (await self.claim_later(conn, **options))()

    async def claim_later(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        orphans: bool = False,
        skip: Sequence[str] = (),
    ) -> Callable[[], list[ClaimedTask]]:
        """Claim and start up to `limit` due tasks of `queue`, best first, in one statement:
        they go straight to ``running`` and the attempt is counted (a task that then never
        starts is handed back uncharged with `release_many`).

        ``orphans=True`` claims only tasks rescued after their worker died, which a worker
        runs one at a time and alone (see `taskstore.models.task.orphaned`); batches
        (the default) take every other claimable task. Tasks named in `skip` are left.

        Call the result for the records: after the caller's transaction, so the write lock
        is not held while they are made (see `rows_later`).
        """
        if limit <= 0:
            return list
        params = claim_params(queue, limit, worker_id, lease_seconds, skip)
        rows = await self.backend.rows_later(conn, self._claim[orphans, bool(skip)], params)
        return lambda: [claimed(row) for row in sorted(rows(), key=claim_order)]

    # ---------------------------------------------------------- fenced endings
    def _build_ending(
        self, event: Event, values: dict[str, Any], doc_into: str | None = None
    ) -> Any:
        """A fenced UPDATE over a batch of (id, fence, doc) rows; `doc_into` names the
        JSON column that takes each row's document."""
        b = self.backend
        batch = b.batch_lookup("batch", ENDING_BATCH)
        values = {
            "status": status_literal(target(event)),
            "updated_at": self._now,
            "lease_expires_at": None,
            **values,
        }
        if target(event) in FINISHED:
            values["finished_at"] = self._now
        if doc_into is not None:
            values[doc_into] = b.json_from_text(batch.c.doc)
        return (
            update(T)
            .where(
                T.c.id == batch.c.id,
                b.batch_filter(T.c.id, "batch"),
                T.c.claims == batch.c.fence,
                T.c.worker_id == bindparam("p_worker_id"),
                status_in(sources(event)),
            )
            .values(values)
            .returning(T.c.id)
        )

    async def _end(
        self, conn: Executor, stmt: Any, worker_id: str, rows: Sequence[Ending], **extra: Any
    ) -> set[int]:
        return {row[0] for row in await self._end_rows(conn, stmt, worker_id, rows, **extra)}

    async def _end_rows(
        self, conn: Executor, stmt: Any, worker_id: str, rows: Sequence[Ending], **extra: Any
    ) -> Sequence[Any]:
        if not rows:
            return []
        params = {"p_worker_id": worker_id, **self._batch_params(rows), **extra}
        return await self.backend.rows(conn, stmt, params)

    async def complete_many(
        self, conn: Executor, *, worker_id: str, done: Sequence[Ending]
    ) -> set[int]:
        """Complete (task id, fence, result JSON text) triples this worker owns.

        Returns the ids accepted; a triple whose fence no longer matches (lease lost,
        cancelled, already rescued) is left untouched and missing from the result.
        Of the watched ones, dependents that wait for nothing more become ``created`` and
        waiters are woken (on a connection in autocommit mode, in statements after).
        """
        rows = await self._end_rows(conn, self._complete, worker_id, done)
        await self.after_completion(conn, [row[0] for row in rows if row[1]])
        return {row[0] for row in rows}

    async def interrupt_many(
        self, conn: Executor, *, worker_id: str, cut: Sequence[Ending], delay_seconds: float = 0.0
    ) -> set[int]:
        """Mark running tasks cut off by a graceful stop as ``not_finished``, the doc as
        their error, the attempt not charged: a deploy is not the task's failure. The
        worker's id stays on the row: it handed the task back alive, so the task is no
        orphan (see `taskstore.models.task.orphaned`) and runs again in a batch, in its place
        in line, or after `delay_seconds` (the time a handler's thread needs to die with
        its process)."""
        done = await self._end(conn, self._interrupt, worker_id, cut, p_delay=delay_seconds)
        await self.record_attempts(
            conn, sorted(done), worker_id=worker_id, outcome="cut_off", charged=False
        )
        return done

    async def release_many(
        self,
        conn: Executor,
        *,
        worker_id: str,
        handed: Sequence[tuple[int, int]],
        delay_seconds: float = 0.0,
        note: str | None = None,
    ) -> set[int]:
        """Hand (task id, fence) pairs this worker claimed but never ran back to
        ``created``, in their place in line or due after `delay_seconds`, with their
        attempt not charged; `note` (JSON text), if given, becomes their error document
        (why they were handed back)."""
        rows = [(task_id, fence, note) for task_id, fence in handed]
        stmt = self._release if note is None else self._release_noted
        return await self._end(conn, stmt, worker_id, rows, p_delay=delay_seconds)

    def _build_fail(self, retry: bool) -> Any:
        """A failed attempt's fenced end: back to ``created`` after ``p_retry_in`` seconds
        (`retry`), or ``failed``."""
        event = Event.RETRY if retry else Event.FAIL
        values: dict[str, Any] = {
            "status": status_literal(target(event)),
            "updated_at": self._now,
            "error": bindparam("p_error", type_=T.c.error.type),
            "lease_expires_at": None,
        }
        if retry:
            values["run_at"] = self.backend.now_plus(bindparam("p_retry_in", type_=Float))
            values["worker_id"] = None
        else:
            values["finished_at"] = self._now
        return (
            update(T)
            .where(
                T.c.id == bindparam("p_task_id"),
                status_in(sources(event)),
                T.c.worker_id == bindparam("p_worker_id"),
                T.c.claims == bindparam("p_fence"),
            )
            .values(values)
            .returning(T.c.id, T.c.watched)
        )

    async def snooze(
        self, conn: Executor, *, worker_id: str, task_id: int, fence: int, seconds: float
    ) -> bool:
        """A running attempt asked to run later: back to ``created``, due in `seconds`,
        the attempt not charged. False if the attempt is no longer this worker's."""
        rows = [(task_id, fence, None)]
        return bool(await self._end(conn, self._snooze, worker_id, rows, p_delay=seconds))

    async def fail(
        self,
        conn: Executor,
        *,
        task_id: int,
        worker_id: str,
        fence: int,
        error: dict[str, Any],
        retry_in: float | None,
    ) -> TaskStatus:
        """End a failed attempt: back to ``created`` after `retry_in` seconds, or ``failed``.

        Raises `LeaseLost` if this worker no longer owns that attempt.
        """
        retry = retry_in is not None
        params = {
            "p_task_id": task_id,
            "p_worker_id": worker_id,
            "p_fence": fence,
            "p_error": error,
            "p_retry_in": float(retry_in) if retry else None,
        }
        row = (await conn.execute(self._fail[retry], params)).first()
        if row is None:
            event = Event.RETRY if retry else Event.FAIL
            await self._explain_refusal(conn, event, task_id, fenced=True)
            return target(event)  # (not reached: the refusal raises)
        outcome = "retried" if retry else "failed"
        await self.record_attempts(
            conn, [task_id], worker_id=worker_id, outcome=outcome, error=error
        )
        if not retry and row[1]:
            await self.after_failure(conn, [task_id])
        return target(Event.RETRY if retry else Event.FAIL)

    async def set_progress(
        self, conn: Executor, *, task_id: int, worker_id: str, fence: int, fraction: float
    ) -> bool:
        """Record progress of a running attempt; False if the attempt is no longer ours."""
        stmt = (
            update(T)
            .where(
                T.c.id == task_id,
                T.c.worker_id == worker_id,
                T.c.claims == fence,
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

    def rescue_statement(self, limit: int = 1000) -> Any:
        """Tasks whose lease expired: ``not_finished`` to run again, or ``failed`` once a
        running task has used its last attempt."""
        exhausted = and_(
            T.c.status == status_literal(TaskStatus.RUNNING),
            T.c.max_attempts.is_not(None),
            T.c.attempts >= T.c.max_attempts,
        )
        picked = (
            select(T.c.id).where(status_in(LEASED), T.c.lease_expires_at < self._now).limit(limit)
        )
        new_status = case(
            (exhausted, status_literal(target(Event.FAIL))),
            else_=status_literal(target(Event.INTERRUPT)),
        )
        return (
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

    async def rescue_expired(self, conn: Executor, *, limit: int = 1000) -> dict[int, TaskStatus]:
        """Take back up to `limit` tasks whose lease expired; returns id -> new status."""
        # The rescue clears worker_id: read who held the leases first, for the attempts log.
        # Most passes find none, and then this read is the whole pass (no UPDATE).
        expired = select(T.c.id, T.c.worker_id).where(
            status_in(LEASED), T.c.lease_expires_at < self._now
        )
        holders = dict((await conn.execute(expired.limit(limit))).all())
        if not holders:
            return {}
        stmt = self.rescue_statement(limit)
        rescued = {r.id: TaskStatus(r.status) for r in (await conn.execute(stmt)).all()}
        await self.record_rescued(conn, {i: holders.get(i) for i in rescued})
        failed = [task_id for task_id, status in rescued.items() if status == TaskStatus.FAILED]
        await self.after_failure(conn, failed)
        return rescued

    async def any_due(
        self,
        conn: Executor,
        queues: Sequence[str],
        *,
        orphans: bool = False,
        waiting_seconds: float = 0.0,
        skip: Mapping[str, Sequence[str]] | None = None,
    ) -> bool:
        """Is a task of `queues` claimable now (with ``orphans=True``: one rescued after its
        worker died, at least `waiting_seconds` ago), leaving out the names `skip` lists
        for its queue? A read: cheap, and no write lock."""
        stmt, params = self._due.probe(
            queues, skip or {}, orphans=orphans, waiting_seconds=waiting_seconds
        )
        return bool(await self.backend.rows(conn, stmt, params))


def claim_params(
    queue: str, limit: int, worker_id: str, lease: float, skip: Sequence[str] = ()
) -> dict[str, Any]:
    """The parameters every claim statement takes (and the names its `skip` form leaves)."""
    params = {"p_queue": queue, "p_limit": limit, "p_worker_id": worker_id, "p_lease": lease}
    if skip:
        params["p_skip"] = list(skip)
    return params


def claimed(row: Any) -> ClaimedTask:
    """A claim's RETURNING row (`CLAIM_COLUMNS`) as the worker's record of it."""
    return ClaimedTask(*row[:7], trace_context=row[8], fence=row[9])


def claim_order(row: Any) -> tuple[int, Any, int]:
    """Best first: priority (higher first), then due time, then enqueue order."""
    return (-row[6], row[7], row[0])
