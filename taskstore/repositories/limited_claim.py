"""The claim of a queue with flow control: limits counted, keys taken in turn.

The keyed and rate-limited claim runs in `taskstore.flow_gate.FlowGate`'s transaction,
after the queue's settings row is locked, so limited claimers of one queue take turns and
need no SKIP LOCKED. A queue whose only limit is its concurrency is claimed in one
statement that counts what runs, and a worker's completions of it can claim the slots
they free in the same statement (`complete_and_claim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)

from taskstore.backends import Backend
from taskstore.models.queue import QueueEntity
from taskstore.models.task import status_in
from taskstore.records import ClaimedTask
from taskstore.repositories.keyed_pick import SCAN, KeyedPickStatements, key_params
from taskstore.repositories.leases import (
    CLAIM_COLUMNS,
    Ending,
    claim_order,
    claim_params,
    claimed,
)
from taskstore.repositories.task_table import Executor, T
from taskstore.states import LEASED, Event

Q = QueueEntity.__table__


class LimitedClaimStatements(KeyedPickStatements):
    """`claim_limited`: the claim under a queue's flow control."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        both = (True, False)
        self._limited_claim = {
            (orphans, keyed, skip): self._build_limited_claim(orphans, keyed, skip)
            for orphans in both
            for keyed in both
            for skip in both
        }
        self._counted_claim = {
            (o, skip): self._build_claim(o, self._counted_room(), skip=skip)
            for o in both
            for skip in both
        }
        self._handoff = None if backend.writes_read_latest else self._build_handoff(False)
        self._keyed_handoff = None if backend.writes_read_latest else self._build_handoff(True)

    def _build_limited_claim(self, orphans: bool, keyed: bool, skip: bool) -> Any:
        """The claim of a queue with flow control, run after the queue's row is locked
        (limited claimers of one queue take turns). With `keyed`, a task starts only while
        fewer than `p_key_limit` of its key run or come before it, in (priority, id) order
        (see `_keyed_pick`). With `skip`, the names bound as ``p_skip`` are not taken
        (keyed, they still keep their place)."""
        if keyed:
            return self._build_keyed_claim(orphans, skip, bindparam("p_limit", type_=Integer))
        order = (T.c.priority.desc(), T.c.run_at, T.c.id)
        picked = select(T.c.id).where(*self._claimable(orphans, skip)).order_by(*order)
        picked = picked.limit(bindparam("p_limit", type_=Integer))
        # The usual SKIP LOCKED claim: a worker whose settings cache is a moment old may
        # still claim the queue without its lock.
        where = self.backend.claim_where(T.c.id, picked)
        return update(T).where(where).values(self._claim_values()).returning(*CLAIM_COLUMNS)

    def _counted_room(self, freed: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
        """How many a counted claim may take: its queue's concurrency less what runs, or
        0 when the queue's row no longer fits a counted claim (paused, rate or key limits:
        the caller falls back to the locked transaction) or another claim came first.

        `freed` (PostgreSQL): the queue's tasks this statement completes, still running in
        its snapshot. They count as free; and when another claim came first, at most
        they are taken, which leaves the running count where it was."""
        p_queue = bindparam("p_queue")
        fits = (
            Q.c.name == p_queue,
            Q.c.paused.is_(False),
            Q.c.concurrency.is_not(None),
            Q.c.rate_limit.is_(None),
            Q.c.key_concurrency.is_(None),
        )
        running = (
            select(func.count()).where(T.c.queue == p_queue, status_in(LEASED)).scalar_subquery()
        )
        if self.backend.writes_read_latest:  # SQLite: the write lock is held from the start
            room = select(Q.c.concurrency - running).where(*fits).scalar_subquery()
        else:
            # The count comes from the statement's snapshot, which misses a claim committed
            # while this one waited for the queue row. Every claim bumps `claims` under the
            # row's lock: when the bump starts from the value the snapshot saw, no claim
            # came in between (completions since then only make the count err on the safe side).
            seen = select(Q.c.claims).where(Q.c.name == p_queue).scalar_subquery()
            bumped = (
                update(Q)
                .where(*fits)
                .values(claims=Q.c.claims + 1)
                .returning((Q.c.claims - 1).label("before"), Q.c.concurrency)
                .cte("bumped")
            )
            freed = literal(0) if freed is None else freed
            # Each count once. OFFSET 0 keeps the planner from pulling the subquery up
            # into every expression that names its columns: it would plan (and start, at
            # every execution) one copy of each count per mention, thirty in all.
            tally = (
                select(
                    (bumped.c.before == seen).label("alone"),
                    (bumped.c.concurrency - running + freed).label("counted"),
                    freed.label("freed"),
                )
                .offset(0)
                .subquery("tally")
            )
            room = select(
                case(
                    (tally.c.alone, tally.c.counted),
                    (tally.c.counted < tally.c.freed, tally.c.counted),
                    else_=tally.c.freed,
                )
            ).scalar_subquery()
        p_limit = bindparam("p_limit", type_=Integer)
        left = select(func.coalesce(room, 0).label("n"))
        if not self.backend.writes_read_latest:
            left = left.offset(0)  # as above: one copy of the room, not three
        left = left.subquery("room")
        return select(
            case((left.c.n < 0, 0), (left.c.n < p_limit, left.c.n), else_=p_limit)
        ).scalar_subquery()

    def _build_handoff(self, keyed: bool) -> Any:
        """PostgreSQL: a batch of completions and the claim of the slots (`keyed`: the
        keys) they free, in one statement (data-modifying CTEs). Rows: (ended?,
        watched?, *CLAIM_COLUMNS), an ended row carrying only its id."""
        ending = self._build_ending(Event.COMPLETE, {"progress": 1.0}, doc_into="result")
        done = ending.returning(T.c.watched, T.c.queue).cte("done")
        if keyed:
            claim = self._build_keyed_claim(False, False, self._key_gate(), freed=done)
        else:
            freed = select(func.count()).where(done.c.queue == bindparam("p_queue"))
            claim = self._build_claim(False, self._counted_room(freed.scalar_subquery()))
        refill = claim.cte("refill")
        blanks = [cast(null(), column.type).label(column.name) for column in CLAIM_COLUMNS[1:]]
        ended = select(literal(True).label("ended"), done.c.watched, done.c.id, *blanks)
        started = select(literal(False), literal(False), *(refill.c[c.name] for c in CLAIM_COLUMNS))
        return union_all(ended, started)

    async def complete_and_claim(
        self,
        conn: Executor,
        *,
        worker_id: str,
        done: Sequence[Ending],
        queue: str,
        limit: int,
        lease_seconds: float,
        key_limit: int | None = None,
    ) -> tuple[set[int], list[ClaimedTask]]:
        """`complete_many`, then `claim_counted` (with `key_limit`: `claim_keyed`) of up
        to `limit` tasks of `queue` in the slots (the keys) the completions free, at once:
        a queue held at its limit starts its next tasks without waiting for another round
        trip. Returns the ids accepted by the fence and the tasks claimed (call in one
        transaction)."""
        if self._handoff is None:  # SQLite: two statements under the one write lock
            accepted = await self.complete_many(conn, worker_id=worker_id, done=done)
            claim = dict(worker_id=worker_id, queue=queue, limit=limit, lease_seconds=lease_seconds)
            if key_limit is None:
                return accepted, await self.claim_counted(conn, **claim)
            return accepted, await self.claim_keyed(conn, key_limit=key_limit, **claim)
        params = claim_params(queue, limit, worker_id, lease_seconds)
        params.update(self._batch_params(done))
        handoff = self._handoff
        if key_limit is not None:
            params.update(key_params(key_limit, limit))
            handoff = self._keyed_handoff
        rows = await self.backend.rows(conn, handoff, params)
        ended = [row for row in rows if row[0]]
        await self.after_completion(conn, [row[2] for row in ended if row[1]])
        started = sorted((row[2:] for row in rows if not row[0]), key=claim_order)
        return {row[2] for row in ended}, [claimed(row) for row in started]

    async def claim_counted(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        orphans: bool = False,
        skip: Sequence[str] = (),
    ) -> list[ClaimedTask]:
        """`claim` for a queue whose only limit is its concurrency, counted in the claim
        statement itself. Takes nothing when the queue is full, paused, has other
        limits, or another claim of it came first: then claim in `claim_limited`'s
        locked transaction, which tells these apart."""
        if limit <= 0:
            return []
        params = claim_params(queue, limit, worker_id, lease_seconds, skip)
        rows = await self.backend.rows(conn, self._counted_claim[orphans, bool(skip)], params)
        return [claimed(row) for row in sorted(rows, key=claim_order)]

    async def claim_limited(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        key_limit: int | None,
        orphans: bool = False,
        scan: int = SCAN,
        skip: Sequence[str] = (),
    ) -> list[ClaimedTask]:
        """`claim` for a queue with flow control (call with its row locked): at most
        `key_limit` running per concurrency key, when given."""
        if limit <= 0:
            return []
        params = claim_params(queue, limit, worker_id, lease_seconds, skip)
        params.update(key_params(key_limit, limit, scan))
        stmt = self._limited_claim[orphans, key_limit is not None, bool(skip)]
        rows = sorted((await conn.execute(stmt, params)).all(), key=claim_order)
        return [claimed(row) for row in rows]
