"""taskstore: an async task queue whose queue is a database table."""

from taskstore.errors import (
    ConfigError,
    DatabaseUnavailable,
    IllegalTransition,
    InvalidInput,
    LeaseLost,
    SchemaOutOfDate,
    TaskNotFound,
    TaskStoreError,
)
from taskstore.records import ClaimedTask, QueueStats, TaskInfo
from taskstore.settings import Settings
from taskstore.states import TaskStatus
from taskstore.store import TaskStore

__all__ = [
    "ClaimedTask",
    "ConfigError",
    "DatabaseUnavailable",
    "IllegalTransition",
    "InvalidInput",
    "LeaseLost",
    "QueueStats",
    "SchemaOutOfDate",
    "Settings",
    "TaskInfo",
    "TaskNotFound",
    "TaskStatus",
    "TaskStore",
    "TaskStoreError",
]
