"""WorkerState: what the worker's services share, and the one event that wakes them."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
from typing import Any

import anyio

from worker.config import WorkerConfig
from worker.execution import Running
from worker.metrics import NoMetrics

#: the count of endings and hand-backs the database did not take (its error was logged):
#: their tasks run again once their leases expire, so a burst run with any is no success
UNRECORDED = "unrecorded"


@dataclasses.dataclass
class WorkerState:
    """Attempts in flight, counters, and the stop flag; owned by `worker.runner.Worker`."""

    config: WorkerConfig
    worker_id: str
    log: Any
    metrics: NoMetrics
    running: dict[int, Running] = dataclasses.field(default_factory=dict)
    in_flight: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    stopping: bool = False
    # Why the worker stopped on its own, to end the process with (None: it was asked to).
    failure: str | None = None
    # Orphans (tasks rescued after their worker died) may be waiting: run those one at a
    # time, alone (see `taskstore.models.task.orphaned`). Look at once on start.
    orphans_waiting: bool = True
    # moving averages of handler durations, per queue and per task name (claims ahead)
    queue_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    name_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    # Queues that had a task claimed ahead handed back: their next claim waits for a free
    # slot, so that task, first in line again, starts here instead of going back again.
    handed_back_queues: set[str] = dataclasses.field(default_factory=set)
    # (when it ended, task name) of async attempts that took a while: suspects when the
    # event loop is found to have been blocked (see `worker.maintenance.watch_loop`)
    long_async_runs: collections.deque[tuple[float, str]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=32)
    )
    # asyncio primitives on the hot path: anyio's re-detect the event loop per object.
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def signal(self) -> None:
        """Something changed (a slot freed, a task arrived, a stop): waiters look again."""
        self.wake.set()

    async def wait(self, seconds: float | None) -> None:
        """Until signalled, or `seconds` pass (None: no limit)."""
        with anyio.move_on_after(seconds):
            await self.wake.wait()
        self.wake.clear()

    def note_duration(self, queue: str, name: str, seconds: float) -> None:
        """Moving averages of handler durations (the last eight or so weigh most), of the
        queue's tasks and of the task's name."""
        # (Once per task: spelled out rather than looped over the two.)
        recent = self.queue_seconds.get(queue, seconds)
        self.queue_seconds[queue] = recent + (seconds - recent) / 8
        recent = self.name_seconds.get(name, seconds)
        self.name_seconds[name] = recent + (seconds - recent) / 8

    def fast(self, averages: dict[str, float], key: str) -> bool:
        """Do these handlers end within milliseconds (unknown ones do not)?"""
        return averages.get(key, math.inf) < self.config.prefetch_below_seconds
