"""The `@task` decorator, lifecycle hooks, and the registry of handlers a worker serves."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from taskstore.errors import InvalidInput
from taskstore.validation import check_name, check_queue
from worker.cron import can_fire, is_valid

Handler = Callable[..., Any]
Hook = Callable[[dict[str, Any]], Any]


class RegistrationError(InvalidInput):
    """A handler or hook cannot be registered as declared."""


@dataclasses.dataclass(frozen=True)
class TaskDef:
    """A registered handler and its defaults."""

    name: str
    fn: Handler
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    backoff: float = 1.0
    cron: str | None = None

    @functools.cached_property
    def is_async(self) -> bool:  # asked once per attempt: inspect only once
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the decorated function still calls the function itself."""
        return self.fn(*args, **kwargs)

    async def enqueue(self, store: Any, /, **payload: Any) -> int:
        """Enqueue this task with its declared queue, priority and attempts."""
        return await store.enqueue(
            self.name,
            payload,
            queue=self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
        )


@dataclasses.dataclass
class Registry:
    """Handlers by name, plus per-process start-up and shutdown hooks."""

    tasks: dict[str, TaskDef] = dataclasses.field(default_factory=dict)
    startup: list[Hook] = dataclasses.field(default_factory=list)
    shutdown: list[Hook] = dataclasses.field(default_factory=list)

    def add(self, definition: TaskDef) -> TaskDef:
        existing = self.tasks.get(definition.name)
        if existing is not None and existing.fn is not definition.fn:
            raise RegistrationError(
                f"task name {definition.name!r} is already registered by "
                f"{existing.fn.__module__}.{existing.fn.__qualname__}"
            )
        self.tasks[definition.name] = definition
        return definition

    def get(self, name: str) -> TaskDef | None:
        return self.tasks.get(name)

    def queues(self) -> set[str]:
        return {d.queue for d in self.tasks.values()}

    def periodic(self) -> list[TaskDef]:
        return [d for d in self.tasks.values() if d.cron]


registry = Registry()


def _positive(value: Any, what: str, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RegistrationError(f"{what} must be a positive number, got {value!r}")
    return value


def task(
    fn: Handler | None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    timeout: float | None = None,
    backoff: float = 1.0,
    cron: str | None = None,
    registry: Registry = registry,
) -> Any:
    """Register a handler: ``async def fn(ctx, **payload)`` (or a plain ``def``, run in a thread).

    ``name`` defaults to ``module.function``. ``timeout`` is in seconds; ``backoff`` is the
    base, in seconds, of the exponential, jittered delay before a retry.
    """

    def register(func: Handler) -> TaskDef:
        if not callable(func):
            raise RegistrationError(f"@task needs a function, got {func!r}")
        task_name = name or f"{func.__module__}.{func.__name__}"
        try:
            check_name(task_name)
            check_queue(queue)
        except InvalidInput as exc:
            raise RegistrationError(f"cannot register {task_name!r}: {exc}") from None
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise RegistrationError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        if cron is not None:
            _check_cron(task_name, cron, func)
        definition = TaskDef(
            name=task_name,
            fn=func,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            timeout=_positive(timeout, "timeout", allow_none=True),
            backoff=_positive(backoff, "backoff"),
            cron=cron,
        )
        return registry.add(definition)

    return register(fn) if fn is not None else register


def _check_cron(task_name: str, cron: str, func: Handler) -> None:
    if not isinstance(cron, str) or not is_valid(cron) or not can_fire(cron):
        raise RegistrationError(
            f"invalid cron expression {cron!r} for {task_name} "
            "(5 fields: minute hour day month weekday; a 6th, seconds, may follow)"
        )
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        raise RegistrationError(
            f"periodic task {task_name} must take only the context (it gets no payload)"
        ) from None


def on_startup(fn: Hook) -> Hook:
    """Run ``fn(resources)`` once per worker process before it claims anything.

    Put what handlers share (a loaded model, a client) into ``resources``; handlers read it
    as ``ctx.resources``.
    """
    registry.startup.append(fn)
    return fn


def on_shutdown(fn: Hook) -> Hook:
    """Run ``fn(resources)`` once per worker process after its last task."""
    registry.shutdown.append(fn)
    return fn
