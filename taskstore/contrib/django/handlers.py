"""Running Django tasks in a taskstore worker.

`resolve` is a `worker.registry.Registry` resolver: asked for a task name the worker has
no handler for, it imports the name as a module path and, if it finds a Django `Task`,
returns a handler that calls the task's function with the stored args and kwargs (a
coroutine function on the worker's loop, a plain one in a worker thread, with Django's
stale connections closed around it). A name that leads to anything else gets a handler
that fails the task with a one-line reason; a name whose module does not exist is left to
other workers. `discover` registers up front the tasks of each installed app's ``tasks``
module, so the worker names them when it starts and in its heartbeats.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from django.apps import apps
from django.db import close_old_connections
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from taskstore.contrib.django.results import import_at
from worker.context import TaskContext as WorkerContext
from worker.errors import NonRetryable, WrongArguments
from worker.registry import Registry, TaskDef

T = TypeVar("T", list[Any], dict[str, Any])
_not_found: set[str] = set()  # names no module here defines: asked once per process


def resolve(name: str) -> TaskDef | None:
    """A handler for the Django task at module path `name`, or None if there is none."""
    if name in _not_found:
        return None
    try:
        found = import_at(name)
    except LookupError:  # no such module or attribute: perhaps another worker's task
        _not_found.add(name)
        return None
    except Exception as exc:  # the module exists but fails to import
        return _refusing(name, f"cannot import {name}: {type(exc).__name__}: {exc}")
    if not isinstance(found, Task):
        kind = type(found).__name__
        return _refusing(
            name, f"{name} is a {kind}, not a Django task (declare it with django.tasks.task)"
        )
    return TaskDef(
        name=name,
        fn=_handler(found),
        queue=found.queue_name,
        priority=found.priority,
        max_attempts=1,  # the row's own max_attempts (set at enqueue) wins
    )


def discover(registry: Registry, backend: str) -> list[str]:
    """Register the Django tasks of `backend` (its alias) defined in the ``tasks`` module
    of every installed app (the usual home of tasks; others, and tasks sent to it with
    ``.using(backend=...)``, are still found when claimed). Their names."""
    found = []
    for config in apps.get_app_configs():
        name = f"{config.name}.tasks"
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:  # the app is a module, not a package
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            # Defined here, not imported from elsewhere: one name per task.
            if (
                isinstance(value, Task)
                and value.backend == backend
                and value.func.__module__ == name
                and value.module_path not in registry.tasks
            ):
                definition = resolve(value.module_path)
                if definition is not None:
                    found.append(registry.add(definition).name)
    return found


def _refusing(name: str, reason: str) -> TaskDef:
    def refuse(ctx: WorkerContext, **_: Any) -> None:
        raise NonRetryable(reason)

    return TaskDef(name=name, fn=refuse, max_attempts=1)


def _handler(task: Task) -> Callable[..., Any]:
    """``fn(ctx, args, kwargs)`` in the shape of a taskstore handler, sync or async like
    the task's own function."""
    if inspect.iscoroutinefunction(task.func):

        async def run_async(
            ctx: WorkerContext, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
        ) -> Any:
            call = _Call(task, ctx, args, kwargs)
            try:
                value = _returned(task, await task.func(*call.args, **call.kwargs))
            except BaseException:
                call.finished(TaskResultStatus.FAILED)
                raise
            call.finished(TaskResultStatus.SUCCESSFUL)
            return value

        return run_async

    def run_sync(
        ctx: WorkerContext, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> Any:
        close_old_connections()  # this thread's connection may have gone stale meanwhile
        try:
            call = _Call(task, ctx, args, kwargs)
            try:
                value = _returned(task, task.func(*call.args, **call.kwargs))
            except BaseException:
                call.finished(TaskResultStatus.FAILED)
                raise
            call.finished(TaskResultStatus.SUCCESSFUL)
            return value
        finally:
            close_old_connections()

    return run_sync


class _Call:
    """One attempt as Django sees it: the RUNNING result that ``takes_context`` tasks get
    and that Django's task_started / task_finished signals carry."""

    def __init__(
        self,
        task: Task,
        ctx: WorkerContext,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
    ) -> None:
        from taskstore.contrib.django.backend import TaskstoreBackend

        self.sender = TaskstoreBackend
        now = timezone.now()
        self.result = TaskResult(
            task=task,
            id=str(ctx.task_id),
            status=TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=now,
            finished_at=None,
            last_attempted_at=now,
            args=_checked(task, "args", args, list, "a list"),
            kwargs=_checked(task, "kwargs", kwargs, dict, "a JSON object"),
            backend=task.backend,
            errors=[],
            worker_ids=[ctx.worker_id] * ctx.attempt,  # so context.attempt is the attempt
        )
        context = [TaskContext(task_result=self.result)] if task.takes_context else []
        self.args = [*context, *self.result.args]
        self.kwargs = self.result.kwargs
        task_started.send(self.sender, task_result=self.result)

    def finished(self, status: TaskResultStatus) -> None:
        object.__setattr__(self.result, "status", status)  # TaskResult is frozen
        object.__setattr__(self.result, "finished_at", timezone.now())
        task_finished.send(self.sender, task_result=self.result)


def _checked(task: Task, what: str, value: Any, kind: type[T], shape: str) -> T:
    """The stored args or kwargs, a copy; refused in one line if of another shape (a
    string would be spread into characters, an object into its keys)."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise WrongArguments(
            f"{task.module_path}: {what} must be {shape}, got {type(value).__name__}"
        )
    return kind(value)


def _returned(task: Task, value: Any) -> Any:
    """The return value as JSON. One that is not fails the task without a retry: running
    the function again would repeat its side effects only to return the same."""
    try:
        return normalize_json(value)
    except (TypeError, ValueError) as exc:
        raise NonRetryable(f"the return value of {task.module_path} is not JSON: {exc}") from None
