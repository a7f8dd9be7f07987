"""Worker semantics on both backends: NOTIFY wake-ups, periodic tasks, scheduling, queues."""

from __future__ import annotations

import datetime as dt
import time

import anyio
import asyncpg
import pytest
from croniter import croniter
from sqlalchemy import update

from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity
from tests.conftest import _dsn
from worker import RegistrationError, Registry, TaskContext, Worker, WorkerConfig, task

reg = Registry()


@task(name="s.echo", registry=reg)
async def echo(ctx: TaskContext) -> str:
    return "ok"


@task(name="s.slow", registry=reg, queue="slow")
async def slow(ctx: TaskContext) -> None:
    await anyio.sleep(2)


@task(name="s.fast", registry=reg, queue="fast")
async def fast(ctx: TaskContext) -> None:
    return None


SPANS: list[tuple[int, int, float, float]] = []  # (task id, attempt, start, end)


@task(name="s.span", registry=reg)
async def span(ctx: TaskContext) -> None:
    started = time.monotonic()
    await anyio.sleep(0.05)
    SPANS.append((ctx.task_id, ctx.attempt, started, time.monotonic()))


EVERY_2S = "* * * * * */2"  # croniter: a sixth field is seconds

WAVE: set[int] = set()
WAVE_FULL = anyio.Event()


@task(name="s.add", registry=reg, queue="quick")
async def add(ctx: TaskContext) -> None:
    return None


@task(name="s.wave", registry=reg, queue="long")
async def wave(ctx: TaskContext, size: int) -> None:
    """Ends only once `size` of its tasks run at once (or fails after 10 s)."""
    WAVE.add(ctx.task_id)
    if len(WAVE) >= size:
        WAVE_FULL.set()
    with anyio.fail_after(10):
        await WAVE_FULL.wait()


@task(name="s.tick", registry=reg, cron=EVERY_2S)
async def tick(ctx: TaskContext) -> None:
    return None


def worker_for(store: TaskStore, **overrides) -> Worker:
    options = {"queues": {"default": None}, "lease_seconds": 10.0} | overrides
    return Worker(store, reg, WorkerConfig(**options))


async def wait_for(check, seconds: float = 15.0) -> None:
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - polling the database is the point
            await anyio.sleep(0.02)


async def test_an_idle_worker_starts_a_new_task_promptly(store: TaskStore, backend: str) -> None:
    # PostgreSQL: polling is slowed to a minute, so only NOTIFY can explain a prompt start.
    # SQLite: no NOTIFY; the idle poll backs off to the backend's short maximum (0.2 s).
    poll = {"poll_max_seconds": 60.0} if backend == "postgres" else {}
    worker = worker_for(store, **poll)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await anyio.sleep(1.5)  # let the worker go idle
        task_id = await store.enqueue("s.echo")
        began = anyio.current_time()

        async def done() -> bool:
            return (await store.require(task_id)).status is TaskStatus.COMPLETED

        await wait_for(done, seconds=10)
        waited = anyio.current_time() - began
        worker.stop()
    assert waited < 10


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_the_listen_connection_reconnects_after_it_is_killed(db_url: str) -> None:
    async with TaskStore.from_url(db_url) as store:
        worker = worker_for(store, poll_max_seconds=60.0)
        admin = await asyncpg.connect(_dsn(db_url))
        listening = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%'"
        )
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)

                async def listener() -> bool:
                    return bool(await admin.fetch(listening))

                await wait_for(listener)
                [old] = await admin.fetch(listening)
                await admin.execute("SELECT pg_terminate_backend($1)", old["pid"])

                async def new_listener() -> bool:
                    rows = await admin.fetch(listening)
                    return bool(rows) and rows[0]["pid"] != old["pid"]

                await wait_for(new_listener, seconds=30)
                await anyio.sleep(0.5)
                task_id = await store.enqueue("s.echo")

                async def done() -> bool:
                    return (await store.require(task_id)).status is TaskStatus.COMPLETED

                await wait_for(done, seconds=10)
                worker.stop()
        finally:
            await admin.close()


async def test_five_workers_on_one_schedule_enqueue_exactly_one_task_per_tick(
    db_url: str,
) -> None:
    stores = [TaskStore.from_url(db_url) for _ in range(5)]
    for s in stores:
        await s.open()
    try:
        workers = [worker_for(s, queues={"default": None}) for s in stores]
        start = dt.datetime.now(dt.UTC)
        ticks = croniter(EVERY_2S, start)
        first, _, third, fourth = (ticks.get_next(dt.datetime) for _ in range(4))
        async with anyio.create_task_group() as group:
            for w in workers:
                group.start_soon(w.run)
            # stop between the third and the fourth tick
            await anyio.sleep((third - dt.datetime.now(dt.UTC)).total_seconds() + 0.9)
            for w in workers:
                w.stop()
        assert dt.datetime.now(dt.UTC) < fourth + dt.timedelta(seconds=1)
        tasks = [t for t in await stores[0].list(limit=100) if t.name == "s.tick"]
        assert len(tasks) == 3, [t.created_at for t in tasks]
        assert first <= min(t.created_at for t in tasks)
    finally:
        for s in stores:
            await s.close()


async def test_a_worker_enqueues_no_ticks_for_a_queue_it_does_not_serve(store: TaskStore) -> None:
    worker = worker_for(store, queues={"fast": None})  # s.tick lives in `default`
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await anyio.sleep(4.5)  # two ticks or more of EVERY_2S
        worker.stop()
    assert [t for t in await store.list(limit=100) if t.name == "s.tick"] == []


async def test_a_worker_stopping_gracefully_enqueues_no_more_ticks(store: TaskStore) -> None:
    worker = worker_for(store, queues={"default": None, "slow": None}, shutdown_timeout=10.0)
    slow_id = await store.enqueue("s.slow", queue="slow")

    async def slow_running() -> bool:
        return (await store.require(slow_id)).status is TaskStatus.RUNNING

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await wait_for(slow_running)
        worker.stop()  # s.slow keeps the worker in its graceful stop for up to 2 s
        stopped = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.2)
    assert (await store.require(slow_id)).status is TaskStatus.COMPLETED
    late = [t for t in await store.list(limit=100) if t.name == "s.tick" and t.created_at > stopped]
    assert late == [], [t.created_at for t in late]


async def test_a_worker_fast_on_one_queue_leaves_another_queues_slow_tasks_to_free_slots(
    store: TaskStore,
) -> None:
    """A worker that has drained fast tasks claims ahead of its slots; a slow queue's
    tasks must not wait behind its slots while another worker has free ones."""
    global WAVE_FULL
    WAVE.clear()
    WAVE_FULL = anyio.Event()
    await store.enqueue_many([{"name": "s.add", "queue": "quick"}] * 200)
    mixed = worker_for(store, queues={"quick": None, "long": None}, concurrency=2)
    roomy = worker_for(store, queues={"long": None}, concurrency=6)
    async with anyio.create_task_group() as group:
        group.start_soon(mixed.run)
        await wait_for(lambda: _none_left(store, "s.add"))
        ids = await store.enqueue_many(
            [{"name": "s.wave", "queue": "long", "payload": {"size": 6}}] * 6
        )
        await wait_for(lambda: _running(store, "s.wave", 2))  # the first worker claimed
        group.start_soon(roomy.run)
        await wait_for(lambda: _none_left(store, "s.wave"), seconds=30)
        mixed.stop()
        roomy.stop()
    infos = [await store.require(i) for i in ids]
    assert {(i.status, i.attempts) for i in infos} == {(TaskStatus.COMPLETED, 1)}


async def _running(store: TaskStore, name: str, count: int) -> bool:
    tasks = [t for t in await store.list(limit=1000) if t.name == name]
    return sum(t.status is TaskStatus.RUNNING for t in tasks) >= count


async def _none_left(store: TaskStore, name: str) -> bool:
    tasks = [t for t in await store.list(limit=1000) if t.name == name]
    return bool(tasks) and all(t.status is TaskStatus.COMPLETED for t in tasks)


def test_an_invalid_cron_expression_is_refused_at_registration() -> None:
    with pytest.raises(RegistrationError, match="invalid cron expression 'every minute'"):
        task(name="s.bad", cron="every minute", registry=Registry())(lambda ctx: None)
    with pytest.raises(RegistrationError, match="must take only the context"):
        task(name="s.args", cron="* * * * *", registry=Registry())(lambda ctx, x: None)


async def test_a_delayed_task_never_starts_before_its_run_at(store: TaskStore) -> None:
    task_id = await store.enqueue("s.echo", delay=1.5)
    worker = worker_for(store, poll_max_seconds=0.1)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)

        async def done() -> bool:
            return (await store.require(task_id)).status is TaskStatus.COMPLETED

        await wait_for(done)
        worker.stop()
    info = await store.require(task_id)
    assert info.started_at >= info.run_at
    assert info.run_at >= info.created_at + dt.timedelta(seconds=1.4)


async def test_a_slow_queue_cannot_starve_a_fast_one(store: TaskStore) -> None:
    await store.enqueue_many([{"name": "s.slow", "queue": "slow"} for _ in range(4)])
    fast_ids = await store.enqueue_many([{"name": "s.fast", "queue": "fast"} for _ in range(50)])
    worker = worker_for(store, queues={"slow": 2, "fast": 4}, concurrency=6)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)

        async def fast_done() -> bool:
            stats = {s.queue: s.counts for s in await store.stats()}
            return stats.get("fast", {}).get("completed") == len(fast_ids)

        await wait_for(fast_done, seconds=10)
        slow_counts = {s.queue: s.counts for s in await store.stats()}["slow"]
        worker.stop()
    # all fast tasks finished while the slow ones (2 s each, 2 at a time) were still going
    assert slow_counts.get("completed", 0) < 4


async def test_finished_tasks_past_retention_are_pruned_by_a_worker(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKSTORE_RETENTION", "1s")
    async with TaskStore.from_url(db_url) as store:
        done = await store.enqueue("s.echo")
        pending = await store.enqueue("s.echo", delay=3600)
        worker = worker_for(store, prune_seconds=0.3)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)

            async def pruned() -> bool:
                return await store.get(done) is None

            await wait_for(pruned, seconds=20)
            worker.stop()
        assert (await store.require(pending)).status is TaskStatus.CREATED


async def test_a_prune_pass_keeps_deleting_while_its_batches_come_back_full(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 tasks past retention, batches of 10: one pass deletes them all (10, 10, 5), not
    one batch per pass, so pruning keeps up however fast tasks finish."""
    monkeypatch.setenv("TASKSTORE_RETENTION", "1s")
    async with TaskStore.from_url(db_url) as store:
        ids = await store.enqueue_many([{"name": "s.echo"} for _ in range(25)])
        worker = worker_for(store, prune_seconds=3.0, prune_batch=10)
        calls: list[tuple[float, int | None]] = []
        prune = worker.consumer.prune

        async def recorded(retention: float, limit: int) -> int | None:
            pruned = await prune(retention, limit)
            calls.append((time.monotonic(), pruned))
            return pruned

        worker.consumer.prune = recorded  # type: ignore[method-assign]
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)

            async def all_pruned() -> bool:
                return [await store.get(i) for i in ids] == [None] * len(ids)

            await wait_for(all_pruned, seconds=30)
            worker.stop()
    deleting = [(at, n) for at, n in calls if n]
    counts = [n for _, n in deleting]  # 25, and a periodic tick's task or two of this app
    assert counts[:2] == [10, 10] and 25 <= sum(counts) <= 30 and counts[-1] < 10
    assert deleting[-1][0] - deleting[0][0] < 3.0  # in one pass: the next is 3 s later


async def test_only_one_transaction_holds_the_prune_lock(db_url: str, backend: str) -> None:
    async with TaskStore.from_url(db_url) as store:
        key = 12345
        async with store.transaction() as first:
            assert await store.backend.try_lock(first, key)
            if backend == "postgres":  # SQLite: the second writer could not even begin
                async with store.transaction() as second:
                    assert not await store.backend.try_lock(second, key)


async def test_a_task_whose_last_attempt_died_with_its_worker_runs_alone(
    store: TaskStore,
) -> None:
    # If one of them killed its worker, a batch-mate would die with it and lose an attempt.
    ids = await store.enqueue_many([{"name": "s.span"} for _ in range(24)])
    orphans = set(ids[5:8])  # rescued from a dead worker: not_finished, no worker id
    async with store.transaction() as conn:
        await conn.execute(
            update(TaskEntity)
            .where(TaskEntity.id.in_(orphans))
            .values(status="not_finished", attempts=1)
        )
    SPANS.clear()
    await worker_for(store, concurrency=8, burst=True).run()
    assert sorted(t for t, _, _, _ in SPANS) == sorted(ids)
    assert {t: a for t, a, _, _ in SPANS if t in orphans} == dict.fromkeys(orphans, 2)
    for task_id, _, start, end in SPANS:
        if task_id in orphans:
            overlapping = [t for t, _, s, e in SPANS if t != task_id and s < end and e > start]
            assert not overlapping, f"task {task_id} ran beside {overlapping}"
