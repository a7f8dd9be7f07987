"""Periodic tasks: `@task(cron=...)` schedules become exactly one task per tick.

Every worker runs the schedules of the queues it serves; the database decides which
worker's insert of a tick wins (`TaskStore.enqueue_periodic`), so adding workers never
duplicates a tick. Ticks are computed from the cron expression (5 fields, or 6 with
seconds last) in UTC and are absolute times, so workers on different hosts agree on
them; each is enqueued once it is due by the database's clock, whatever a host's own
clock says. Ticks missed while no worker of their queue ran, or while a worker was held
up, are not caught up (only the latest due one is enqueued), and a worker that is
stopping enqueues no more: it would leave them for others, or for nobody.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import anyio

from taskstore.consumer import Consumer
from taskstore.logs import get_logger
from worker.cron import last_tick, next_tick, utcnow
from worker.registry import TaskDef

log = get_logger("taskstore.scheduler")
Clock = Callable[[], dt.datetime]


async def enqueue_tick(
    consumer: Consumer, definition: TaskDef, tick: dt.datetime
) -> tuple[int | None, dt.datetime]:
    return await consumer.enqueue_tick(
        definition.name,
        tick,
        queue=definition.queue,
        priority=definition.priority,
        max_attempts=definition.max_attempts,
    )


class DatabaseTime:
    """The database's time, read on our clock: each enqueue of a tick brings the
    database's clock back, and the difference corrects ours from then on."""

    def __init__(self, local: Clock) -> None:
        self._local = local
        self._skew = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return self._local() + self._skew

    def seen(self, database_now: dt.datetime) -> None:
        self._skew = database_now - self._local()


async def run_schedules(
    consumer: Consumer,
    definitions: Sequence[TaskDef],
    clock: Clock = utcnow,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Until `stopping()`: sleep until the next tick of any schedule, then enqueue it (once)."""
    if not definitions:
        return
    now = DatabaseTime(clock)
    upcoming = {d.name: next_tick(d.cron or "", now()) for d in definitions}
    by_name = {d.name: d for d in definitions}
    while True:
        soonest = min(upcoming.values())
        await anyio.sleep(max(0.0, (soonest - now()).total_seconds()))
        for name, tick in list(upcoming.items()):
            if stopping():
                return
            if tick <= now():
                upcoming[name] = await _enqueue_latest(consumer, by_name[name], now)


async def _enqueue_latest(
    consumer: Consumer, definition: TaskDef, now: DatabaseTime
) -> dt.datetime:
    """Enqueue the schedule's latest due tick (ticks missed while this worker was held
    up, frozen or suspended are not caught up); returns the tick to wait for next."""
    cron = definition.cron or ""
    tick = last_tick(cron, now())
    try:
        task_id, database_now = await enqueue_tick(consumer, definition, tick)
    except Exception as exc:  # the database may be away; try again soon
        log.warning(
            "periodic enqueue failed", task=definition.name, tick=tick.isoformat(), error=str(exc)
        )
        await anyio.sleep(1.0)
        return tick
    now.seen(database_now)
    if tick > database_now:  # our clock runs ahead of the database's: wait for it
        return tick
    if task_id is not None:
        log.info(
            "periodic task enqueued", task=definition.name, tick=tick.isoformat(), task_id=task_id
        )
    return next_tick(cron, tick)
