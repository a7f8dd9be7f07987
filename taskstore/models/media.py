"""Result entities: a joined-table hierarchy rooted at `MediaEntity`, plus transcripts and
captions that reference a media row and the task that produced them.

Users extend the hierarchy with their own subclass (own table, own
``polymorphic_identity``); loading through `MediaEntity` returns the most specific class.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from taskstore.models.base import Base, JSONDocument
from taskstore.models.task import TaskId

_TASK_FK = "taskstore_tasks.id"
_NOW = sql_text("CURRENT_TIMESTAMP")


def new_media_id() -> str:
    return uuid.uuid4().hex


class MediaEntity(Base):
    """Any media item (video, audio, image...) a task processed or produced."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_media_id)
    media_type: Mapped[str] = mapped_column(String(50))
    path: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # Purging old tasks keeps their results: the link is cleared, not cascaded.
    task_id: Mapped[int | None] = mapped_column(
        TaskId, ForeignKey(_TASK_FK, ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_NOW)

    transcripts: Mapped[list[TranscriptEntity]] = relationship(
        back_populates="media", cascade="all, delete-orphan", passive_deletes=True
    )
    captions: Mapped[list[CaptionEntity]] = relationship(
        back_populates="media", cascade="all, delete-orphan", passive_deletes=True
    )

    # Load subclass columns in the same query (lazy loads cannot run under asyncio); this
    # covers user subclasses defined later too.
    __mapper_args__ = {
        "polymorphic_on": "media_type",
        "polymorphic_identity": "media",
        "with_polymorphic": "*",
    }


class VideoEntity(MediaEntity):
    """A video: media plus its technical metadata."""

    __tablename__ = "video"

    id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    duration: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)

    __mapper_args__ = {"polymorphic_identity": "video"}


class _ProducedFromMedia:
    """Columns of a result derived from a media item by a task."""

    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused, as for tasks
    id: Mapped[int] = mapped_column(TaskId, primary_key=True, autoincrement=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(
        TaskId, ForeignKey(_TASK_FK, ondelete="SET NULL"), index=True
    )
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=_NOW)


class TranscriptEntity(_ProducedFromMedia, Base):
    """A speech-to-text transcript of a media item."""

    __tablename__ = "transcript"

    language: Mapped[str | None] = mapped_column(String(16))
    segments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)

    media: Mapped[MediaEntity] = relationship(back_populates="transcripts")


class CaptionEntity(_ProducedFromMedia, Base):
    """A caption of a media item at a point in time (seconds from the start)."""

    __tablename__ = "caption"

    timestamp: Mapped[float | None] = mapped_column(Float)

    media: Mapped[MediaEntity] = relationship(back_populates="captions")
