"""Maintenance services of one worker, each a loop of its own.

- `Heartbeat`: extends every lease the worker holds and its registry row in one
  transaction, and stops handlers whose task was cancelled or rescued elsewhere;
- `Rescuer`: returns tasks whose lease expired (a crashed worker's) to the queue and
  tells the fetcher when orphans wait;
- `Pruner`: deletes finished tasks past retention, in bounded batches, one worker at a
  time;
- `DepthGauge`: the queue-depth metric;
- `watch_loop`: says when the event loop was held up (an async handler that blocks);
- `watch_file`: stops the worker once its SQLite file was deleted or replaced.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from taskstore.consumer import STORE_ERRORS, Consumer, Registration
from taskstore.flow_gate import LIMITS
from worker.completer import Completer
from worker.config import BLOCKED_WARN_SECONDS
from worker.registry import Registry
from worker.state import WorkerState


class Heartbeat:
    """Leases and the registry row, every third of a lease."""

    def __init__(
        self, state: WorkerState, consumer: Consumer, completer: Completer, registry: Registry
    ) -> None:
        self._state = state
        self._consumer = consumer
        self._completer = completer
        config = state.config
        self._registration = Registration(
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=config.queues,
            concurrency=config.concurrency,
            lease_seconds=config.lease_seconds,
            tasks=[],
        )
        self._registry = registry

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._state.config.heartbeat_interval)
            await self.beat()

    async def beat(self) -> None:
        """Extend all our leases and our registry row; stop handlers whose task is gone."""
        state = self._state
        started = time.monotonic()
        # Tasks whose lease we still need: running, or finished and awaiting their ack.
        held = [*state.running, *self._completer.pending_ids()]
        # Read each time: handlers resolved on first use (Django tasks) join the list.
        registration = dataclasses.replace(self._registration, tasks=sorted(self._registry.tasks))
        try:
            kept = await self._consumer.heartbeat(held, len(state.running), registration)
        except STORE_ERRORS as exc:
            state.log.warning("heartbeat failed", error=str(exc))
            return
        for task_id, run in list(state.running.items()):
            if task_id not in kept and run.claimed_at < started and run.reason is None:
                run.stop("lost")

    async def unregister(self) -> None:
        try:
            await self._consumer.unregister()
        except STORE_ERRORS as exc:
            self._state.log.warning("could not remove the worker's registry row", error=str(exc))


async def rescue_loop(state: WorkerState, consumer: Consumer) -> None:
    """Every half lease: take back expired leases and look for orphans."""
    while True:
        await anyio.sleep(state.config.rescue_interval)
        await rescue_once(state, consumer)


async def rescue_once(state: WorkerState, consumer: Consumer) -> None:
    """One pass: expired leases taken back, orphans looked for, and waiting tasks whose
    dependencies all ended settled (an ending no worker settled: one of a release without
    workflows, or one that raced a producer's open transaction)."""
    try:
        report = await consumer.rescue(list(state.config.queues))
    except STORE_ERRORS as exc:
        state.log.warning("rescue failed", error=str(exc))
        return
    if report.orphans_waiting and not state.orphans_waiting:
        state.orphans_waiting = True  # the fetcher lets running tasks drain first
        state.signal()
    if report.rescued:
        state.counts["rescued"] += len(report.rescued)
        state.metrics.rescued(len(report.rescued))
        state.log.warning(
            "rescued tasks with expired leases",
            tasks={i: s.value for i, s in report.rescued.items()},
        )
        state.signal()


async def prune_loop(state: WorkerState, consumer: Consumer, retention_seconds: float) -> None:
    """Retention: one worker at a time (a database lock) deletes finished tasks past it,
    in bounded batches (each its own short transaction, claims going between them),
    repeated while they come back full: pruning keeps up with any rate of finishing."""
    config = state.config
    while retention_seconds > 0:
        await anyio.sleep(config.prune_seconds)
        total, until = 0, time.monotonic() + config.prune_seconds / 2
        while True:
            try:
                pruned = await consumer.prune(retention_seconds, config.prune_batch)
            except STORE_ERRORS as exc:
                state.log.warning("pruning failed", error=str(exc))
                break
            total += pruned or 0
            if pruned != config.prune_batch or time.monotonic() > until:
                break
        if total:
            state.log.info("pruned finished tasks past retention", count=total)


_COUNT_SECONDS = 5.0


async def depth_loop(state: WorkerState, consumer: Consumer) -> None:
    """Queue depth for the metrics gauges (an index-only count of claimable rows), and
    how much of it flow control holds back, by the limit that does."""
    while True:
        try:
            counts = await _claimable_counts(consumer)
        except STORE_ERRORS as exc:
            state.log.warning("queue depth unavailable", error=str(exc))
        else:
            if counts is not None:
                depth = dict.fromkeys(state.config.queues, 0) | counts
                state.metrics.depth(depth)
                state.metrics.held_back(_held_back(consumer, state.config.queues, depth))
        await anyio.sleep(state.config.depth_seconds)


async def _claimable_counts(consumer: Consumer) -> dict[str, int] | None:
    """The counts, None past their deadline. Shielded from a stop: one that came as the
    worker started (the first count under way) cancelled it mid-statement, and that
    SQLite connection's close then never returned, so the worker never exited."""
    with anyio.move_on_after(_COUNT_SECONDS, shield=True):
        return await consumer.claimable_counts()
    return None


def _held_back(
    consumer: Consumer, queues: dict[str, int | None], depth: dict[str, int]
) -> dict[tuple[str, str], int]:
    """(queue, limit) -> due tasks that limit holds back now (0 for the other limits)."""
    counts = {}
    for queue in queues:
        holding = consumer.held_by(queue)
        for limit in LIMITS:
            counts[queue, limit] = depth.get(queue, 0) if limit == holding else 0
    return counts


LOOP_CHECK_SECONDS = 0.5
BLOCKING_HINT = (
    "an async handler that blocks (time.sleep, blocking I/O, long CPU work) holds up the "
    "whole worker, heartbeats too, so leases expire and tasks run again: make it a plain "
    "def handler (it runs in a thread) or await anyio.to_thread.run_sync for that part"
)


async def watch_loop(state: WorkerState, registry: Registry) -> None:
    """Warn when the event loop could not run for `BLOCKED_WARN_SECONDS` or more (at
    least the seconds said: the block may have begun up to a look earlier), naming the
    async handlers that ran meanwhile: one of them blocked it."""
    while True:
        before = time.monotonic()
        await anyio.sleep(LOOP_CHECK_SECONDS)
        blocked = time.monotonic() - before - LOOP_CHECK_SECONDS
        if blocked >= BLOCKED_WARN_SECONDS:
            state.log.warning(
                "the event loop was blocked",
                seconds=round(blocked, 1),
                async_handlers=_ran_since(state, registry, before),
                hint=BLOCKING_HINT,
            )


def _ran_since(state: WorkerState, registry: Registry, since: float) -> list[str]:
    """Names of the async handlers running now or that ended a long run after `since`."""
    names = {ended_name for ended, ended_name in state.long_async_runs if ended >= since}
    for run in state.running.values():
        definition = registry.tasks.get(run.name)
        if definition is not None and definition.is_async:
            names.add(run.name)
    return sorted(names)


FILE_CHECK_SECONDS = 1.0
FileIdentity = tuple[int, int]


async def watch_file(
    state: WorkerState, path: Path, opened: FileIdentity, stop: Callable[[], None]
) -> None:
    """Stop the worker once its SQLite file is deleted or replaced (a reset with `rm`):
    its open connections would go on with the old file, which no other program sees, and
    tasks enqueued into the new one would wait for good. The process then ends with an
    error, so whatever supervises it starts it again on the new file. `opened` is the
    file's identity taken when the worker started, so a reset in the moments before this
    loop's first look is seen too."""
    while True:
        await anyio.sleep(FILE_CHECK_SECONDS)
        if file_identity(path) != opened:
            state.failure = (
                f"the database file {path} was deleted or replaced while the worker ran: "
                "start the worker again to serve the new one"
            )
            state.log.error("the database file was deleted or replaced: stopping", path=str(path))
            stop()
            return


def file_identity(path: Path) -> FileIdentity | None:
    """The file's device and inode, or None when it is not there."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino
