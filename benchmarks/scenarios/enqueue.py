"""enqueue: producer-side rates, one task per call and 1,000 per `enqueue_many`, beside a
raw batched insert into the same table (and pgqueuer's batch enqueue on PostgreSQL)."""

from __future__ import annotations

import time

from benchmarks import pgq_peer, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.raw import connected
from benchmarks.report import Result
from benchmarks.scenarios.common import NOOP, enqueue_noops, guarded, per_second
from benchmarks.scenarios.context import Context
from taskstore import TaskStore

NAME = "enqueue"


def title(cfg: Config) -> str:
    return (
        f"enqueue: {cfg.single_enqueues:,} single `enqueue` calls; {cfg.tasks:,} tasks in "
        f"batches of {cfg.enqueue_batch:,} (enqueue_many, raw insert, pgqueuer)"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        ts = await guarded("taskstore", _taskstore(db.url, cfg), errors)
        raw = await guarded("raw", _raw(db, cfg), errors)
        if backend == "sqlite":
            raw.update(await guarded("raw single", _raw_single_sqlite(db.url, cfg), errors))
        pgq = await ctx.peer(backend, lambda: _pgqueuer(db.raw, cfg), errors)
    ratios = {
        "enqueue_many/raw": report.ratio(ts.get("many_rate"), raw.get("rate")),
        "taskstore/pgqueuer": report.ratio(ts.get("many_rate"), pgq.get("many_rate")),
        "single/raw single": report.ratio(ts.get("single_rate"), raw.get("single_rate")),
    }
    cells = [
        ("single", report.figure(ts, "single_rate", report.rate)),
        ("enqueue_many", report.figure(ts, "many_rate", report.rate)),
        ("raw", report.figure(raw, "rate", report.rate)),
        ("ratio", report.times(ratios["enqueue_many/raw"])),
        ("pgqueuer batch", report.figure(pgq, "many_rate", report.rate)),
        ("ratio", report.times(ratios["taskstore/pgqueuer"])),
        ("pgqueuer single", report.figure(pgq, "single_rate", report.rate)),
        ("raw single", report.figure(raw, "single_rate", report.rate)),
        ("ratio", report.times(ratios["single/raw single"])),
    ]
    data = {"taskstore": ts, "raw": raw, "pgqueuer": pgq, "ratios": ratios}
    return Result(NAME, backend, data, cells, errors)


async def _taskstore(url: str, cfg: Config) -> dict:
    async with TaskStore.from_url(url) as store:
        started = time.perf_counter()
        for _ in range(cfg.single_enqueues):
            await store.enqueue(NOOP, {})
        single = time.perf_counter() - started
    many = await enqueue_noops(url, cfg.tasks, cfg.enqueue_batch)
    return {
        "single_rate": per_second(cfg.single_enqueues, single),
        "many_rate": per_second(cfg.tasks, many),
    }


async def _raw(db: BenchDatabase, cfg: Config) -> dict:
    async with connected(db) as raw:
        seconds = await raw.insert(cfg.tasks, cfg.enqueue_batch)
    return {"rate": per_second(cfg.tasks, seconds)}


async def _raw_single_sqlite(url: str, cfg: Config) -> dict:
    """SQLite's own speed for what a single enqueue asks: one row, one commit, same
    settings (WAL, synchronous=NORMAL), into a table of its own in the same file."""
    import sqlite3

    from sqlalchemy.engine import make_url

    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
            conn.execute("PRAGMA " + pragma)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_raw_single (id INTEGER PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for _ in range(cfg.single_enqueues):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_raw_single (v) VALUES (?)", ("{}",))
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return {"single_rate": per_second(cfg.single_enqueues, seconds)}


async def _pgqueuer(dsn: str, cfg: Config) -> dict:
    async with pgq_peer.PgqClient.installed(dsn) as client:
        started = time.perf_counter()
        for _ in range(cfg.single_enqueues):
            await client.enqueue(pgq_peer.NOOP, b"{}")
        single = time.perf_counter() - started
        many = await client.insert(cfg.tasks, cfg.enqueue_batch)
    return {
        "single_rate": per_second(cfg.single_enqueues, single),
        "many_rate": per_second(cfg.tasks, many),
    }
