"""`PeriodicTick`: one row per (periodic task, tick) ever enqueued.

The primary key makes "exactly one task per tick, however many workers run the schedule"
a database guarantee: every worker tries to insert the tick, one succeeds and enqueues.
Unlike a dedup key, the row outlives the task, so a tick that already ran is never re-run.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base
from taskstore.models.task import TaskId


class PeriodicTick(Base):
    __tablename__ = "taskstore_periodic_ticks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tick: Mapped[dt.datetime] = mapped_column(primary_key=True)
    task_id: Mapped[int | None] = mapped_column(TaskId)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
