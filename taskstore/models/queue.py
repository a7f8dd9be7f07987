"""Flow control settings per queue, and the rate limiter's slots.

Settings live in the database so every worker, on every host, obeys the same values, and
a queue can be limited or paused before any task uses it. A queue with a rate of N per
PERIOD has up to N slot rows (made as starts first need them); a start takes a new slot or
one whose last use is at least PERIOD ago, so no window of PERIOD ever holds more than N
starts, across any number of workers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    exists,
    or_,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base


class QueueEntity(Base):
    __tablename__ = "taskstore_queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: most tasks of the queue running at once, across all workers (NULL: no limit)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    #: most starts in any window of `rate_period` seconds (NULL: no limit)
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    rate_period: Mapped[float | None] = mapped_column(Float)
    #: most running at once among tasks sharing a concurrency key (NULL: no limit)
    key_concurrency: Mapped[int | None] = mapped_column(Integer)
    #: claims of the queue so far: a claim that sees it move knows another claim came first
    claims: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))


class RateSlotEntity(Base):
    __tablename__ = "taskstore_rate_slots"

    queue: Mapped[str] = mapped_column(
        String(64), ForeignKey("taskstore_queues.name", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    used_at: Mapped[dt.datetime | None]

    # A claim reads the few rested slots it needs from here, never all N (N may be 1,000,000).
    __table_args__ = (Index("ix_taskstore_rate_slots_free", "queue", "used_at", "slot"),)


def without_flow_control(queue: Any) -> ColumnElement[bool]:
    """True while `queue` (an SQL expression) has no setting that pauses or limits it.
    The plain claim states it, so a limit set a moment ago binds every claim from then
    on, before a worker's cached view of the queue has caught up."""
    q = QueueEntity.__table__.c
    limits = or_(
        q.paused == true(),
        q.concurrency.is_not(None),
        q.rate_limit.is_not(None),
        q.key_concurrency.is_not(None),
    )
    return ~exists().where(q.name == queue, limits)
