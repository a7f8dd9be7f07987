"""churn: months of queue life in minutes. A producer and a supervisor of two worker
processes run at a steady rate for ``--minutes`` (default 30) with a short retention, so
finished tasks are pruned as fast as they arrive; each minute prints throughput, pickup
latency (enqueue to handler start) p50/p99, live and dead rows, and table + index size.

A queue table decays under churn when dead rows and index entries pile up faster than
vacuum and pruning remove them: every claim then walks further. The run passes when the
last five minutes hold within 15 % of the first five on throughput and p99, and the size
stops growing once retention has kicked in.

On PostgreSQL it runs on a throwaway cluster with production settings (autovacuum on; the
shared test server has it off), started here with initdb + pg_ctl; where that cannot be
done, on ``--postgres-url``'s server, saying so. Not part of a default run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from benchmarks import cluster, processes
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase, fresh_database
from benchmarks.report import Result, say
from benchmarks.scenarios.common import percentile, produce, wait_until
from benchmarks.scenarios.context import Context
from taskstore import TaskStore

NAME = "churn"
EXPLICIT = True  # runs only when asked for by name: it takes half an hour
_CHURN = "bench.churn"
_TABLE = "taskstore_tasks"


def title(cfg: Config) -> str:
    return (
        f"churn: {cfg.churn_rate:,.0f} tasks/s for {cfg.minutes:g} min, retention "
        f"{_retention(cfg):.0f} s, one supervisor of 2 worker processes; last 5 min / first 5"
    )


def _retention(cfg: Config) -> float:
    """Short enough to kick in early in the run (5 min of a 30-min run)."""
    return max(30.0, cfg.minutes * 60 / 6)


@dataclasses.dataclass
class Minute:
    minute: int
    completed_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    live: int
    dead: int
    size_mb: float

    def line(self) -> str:
        p50 = "-" if self.p50_ms is None else f"{self.p50_ms:7.1f}"
        p99 = "-" if self.p99_ms is None else f"{self.p99_ms:7.1f}"
        return (
            f"  {self.minute:3d} | {self.completed_per_s:8.1f} | {p50} | {p99} | "
            f"{self.live:9,d} | {self.dead:9,d} | {self.size_mb:8.1f}"
        )


HEADER = "  min |  done/s  | p50 ms  | p99 ms  |   live    |   dead    | size MB"


async def run(ctx: Context, backend: str) -> Result:
    cfg = ctx.cfg
    async with _database(ctx, backend) as (db, where):
        say(f"  on {where}; retention {_retention(cfg):.0f} s")
        minutes = await _churn(db, cfg)
    data = {"where": where, "minutes": [dataclasses.asdict(m) for m in minutes]}
    data.update(_verdict(minutes))
    cells = [
        ("minutes", str(len(minutes))),
        ("rate first5", _fmt(data.get("rate_first5"))),
        ("rate last5", _fmt(data.get("rate_last5"))),
        ("p99 first5", _fmt(data.get("p99_first5"), " ms")),
        ("p99 last5", _fmt(data.get("p99_last5"), " ms")),
        ("size max/after", f"{data.get('size_max_mb', 0):.1f}/{data.get('size_end_mb', 0):.1f}"),
        ("flat", "yes" if data.get("flat") else "no"),
    ]
    return Result(NAME, backend, data, cells, [])


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


@contextlib.asynccontextmanager
async def _database(ctx: Context, backend: str) -> AsyncIterator[tuple[BenchDatabase, str]]:
    if backend == "sqlite":
        async with ctx.database(backend) as db:
            yield db, "SQLite (WAL)"
        return
    reason = cluster.why_not()
    if reason is not None:
        say(f"  no throwaway cluster ({reason}): the --postgres-url server, as configured")
        async with ctx.database(backend) as db:
            yield db, "the --postgres-url server"
        return
    server = await asyncio.to_thread(cluster.ThrowawayCluster().start)
    try:
        async with fresh_database(backend, server.url(), ctx.scratch) as db:
            yield db, "a throwaway PostgreSQL 15 cluster, default settings (autovacuum on)"
    finally:
        server.stop()


async def _churn(db: BenchDatabase, cfg: Config) -> list[Minute]:
    log = db.workdir / "churn.log"
    log.touch()
    env = {"BENCH_CHURN_LOG": str(log), "TASKSTORE_RETENTION": f"{_retention(cfg):.0f}s"}
    child = processes.taskstore_worker(
        db.url, db.workdir, "--processes", "2", concurrency=cfg.concurrency, env=env
    )
    minutes: list[Minute] = []
    async with processes.stopped_after(child), TaskStore.from_url(db.url) as store:
        # The clock starts once both workers run: start-up is not churn.
        await store.enqueue_many([{"name": _CHURN, "payload": {"enqueued": time.time()}}] * 200)
        await wait_until(lambda: _lines_at_least(log, 200), 120, "the workers", child)
        started = time.time()

        async def send(n: int) -> None:
            item = {"name": _CHURN, "payload": {"enqueued": time.time()}}
            await store.enqueue_many([item] * n)

        producer = asyncio.create_task(
            produce(send, cfg.producer_batch, cfg.minutes * 60, cfg.churn_rate)
        )
        starts = Starts(log, started)
        say(HEADER)
        for minute in range(1, int(cfg.minutes) + 1):
            await asyncio.sleep(max(0.0, started + 60 * minute - time.time()))
            if (exit := child.poll()) is not None:
                raise RuntimeError(f"the workers exited with {exit.returncode}{child.tail()}")
            row = await _measure(db, starts, minute)
            minutes.append(row)
            say(row.line())
        await producer
    return minutes


class Starts:
    """The handlers' log ("start-time latency" lines), read as it grows, by minute."""

    def __init__(self, path: Path, started: float) -> None:
        self._path, self._started = path, started
        self._offset = 0
        self._by_minute: dict[int, list[float]] = {}

    def minute(self, minute: int) -> list[float]:
        """Pickup latencies (ms) of the tasks that started in `minute` (1-based)."""
        with open(self._path, "rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            at, latency = line.split()
            index = int((float(at) - self._started) // 60) + 1
            self._by_minute.setdefault(index, []).append(float(latency) * 1000)
        return self._by_minute.pop(minute, [])


async def _lines_at_least(path: Path, count: int) -> bool:
    return (await asyncio.to_thread(path.read_bytes)).count(b"\n") >= count


async def _measure(db: BenchDatabase, starts: Starts, minute: int) -> Minute:
    latencies = await asyncio.to_thread(starts.minute, minute)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    live, dead, size = await (_pg_table(db) if db.backend == "postgres" else _sqlite_file(db))
    return Minute(minute, len(latencies) / 60, p50, p99, live, dead, size)


async def _pg_table(db: BenchDatabase) -> tuple[int, int, float]:
    conn = await asyncpg.connect(db.raw)
    try:
        row = await conn.fetchrow(
            "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid) AS size"
            " FROM pg_stat_user_tables WHERE relname = $1",
            _TABLE,
        )
    finally:
        await conn.close()
    return row["n_live_tup"], row["n_dead_tup"], row["size"] / 2**20


async def _sqlite_file(db: BenchDatabase) -> tuple[int, int, float]:
    """Rows, free pages (SQLite's dead space), and the file with its WAL, in MB."""

    def look() -> tuple[int, int, float]:
        import sqlite3

        conn = sqlite3.connect(db.raw, timeout=30)
        try:
            live = conn.execute("SELECT count(*) FROM taskstore_tasks").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        finally:
            conn.close()
        wal = Path(db.raw + "-wal")
        size = Path(db.raw).stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        return live, free, size / 2**20

    return await asyncio.to_thread(look)


def _verdict(minutes: list[Minute]) -> dict:
    """First five minutes against the last five: throughput and p99 within 15 %, and the
    size after retention kicked in no longer growing."""
    if len(minutes) < 10:
        return {"flat": None}
    first, last = minutes[:5], minutes[-5:]
    rate1, rate2 = (sum(m.completed_per_s for m in ms) / 5 for ms in (first, last))
    p99s = [[m.p99_ms for m in ms if m.p99_ms is not None] for ms in (first, last)]
    p99_1, p99_2 = (sum(p) / len(p) if p else None for p in p99s)
    settled = minutes[len(minutes) // 3 :]
    size_max = max(m.size_mb for m in settled)
    size_end = minutes[-1].size_mb
    flat = (
        abs(rate2 - rate1) <= 0.15 * rate1
        and p99_1 is not None
        and p99_2 is not None
        and p99_2 <= 1.15 * p99_1
        and size_end <= 1.15 * max(m.size_mb for m in settled[: len(settled) // 2])
    )
    return {
        "rate_first5": rate1,
        "rate_last5": rate2,
        "p99_first5": p99_1,
        "p99_last5": p99_2,
        "size_max_mb": size_max,
        "size_end_mb": size_end,
        "flat": flat,
    }
