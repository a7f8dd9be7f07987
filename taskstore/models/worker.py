"""`WorkerEntity`: one row per live worker process, kept fresh by its heartbeats.

Operators see who is running (`taskstore workers`, the dashboard) without asking the
workers; a row whose heartbeat is older than its lease belongs to a worker that died, and
is deleted by the next rescue pass of any worker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base, JSONDocument


class WorkerEntity(Base):
    __tablename__ = "taskstore_workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    concurrency: Mapped[int] = mapped_column(Integer)
    lease_seconds: Mapped[float] = mapped_column(Float)
    running: Mapped[int] = mapped_column(Integer, server_default="0")
    #: names of the task handlers the worker has (it hands back tasks it cannot run)
    tasks: Mapped[list[str]] = mapped_column(JSONDocument, server_default=text("'[]'"))
    started_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    last_heartbeat_at: Mapped[dt.datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
