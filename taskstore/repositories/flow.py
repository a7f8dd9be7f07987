"""Flow control statements: queue settings, and what a limited claim counts and takes.

A claim of a queue with settings runs in one transaction that first locks the queue's
row (PostgreSQL: ``FOR UPDATE``; SQLite: its write lock already excludes every other
writer), so the running count, the rate slots and the claim itself are consistent
across all workers.
"""

from __future__ import annotations

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
        # Free slots: unused, or last used at least a period ago (database clock).
        since = backend.now_plus(-bindparam("p_period", type_=Float))
        free = (R.c.queue == bindparam("p_queue")) & (
            R.c.used_at.is_(None) | (R.c.used_at <= since)
        )
        self._free_slots = (
            select(R.c.slot).where(free).order_by(R.c.used_at.nulls_first(), R.c.slot)
        ).limit(bindparam("p_limit", type_=Integer))
        self._next_free = select(func.min(R.c.used_at)).where(R.c.queue == bindparam("p_queue"))

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
        have = (await conn.execute(select(func.count()).where(R.c.queue == queue))).scalar_one()
        if have < wanted:
            rows = [{"queue": queue, "slot": i, "used_at": None} for i in range(have, wanted)]
            await conn.execute(insert(R), rows)
        elif have > wanted:
            await conn.execute(delete(R).where(R.c.queue == queue, R.c.slot >= wanted))

    async def running(self, conn: Executor, queue: str) -> int:
        """Tasks of the queue running (or assigned) now, on every worker."""
        return (await conn.execute(self._running, {"p_queue": queue})).scalar_one()

    async def free_slots(self, conn: Executor, queue: str, period: float, limit: int) -> list[int]:
        """Up to `limit` rate slots free now."""
        params = {"p_queue": queue, "p_period": period, "p_limit": limit}
        return list((await conn.execute(self._free_slots, params)).scalars())

    async def use_slots(self, conn: Executor, queue: str, slots: list[int]) -> None:
        stmt = update(R).where(R.c.queue == queue, R.c.slot.in_(slots)).values(used_at=self._now)
        await conn.execute(stmt)

    async def next_slot_at(self, conn: Executor, queue: str, period: float) -> dt.datetime | None:
        """When the oldest slot frees (its last use plus the period)."""
        used = (await conn.execute(self._next_free, {"p_queue": queue})).scalar_one()
        return None if used is None else used + dt.timedelta(seconds=period)
