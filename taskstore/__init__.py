"""taskstore: an async task queue whose queue is a database table.

The public names load on first use (PEP 562): ``import taskstore.cli`` for ``taskstore
--help`` must not import SQLAlchemy, while ``from taskstore import TaskStore`` works as
ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskstore.lazy import lazy_exports

if TYPE_CHECKING:
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

_HOMES = {
    "ClaimedTask": "taskstore.records",
    "ConfigError": "taskstore.errors",
    "DatabaseUnavailable": "taskstore.errors",
    "IllegalTransition": "taskstore.errors",
    "InvalidInput": "taskstore.errors",
    "LeaseLost": "taskstore.errors",
    "QueueStats": "taskstore.records",
    "SchemaOutOfDate": "taskstore.errors",
    "Settings": "taskstore.settings",
    "TaskInfo": "taskstore.records",
    "TaskNotFound": "taskstore.errors",
    "TaskStatus": "taskstore.states",
    "TaskStore": "taskstore.store",
    "TaskStoreError": "taskstore.errors",
}
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


if not TYPE_CHECKING:  # a type checker sees the imports above: an unknown name is an error
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
