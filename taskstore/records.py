"""Dataclasses that cross the store boundary instead of live ORM objects."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from taskstore.states import TaskStatus


@dataclasses.dataclass(slots=True)  # not frozen: enqueue_many builds thousands per call
class NewTask:
    """A validated task about to be inserted (payload already encoded as JSON text)."""

    name: str
    payload_json: str
    queue: str = "default"
    priority: int = 0
    delay_seconds: float = 0.0
    run_at: dt.datetime | None = None
    max_attempts: int | None = None
    dedup_key: str | None = None
    concurrency_key: str | None = None
    #: task ids, or keys of tasks of the same batch, that must complete first
    depends_on: tuple[int | str, ...] = ()
    #: this task's name within its batch, for the others' `depends_on`
    key: str | None = None
    #: the producer's W3C ``traceparent`` (OpenTelemetry), continued by the attempts
    trace_context: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimedTask:
    """What a worker needs to run one attempt of a task it owns."""

    id: int
    name: str
    queue: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int | None
    priority: int
    trace_context: str | None = None  # the producer's traceparent, if it traced
    #: the task's claim count, which no later attempt shares: every write of the attempt
    #: is fenced on it and the worker's id (`attempt` is set back by an operator retry)
    fence: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInfo:
    """A full snapshot of a task row."""

    id: int
    name: str
    queue: str
    status: TaskStatus
    priority: int
    attempts: int
    max_attempts: int | None
    run_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    worker_id: str | None
    lease_expires_at: dt.datetime | None
    progress: float | None
    payload: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    dedup_key: str | None
    concurrency_key: str | None

    @classmethod
    def from_row(cls, row: Any) -> TaskInfo:
        values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)}
        values["status"] = TaskStatus(values["status"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        out["status"] = self.status.value
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts per status for one queue, and the age of its oldest claimable task."""

    queue: str
    counts: dict[str, int]
    oldest_pending_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as its last heartbeat described it."""

    id: str
    host: str
    pid: int
    queues: dict[str, Any]
    concurrency: int
    lease_seconds: float
    running: int
    tasks: list[str]
    started_at: dt.datetime
    last_heartbeat_at: dt.datetime
    alive: bool

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("started_at", "last_heartbeat_at"):
            out[key] = out[key].isoformat()
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Unserved:
    """Claimable tasks that no live worker can run: nobody serves their queue, or no
    worker serving it has a handler of that name."""

    queue: str
    name: str
    count: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def unserved_reason(queue: str, name: str, queues: set[str], names: set[str]) -> str | None:
    """Why no live worker runs tasks `name` of `queue` (an `Unserved.reason`), given the
    queues and task names the live workers serve; None when one does."""
    if queue not in queues:
        return "no live worker serves the queue"
    if name not in names:
        return "no live worker has this handler"
    return None


def unserved_list(
    waiting: Mapping[tuple[str, str], int], queues: set[str], names: set[str]
) -> list[Unserved]:
    """The (queue, name) groups of claimable tasks (`waiting`, their counts) that no live
    worker serving `queues` with handlers `names` can run, in order."""
    found = []
    for (queue, name), count in sorted(waiting.items()):
        reason = unserved_reason(queue, name, queues, names)
        if reason is not None:
            found.append(Unserved(queue, name, count, reason))
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's flow control, as stored (None: no limit of that kind)."""

    name: str
    paused: bool = False
    concurrency: int | None = None
    rate_limit: int | None = None
    rate_period: float | None = None
    key_concurrency: int | None = None

    @property
    def limited(self) -> bool:
        """Does a claim of this queue have anything to check?"""
        return self.paused or any(
            v is not None for v in (self.concurrency, self.rate_limit, self.key_concurrency)
        )

    @property
    def rate(self) -> str | None:
        """The rate as `set_queue` takes it, its period in the largest units that spell
        it exactly (``100/1s``, ``10/1m``, ``10/1h30m``), or None."""
        if self.rate_limit is None or self.rate_period is None:
            return None
        from taskstore.durations import format_duration

        return f"{self.rate_limit}/{format_duration(self.rate_period)}"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue's settings and its task counts per status (what `taskstore queue list` shows)."""

    name: str
    paused: bool
    concurrency: int | None
    rate: str | None
    key_concurrency: int | None
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class RescueReport:
    """One rescue pass: tasks taken back from expired leases, and whether orphans wait."""

    rescued: dict[int, TaskStatus]
    orphans_waiting: bool
