"""Connection loss on PostgreSQL: the workers' connections are killed, the server restarts.

PostgreSQL only: an SQLite database has no server connections to lose (its outage is
simulated in test_ack_outage). Workers must ride it out: no process exits, every task
completes, and work resumes promptly once the database is back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from pathlib import Path

import anyio
import asyncpg
import pytest

from taskstore import TaskStore
from tests.helpers.faults import (
    Cluster,
    Fleet,
    admin_connect,
    duplicates,
    pg_status_counts,
    status_counts,
    terminate_worker_connections,
    wait_until,
)
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

TASKS = 2000
TERMINATIONS = 5
RESUME_WITHIN = 10.0  # seconds from the database being back to the next completion


@pytest.fixture
def cluster(db_url: str) -> Cluster:
    found = Cluster.local()
    if found is None:
        pytest.skip("needs the PostgreSQL server on this host, controlled by pg_ctlcluster")
    return found


async def _completed(admin: asyncpg.Connection) -> int:
    return (await pg_status_counts(admin)).get("completed", 0)


async def _reach(admin: asyncpg.Connection, done: float) -> None:
    async def check() -> bool:
        return await _completed(admin) >= done

    await wait_until(check, seconds=120)


_FIRST_COMPLETION_AFTER = """
    SELECT extract(epoch FROM min(finished_at) FILTER (WHERE finished_at > $1) - $1),
           count(*) FILTER (WHERE status = 'completed')
    FROM taskstore_tasks
"""


async def _next_completion(admin: asyncpg.Connection, since: dt.datetime, total: int) -> float:
    """Seconds from `since` (the database's clock) to the first completion after it; 0 if
    everything was already done."""
    found: list[float] = []

    async def check() -> bool:
        wait, done = await admin.fetchrow(_FIRST_COMPLETION_AFTER, since)
        if wait is not None or done == total:
            found.append(float(wait or 0.0))
        return bool(found)

    await wait_until(check, seconds=60, interval=0.02)
    return found[0]


async def _terminations(admin: asyncpg.Connection, marks: list[float], total: int) -> list:
    """Kill every worker connection at each mark; (connections killed, resume s) each."""
    done = []
    for mark in marks:
        await _reach(admin, mark)
        at = await admin.fetchval("SELECT clock_timestamp()")
        killed = await terminate_worker_connections(admin)
        done.append((killed, round(await _next_completion(admin, at, total), 2)))
    return done


async def _restart(cluster: Cluster, admin: asyncpg.Connection, url: str, total: int) -> float:
    """Restart the server; seconds from its start to the next completion."""
    assert await _completed(admin) < total, "nothing left to do: the restart would prove nothing"
    await cluster.restart()
    with contextlib.suppress(Exception):
        await admin.close(timeout=1)
    fresh = await admin_connect(url)
    try:
        back = await fresh.fetchval("SELECT pg_postmaster_start_time()")
        return await _next_completion(fresh, back, total)
    finally:
        await fresh.close()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_workers_survive_killed_connections_and_a_server_restart(
    store: TaskStore,
    db_url: str,
    cluster: Cluster,
    tmp_path: Path,
    soak: int,
    rng: random.Random,
    figures,
) -> None:
    n = TASKS * soak
    # The last tenth is slower (claims go in id order): seconds of work are still left
    # when the server restarts at 70 %, however fast the machine drains the rest.
    ms = [10 if i < n * 0.9 else 150 for i in range(n)]
    work = [{"name": "faulty.work", "payload": {"ms": m}} for m in ms]
    for start in range(0, n, 1000):
        await store.enqueue_many(work[start : start + 1000])
    log = tmp_path / "exec.log"
    fleet = Fleet(db_url, 2, log, ("--concurrency", "4", "--lease-seconds", "5")).start()
    admin = await admin_connect(db_url)
    try:
        marks = sorted(rng.uniform(0.05, 0.6) * n for _ in range(TERMINATIONS * soak))
        terminations = await _terminations(admin, marks, n)
        await _reach(admin, 0.7 * n)
        resumed_in = await _restart(cluster, admin, db_url, n)
        admin = await admin_connect(db_url)
        await _reach(admin, n)
        alive = len(fleet.alive)
    finally:
        await cluster.ensure_up(db_url)
        codes = await fleet.stop()
        with contextlib.suppress(Exception):
            await admin.close(timeout=1)

    assert alive == 2 and list(codes.values()) == [0, 0], stderr_of(log)  # no worker exited
    assert await status_counts(store) == {"completed": n}
    assert set(executions(log)) == {t.id for t in await store.list(limit=n)}
    assert resumed_in < RESUME_WITHIN
    assert all(seconds < RESUME_WITHIN for _, seconds in terminations), terminations
    assert "Traceback" not in stderr_of(log)
    figures(
        tasks=n,
        terminations=[killed for killed, _ in terminations],
        resume_after_termination_s=[s for _, s in terminations],
        resume_after_restart_s=round(resumed_in, 2),
        duplicates=duplicates(executions(log)),
    )


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_pooled_connections_killed_while_idle_are_replaced_before_use(
    store: TaskStore, db_url: str
) -> None:
    # The store's own connections are named "taskstore" (the workers' too, in other tests).
    await store.enqueue_many([{"name": "t.x"}] * 3)
    await store.stats()
    admin = await admin_connect(db_url)
    try:
        killed = await terminate_worker_connections(admin)
    finally:
        await admin.close()
    assert killed >= 1
    await anyio.sleep(1.2)  # idle past the point where a checkout checks its connection
    assert len(await store.enqueue_many([{"name": "t.x"}] * 2)) == 2  # no error reaches us
    assert sum((await store.stats())[0].counts.values()) == 5
