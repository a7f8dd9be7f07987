"""Handlers for the workflow process tests: each run appends "task_id start end pid" to
the file named by TEST_FLOW_LOG (wall-clock seconds), as `tests.apps.flow` does."""

from __future__ import annotations

import time

import anyio

from tests.apps.flow import record_run
from worker import TaskContext, task


@task(name="wf.step", queue="flow")
async def step(ctx: TaskContext, ms: int = 0) -> dict:
    started = time.time()
    found = await ctx.dependency_results()
    await anyio.sleep(ms / 1000)
    record_run(ctx, started, None)
    return {"id": ctx.task_id, "saw": sorted(found)}
