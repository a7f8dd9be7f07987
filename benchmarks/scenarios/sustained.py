"""sustained: a producer (`enqueue_many` in small batches) and one worker process running
together for T seconds; completed tasks/s over that window, beside pgqueuer doing the same."""

from __future__ import annotations

from benchmarks import pgq_peer, processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.processes import stopped_after
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import (
    NOOP,
    completed_at_least,
    guarded,
    per_second,
    produce,
    wait_until,
)
from benchmarks.scenarios.context import Context
from taskstore import TaskStore

NAME = "sustained"
_READY_SECONDS = 60.0


def title(cfg: Config) -> str:
    pace = f"{cfg.producer_rate:,.0f} tasks/s" if cfg.producer_rate else "flat out"
    return (
        f"sustained: producer ({cfg.producer_batch} per batch, {pace}) + one worker for "
        f"{cfg.seconds:g} s; completed/s in the window, backlog left at its end\n"
        "  ratio = taskstore / pgqueuer; 'x / y' = taskstore / pgqueuer"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        say("  taskstore ...")
        ts = await guarded("taskstore", _taskstore(db, cfg), errors)
        pgq = await ctx.peer(backend, lambda: _pgqueuer(db, cfg), errors)
    ratios = {"taskstore/pgqueuer": report.ratio(ts.get("rate"), pgq.get("rate"))}
    cells = [
        ("taskstore", report.figure(ts, "rate", report.rate)),
        ("pgqueuer", report.figure(pgq, "rate", report.rate)),
        ("ratio", report.times(ratios["taskstore/pgqueuer"])),
        ("enqueued", report.figure(ts, "enqueue_rate", report.rate)),
        ("/", report.figure(pgq, "enqueue_rate", report.rate)),
        ("backlog", report.figure(ts, "backlog", _count)),
        ("/", report.figure(pgq, "backlog", _count)),
    ]
    data = {"taskstore": ts, "pgqueuer": pgq, "ratios": ratios}
    return Result(NAME, backend, data, cells, errors)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _figures(sent: int, seconds: float, completed: int) -> dict:
    return {
        "seconds": round(seconds, 3),
        "enqueued": sent,
        "completed": completed,
        "rate": per_second(completed, seconds),
        "enqueue_rate": per_second(sent, seconds),
        "backlog": max(0, sent - completed),
    }


async def _taskstore(db: BenchDatabase, cfg: Config) -> dict:
    child = processes.taskstore_worker(db.url, db.workdir, concurrency=cfg.concurrency)
    async with stopped_after(child), connected(db) as raw, TaskStore.from_url(db.url) as store:
        await store.enqueue(NOOP, {})  # warm-up: the window starts with a ready worker
        await wait_until(completed_at_least(raw, 1), _READY_SECONDS, "the worker", child)
        before = await raw.count("completed")
        batch = [{"name": NOOP, "payload": {}}] * cfg.producer_batch
        sent, seconds = await produce(
            lambda n: store.enqueue_many(batch[:n]),
            cfg.producer_batch,
            cfg.seconds,
            cfg.producer_rate,
        )
        completed = await raw.count("completed") - before
    child.check("taskstore-worker")
    return _figures(sent, seconds, completed)


async def _pgqueuer(db: BenchDatabase, cfg: Config) -> dict:
    async with pgq_peer.PgqClient.installed(db.raw) as client:
        child = pgq_peer.worker(db.raw, db.workdir, batch_size=cfg.concurrency, env={})
        async with stopped_after(child):
            await client.enqueue(pgq_peer.NOOP, b"{}")  # warm-up
            await wait_until(client.is_empty, _READY_SECONDS, "the pgqueuer worker", child)
            sent, seconds = await produce(
                lambda n: client.enqueue_many(pgq_peer.NOOP, [b"{}"] * n),
                cfg.producer_batch,
                cfg.seconds,
                cfg.producer_rate,
            )
            completed = sent - await client.queued()  # done jobs' rows are deleted
    child.check("pgqueuer worker")
    return _figures(sent, seconds, completed)
