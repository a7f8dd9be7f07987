"""Repositories: Core statements for the task table, ORM access for result entities."""

from taskstore.repositories.base import BaseRepository, EntityNotFound
from taskstore.repositories.media import (
    CaptionRepository,
    MediaRepository,
    TranscriptRepository,
    VideoRepository,
)
from taskstore.repositories.tasks import TaskRepository

__all__ = [
    "BaseRepository",
    "CaptionRepository",
    "EntityNotFound",
    "MediaRepository",
    "TaskRepository",
    "TranscriptRepository",
    "VideoRepository",
]
