"""Repositories for the result entities (media, video, transcript, caption)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskstore.models.media import CaptionEntity, MediaEntity, TranscriptEntity, VideoEntity
from taskstore.repositories.base import BaseRepository

MediaT = TypeVar("MediaT", bound=MediaEntity)
VideoT = TypeVar("VideoT", bound=VideoEntity)


class MediaRepository(BaseRepository[MediaT], Generic[MediaT]):
    """Media of any kind; loading through `MediaEntity` yields the most specific class."""

    model = MediaEntity  # type: ignore[assignment]

    async def by_task(
        self, task_id: int, media_types: Sequence[str] | None = None
    ) -> Sequence[MediaT]:
        """The task's rows (of these `media_types` only, if given)."""
        stmt = select(self.model).where(self.model.task_id == task_id)
        if media_types is not None:
            stmt = stmt.where(self.model.media_type.in_(media_types))
        return (await self.session.scalars(stmt.order_by(self.model.id))).all()


class VideoRepository(MediaRepository[VideoT], Generic[VideoT]):
    """Videos; subclass with your own `VideoEntity` subclass as `model`."""

    model = VideoEntity  # type: ignore[assignment]

    def __init__(self, session: AsyncSession, model: type[VideoT] | None = None) -> None:
        super().__init__(session, model)


class TranscriptRepository(BaseRepository[TranscriptEntity]):
    model = TranscriptEntity

    async def by_task(self, task_id: int) -> Sequence[TranscriptEntity]:
        stmt = select(TranscriptEntity).where(TranscriptEntity.task_id == task_id)
        return (await self.session.scalars(stmt.order_by(TranscriptEntity.id))).all()

    async def for_media(self, media_id: str) -> Sequence[TranscriptEntity]:
        stmt = select(TranscriptEntity).where(TranscriptEntity.media_id == media_id)
        return (await self.session.scalars(stmt.order_by(TranscriptEntity.id))).all()


class CaptionRepository(BaseRepository[CaptionEntity]):
    model = CaptionEntity

    async def by_task(self, task_id: int) -> Sequence[CaptionEntity]:
        stmt = select(CaptionEntity).where(CaptionEntity.task_id == task_id)
        return (await self.session.scalars(stmt.order_by(CaptionEntity.timestamp))).all()

    async def for_media(self, media_id: str) -> Sequence[CaptionEntity]:
        stmt = select(CaptionEntity).where(CaptionEntity.media_id == media_id)
        return (await self.session.scalars(stmt.order_by(CaptionEntity.timestamp))).all()
