"""WorkerState: what the worker's services share, and the one event that wakes them."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from typing import Any

import anyio

from worker.config import WorkerConfig
from worker.execution import Running
from worker.metrics import NoMetrics


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
    # Orphans (tasks rescued after their worker died) may be waiting: run those one at a
    # time, alone (see `taskstore.models.task.orphaned`). Look at once on start.
    orphans_waiting: bool = True
    recent_seconds: float = float("inf")  # moving average of handler durations
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

    def note_duration(self, seconds: float) -> None:
        """A moving average of handler durations (the last eight or so weigh most)."""
        recent = self.recent_seconds
        first = recent == float("inf")
        self.recent_seconds = seconds if first else recent + (seconds - recent) / 8
