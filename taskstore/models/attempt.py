"""`TaskAttempt`: one row per attempt that did not complete (failed, retried, lease
expired, cut off at shutdown). A task's current or completing attempt is on its own row,
so the common path (one attempt, completed) writes no history at all; the attempts log of
`taskstore show` joins the two. Rows go with their task (ON DELETE CASCADE)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base
from taskstore.models.task import TaskId


class TaskAttempt(Base):
    __tablename__ = "taskstore_task_attempts"

    id: Mapped[int] = mapped_column(TaskId, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(
        TaskId, ForeignKey("taskstore_tasks.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime]
    #: retried, failed, lease_expired, cut_off or cancelled
    outcome: Mapped[str] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = ({"sqlite_autoincrement": True},)
