"""The `@task` decorator, lifecycle hooks, and the registry of handlers a worker serves.

``@task`` checks the handler at once (it must take the context first and its payload as
keyword arguments) and returns a `TaskDef`: callable like the function itself, and the
typed way to enqueue it (`worker.producer`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from taskstore.errors import InvalidInput
from taskstore.validation import check_name, check_queue
from worker.config import DEFAULT_MAX_ATTEMPTS
from worker.cron import can_fire, is_valid
from worker.errors import RegistrationError
from worker.producer import EnqueueOptions, Enqueuer, Producible
from worker.signature import HandlerSignature, read_signature
from worker.wrappers import Middleware, check

P = ParamSpec("P")
R = TypeVar("R")
Handler = Callable[..., Any]
Hook = Callable[[dict[str, Any]], Any]
#: Finds a handler for a task name no module registered (None: not one it knows).
Resolver = Callable[[str], "TaskDef | None"]
_DEFAULTS = EnqueueOptions()

__all__ = [
    "RegistrationError",
    "Registry",
    "TaskDef",
    "middleware",
    "on_shutdown",
    "on_startup",
    "task",
]


@dataclasses.dataclass(frozen=True)
class TaskDef(Enqueuer[P], Generic[P, R]):
    """A registered handler and its defaults; ``P`` and ``R`` are the handler's payload
    parameters (after the context) and its return type."""

    name: str
    fn: Callable[Concatenate[Any, P], R]
    queue: str = "default"
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    backoff: float = 1.0
    cron: str | None = None
    #: `max_attempts` is @task's default: the handler sets none (said on a failure's page).
    default_max_attempts: bool = False

    @functools.cached_property
    def is_async(self) -> bool:  # asked once per attempt: inspect only once
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def signature(self) -> HandlerSignature:
        """What the handler accepts (`RegistrationError` if it cannot be called as a task)."""
        return read_signature(self.name, self.fn)

    def __call__(self, ctx: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calling the decorated function still calls the function itself."""
        return self.fn(ctx, *args, **kwargs)

    def _target(self) -> tuple[Producible, EnqueueOptions]:
        return self, _DEFAULTS


@dataclasses.dataclass
class Registry:
    """Handlers by name, plus per-process start-up and shutdown hooks.

    `resolvers` are asked, in order, for a name not registered yet (the worker asks
    before it would hand a claimed task back as unserved); what one returns is registered,
    so each name is resolved once. ``taskstore.contrib.django`` resolves Django tasks so.
    """

    tasks: dict[str, TaskDef] = dataclasses.field(default_factory=dict)
    startup: list[Hook] = dataclasses.field(default_factory=list)
    shutdown: list[Hook] = dataclasses.field(default_factory=list)
    resolvers: list[Resolver] = dataclasses.field(default_factory=list)
    #: wraps every attempt, first outermost (see `worker.wrappers`)
    middleware: list[Middleware] = dataclasses.field(default_factory=list)

    def add(self, definition: TaskDef) -> TaskDef:
        existing = self.tasks.get(definition.name)
        if existing is not None and existing.fn is not definition.fn:
            raise RegistrationError(_twice(definition.name, existing.fn, definition.fn))
        self.tasks[definition.name] = definition
        return definition

    def get(self, name: str) -> TaskDef | None:
        found = self.tasks.get(name)
        if found is None and self.resolvers:
            found = self._resolve(name)
        return found

    def _resolve(self, name: str) -> TaskDef | None:
        for resolver in self.resolvers:
            definition = resolver(name)
            if definition is not None:
                return self.add(definition)
        return None

    def queues(self) -> set[str]:
        return {d.queue for d in self.tasks.values()}

    def periodic(self) -> list[TaskDef]:
        return [d for d in self.tasks.values() if d.cron]


registry = Registry()


def _positive(value: Any, what: str, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise RegistrationError(f"{what} must be a positive number, got {value!r}")
    return value


@overload
def task(fn: Callable[Concatenate[Any, P], R], /) -> TaskDef[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int | None = None,
    timeout: float | None = None,
    backoff: float = 1.0,
    cron: str | None = None,
    registry: Registry = registry,
) -> Callable[[Callable[Concatenate[Any, P], R]], TaskDef[P, R]]: ...


def task(
    fn: Handler | None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int | None = None,
    timeout: float | None = None,
    backoff: float = 1.0,
    cron: str | None = None,
    registry: Registry = registry,
) -> Any:
    """Register a handler: ``async def fn(ctx, **payload)`` (or a plain ``def``, run in a thread).

    ``name`` defaults to ``module.function``; ``max_attempts`` to 3 (`DEFAULT_MAX_ATTEMPTS`),
    for tasks enqueued without their own. ``timeout`` is in seconds; ``backoff`` is the
    base, in seconds, of the exponential, jittered delay before a retry. A handler that
    cannot take the context first and its payload as keyword arguments is refused here.
    """

    def register(func: Handler) -> TaskDef[Any, Any]:
        if not callable(func):
            raise RegistrationError(f"@task needs a function, got {func!r}")
        task_name = name or f"{func.__module__}.{func.__name__}"
        try:
            check_name(task_name)
            check_queue(queue)
            definition = TaskDef(
                name=task_name,
                fn=func,
                queue=queue,
                priority=_integer(priority, "priority", minimum=-32768, maximum=32767),
                # the range `enqueue` takes, so the handler's default is always enqueueable
                max_attempts=DEFAULT_MAX_ATTEMPTS
                if max_attempts is None
                else _integer(max_attempts, "max_attempts", minimum=1, maximum=10_000),
                timeout=_positive(timeout, "timeout", allow_none=True),
                backoff=_positive(backoff, "backoff"),
                cron=cron,
                default_max_attempts=max_attempts is None,
            )
        except InvalidInput as exc:
            raise RegistrationError(f"cannot register {task_name!r}: {exc}") from None
        signature = definition.signature  # refuses a handler that cannot run as a task
        if cron is not None:
            _check_cron(task_name, cron, signature)
        return registry.add(definition)

    return register(fn) if fn is not None else register


def _integer(value: Any, what: str, *, minimum: int, maximum: int | None = None) -> int:
    within = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not within or (maximum is not None and value > maximum):
        limits = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise RegistrationError(f"{what} must be an integer {limits}, got {value!r}")
    return int(value)


def _check_cron(task_name: str, cron: str, signature: HandlerSignature) -> None:
    if not isinstance(cron, str) or not is_valid(cron) or not can_fire(cron):
        raise RegistrationError(
            f"invalid cron expression {cron!r} for {task_name} "
            "(5 fields: minute hour day month weekday; a 6th, seconds, may follow)"
        )
    if signature.required:
        raise RegistrationError(
            f"periodic task {task_name} must take only the context (it gets no payload)"
        )


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


def middleware(fn: Middleware | None = None, *, registry: Registry = registry) -> Any:
    """Wrap every attempt of this process's worker in `fn` (see `worker.wrappers`):
    ``@middleware`` or ``@middleware(registry=...)``; returns `fn`."""

    def add(fn: Middleware) -> Middleware:
        registry.middleware.append(check(fn))
        return fn

    return add if fn is None else add(fn)


def _twice(name: str, first: Handler, second: Handler) -> str:
    """Why `name` cannot be registered again: where both handlers are defined, since one
    module defining it twice and one module imported twice read alike otherwise."""
    owner = f"{first.__module__}.{first.__qualname__}"
    here, there = _source(first), _source(second)
    if here and here == there:
        return (
            f"task name {name!r} is registered twice from {here}: is its module imported "
            "twice (under two names, or reloaded)?"
        )
    again = f"; {there} defines it again" if there else ""
    return (
        f"task name {name!r} is already registered by {owner}"
        f"{f' ({here})' if here else ''}{again}: give one of them another name, "
        "@task(name=...)"
    )


def _source(fn: Handler) -> str | None:
    """``file.py:LINE`` of a handler's definition, where Python knows it."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return None
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
