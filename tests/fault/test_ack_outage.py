"""Ack outage: the database is unreachable for a few seconds while completions are buffered.

On PostgreSQL the workers talk to the server through `TcpProxy`, which drops every
connection and refuses new ones for the outage. On SQLite there is no connection to cut,
so another connection holds the write lock (``BEGIN EXCLUSIVE``) for the outage and the
workers' busy timeout is short: every write they try fails with "database is locked",
which is what an unreachable database looks like to them.

Pass: every task reaches a terminal state, and none that was running when the database
came back stays running past one lease plus one rescue interval.

The worst moment for an outage on PostgreSQL is between the server committing a claim
and the worker hearing of it; that moment has a test of its own below.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy.engine import make_url

from taskstore import TaskStore
from tests.helpers.faults import (
    Fleet,
    TcpProxy,
    duplicates,
    running_attempts,
    status_counts,
    wait_until,
)
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

TASKS = 600
LEASE = 3.0
RESCUE_INTERVAL = LEASE / 2  # the worker's default: half the lease
OUTAGE = 3.0
WORKER_ARGS = ("--concurrency", "4", "--lease-seconds", str(LEASE))


class ProxyOutage:
    """PostgreSQL unreachable: the proxy between workers and server is cut."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    async def begin(self) -> None:
        await self.proxy.cut_when_idle()

    async def end(self) -> None:
        await self.proxy.restore()


class LockOutage:
    """SQLite unwritable: another connection holds the exclusive write lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.holder: sqlite3.Connection | None = None

    async def begin(self) -> None:
        holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        await anyio.to_thread.run_sync(holder.execute, "BEGIN EXCLUSIVE")
        self.holder = holder

    async def end(self) -> None:
        assert self.holder is not None
        self.holder.execute("ROLLBACK")
        self.holder.close()


@contextlib.asynccontextmanager
async def _proxy(db_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, claim_marker=b"faulty.work")
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.cut()


@pytest.fixture
async def outage(
    backend: str, db_url: str
) -> AsyncIterator[tuple[str, ProxyOutage | LockOutage, dict[str, str]]]:
    """(URL the workers use, the outage, extra worker environment)."""
    if backend == "sqlite":
        short_busy = {"TASKSTORE_SQLITE_BUSY_TIMEOUT_MS": "500"}
        yield db_url, LockOutage(make_url(db_url).database), short_busy
        return
    async with _proxy(db_url) as proxy:
        yield proxy.url_for(db_url), ProxyOutage(proxy), {}


async def _still_running(store: TaskStore, held: set[tuple[int, int]], limit: float) -> set:
    """The (id, attempt) pairs of `held` still running after `limit` seconds (or sooner,
    the moment none is)."""
    with anyio.move_on_after(limit):
        while held & await running_attempts(store):  # noqa: ASYNC110 - a poll
            await anyio.sleep(0.05)
    return held & await running_attempts(store)


async def _completed_at_least(store: TaskStore, done: float) -> None:
    async def check() -> bool:
        return (await status_counts(store)).get("completed", 0) >= done

    await wait_until(check, seconds=120)


async def _all_terminal(store: TaskStore, n: int) -> dict[str, int]:
    async def check() -> bool:
        counts = await status_counts(store)
        return counts.get("completed", 0) + counts.get("failed", 0) == n

    await wait_until(check, seconds=120)
    return await status_counts(store)


async def _enqueue(store: TaskStore, n: int, rng: random.Random) -> None:
    await store.enqueue_many(
        [{"name": "faulty.work", "payload": {"ms": rng.uniform(5, 15)}} for _ in range(n)]
    )


async def test_completions_buffered_through_an_outage_are_recorded_and_none_stays_running(
    store: TaskStore, outage, tmp_path: Path, soak: int, rng: random.Random, figures
) -> None:
    worker_url, cut, env = outage
    n = TASKS * soak
    await _enqueue(store, n, rng)
    log = tmp_path / "exec.log"
    fleet = Fleet(worker_url, 2, log, WORKER_ARGS, env).start()
    recovered: list[float] = []
    try:
        for round_ in range(soak):
            await _completed_at_least(store, (round_ + 0.3) * n / soak)
            await cut.begin()
            await asyncio.sleep(OUTAGE)
            await cut.end()
            restored, held = time.monotonic(), await running_attempts(store)
            stuck = await _still_running(store, held, LEASE + RESCUE_INTERVAL)
            assert not stuck, f"still running {LEASE + RESCUE_INTERVAL}s after restore: {stuck}"
            recovered.append(round(time.monotonic() - restored, 2))
        counts = await _all_terminal(store, n)
        alive = len(fleet.alive)
    finally:
        codes = await fleet.stop()

    assert set(executions(log)) == {t.id for t in await store.list(limit=n)}  # none lost
    assert alive == 2 and list(codes.values()) == [0, 0], stderr_of(log)
    figures(
        tasks=n,
        outage_s=OUTAGE,
        running_cleared_after_restore_s=recovered,
        counts=counts,
        duplicates=duplicates(executions(log)),
    )


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "postgres",
            marks=[pytest.mark.postgres],
        )
    ],
)
async def test_a_claim_whose_commit_reply_was_lost_is_rescued_after_its_lease(
    store: TaskStore, db_url: str, tmp_path: Path, rng: random.Random, figures
) -> None:
    """PostgreSQL only: only a network between worker and database can lose a reply."""
    n = TASKS // 2
    await _enqueue(store, n, rng)
    log = tmp_path / "exec.log"
    async with _proxy(db_url) as proxy:
        lost = proxy.lose_next_claim_reply()  # the first claim made
        fleet = Fleet(proxy.url_for(db_url), 2, log, WORKER_ARGS).start()
        try:
            with anyio.fail_after(60):
                await lost.wait()
            await asyncio.sleep(OUTAGE)
            await proxy.restore()
            held = await running_attempts(store)
            stuck = await _still_running(store, held, LEASE + RESCUE_INTERVAL + LEASE)
            figures(tasks=n, running_at_restore=len(held), stuck=sorted(stuck))
            assert not stuck, f"held by a worker that never heard of them: {sorted(stuck)}"
            assert set(await _all_terminal(store, n)) <= {"completed", "failed"}
        finally:
            await fleet.stop()
