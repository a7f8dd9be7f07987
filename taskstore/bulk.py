"""Operator actions over many tasks, in bounded batches: retry every failed task, purge
old finished ones.

`TaskStore.retry_failed` and `TaskStore.purge` delegate here. Each batch is its own short
transaction, so workers are never blocked for long, and a batch that comes back full is
followed by another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from taskstore import validation
from taskstore.flow_admin import StoreParts
from taskstore.states import TaskStatus

Progress = Callable[[int], None] | None


async def retry_failed(
    store: StoreParts, queue: str | None, name: str | None, batch_size: int, progress: Progress
) -> int:
    """Run every failed task (of a queue / name) again; returns the count."""
    if queue is not None:
        validation.check_queue(queue)
    if name is not None:
        validation.check_name(name)

    async def batch() -> int:
        async with store.transaction() as conn:
            done = await store.tasks.requeue_failed(conn, queue=queue, name=name, limit=batch_size)
            if done:
                await store.backend.notify(conn, [queue or "*"])
        return done

    return await _in_batches(batch, batch_size, progress)


async def purge(
    store: StoreParts,
    older_than_seconds: float,
    statuses: frozenset[TaskStatus],
    batch_size: int,
    progress: Progress,
) -> int:
    """Delete finished tasks that ended longer ago than the given age; returns the count."""

    async def batch() -> int:
        async with store.transaction() as conn:
            return await store.tasks.purge(
                conn, older_than_seconds=older_than_seconds, statuses=statuses, limit=batch_size
            )

    return await _in_batches(batch, batch_size, progress)


async def _in_batches(batch: Callable[[], Awaitable[int]], size: int, progress: Progress) -> int:
    total = 0
    while True:
        done = await batch()
        total += done
        if progress is not None and done:
            progress(total)
        if done < size:
            return total
