"""The handlers benchmark workers serve (``taskstore-worker --app benchmarks.apps``).

They do no work of their own, so what is measured is the queue: claim, dispatch, ack.
"""

from __future__ import annotations

import os
import time

import anyio

from benchmarks import marks
from worker import TaskContext, task

_SLEEP = marks.handler_seconds()


@task(name="bench.noop")
async def noop(ctx: TaskContext) -> None:
    """Nothing at all (its first call is timed, see `benchmarks.marks`), or a sleep of
    ``drain --handler-ms``."""
    marks.first_start()
    if _SLEEP:
        await anyio.sleep(_SLEEP)


@task(name="bench.stamp")
async def stamp(ctx: TaskContext, enqueued: float) -> dict[str, float]:
    """Return when this attempt started, beside when the producer enqueued it."""
    return {"enqueued": enqueued, "started": time.time()}


@task(name="bench.churn")
async def churn(ctx: TaskContext, enqueued: float) -> None:
    """Append "start-time pickup-latency" to the file named by BENCH_CHURN_LOG (one write
    with O_APPEND, so the lines of several processes never interleave)."""
    started = time.time()
    line = f"{started:.3f} {started - enqueued:.5f}\n".encode()
    fd = os.open(os.environ["BENCH_CHURN_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
