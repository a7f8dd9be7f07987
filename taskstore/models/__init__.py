"""ORM entities: the task table and the polymorphic result entities."""

from taskstore.models.attempt import TaskAttempt
from taskstore.models.base import Base, UTCDateTime
from taskstore.models.dependency import TaskDependency
from taskstore.models.media import CaptionEntity, MediaEntity, TranscriptEntity, VideoEntity
from taskstore.models.periodic import PeriodicTick
from taskstore.models.queue import QueueEntity, RateSlotEntity
from taskstore.models.task import TaskEntity
from taskstore.models.worker import WorkerEntity

__all__ = [
    "Base",
    "CaptionEntity",
    "MediaEntity",
    "PeriodicTick",
    "QueueEntity",
    "RateSlotEntity",
    "TaskAttempt",
    "TaskDependency",
    "TaskEntity",
    "TranscriptEntity",
    "UTCDateTime",
    "VideoEntity",
    "WorkerEntity",
]
