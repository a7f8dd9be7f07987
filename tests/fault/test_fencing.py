"""Fencing: a worker that lost its lease can never overwrite the attempt that replaced it.

Both tests drive the repository directly (no worker processes), so they can place a
write exactly where the danger is: after the lease expired and the task was rescued and
claimed again, and at the very moment a lease runs out.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random

import pytest
from sqlalchemy import select

from taskstore import TaskStatus, TaskStore
from taskstore.errors import LeaseLost
from taskstore.models import TaskEntity
from taskstore.records import ClaimedTask
from tests.helpers.faults import wait_until

pytestmark = pytest.mark.fault

ZOMBIE, HEIR = "zombie-A", "heir-B"
ITERATIONS = 500
RACE_LEASE = 0.02  # seconds
LANES = 4


async def _claim(
    store: TaskStore,
    worker_id: str,
    lease: float,
    queue: str = "default",
    orphans: bool = False,
) -> ClaimedTask:
    async with store.transaction() as conn:
        [claimed] = await store.tasks.claim(
            conn,
            worker_id=worker_id,
            queue=queue,
            limit=1,
            lease_seconds=lease,
            orphans=orphans,
        )
    return claimed


async def _complete(store: TaskStore, worker_id: str, task_id: int, attempt: int, doc: dict):
    async with store.transaction() as conn:
        done = [(task_id, attempt, json.dumps(doc))]
        return await store.tasks.complete_many(conn, worker_id=worker_id, done=done)


async def _rescue(store: TaskStore) -> dict[int, TaskStatus]:
    async with store.transaction() as conn:
        return await store.tasks.rescue_expired(conn)


async def _zombie_writes_are_refused(store: TaskStore, task_id: int) -> None:
    """Every write worker A could still attempt for its attempt 1."""
    assert await _complete(store, ZOMBIE, task_id, 1, {"by": "A"}) == set()
    for retry_in in (None, 0.5):
        with pytest.raises(LeaseLost):
            async with store.transaction() as conn:
                await store.tasks.fail(
                    conn,
                    task_id=task_id,
                    worker_id=ZOMBIE,
                    fence=1,
                    error={"type": "Boom", "message": "late failure"},
                    retry_in=retry_in,
                )
    async with store.transaction() as conn:
        renewed = await store.tasks.heartbeat(
            conn, worker_id=ZOMBIE, lease_seconds=30, task_ids=[task_id]
        )
        assert renewed == set()
        cut = [(task_id, 1, json.dumps({"type": "cut"}))]
        assert await store.tasks.interrupt_many(conn, worker_id=ZOMBIE, cut=cut) == set()


async def test_a_zombie_workers_late_writes_are_refused_and_the_heirs_result_stands(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("faulty.work", {"ms": 1})
    first = await _claim(store, ZOMBIE, lease=0.2)
    assert first.attempt == 1

    async def rescued() -> bool:
        return (await _rescue(store)).get(task_id) is TaskStatus.NOT_FINISHED

    await wait_until(rescued, seconds=10)
    second = await _claim(store, HEIR, lease=30, orphans=True)
    assert (second.id, second.attempt) == (task_id, 2)

    await _zombie_writes_are_refused(store, task_id)  # while B still runs it
    assert await _complete(store, HEIR, task_id, 2, {"by": "B"}) == {task_id}
    await _zombie_writes_are_refused(store, task_id)  # and after B completed it

    info = await store.require(task_id)
    assert (info.status, info.attempts, info.result) == (TaskStatus.COMPLETED, 2, {"by": "B"})


async def _race_once(store: TaskStore, rng: random.Random, queue: str) -> tuple[int, bool, set]:
    """Complete a task on one connection while rescuing on another, as its lease expires.

    Returns (task id, whether the completion was accepted, the ids the rescue took)."""
    task = await _claim(store, queue, lease=RACE_LEASE, queue=queue)  # worker id = queue
    await asyncio.sleep(rng.uniform(0, 2 * RACE_LEASE))
    accepted, rescued = await asyncio.gather(
        _complete(store, queue, task.id, task.fence, {"queue": queue}), _rescue(store)
    )
    return task.id, task.id in accepted, set(rescued)


async def _race_lanes(store: TaskStore, rng: random.Random, queues: list[str]) -> list:
    """LANES races at a time: each rescue also sweeps the other lanes' expiring leases."""
    results: list[tuple[int, bool, set]] = []

    async def lane(mine: list[str]) -> None:
        for queue in mine:
            results.append(await _race_once(store, rng, queue))

    await asyncio.gather(*(lane(queues[i::LANES]) for i in range(LANES)))
    return results


async def _statuses(store: TaskStore) -> dict[int, str]:
    async with store.reading() as conn:
        return dict((await conn.execute(select(TaskEntity.id, TaskEntity.status))).all())


async def test_a_completion_racing_a_rescue_is_never_reverted(
    store: TaskStore, rng: random.Random, soak: int, figures
) -> None:
    n = ITERATIONS * soak
    queues = [f"race-{i}" for i in range(n)]  # a queue each: a rescued task stays put
    await store.enqueue_many([{"name": "faulty.noop", "queue": q} for q in queues])
    results = await _race_lanes(store, rng, queues)
    await asyncio.sleep(2 * RACE_LEASE)
    assert await _rescue(store) == {}  # nothing left that a later rescue could take

    swept = set().union(*(rescued for _, _, rescued in results))
    status = await _statuses(store)
    for task_id, accepted in ((t, a) for t, a, _ in results):
        if accepted:  # a completed task is never rescued, then or later
            assert task_id not in swept and status[task_id] == "completed", task_id
        else:  # a refused completion means the rescue got there first
            assert task_id in swept and status[task_id] == "not_finished", task_id
    won = collections.Counter("completion" if a else "rescue" for _, a, _ in results)
    assert len(results) == n and won["completion"] > 0 and won["rescue"] > 0, won
    figures(iterations=n, lanes=LANES, completion_won=won["completion"], rescue_won=won["rescue"])
