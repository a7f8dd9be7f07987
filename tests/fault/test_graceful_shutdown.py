"""Graceful shutdown: SIGTERM with 20 tasks in flight.

Half of them finish within the grace period and complete; the other half are cut off,
marked ``not_finished`` (never left running, the attempt not charged), and run again
exactly once more. The test
counts the tasks in flight at the signal and every execution, per task.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from taskstore import TaskStatus, TaskStore
from tests.helpers.faults import Fleet, status_counts, wait_exit, wait_until
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

IN_FLIGHT = 20
GRACE = "3"
SHORT_MS, LONG_MS = 200, 120_000  # well inside, far beyond the grace period


async def _statuses(store: TaskStore, ids: list[int]) -> set[tuple[TaskStatus, int]]:
    return {((info := await store.require(i)).status, info.attempts) for i in ids}


async def test_sigterm_finishes_what_fits_the_grace_period_and_reruns_the_rest_once(
    store: TaskStore, db_url: str, tmp_path: Path, figures
) -> None:
    half = IN_FLIGHT // 2
    short = await store.enqueue_many([{"name": "faulty.work", "payload": {"ms": SHORT_MS}}] * half)
    long = await store.enqueue_many([{"name": "faulty.work", "payload": {"ms": LONG_MS}}] * half)
    log = tmp_path / "exec.log"
    args = ("--concurrency", str(IN_FLIGHT), "--shutdown-timeout", GRACE)
    [worker] = Fleet(db_url, 1, log, args).start().procs

    async def all_in_flight() -> bool:
        return await status_counts(store) == {"running": IN_FLIGHT}

    await wait_until(all_in_flight)
    worker.send_signal(signal.SIGTERM)
    assert await wait_exit(worker) == 0, stderr_of(log)
    assert await status_counts(store) == {"completed": half, "not_finished": half}
    assert await _statuses(store, short) == {(TaskStatus.COMPLETED, 1)}
    # cut off by the stop: handed back with the attempt not charged
    assert await _statuses(store, long) == {(TaskStatus.NOT_FINISHED, 0)}

    rerun = Fleet(db_url, 1, log, ("--burst",), {"TEST_SLEEP_SCALE": "0"}).start().procs[0]
    assert await wait_exit(rerun) == 0, stderr_of(log)
    assert await _statuses(store, long) == {(TaskStatus.COMPLETED, 1)}
    runs = executions(log)
    assert {runs[i] for i in short} == {1} and {runs[i] for i in long} == {2}
    figures(in_flight=IN_FLIGHT, finished_in_grace=half, cut_off=half, reexecuted_once=half)


async def test_a_sync_handler_past_the_grace_period_ends_with_its_process_and_reruns_after_it(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    [task_id] = await store.enqueue_many([{"name": "faulty.sync_work", "payload": {"ms": LONG_MS}}])
    log = tmp_path / "exec.log"
    [worker] = Fleet(db_url, 1, log, ("--shutdown-timeout", GRACE)).start().procs

    async def running() -> bool:
        return await status_counts(store) == {"running": 1}

    await wait_until(running)
    worker.send_signal(signal.SIGTERM)
    began = time.monotonic()
    # The thread cannot be stopped: the process exits past it instead of waiting 120 s.
    assert await wait_exit(worker) == 0, stderr_of(log)
    assert time.monotonic() - began < float(GRACE) + 10
    async with store.reading() as conn:
        exited = await store.tasks.clock(conn)
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.NOT_FINISHED, 0)
    assert info.run_at > exited  # nobody starts it again while the thread might still run

    rerun = Fleet(db_url, 1, log, (), {"TEST_SLEEP_SCALE": "0"}).start().procs[0]
    try:
        await wait_until(lambda: _completed(store, task_id), seconds=30)
    finally:
        rerun.send_signal(signal.SIGTERM)
        await wait_exit(rerun)
    assert executions(log)[task_id] == 2


async def _completed(store: TaskStore, task_id: int) -> bool:
    return (await store.require(task_id)).status is TaskStatus.COMPLETED
