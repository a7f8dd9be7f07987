"""Contention: many worker processes drain one queue of no-op tasks, with no faults.

The claim is the only thing the workers fight over; it must hand each task out exactly
once (SKIP LOCKED on PostgreSQL, one IMMEDIATE writer at a time on SQLite) and never
surface SQLite's "database is locked".
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest

from taskstore import TaskStore
from tests.helpers.faults import Fleet, status_counts, wait_exit
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

TASKS = 10_000


async def test_contending_workers_run_every_task_exactly_once_without_lock_errors(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path, soak: int, figures
) -> None:
    n = TASKS * soak
    batch = [{"name": "faulty.noop"}] * 1000
    ids = [i for _ in range(n // 1000) for i in await store.enqueue_many(batch)]
    log = tmp_path / "exec.log"
    size = 8 if backend == "postgres" else 3
    started = time.monotonic()
    fleet = Fleet(db_url, size, log, ("--burst",)).start()
    try:
        codes = await asyncio.gather(*(wait_exit(p, 300) for p in fleet.procs))
    finally:
        await fleet.stop()
    took = time.monotonic() - started

    errors = stderr_of(log)
    assert codes == [0] * size, errors
    assert "database is locked" not in errors and "Traceback" not in errors
    runs = executions(log)
    assert set(runs) == set(ids) and set(runs.values()) == {1}  # exactly once each
    assert await status_counts(store) == {"completed": n}
    pids = collections.Counter(line.split()[2] for line in log.read_text().splitlines())
    per_worker = sorted(pids.values())
    figures(tasks=n, workers=size, seconds=round(took, 1), per_worker=per_worker)
