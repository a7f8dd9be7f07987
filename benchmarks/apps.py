"""The handlers benchmark workers serve (``taskstore-worker --app benchmarks.apps``).

They do no work of their own, so what is measured is the queue: claim, dispatch, ack.
"""

from __future__ import annotations

import time

from benchmarks import marks
from worker import TaskContext, task


@task(name="bench.noop")
async def noop(ctx: TaskContext) -> None:
    """Nothing at all (its first call is timed, see `benchmarks.marks`)."""
    marks.first_start()


@task(name="bench.stamp")
async def stamp(ctx: TaskContext, enqueued: float) -> dict[str, float]:
    """Return when this attempt started, beside when the producer enqueued it."""
    return {"enqueued": enqueued, "started": time.time()}
