"""workflow: what dependencies cost, on one worker process.

- drain of N plain no-op tasks;
- drain of a fan-out of N no-op leaves with one fan-in that waits for all of them, the
  whole graph enqueued by one ``enqueue_many`` call (the fan-in's N edges included);
both timed from the worker's spawn to its exit, and the fan-in checked to have started
only after the last leaf finished.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from benchmarks import processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import NOOP, drain_timeout, enqueue_noops, guarded, per_second
from benchmarks.scenarios.context import Context
from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity

NAME = "workflow"
_T = TaskEntity.__table__
_last_leaf_end = select(func.max(_T.c.finished_at)).where(_T.c.id != bindparam("fan_in"))


def title(cfg: Config) -> str:
    return (
        f"workflow: one worker (--concurrency {cfg.concurrency}) drains {cfg.tasks:,} plain "
        f"no-op tasks, then a fan-out of {cfg.tasks:,} leaves with one fan-in\n"
        "  ratio = fan-out / plain (tasks per second, the fan-in included)"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        say("  plain ...")
        plain = await guarded("plain", _plain(db, cfg), errors)
    async with ctx.database(backend) as db:
        say("  fan-out ...")
        graph = await guarded("fan-out", _fan_out(db, cfg), errors)
    ratio = report.ratio(graph.get("rate"), plain.get("rate"))
    cells = [
        ("plain", report.figure(plain, "rate", report.rate)),
        ("fan-out + fan-in", report.figure(graph, "rate", report.rate)),
        ("ratio", report.times(ratio)),
        ("enqueue graph", report.figure(graph, "enqueue_seconds", lambda s: f"{s:.2f} s")),
    ]
    data = {"plain": plain, "fan_out": graph, "ratio": ratio}
    return Result(NAME, backend, data, cells, errors)


async def _plain(db: BenchDatabase, cfg: Config) -> dict:
    await enqueue_noops(db.url, cfg.tasks, cfg.enqueue_batch)
    return await _drain(db, cfg, cfg.tasks)


async def _fan_out(db: BenchDatabase, cfg: Config) -> dict:
    import time

    leaves = [{"name": NOOP, "payload": {}, "key": f"leaf{i}"} for i in range(cfg.tasks)]
    fan_in = {"name": NOOP, "payload": {}, "depends_on": [f"leaf{i}" for i in range(cfg.tasks)]}
    async with TaskStore.from_url(db.url) as store:
        began = time.perf_counter()
        ids = await store.enqueue_many([*leaves, fan_in])
        enqueue_seconds = time.perf_counter() - began
    result = await _drain(db, cfg, cfg.tasks + 1)
    async with TaskStore.from_url(db.url) as store:
        last = await store.require(ids[-1])
        async with store.reading() as conn:
            leaves_done = (await conn.execute(_last_leaf_end, {"fan_in": ids[-1]})).scalar_one()
    if last.status is not TaskStatus.COMPLETED or last.started_at < leaves_done:
        raise RuntimeError(f"the fan-in ended {last.status.value}, or started early")
    return {**result, "enqueue_seconds": round(enqueue_seconds, 3)}


async def _drain(db: BenchDatabase, cfg: Config, expected: int) -> dict:
    child = processes.taskstore_worker(db.url, db.workdir, "--burst", concurrency=cfg.concurrency)
    await child.wait(drain_timeout(expected))
    exit = child.check("taskstore-worker")
    async with connected(db) as raw:
        done = await raw.count("completed")
    if done != expected:
        raise RuntimeError(f"{done:,} of {expected:,} tasks completed")
    return {
        "tasks": done,
        "seconds": round(exit.seconds, 4),
        "rate": per_second(done, exit.seconds),
    }
