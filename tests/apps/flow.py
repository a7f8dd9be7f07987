"""Handlers for the flow-control tests: each run appends its start and end to a log.

Lines are "task_id start end pid key" (wall-clock seconds, shared by the processes of
one machine), so a test can check overlaps, windows and order across workers.
"""

from __future__ import annotations

import os
import time

import anyio

from worker import Snooze, TaskContext, task


def record_run(ctx: TaskContext, started: float, key: str | None) -> None:
    path = os.environ.get("TEST_FLOW_LOG")
    if path:
        line = f"{ctx.task_id} {started:.6f} {time.time():.6f} {os.getpid()} {key or '-'}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@task(name="flow.work", queue="limited")
async def work(ctx: TaskContext, ms: int = 0, key: str | None = None) -> None:
    started = time.time()
    await anyio.sleep(ms / 1000)
    record_run(ctx, started, key)


@task(name="flow.snooze_once", queue="limited")
async def snooze_once(ctx: TaskContext) -> list[int]:
    if ctx.runs == 1:  # whichever worker process runs it first
        raise Snooze(0.2)
    return [ctx.attempt, ctx.runs]


def read_log(path: str | os.PathLike[str]) -> list[tuple[int, float, float, int, str]]:
    """The log as (task id, start, end, pid, key) rows, in start order."""
    rows = []
    with open(path) as lines:
        for line in lines:
            task_id, start, end, pid, key = line.split()
            rows.append((int(task_id), float(start), float(end), int(pid), key))
    return sorted(rows, key=lambda row: row[1])


def most_at_once(rows: list[tuple[int, float, float, int, str]]) -> int:
    """The largest number of runs overlapping in time."""
    events = sorted([(r[1], 1) for r in rows] + [(r[2], -1) for r in rows])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best
