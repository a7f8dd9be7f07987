"""Enqueueing a registered handler by reference, checked before anything is written.

``await transcribe.enqueue(store, video_id="v1")`` enqueues the task that
``@task async def transcribe(ctx, video_id: str)`` registered: its name, queue, priority
and max_attempts are the defaults, and the keyword arguments are checked against the
handler's signature (by type checkers, through `ParamSpec`, and again at run time:
`WrongArguments`). ``transcribe.using(delay=30, dedup_key="v1")`` returns an immutable
`TaskCall` with other options; ``enqueue_many`` sends a batch in one round trip. Each
works with a `TaskStore` (returns an awaitable) and a `SyncTaskStore` (returns the id).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, overload

from worker.errors import WrongArguments
from worker.signature import HandlerSignature

if TYPE_CHECKING:
    from taskstore.store import TaskStore
    from taskstore.sync import SyncTaskStore

P = ParamSpec("P")


class Producible(Protocol):
    """What a registered handler offers to its producers (a `TaskDef`)."""

    name: str
    queue: str
    priority: int
    max_attempts: int

    @property
    def signature(self) -> HandlerSignature: ...


@dataclasses.dataclass(frozen=True)
class EnqueueOptions:
    """Options of one enqueue; None leaves the handler's default (or the store's)."""

    queue: str | None = None
    priority: int | None = None
    delay: float | dt.timedelta | None = None
    run_at: dt.datetime | None = None
    max_attempts: int | None = None
    dedup_key: str | None = None
    concurrency_key: str | None = None
    depends_on: tuple[int | str, ...] | None = None
    session: Any = None  # an AsyncSession for TaskStore, a sync Session/Connection for sync

    def merged(self, **changes: Any) -> EnqueueOptions:
        """These options with the given ones (those not None) replacing them."""
        chosen = {k: v for k, v in changes.items() if v is not None}
        # A later `using` that sets when the task runs replaces how it was set before.
        if "run_at" in chosen and "delay" not in chosen:
            chosen["delay"] = None
        elif "delay" in chosen and "run_at" not in chosen:
            chosen["run_at"] = None
        return dataclasses.replace(self, **chosen)

    def for_store(self, definition: Producible) -> dict[str, Any]:
        """`TaskStore.enqueue`'s keyword arguments, the handler's defaults filled in."""
        chosen = {
            "queue": definition.queue if self.queue is None else self.queue,
            "priority": definition.priority if self.priority is None else self.priority,
            "max_attempts": definition.max_attempts
            if self.max_attempts is None
            else self.max_attempts,
        }
        extra = {
            "delay": self.delay,
            "run_at": self.run_at,
            "dedup_key": self.dedup_key,
            "concurrency_key": self.concurrency_key,
            "depends_on": self.depends_on,
        }
        return chosen | {k: v for k, v in extra.items() if v is not None}


class Enqueuer(Generic[P]):
    """``enqueue``, ``enqueue_many`` and ``using``, typed with the handler's parameters."""

    def _target(self) -> tuple[Producible, EnqueueOptions]:
        raise NotImplementedError

    def using(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        max_attempts: int | None = None,
        dedup_key: str | None = None,
        concurrency_key: str | None = None,
        depends_on: Iterable[int | str] | None = None,
        session: Any = None,
    ) -> TaskCall[P]:
        """The same task with other enqueue options (an immutable copy; chainable).

        `depends_on` (task ids, or `()` to drop them) is kept as given and checked, like
        every option, when the task is enqueued."""
        definition, options = self._target()
        after = None if depends_on is None else _ids(depends_on)
        changed = options.merged(
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            dedup_key=dedup_key,
            concurrency_key=concurrency_key,
            depends_on=after,
            session=session,
        )
        return TaskCall[P](definition, changed)

    @overload
    def enqueue(self, store: SyncTaskStore, /, *args: P.args, **kwargs: P.kwargs) -> int: ...

    @overload
    def enqueue(
        self, store: TaskStore, /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, int]: ...

    def enqueue(self, store: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Enqueue one task with these keyword arguments as its payload; the new id (the
        live task's id if its dedup key is taken). Checked before anything is written."""
        definition, options = self._target()
        if args:
            raise WrongArguments(
                f"cannot enqueue {definition.name}: pass the payload as keyword arguments "
                f"(got {len(args)} positional)"
            )
        definition.signature.check(definition.name, kwargs)
        session = {"session": options.session} if options.session is not None else {}
        return store.enqueue(definition.name, kwargs, **options.for_store(definition), **session)

    @overload
    def enqueue_many(
        self, store: SyncTaskStore, payloads: Iterable[Mapping[str, Any]], /
    ) -> list[int]: ...

    @overload
    def enqueue_many(
        self, store: TaskStore, payloads: Iterable[Mapping[str, Any]], /
    ) -> Coroutine[Any, Any, list[int]]: ...

    def enqueue_many(self, store: Any, payloads: Iterable[Mapping[str, Any]], /) -> Any:
        """Enqueue one task per payload (each the keyword arguments of one call) in one
        round trip; the ids in order. The whole batch is checked before anything is written."""
        definition, options = self._target()
        common = options.for_store(definition)
        items = []
        for index, payload in enumerate(payloads):
            if not isinstance(payload, Mapping):
                raise WrongArguments(
                    f"cannot enqueue {definition.name}: item {index} is not a mapping of "
                    f"keyword arguments ({type(payload).__name__})"
                )
            try:
                definition.signature.check(definition.name, payload)
            except WrongArguments as exc:
                raise WrongArguments(f"{exc} (item {index})") from None
            items.append({"name": definition.name, "payload": dict(payload), **common})
        session = {"session": options.session} if options.session is not None else {}
        return store.enqueue_many(items, **session)


def _ids(depends_on: Iterable[int | str]) -> tuple[int | str, ...]:
    """An immutable copy: a list the caller changes later must not change the call."""
    if isinstance(depends_on, str | bytes) or not isinstance(depends_on, Iterable):
        raise WrongArguments(f"depends_on takes task ids, got {type(depends_on).__name__}")
    return tuple(depends_on)


@dataclasses.dataclass(frozen=True)
class TaskCall(Enqueuer[P]):
    """A registered task with its enqueue options chosen: ``transcribe.using(delay=30)``."""

    definition: Producible
    options: EnqueueOptions = EnqueueOptions()

    def _target(self) -> tuple[Producible, EnqueueOptions]:
        return self.definition, self.options
