"""A handler result the database cannot store fails that task alone.

A result is JSON-able in Python yet unstorable: U+0000 (PostgreSQL's jsonb refuses it) or
a lone surrogate (not UTF-8). Completions travel in batches, so one such result must not
hold the rest of its batch (and every later one) hostage: the task ends in a terminal
state with a clear error (or stored, where the database can hold it) and every other task
completes.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from taskstore import TaskStatus, TaskStore
from tests.helpers.faults import Fleet, status_counts
from tests.helpers.processes import stderr_of

pytestmark = pytest.mark.fault

AROUND = 100  # normal tasks before and after the bad one
SETTLE = 6.0  # seconds: a worker starts and runs the normal tasks in about two

CASES = [
    pytest.param("sqlite", "nul"),
    pytest.param("sqlite", "surrogate"),
    pytest.param("postgres", "nul", marks=[pytest.mark.postgres]),
    pytest.param("postgres", "surrogate", marks=[pytest.mark.postgres]),
]


async def _settled(store: TaskStore) -> dict[str, int]:
    """Counts once nothing is created/running any more, or after SETTLE seconds."""
    counts: dict[str, int] = {}
    with anyio.move_on_after(SETTLE):
        while not counts or {"created", "assigned", "running"} & set(counts):
            await anyio.sleep(0.1)
            counts = await status_counts(store)
    return counts


@pytest.mark.parametrize(("backend", "kind"), CASES)
async def test_a_result_the_database_cannot_store_fails_only_its_own_task(
    store: TaskStore, db_url: str, tmp_path: Path, kind: str, figures
) -> None:
    await store.enqueue_many([{"name": "faulty.noop"}] * AROUND)
    bad = await store.enqueue("faulty.unstorable_result", {"kind": kind})
    await store.enqueue_many([{"name": "faulty.noop"}] * AROUND)
    log = tmp_path / "exec.log"
    fleet = Fleet(db_url, 1, log, ("--lease-seconds", "2", "--shutdown-timeout", "1")).start()
    try:
        counts = await _settled(store)
    finally:
        await fleet.stop(grace=3)
    info = await store.require(bad)
    figures(kind=kind, counts=counts, bad_status=info.status.value)

    assert counts.get("completed", 0) >= 2 * AROUND, (counts, stderr_of(log)[-2000:])
    assert info.status in (TaskStatus.COMPLETED, TaskStatus.FAILED), info
    if info.status is TaskStatus.FAILED:
        assert "\n" not in info.error["message"] and "SQL" not in info.error["message"]
