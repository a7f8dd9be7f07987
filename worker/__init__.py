"""The taskstore worker runtime: register handlers with @task, run them with taskstore-worker.

The public names load on first use (PEP 562), so ``taskstore-worker --help`` does not
import the runner and SQLAlchemy; ``from worker import task`` works as ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskstore.lazy import lazy_exports

if TYPE_CHECKING:
    from worker.context import TaskContext
    from worker.errors import NonRetryable, Snooze, TaskTimeout, UnknownTask, WrongArguments
    from worker.producer import EnqueueOptions, TaskCall
    from worker.registry import (
        RegistrationError,
        Registry,
        TaskDef,
        middleware,
        on_shutdown,
        on_startup,
        task,
    )
    from worker.runner import Worker, WorkerConfig

_HOMES = {
    "Snooze": "worker.errors",
    "EnqueueOptions": "worker.producer",
    "TaskCall": "worker.producer",
    "NonRetryable": "worker.errors",
    "RegistrationError": "worker.registry",
    "Registry": "worker.registry",
    "TaskContext": "worker.context",
    "TaskDef": "worker.registry",
    "TaskTimeout": "worker.errors",
    "UnknownTask": "worker.errors",
    "Worker": "worker.runner",
    "WorkerConfig": "worker.runner",
    "WrongArguments": "worker.errors",
    "middleware": "worker.registry",
    "on_shutdown": "worker.registry",
    "on_startup": "worker.registry",
    "task": "worker.registry",
}
__all__ = [
    "EnqueueOptions",
    "NonRetryable",
    "RegistrationError",
    "Registry",
    "Snooze",
    "TaskCall",
    "TaskContext",
    "TaskDef",
    "TaskTimeout",
    "UnknownTask",
    "Worker",
    "WorkerConfig",
    "WrongArguments",
    "middleware",
    "on_shutdown",
    "on_startup",
    "task",
]


if not TYPE_CHECKING:  # a type checker sees the imports above: an unknown name is an error
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
