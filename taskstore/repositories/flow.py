"""Flow control statements: queue settings, and what a limited claim counts and takes.

A claim of a queue with settings runs in one transaction that first locks the queue's
row (PostgreSQL: ``FOR UPDATE``; SQLite: its write lock already excludes every other
writer), so the running count, the rate slots and the claim itself are consistent
across all workers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Float, Integer, bindparam, delete, func, insert, select, update

from taskstore.backends import Backend
from taskstore.models.queue import QueueEntity, RateSlotEntity
from taskstore.models.task import status_in
from taskstore.records import QueueSettings
from taskstore.repositories.task_table import Executor, T
from taskstore.states import LEASED

Q = QueueEntity.__table__
R = RateSlotEntity.__table__
_SETTINGS = (
    Q.c.name,
    Q.c.paused,
    Q.c.concurrency,
    Q.c.rate_limit,
    Q.c.rate_period,
    Q.c.key_concurrency,
)


@dataclasses.dataclass(frozen=True, slots=True)
class FreeSlots:
    """Rate slots a claim may use: `rested` ones to reuse, then `new` numbers to make."""

    rested: list[int]
    new: list[int]

    def __len__(self) -> int:
        return len(self.rested) + len(self.new)

    def first(self, count: int) -> FreeSlots:
        """The first `count` of them (reused ones first)."""
        rested = self.rested[:count]
        return FreeSlots(rested, self.new[: count - len(rested)])


NO_SLOTS = FreeSlots([], [])


class FlowStatements:
    """Reads and writes of `taskstore_queues` and `taskstore_rate_slots`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._now = backend.now()
        self._one = select(*_SETTINGS).where(Q.c.name == bindparam("p_queue"))
        # Locking the row bumps its claim counter: see `LimitedClaimStatements.claim_counted`.
        self._locked = (
            update(Q)
            .where(Q.c.name == bindparam("p_queue"))
            .values(claims=Q.c.claims + 1)
            .returning(*_SETTINGS)
        )
        self._running = select(func.count()).where(
            T.c.queue == bindparam("p_queue"), status_in(LEASED)
        )
        # Free slots: those last used at least a period ago (database clock), oldest first,
        # read from the slot index only as far as the claim needs.
        since = backend.now_plus(-bindparam("p_period", type_=Float))
        mine = R.c.queue == bindparam("p_queue")
        self._rested = (
            select(R.c.slot)
            .where(mine, R.c.used_at <= since)
            .order_by(R.c.used_at, R.c.slot)
            .limit(bindparam("p_limit", type_=Integer))
        )
        self._top = select(R.c.slot).where(mine).order_by(R.c.slot.desc()).limit(1)
        self._next_free = select(func.min(R.c.used_at)).where(mine)

    async def get(self, conn: Executor, queue: str, *, lock: bool = False) -> QueueSettings | None:
        """The queue's settings (locked until the transaction ends, with `lock`, and its
        claim counter bumped: a claim follows)."""
        row = (await conn.execute(self._locked if lock else self._one, {"p_queue": queue})).first()
        return None if row is None else QueueSettings(*row)

    async def all(self, conn: Executor) -> list[QueueSettings]:
        rows = await conn.execute(select(*_SETTINGS).order_by(Q.c.name))
        return [QueueSettings(*row) for row in rows]

    async def save(self, conn: Executor, settings: QueueSettings) -> None:
        """Create or replace the queue's settings, and size its rate slots to match."""
        values = {
            "paused": settings.paused,
            "concurrency": settings.concurrency,
            "rate_limit": settings.rate_limit,
            "rate_period": settings.rate_period,
            "key_concurrency": settings.key_concurrency,
            "updated_at": self._now,
        }
        upsert = self.backend.upsert(Q, ["name"], list(values))
        await conn.execute(upsert.values(name=settings.name, **values))
        await self._size_slots(conn, settings.name, settings.rate_limit or 0)

    async def _size_slots(self, conn: Executor, queue: str, wanted: int) -> None:
        # Slots are made as starts first need them (`free_slots`); a lower rate drops the
        # numbers it no longer has.
        await conn.execute(delete(R).where(R.c.queue == queue, R.c.slot >= wanted))

    async def running(self, conn: Executor, queue: str) -> int:
        """Tasks of the queue running (or assigned) now, on every worker."""
        return (await conn.execute(self._running, {"p_queue": queue})).scalar_one()

    async def free_slots(
        self, conn: Executor, queue: str, period: float, rate: int, limit: int
    ) -> FreeSlots:
        """Up to `limit` rate slots free now: slots rested a whole period, then new ones
        while the queue has fewer than `rate` (the caller holds the queue's lock)."""
        params = {"p_queue": queue, "p_period": period, "p_limit": limit}
        rested = list((await conn.execute(self._rested, params)).scalars())
        if len(rested) == limit:
            return FreeSlots(rested, [])
        top = (await conn.execute(self._top, params)).scalar_one_or_none()
        first = 0 if top is None else top + 1
        return FreeSlots(rested, list(range(first, min(first + limit - len(rested), rate))))

    async def use_slots(self, conn: Executor, queue: str, slots: FreeSlots) -> None:
        if slots.rested:
            stmt = update(R).where(R.c.queue == queue, R.c.slot.in_(slots.rested))
            await conn.execute(stmt.values(used_at=self._now))
        if slots.new:
            rows = [{"queue": queue, "slot": slot} for slot in slots.new]
            await conn.execute(insert(R).values(used_at=self._now), rows)

    async def next_slot_at(self, conn: Executor, queue: str, period: float) -> dt.datetime | None:
        """When the oldest slot frees (its last use plus the period)."""
        used = (await conn.execute(self._next_free, {"p_queue": queue})).scalar_one()
        return None if used is None else used + dt.timedelta(seconds=period)
