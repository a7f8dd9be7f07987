"""Raw-SQL probes against the taskstore table: the limit of what the database gives.

Plain asyncpg on PostgreSQL and the standard library's sqlite3 on SQLite, with no
SQLAlchemy, no validation and no worker around them: the same claim (100 rows per
statement, the literal partial-index predicate) and the same one-statement ack as the
product, so taskstore's figures can be read as a fraction of this ceiling. The SQL is
constant text; every value travels as a bound parameter.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Protocol

import asyncpg

from benchmarks.databases import BenchDatabase

RAW_WORKER = "bench-raw"

# --------------------------------------------------------------------------- PostgreSQL
_PG_INSERT = """
INSERT INTO taskstore_tasks (name, queue, payload, run_at, created_at, updated_at)
SELECT t.name, 'default', t.payload::jsonb, now(), now(), now()
FROM unnest($1::text[], $2::text[]) AS t(name, payload)
RETURNING id
"""
_PG_CLAIM = """
UPDATE taskstore_tasks
SET status = 'running', worker_id = $1, attempts = attempts + 1, started_at = now(),
    updated_at = now(), lease_expires_at = now() + interval '30 seconds'
WHERE id IN (
    SELECT id FROM taskstore_tasks
    WHERE status IN ('created', 'not_finished') AND queue = 'default' AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, name, payload, attempts
"""
_PG_ACK = """
UPDATE taskstore_tasks
SET status = 'completed', finished_at = now(), updated_at = now(), lease_expires_at = NULL,
    progress = 1.0
WHERE id = ANY($1::bigint[]) AND worker_id = $2 AND status = 'running'
"""
_PG_HISTORY = """
INSERT INTO taskstore_tasks (name, queue, payload, status, attempts, run_at, created_at,
    updated_at, started_at, finished_at, progress)
SELECT 'bench.noop', 'default', '{}'::jsonb, 'completed', 1, ts, ts, ts, ts, ts, 1.0
FROM (SELECT now() - make_interval(secs => $1 - g) AS ts
      FROM generate_series(1, $1) AS g) AS s
"""
_COUNT_CLAIMABLE = (
    "SELECT count(*) FROM taskstore_tasks WHERE status IN ('created', 'not_finished')"
)
_COUNT_COMPLETED = "SELECT count(*) FROM taskstore_tasks WHERE status = 'completed'"
_COUNT_ALL = "SELECT count(*) FROM taskstore_tasks"

# ------------------------------------------------------------------------------ SQLite
_SQLITE_INSERT = """
INSERT INTO taskstore_tasks (name, queue, payload, run_at, created_at, updated_at)
VALUES (?, 'default', ?, strftime('%Y-%m-%d %H:%M:%f000', 'now'),
        strftime('%Y-%m-%d %H:%M:%f000', 'now'), strftime('%Y-%m-%d %H:%M:%f000', 'now'))
"""
_SQLITE_CLAIM = """
UPDATE taskstore_tasks
SET status = 'running', worker_id = ?, attempts = attempts + 1,
    started_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'),
    updated_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'),
    lease_expires_at = strftime('%Y-%m-%d %H:%M:%f000', 'now', '+30 seconds')
WHERE id IN (
    SELECT id FROM taskstore_tasks
    WHERE status IN ('created', 'not_finished') AND queue = 'default'
      AND run_at <= strftime('%Y-%m-%d %H:%M:%f000', 'now')
    ORDER BY priority DESC, run_at, id
    LIMIT ?)
RETURNING id, name, payload, attempts
"""
_SQLITE_ACK = """
UPDATE taskstore_tasks
SET status = 'completed', finished_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'),
    updated_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'), lease_expires_at = NULL,
    progress = 1.0
WHERE id IN (SELECT value FROM json_each(?)) AND worker_id = ? AND status = 'running'
"""
_SQLITE_HISTORY = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)
INSERT INTO taskstore_tasks (name, queue, payload, status, attempts, run_at, created_at,
    updated_at, started_at, finished_at, progress)
SELECT 'bench.noop', 'default', '{}', 'completed', 1, ts, ts, ts, ts, ts, 1.0
FROM (SELECT strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('-%d seconds', :count - n)) AS ts
      FROM seq)
"""


class RawQueue(Protocol):
    """What the scenarios ask of a raw connection to the benchmark database."""

    async def insert(self, count: int, batch: int) -> float:
        """Insert `count` no-op tasks in batches; returns the seconds taken."""
        ...

    async def drain(self, batch: int) -> tuple[int, float]:
        """Claim and ack until nothing is claimable; returns (tasks, seconds)."""
        ...

    async def add_history(self, count: int) -> None:
        """Append `count` completed tasks, fast (server-side row generation)."""
        ...

    async def count(self, what: str) -> int:
        """Rows that are "claimable", "completed", or "all"."""
        ...

    async def close(self) -> None: ...


_COUNTS = {"claimable": _COUNT_CLAIMABLE, "completed": _COUNT_COMPLETED, "all": _COUNT_ALL}


class PostgresRaw:
    """asyncpg, one connection, autocommit: each statement is its own transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def insert(self, count: int, batch: int) -> float:
        started = time.perf_counter()
        for done in range(0, count, batch):
            size = min(batch, count - done)
            await self.conn.fetch(_PG_INSERT, ["bench.noop"] * size, ["{}"] * size)
        return time.perf_counter() - started

    async def drain(self, batch: int) -> tuple[int, float]:
        total, started = 0, time.perf_counter()
        while rows := await self.conn.fetch(_PG_CLAIM, RAW_WORKER, batch):
            await self.conn.execute(_PG_ACK, [r["id"] for r in rows], RAW_WORKER)
            total += len(rows)
        return total, time.perf_counter() - started

    async def add_history(self, count: int) -> None:
        await self.conn.execute(_PG_HISTORY, count)
        # What autovacuum would soon do after such a load; without it the planner is blind.
        await self.conn.execute("VACUUM ANALYZE taskstore_tasks")

    async def count(self, what: str) -> int:
        return await self.conn.fetchval(_COUNTS[what])

    async def close(self) -> None:
        await self.conn.close()


class SQLiteRaw:
    """sqlite3 with the product's pragmas; writes inside ``BEGIN IMMEDIATE`` like taskstore."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            self.conn.execute("PRAGMA " + pragma)

    async def insert(self, count: int, batch: int) -> float:
        started = time.perf_counter()
        for done in range(0, count, batch):
            size = min(batch, count - done)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(_SQLITE_INSERT, [("bench.noop", "{}")] * size)
            self.conn.execute("COMMIT")
        return time.perf_counter() - started

    async def drain(self, batch: int) -> tuple[int, float]:
        total, started = 0, time.perf_counter()
        while True:
            self.conn.execute("BEGIN IMMEDIATE")
            rows = self.conn.execute(_SQLITE_CLAIM, (RAW_WORKER, batch)).fetchall()
            self.conn.execute("COMMIT")
            if not rows:
                return total, time.perf_counter() - started
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(_SQLITE_ACK, (json.dumps([r[0] for r in rows]), RAW_WORKER))
            self.conn.execute("COMMIT")
            total += len(rows)

    async def add_history(self, count: int) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(_SQLITE_HISTORY, {"count": count})
        self.conn.execute("COMMIT")

    async def count(self, what: str) -> int:
        return self.conn.execute(_COUNTS[what]).fetchone()[0]

    async def close(self) -> None:
        self.conn.close()


@contextlib.asynccontextmanager
async def connected(db: BenchDatabase) -> AsyncIterator[RawQueue]:
    """A raw connection to `db` for its backend, closed on exit."""
    raw: RawQueue = (
        PostgresRaw(await asyncpg.connect(db.raw))
        if db.backend == "postgres"
        else SQLiteRaw(db.raw)
    )
    try:
        yield raw
    finally:
        await raw.close()
