"""latency: an idle worker (not burst) and tasks enqueued one at a time with a gap;
enqueue-to-start delay p50/p99. The handler stamps its start with ``time.time()``:
taskstore returns it as the task's result (read back with `TaskStore.get`), pgqueuer's
handler appends it to a file."""

from __future__ import annotations

import asyncio
import json
import time

from benchmarks import marks, pgq_peer, processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.processes import stopped_after
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import (
    NOOP,
    STAMP,
    completed_at_least,
    guarded,
    percentile,
    wait_until,
)
from benchmarks.scenarios.context import Context
from taskstore import TaskStatus, TaskStore

NAME = "latency"
_DONE_SECONDS = 60.0


def title(cfg: Config) -> str:
    return (
        f"latency: {cfg.latency_samples} tasks enqueued one at a time, "
        f"{cfg.latency_gap * 1000:g} ms apart, to an idle worker; enqueue-to-start; "
        "ratio = taskstore / pgqueuer (lower is better)"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        say("  taskstore ...")
        ts = await guarded("taskstore", _taskstore(db, cfg), errors)
        pgq = await ctx.peer(backend, lambda: _pgqueuer(db, cfg), errors)
    ratios = {"taskstore/pgqueuer p50": report.ratio(ts.get("p50_ms"), pgq.get("p50_ms"))}
    cells = [
        ("taskstore p50", report.figure(ts, "p50_ms", report.ms)),
        ("p99", report.figure(ts, "p99_ms", report.ms)),
        ("pgqueuer p50", report.figure(pgq, "p50_ms", report.ms)),
        ("p99", report.figure(pgq, "p99_ms", report.ms)),
        ("ratio p50", report.times(ratios["taskstore/pgqueuer p50"])),
    ]
    data = {"taskstore": ts, "pgqueuer": pgq, "ratios": ratios}
    return Result(NAME, backend, data, cells, errors)


def _figures(delays: list[float], expected: int) -> dict:
    if len(delays) != expected:
        raise RuntimeError(f"{len(delays)} of {expected} tasks reported their start")
    as_ms = [d * 1000 for d in delays]
    return {
        "samples": len(as_ms),
        "p50_ms": percentile(as_ms, 0.50),
        "p99_ms": percentile(as_ms, 0.99),
        "max_ms": max(as_ms),
    }


async def _taskstore(db: BenchDatabase, cfg: Config) -> dict:
    child = processes.taskstore_worker(db.url, db.workdir, concurrency=cfg.concurrency)
    async with stopped_after(child), connected(db) as raw, TaskStore.from_url(db.url) as store:
        await store.enqueue(NOOP, {})  # warm-up: measure an idle, ready worker
        await wait_until(completed_at_least(raw, 1), _DONE_SECONDS, "the worker", child)
        ids = []
        for _ in range(cfg.latency_samples):
            await asyncio.sleep(cfg.latency_gap)
            ids.append(await store.enqueue(STAMP, {"enqueued": time.time()}))
        everything = completed_at_least(raw, len(ids) + 1)
        await wait_until(everything, _DONE_SECONDS, "the stamped tasks", child)
        infos = [await store.get(task_id) for task_id in ids]
    child.check("taskstore-worker")
    done = [i.result for i in infos if i is not None and i.status == TaskStatus.COMPLETED]
    return _figures([r["started"] - r["enqueued"] for r in done], len(ids))


async def _pgqueuer(db: BenchDatabase, cfg: Config) -> dict:
    stamps = db.workdir / "latency-pgqueuer"
    env = {marks.LATENCY_ENV: str(stamps)}
    async with pgq_peer.PgqClient.installed(db.raw) as client:
        child = pgq_peer.worker(db.raw, db.workdir, batch_size=cfg.concurrency, env=env)
        async with stopped_after(child):
            await client.enqueue(pgq_peer.NOOP, b"{}")  # warm-up
            await wait_until(client.is_empty, _DONE_SECONDS, "the pgqueuer worker", child)
            for _ in range(cfg.latency_samples):
                await asyncio.sleep(cfg.latency_gap)
                payload = json.dumps({"enqueued": time.time()}).encode()
                await client.enqueue(pgq_peer.STAMP, payload)
            await wait_until(client.is_empty, _DONE_SECONDS, "the stamped jobs", child)
    child.check("pgqueuer worker")
    return _figures(marks.read_latencies(stamps), cfg.latency_samples)
