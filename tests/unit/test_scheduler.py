"""The periodic scheduler against a stand-in database clock: no catch-up bursts, and
ticks enqueued by the database's time whatever the host's clock says."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import Any

import anyio

from worker import Registry, task
from worker.cron import utcnow
from worker.scheduler import run_schedules

EVERY_SECOND = "* * * * * *"


class TickDatabase:
    """Takes each tick once, on its own clock (the real one, shifted by `ahead`)."""

    def __init__(self, ahead: float = 0.0) -> None:
        self.ahead = dt.timedelta(seconds=ahead)
        self.inserted: list[tuple[dt.datetime, dt.datetime]] = []  # (tick, database time)

    def now(self) -> dt.datetime:
        return utcnow() + self.ahead

    async def enqueue_tick(
        self, name: str, tick: dt.datetime, **options: Any
    ) -> tuple[int | None, dt.datetime]:
        now = self.now()
        if tick > now or tick in {t for t, _ in self.inserted}:
            return None, now
        self.inserted.append((tick, now))
        return len(self.inserted), now


def _schedule() -> list[Any]:
    registry = Registry()

    @task(name="sched.tick", cron=EVERY_SECOND, registry=registry)
    async def tick(ctx: object) -> None: ...

    return registry.periodic()


async def _run(database: TickDatabase, clock: Any, seconds: float, block: float = 0.0) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(run_schedules, database, _schedule(), clock)
        await anyio.sleep(seconds)
        if block:
            time.sleep(block)  # noqa: ASYNC251 (a handler holding the loop, a frozen host)
            await anyio.sleep(1.2)
        group.cancel_scope.cancel()


async def test_ticks_missed_while_the_worker_was_held_up_are_not_caught_up() -> None:
    database = TickDatabase()
    await _run(database, utcnow, seconds=2.2, block=3.5)
    ticks = [t for t, _ in database.inserted]
    # one tick a second before and after the hold-up, and none of the ones it missed
    # (a catch-up would have enqueued each of them at once on waking)
    assert len(ticks) >= 3 and ticks == sorted(set(ticks))
    assert any((b - a).total_seconds() >= 3 for a, b in itertools.pairwise(ticks)), ticks


async def test_a_host_clock_running_fast_does_not_enqueue_ticks_early() -> None:
    database = TickDatabase()
    await _run(database, lambda: utcnow() + dt.timedelta(seconds=0.7), seconds=3.5)
    assert len(database.inserted) >= 2
    assert all(tick <= at for tick, at in database.inserted)


async def test_a_host_clock_running_slow_enqueues_on_time_after_the_first_tick() -> None:
    database = TickDatabase()
    await _run(database, lambda: utcnow() - dt.timedelta(seconds=0.7), seconds=4.5)
    late = [(at - tick).total_seconds() for tick, at in database.inserted]
    assert len(late) >= 3 and max(late[1:]) < 0.4, late
