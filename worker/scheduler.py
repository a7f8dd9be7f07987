"""Periodic tasks: `@task(cron=...)` schedules become exactly one task per tick.

Every worker runs the schedules of the queues it serves; the database decides which
worker's insert of a tick wins (`TaskStore.enqueue_periodic`), so adding workers never
duplicates a tick. Ticks are computed from the cron expression (5 fields, or 6 with
seconds last) and are absolute times, so workers on different hosts agree on them. Ticks
that passed while no worker of their queue ran are not caught up, and a worker that is
stopping enqueues no more: it would leave them for others, or for nobody.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import anyio

from taskstore.consumer import Consumer
from taskstore.logs import get_logger
from worker.cron import next_tick, utcnow
from worker.registry import TaskDef

log = get_logger("taskstore.scheduler")
Clock = Callable[[], dt.datetime]


async def enqueue_tick(consumer: Consumer, definition: TaskDef, tick: dt.datetime) -> int | None:
    return await consumer.enqueue_tick(
        definition.name,
        tick,
        queue=definition.queue,
        priority=definition.priority,
        max_attempts=definition.max_attempts,
    )


async def run_schedules(
    consumer: Consumer,
    definitions: Sequence[TaskDef],
    clock: Clock = utcnow,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Until `stopping()`: sleep until the next tick of any schedule, then enqueue it (once)."""
    if not definitions:
        return
    started = clock()
    upcoming = {d.name: next_tick(d.cron or "", started) for d in definitions}
    by_name = {d.name: d for d in definitions}
    while True:
        soonest = min(upcoming.values())
        await anyio.sleep(max(0.0, (soonest - clock()).total_seconds()))
        for name, tick in list(upcoming.items()):
            if stopping():
                return
            if tick > clock():
                continue
            try:
                task_id = await enqueue_tick(consumer, by_name[name], tick)
            except Exception as exc:  # the database may be away; try this tick again soon
                log.warning(
                    "periodic enqueue failed", task=name, tick=tick.isoformat(), error=str(exc)
                )
                await anyio.sleep(1.0)
                if next_tick(by_name[name].cron or "", tick) > clock():
                    continue  # still the current tick: retry it
            else:
                if task_id is not None:
                    log.info(
                        "periodic task enqueued", task=name, tick=tick.isoformat(), task_id=task_id
                    )
            upcoming[name] = next_tick(by_name[name].cron or "", tick)
