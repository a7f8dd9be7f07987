"""The taskstore worker runtime: register handlers with @task, run them with taskstore-worker."""

from worker.context import TaskContext
from worker.errors import NonRetryable, TaskTimeout, UnknownTask, WrongArguments
from worker.producer import EnqueueOptions, TaskCall
from worker.registry import RegistrationError, Registry, TaskDef, on_shutdown, on_startup, task
from worker.runner import Worker, WorkerConfig

__all__ = [
    "EnqueueOptions",
    "NonRetryable",
    "RegistrationError",
    "Registry",
    "TaskCall",
    "TaskContext",
    "TaskDef",
    "TaskTimeout",
    "UnknownTask",
    "Worker",
    "WorkerConfig",
    "WrongArguments",
    "on_shutdown",
    "on_startup",
    "task",
]
