"""Handlers the fault-injection battery runs in real `taskstore-worker` processes.

Every execution is logged like `tests.apps.pipeline.log_execution` ("task_id attempt pid",
one O_APPEND write to the file named by TEST_EXEC_LOG), so `tests.helpers.processes.
executions` counts them across processes that are killed at any moment.
"""

from __future__ import annotations

import os
import signal
import time

import anyio

from tests.apps.execlog import log_execution
from worker import TaskContext, task


def _scaled(seconds: float) -> float:
    return seconds * float(os.environ.get("TEST_SLEEP_SCALE", "1"))


@task(name="faulty.work", timeout=120)
async def work(ctx: TaskContext, ms: float) -> dict:
    """Sleep `ms` milliseconds (x TEST_SLEEP_SCALE); the result echoes the attempt."""
    log_execution(ctx)
    await anyio.sleep(_scaled(ms / 1000))
    return {"task": ctx.task_id, "attempt": ctx.attempt}


@task(name="faulty.sync_work", timeout=120)
def sync_work(ctx: TaskContext, ms: float) -> None:
    """A plain function sleeping `ms` milliseconds (x TEST_SLEEP_SCALE) in its thread."""
    log_execution(ctx)
    time.sleep(_scaled(ms / 1000))


@task(name="faulty.noop")
async def noop(ctx: TaskContext) -> None:
    log_execution(ctx)


@task(name="faulty.poison", max_attempts=3)
async def poison(ctx: TaskContext) -> None:
    """Kill the worker process running it: no handler code can catch or report this."""
    log_execution(ctx)
    os.kill(os.getpid(), signal.SIGKILL)
    await anyio.sleep(60)  # never reached: SIGKILL is not deliverable later


@task(name="faulty.strict", max_attempts=5)
async def strict(ctx: TaskContext, count: int) -> int:
    """Takes exactly one argument: other payloads fail with WrongArguments."""
    log_execution(ctx)
    return count


UNSTORABLE = {"nul": "nul \x00 inside", "surrogate": "half a pair \ud800"}


@task(name="faulty.unstorable_result")
async def unstorable_result(ctx: TaskContext, kind: str) -> dict:
    """Returns a JSON-able value a database cannot store: U+0000 (PostgreSQL) or a lone
    surrogate (not UTF-8)."""
    log_execution(ctx)
    return {"text": UNSTORABLE[kind]}
