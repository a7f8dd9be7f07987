"""The order a worker starts tasks in: first in, first out within a priority, also for
tasks that were claimed ahead and handed back, on both backends."""

from __future__ import annotations

import anyio

from taskstore import TaskStore
from worker import Registry, TaskContext, Worker, WorkerConfig, task

reg = Registry()
started: list[int] = []  # task ids, as their handlers start


@task(name="o.fast", registry=reg)
async def fast(ctx: TaskContext) -> None:
    started.append(ctx.task_id)


@task(name="o.slow", registry=reg)
async def slow(ctx: TaskContext) -> None:
    started.append(ctx.task_id)
    await anyio.sleep(0.1)


async def test_tasks_claimed_ahead_and_handed_back_still_start_in_their_turn(
    store: TaskStore,
) -> None:
    """Four slots: the first four slow tasks fill them while the worker has claimed the
    next batch ahead (the queue's handlers had ended within milliseconds); the slow ones
    in that batch go back, unstarted, and start as soon as slots free, ahead of the fast
    tasks enqueued after them."""
    started.clear()
    await store.enqueue_many([{"name": "o.fast"}] * 40)
    slow_ids = await store.enqueue_many([{"name": "o.slow"}] * 6)
    after = await store.enqueue_many([{"name": "o.fast"}] * 200)
    config = WorkerConfig(queues={"default": None}, burst=True, concurrency=4)
    worker = Worker(store, reg, config)
    await worker.run()
    assert worker.counts["handed_back"] > 0  # the case this test is about
    position = {task_id: i for i, task_id in enumerate(started)}
    assert len(position) == 246
    assert max(position[i] for i in slow_ids) < position[after[20]]
