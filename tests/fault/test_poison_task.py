"""Poison task: a handler that kills its own worker process on every attempt.

No handler code runs after SIGKILL, so the worker cannot record the failure; the task's
lease expires, it is rescued and tried again, and after `max_attempts` such attempts it
must be failed (never retried forever), while the normal tasks around it all complete.
A supervisor loop in the test restarts dead workers, like systemd or Kubernetes would.

The seven normal tasks enqueued just before the poison take 300 ms (the rest 2 ms): with
two workers of four slots each, whichever worker claims the poison task is then certain
to be running innocent tasks when it dies, which is the case this test is about. Those
batch-mates lose an attempt to the first crash; after it, every task whose last attempt
died with its worker runs alone, so no crash costs anyone but the poison task again.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from taskstore import TaskStatus, TaskStore
from tests.helpers.faults import Fleet, duplicates, status_counts
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

NORMAL = 1000
MAX_ATTEMPTS = 3
NEIGHBOURS, NEIGHBOUR_MS = 7, 300
ACTIVE = {"created", "assigned", "running", "not_finished"}


async def _supervise(fleet: Fleet, store: TaskStore) -> tuple[int, dict[str, int]]:
    """Restart dead workers until no task is left to run; (restarts, final counts)."""
    restarts, counts = 0, {"created": 1}
    with anyio.fail_after(120):
        while ACTIVE & set(counts):
            restarts += fleet.replace_dead()
            await anyio.sleep(0.1)
            counts = await status_counts(store)
    return restarts, counts


async def _enqueue_normal(store: TaskStore, count: int, ms: float = 2) -> list[int]:
    return await store.enqueue_many([{"name": "faulty.work", "payload": {"ms": ms}}] * count)


async def _failed_normal(store: TaskStore, poison: int) -> list[tuple[int, int]]:
    return [(t.id, t.attempts) for t in await store.list(status="failed") if t.id != poison]


def _runs_of(log: Path, tasks: list[int]) -> list[str]:
    return [line for line in log.read_text().splitlines() if int(line.split()[0]) in tasks]


async def _story(store: TaskStore, log: Path, tasks: list[int]) -> str:
    """Why tasks ran more often than allowed: their runs (task, attempt, pid), their
    attempts logs, and the workers' last warnings and errors."""
    histories = []
    async with store.reading() as conn:
        for task_id in tasks:
            entries = await store.tasks.attempts_log(conn, await store.require(task_id))
            histories.append(f"task {task_id}: {entries}")
    said = [line for line in stderr_of(log).splitlines() if "warn" in line or "error" in line]
    runs = _runs_of(log, tasks)
    return "\n".join(["runs:", *runs, *histories, "workers said:", *said[-20:]])


async def test_a_task_that_kills_its_worker_fails_after_max_attempts_and_the_rest_complete(
    store: TaskStore, db_url: str, tmp_path: Path, soak: int, figures
) -> None:
    normal = NORMAL * soak
    before = await _enqueue_normal(store, normal // 2 - NEIGHBOURS)
    before += await _enqueue_normal(store, NEIGHBOURS, ms=NEIGHBOUR_MS)
    poison = await store.enqueue("faulty.poison", max_attempts=MAX_ATTEMPTS)
    after = await _enqueue_normal(store, normal - len(before))
    log = tmp_path / "exec.log"
    fleet = Fleet(db_url, 2, log, ("--concurrency", "4", "--lease-seconds", "2")).start()
    try:
        restarts, counts = await _supervise(fleet, store)
    finally:
        codes = await fleet.stop()
    runs, collateral = executions(log), await _failed_normal(store, poison)
    figures(
        normal=normal,
        poison_executions=runs[poison],
        worker_restarts=restarts,
        counts=counts,
        normal_failed_with_poison=len(collateral),
        duplicates_of_normal_tasks=duplicates(runs) - (runs[poison] - 1),
    )

    # The poison task itself: exactly max_attempts executions, one worker each, then failed.
    assert runs[poison] == MAX_ATTEMPTS
    info = await store.require(poison)
    assert (info.status, info.attempts) == (TaskStatus.FAILED, MAX_ATTEMPTS)
    message = str(info.error["message"])
    assert info.error["type"] == "LeaseExpired" or "earlier attempts never finished" in message
    assert restarts == MAX_ATTEMPTS and sorted(codes.values()) == [-9] * 3 + [0] * 2, stderr_of(log)
    # Everything else ran, and completed.
    assert set(runs) - {poison} == set(before + after)
    assert not collateral, f"normal tasks failed with the poison task: {collateral}"
    # Only the first crash (the poison task in a batch) cost anyone else an attempt.
    too_often = [t for t, n in runs.items() if t != poison and n > 2]
    assert not too_often, await _story(store, log, too_often)
    assert counts == {"completed": normal, "failed": 1}
