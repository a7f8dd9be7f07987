"""The pgqueuer peer's worker process: ``python -m benchmarks.pgq_app [--drain] --batch-size N``.

Its entrypoints mirror `benchmarks.apps` (a no-op, and a start-time stamp), so both
queues run the same non-work. It starts pgqueuer through its documented programmatic
entry, ``pgqueuer.run(factory, ...)``, on uvloop as ``pgq run`` does (pgqueuer 1.6's
``pgq run`` command itself fails to parse its log level under current typer releases).
Only imported in a process that has pgqueuer installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

import asyncpg
import pgqueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

from benchmarks import marks
from benchmarks.pgq_peer import DSN_ENV, NOOP, STAMP


@contextlib.asynccontextmanager
async def create() -> AsyncIterator[QueueManager]:
    """The worker factory: a QueueManager on one asyncpg connection."""
    conn = await asyncpg.connect(os.environ[DSN_ENV])
    try:
        manager = QueueManager(Queries(AsyncpgDriver(conn)))

        sleep = marks.handler_seconds()

        @manager.entrypoint(NOOP)
        async def noop(job: Job) -> None:
            marks.first_start()
            if sleep:
                await asyncio.sleep(sleep)

        @manager.entrypoint(STAMP)
        async def stamp(job: Job) -> None:
            marks.record_latency(json.loads(job.payload or b"{}")["enqueued"])

        yield manager
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgq_app")
    parser.add_argument("--drain", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    mode = QueueExecutionMode.drain if args.drain else QueueExecutionMode.continuous
    work = pgqueuer.run(create, batch_size=args.batch_size, mode=mode)
    try:
        import uvloop
    except ImportError:
        asyncio.run(work)
    else:
        uvloop.run(work)


if __name__ == "__main__":
    main()
