"""The harness side of the pgqueuer peer: availability, schema, enqueue, worker, counts.

pgqueuer is optional (the ``bench`` extra). Without it every pgqueuer figure is reported
as skipped, never as a crash.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.processes import Child

NOT_INSTALLED = "not installed (pip install -e '.[bench]')"
ONLY_POSTGRES = "PostgreSQL only"
DSN_ENV = "BENCH_PGQ_DSN"
NOOP = "bench_noop"
STAMP = "bench_stamp"
_COUNT_QUEUED = "SELECT count(*) FROM pgqueuer"


def available() -> bool:
    return importlib.util.find_spec("pgqueuer") is not None


def skip_reason(backend: str) -> str | None:
    """Why pgqueuer does not run here, or None if it does."""
    if backend != "postgres":
        return ONLY_POSTGRES
    if not available():
        return NOT_INSTALLED
    return None


class PgqClient:
    """One asyncpg connection with pgqueuer's `Queries` on top (the producer's side)."""

    def __init__(self, conn: asyncpg.Connection, queries: Any) -> None:
        self.conn = conn
        self.queries = queries

    @classmethod
    @contextlib.asynccontextmanager
    async def installed(cls, dsn: str) -> AsyncIterator[PgqClient]:
        """A client on a database where pgqueuer's schema has just been installed (with
        its own `Queries.install`, beside taskstore's tables)."""
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        conn = await asyncpg.connect(dsn)
        try:
            client = cls(conn, Queries(AsyncpgDriver(conn)))
            await client.queries.install()
            yield client
        finally:
            await conn.close()

    async def enqueue_many(self, entrypoint: str, payloads: list[bytes]) -> None:
        size = len(payloads)
        await self.queries.enqueue([entrypoint] * size, payloads, [0] * size)

    async def enqueue(self, entrypoint: str, payload: bytes) -> None:
        await self.queries.enqueue(entrypoint, payload)

    async def insert(self, count: int, batch: int) -> float:
        """Enqueue `count` no-op jobs in batches; returns the seconds taken."""
        started = time.perf_counter()
        for done in range(0, count, batch):
            await self.enqueue_many(NOOP, [b"{}"] * min(batch, count - done))
        return time.perf_counter() - started

    async def queued(self) -> int:
        """Jobs not yet done (pgqueuer deletes a job's row when it completes)."""
        return await self.conn.fetchval(_COUNT_QUEUED)

    async def is_empty(self) -> bool:
        return await self.queued() == 0


def worker(dsn: str, workdir: Path, *extra: str, batch_size: int, env: dict[str, str]) -> Child:
    """A real pgqueuer worker process running `benchmarks.pgq_app`."""
    argv = ["-m", "benchmarks.pgq_app", "--batch-size", str(batch_size), *extra]
    full_env = {DSN_ENV: dsn, **env}
    return Child(argv, full_env, workdir / f"pgqueuer-worker-{time.monotonic_ns()}.log")
