"""Handlers the worker tests run in real `taskstore-worker` processes.

Every execution appends "task_id attempt pid" to the file named by TEST_EXEC_LOG (one
write with O_APPEND, so lines from several processes never interleave).
"""

from __future__ import annotations

import gc
import os
import time

import anyio

from taskstore.models import TranscriptEntity, VideoEntity
from tests.apps.execlog import log_execution
from worker import NonRetryable, TaskContext, task


@task(name="tests.collector")
async def collector(ctx: TaskContext) -> dict:
    """Does this worker collect garbage while it runs? (Its start-up paused that.)"""
    return {"collecting": gc.isenabled()}


@task(name="tests.record", max_attempts=3)
async def record(ctx: TaskContext, n: int) -> dict:
    """Write a video and its transcript; they commit with the completion."""
    log_execution(ctx)
    async with ctx.session() as session:
        video = VideoEntity(
            id=f"v{ctx.task_id}",
            url=f"https://example.org/{n}.mp4",
            duration=float(n),
            width=640,
            height=360,
            task_id=ctx.task_id,
        )
        session.add(video)
        session.add(
            TranscriptEntity(
                media_id=video.id,
                task_id=ctx.task_id,
                text=f"n={n}",
                language="en",
                segments=[{"start": 0.0, "text": "hi"}],
            )
        )
    return {"n": n}


@task(name="tests.noop")
async def noop(ctx: TaskContext) -> None:
    log_execution(ctx)


@task(name="tests.fail_after_writing", max_attempts=2, backoff=0.01)
async def fail_after_writing(ctx: TaskContext) -> None:
    log_execution(ctx)
    async with ctx.session() as session:
        session.add(VideoEntity(id=f"bad{ctx.task_id}-{ctx.attempt}", url="x", task_id=ctx.task_id))
        await session.flush()
    raise RuntimeError(f"exploded on attempt {ctx.attempt}")


@task(name="tests.reject")
async def reject(ctx: TaskContext) -> None:
    raise NonRetryable("this input can never work")


@task(name="tests.sleep", timeout=120)
async def sleep(ctx: TaskContext, seconds: float) -> str:
    """Sleeps `seconds` x TEST_SLEEP_SCALE, so a test can rerun the same tasks quickly."""
    log_execution(ctx)
    await anyio.sleep(seconds * float(os.environ.get("TEST_SLEEP_SCALE", "1")))
    return "slept"


@task(name="tests.sync_square")
def sync_square(ctx: TaskContext, x: int) -> int:
    time.sleep(0.01)
    return x * x
