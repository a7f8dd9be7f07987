"""The store's behaviour, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

import anyio
import pytest
from sqlalchemy import func, select, text, update

from taskstore import (
    IllegalTransition,
    InvalidInput,
    LeaseLost,
    TaskNotFound,
    TaskStatus,
    TaskStore,
)
from taskstore.errors import StoreClosed
from taskstore.models import TaskEntity
from taskstore.models.periodic import PeriodicTick

W = "worker-a"


async def claim(
    store: TaskStore,
    queue: str = "default",
    limit: int = 10,
    worker: str = W,
    lease: float = 30.0,
    orphans: bool = False,
):
    async with store.transaction() as conn:
        return await store.tasks.claim(
            conn,
            worker_id=worker,
            queue=queue,
            limit=limit,
            lease_seconds=lease,
            orphans=orphans,
        )


async def count_rows(store: TaskStore) -> int:
    async with store.reading() as conn:
        return (await conn.execute(select(func.count()).select_from(TaskEntity))).scalar_one()


async def test_enqueue_returns_id_and_get_returns_the_row(store: TaskStore) -> None:
    task_id = await store.enqueue(
        "pkg.mod.fn", {"video_id": "v1"}, queue="media", priority=3, max_attempts=4
    )
    info = await store.require(task_id)
    assert (info.name, info.queue, info.status, info.priority) == (
        "pkg.mod.fn",
        "media",
        TaskStatus.CREATED,
        3,
    )
    assert info.payload == {"video_id": "v1"}
    assert (info.attempts, info.max_attempts, info.result, info.error) == (0, 4, None, None)
    assert info.run_at.tzinfo is not None and info.created_at.tzinfo is not None


async def test_enqueue_many_returns_ids_in_the_order_given(store: TaskStore) -> None:
    items = [
        {"name": "t.n", "payload": {"i": i}, "queue": "q", "priority": i % 3} for i in range(250)
    ]
    ids = await store.enqueue_many(items)
    assert len(ids) == len(set(ids)) == 250
    for i in (0, 17, 249):
        assert (await store.require(ids[i])).payload == {"i": i}
    assert await store.enqueue_many([]) == []


async def test_enqueue_many_keeps_each_tasks_own_options_in_a_mixed_batch(
    store: TaskStore,
) -> None:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    plain, delayed, scheduled, limited = await store.enqueue_many(
        [
            {"name": "t.x"},
            {"name": "t.x", "delay": 3600},
            {"name": "t.x", "run_at": at},
            {"name": "t.x", "max_attempts": 7},
        ]
    )
    rows = {task_id: await store.require(task_id) for task_id in (plain, delayed, scheduled)}
    now = rows[plain].created_at
    assert rows[plain].run_at <= now + dt.timedelta(seconds=1)
    assert rows[delayed].run_at >= now + dt.timedelta(minutes=59)
    assert abs(rows[scheduled].run_at - at) < dt.timedelta(milliseconds=1)
    assert (await store.require(limited)).max_attempts == 7
    assert rows[plain].max_attempts is None
    # and a batch in which no task sets any of those options
    [again] = await store.enqueue_many([{"name": "t.x"}])
    info = await store.require(again)
    assert (info.max_attempts, info.run_at <= info.created_at + dt.timedelta(seconds=1)) == (
        None,
        True,
    )


async def test_enqueue_many_validates_the_whole_batch_before_writing(store: TaskStore) -> None:
    items = [{"name": "ok.task", "payload": {}}, {"name": "ok.task", "queue": "BAD QUEUE"}]
    with pytest.raises(InvalidInput, match="invalid queue name"):
        await store.enqueue_many(items)
    assert await count_rows(store) == 0


async def test_higher_priority_first_and_fifo_within_a_priority(store: TaskStore) -> None:
    low = [await store.enqueue("t.x", {"n": i}) for i in range(3)]
    high = [await store.enqueue("t.x", {"n": i}, priority=5) for i in range(3)]
    got = await claim(store, limit=6)
    assert [t.id for t in got] == high + low


async def test_claim_takes_at_most_limit_and_starts_the_attempt(store: TaskStore) -> None:
    await store.enqueue_many([{"name": "t.x"} for _ in range(7)])
    first = await claim(store, limit=5)
    assert len(first) == 5 and all(t.attempt == 1 for t in first)
    info = await store.require(first[0].id)
    assert info.status is TaskStatus.RUNNING and info.worker_id == W
    assert info.started_at is not None and info.lease_expires_at > info.started_at
    assert len(await claim(store, limit=5)) == 2
    assert await claim(store, limit=5) == []


async def test_a_claimed_task_released_unstarted_goes_back_with_its_attempt_uncharged(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.x")
    [task] = await claim(store)
    async with store.transaction() as conn:
        stale = await store.tasks.release_many(conn, worker_id="other", handed=[(task_id, 1)])
        done = await store.tasks.release_many(
            conn, worker_id=W, handed=[(task.id, task.fence)], delay_seconds=3600
        )
    assert (stale, done) == (set(), {task_id})  # fenced on the owner
    info = await store.require(task_id)
    assert (info.status, info.attempts, info.worker_id) == (TaskStatus.CREATED, 0, None)
    assert await claim(store) == []  # handed back with a delay: not due yet
    assert info.run_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)


async def test_a_task_handed_back_unstarted_keeps_its_place_in_line(store: TaskStore) -> None:
    first, _later = await store.enqueue_many([{"name": "t.x"}, {"name": "t.x"}])
    [task] = await claim(store, limit=1)
    async with store.transaction() as conn:
        await store.tasks.release_many(conn, worker_id=W, handed=[(task.id, task.fence)])
    # As if never claimed: first in, first out, not behind every task due meanwhile.
    assert [t.id for t in await claim(store, limit=1)] == [first]


async def test_claim_serves_only_the_queue_asked_for(store: TaskStore) -> None:
    await store.enqueue("t.x", queue="email")
    media_id = await store.enqueue("t.x", queue="media")
    assert [t.id for t in await claim(store, queue="media")] == [media_id]


async def test_delayed_task_is_not_claimed_before_its_run_at(store: TaskStore) -> None:
    later = await store.enqueue("t.x", delay=3600)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await store.enqueue("t.x", run_at=future)
    now_id = await store.enqueue("t.x", delay=0)
    assert [t.id for t in await claim(store)] == [now_id]
    assert (await store.require(later)).run_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)


async def test_past_run_at_is_claimable_at_once(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x", run_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert [t.id for t in await claim(store)] == [task_id]


async def test_complete_many_accepts_only_the_owner_and_current_attempt(store: TaskStore) -> None:
    ids = await store.enqueue_many([{"name": "t.x"} for _ in range(3)])
    a, b, c = await claim(store, limit=3)
    async with store.transaction() as conn:
        accepted = await store.tasks.complete_many(
            conn, worker_id=W, done=[(a.id, a.fence, '{"ok": 1}'), (b.id, b.fence + 1, None)]
        )
        intruder = await store.tasks.complete_many(
            conn, worker_id="worker-b", done=[(c.id, c.fence, None)]
        )
    assert accepted == {a.id} and intruder == set()
    done = await store.require(a.id)
    assert done.status is TaskStatus.COMPLETED and done.result == {"ok": 1}
    assert done.finished_at is not None and done.lease_expires_at is None
    assert {(await store.require(i)).status for i in ids[1:]} == {TaskStatus.RUNNING}


async def test_failed_attempt_with_retry_goes_back_to_created_later(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x")
    [task] = await claim(store)
    async with store.transaction() as conn:
        status = await store.tasks.fail(
            conn,
            task_id=task_id,
            worker_id=W,
            fence=task.fence,
            error={"type": "ValueError", "message": "boom"},
            retry_in=3600,
        )
    assert status is TaskStatus.CREATED
    info = await store.require(task_id)
    assert info.status is TaskStatus.CREATED and info.worker_id is None
    assert info.error == {"type": "ValueError", "message": "boom"} and info.attempts == 1
    assert info.run_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)
    assert await claim(store) == []


async def test_final_failure_marks_failed_and_keeps_the_error(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x")
    [task] = await claim(store)
    async with store.transaction() as conn:
        await store.tasks.fail(
            conn,
            task_id=task_id,
            worker_id=W,
            fence=task.fence,
            error={"type": "E", "message": "no"},
            retry_in=None,
        )
    info = await store.require(task_id)
    assert info.status is TaskStatus.FAILED and info.finished_at is not None


async def test_fenced_failure_from_a_non_owner_raises_lease_lost(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x")
    [task] = await claim(store)
    with pytest.raises(LeaseLost):
        async with store.transaction() as conn:
            await store.tasks.fail(
                conn,
                task_id=task_id,
                worker_id="worker-b",
                fence=task.fence,
                error={},
                retry_in=None,
            )
    with pytest.raises(LeaseLost):
        async with store.transaction() as conn:
            await store.tasks.fail(
                conn,
                task_id=task_id,
                worker_id=W,
                fence=task.fence + 1,
                error={},
                retry_in=None,
            )
    assert (await store.require(task_id)).status is TaskStatus.RUNNING


async def test_illegal_transitions_raise(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x")
    with pytest.raises(
        IllegalTransition,
        match=r"cannot retry task \d+: it is created \(only a failed or cancelled",
    ):
        await store.retry(task_id)
    await store.cancel(task_id)
    with pytest.raises(IllegalTransition, match="it is cancelled"):
        await store.cancel(task_id)
    with pytest.raises(TaskNotFound):
        await store.cancel(987654)
    with pytest.raises(LeaseLost):  # completing a task that is not running
        async with store.transaction() as conn:
            await store.tasks.fail(
                conn, task_id=task_id, worker_id=W, fence=0, error={}, retry_in=None
            )


async def test_cancel_pending_is_immediate_and_running_is_fenced(store: TaskStore) -> None:
    pending = await store.enqueue("t.x", queue="a")
    running = await store.enqueue("t.x", queue="b")
    [task] = await claim(store, queue="b")
    assert await store.cancel(pending) is TaskStatus.CANCELLED
    assert await store.cancel(running) is TaskStatus.CANCELLED
    async with store.transaction() as conn:
        held = await store.tasks.heartbeat(conn, worker_id=W, lease_seconds=30, task_ids=[task.id])
        late = await store.tasks.complete_many(
            conn, worker_id=W, done=[(task.id, task.fence, None)]
        )
    assert held == set() and late == set()
    assert (await store.require(running)).status is TaskStatus.CANCELLED
    assert await claim(store, queue="a") == []
    async with store.reading() as conn:  # the stopped attempt stays in the attempts log
        [stopped] = await store.tasks.attempts_log(conn, await store.require(running))
        assert await store.tasks.attempts_log(conn, await store.require(pending)) == []
    assert (stopped["attempt"], stopped["outcome"], stopped["worker_id"]) == (1, "cancelled", W)
    assert stopped["error_type"] == "Cancelled" and stopped["started_at"] is not None


async def test_retry_runs_a_failed_task_again_with_fresh_attempts(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x", max_attempts=1)
    await claim(store)
    async with store.transaction() as conn:
        await store.tasks.fail(conn, task_id=task_id, worker_id=W, fence=1, error={}, retry_in=None)
    assert await store.retry(task_id) is TaskStatus.CREATED
    info = await store.require(task_id)
    assert (info.status, info.attempts, info.finished_at) == (TaskStatus.CREATED, 0, None)
    [again] = await claim(store)
    assert (again.id, again.attempt, again.fence) == (task_id, 1, 2)  # the fence is new


async def test_a_cancelled_attempt_cannot_write_over_its_retried_tasks_new_attempt(
    store: TaskStore,
) -> None:
    """Cancelled mid-run, retried, and claimed again by the same worker before the old
    attempt noticed: both are attempt 1, but the old one's writes must not pass."""
    task_id = await store.enqueue("t.x")
    [old] = await claim(store)
    await store.cancel(task_id)
    await store.retry(task_id)
    [new] = await claim(store)
    assert (old.attempt, new.attempt) == (1, 1) and old.fence != new.fence
    async with store.transaction() as conn:
        late = await store.tasks.complete_many(
            conn, worker_id=W, done=[(task_id, old.fence, '"old"')]
        )
        assert late == set()
        assert not await store.tasks.set_progress(
            conn, task_id=task_id, worker_id=W, fence=old.fence, fraction=0.5
        )
        with pytest.raises(LeaseLost):
            await store.tasks.fail(
                conn, task_id=task_id, worker_id=W, fence=old.fence, error={}, retry_in=None
            )
    async with store.transaction() as conn:
        done = await store.tasks.complete_many(
            conn, worker_id=W, done=[(task_id, new.fence, '"new"')]
        )
    assert done == {task_id}
    assert (await store.require(task_id)).result == "new"


async def test_dedup_key_returns_the_live_task_and_frees_after_it_finishes(
    store: TaskStore,
) -> None:
    first = await store.enqueue("t.x", {"n": 1}, dedup_key="video-1")
    again = await store.enqueue("t.x", {"n": 2}, dedup_key="video-1")
    batch = await store.enqueue_many(
        [
            {"name": "t.x", "dedup_key": "video-1"},
            {"name": "t.x", "dedup_key": "video-2"},
            {"name": "t.x", "dedup_key": "video-2"},
        ]
    )
    assert again == first and batch[0] == first and batch[1] == batch[2] != first
    assert await count_rows(store) == 2
    await store.cancel(first)
    fresh = await store.enqueue("t.x", dedup_key="video-1")
    assert fresh != first and await count_rows(store) == 3


async def test_concurrent_enqueues_with_one_dedup_key_insert_one_task(db_url: str) -> None:
    stores = [TaskStore.from_url(db_url) for _ in range(6)]
    try:
        for s in stores:
            await s.open()
        ids = await asyncio.gather(
            *(s.enqueue("t.x", {"n": i}, dedup_key="same") for i, s in enumerate(stores))
        )
        assert len(set(ids)) == 1
        assert await count_rows(stores[0]) == 1
    finally:
        for s in stores:
            await s.close()


async def test_enqueue_in_a_callers_session_commits_and_rolls_back_with_it(
    store: TaskStore,
) -> None:
    async with store.sessions() as session:
        kept = await store.enqueue("t.x", {"n": 1}, session=session)
        assert await store.get(kept) is None  # not visible before the caller commits
        await session.commit()
    assert (await store.require(kept)).status is TaskStatus.CREATED
    async with store.sessions() as session:
        gone = await store.enqueue("t.x", {"n": 2}, session=session)
        await session.rollback()
    assert await store.get(gone) is None
    assert await count_rows(store) == 1


async def test_a_blocking_session_given_to_the_async_store_is_refused_before_any_write(
    store: TaskStore,
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from tests.integration.test_sync_api import sync_url

    url = store.settings.database_url.render_as_string(hide_password=False)
    engine = create_engine(sync_url(url))
    try:
        with Session(engine) as session:
            for call in (
                store.enqueue("t.x", session=session),
                store.enqueue_many([{"name": "t.x"}], session=session),
            ):
                with pytest.raises(InvalidInput, match="session must be an AsyncSession or"):
                    await call
            session.commit()
    finally:
        engine.dispose()
    assert await count_rows(store) == 0


async def test_heartbeat_extends_leases_in_one_statement(store: TaskStore) -> None:
    await store.enqueue_many([{"name": "t.x"} for _ in range(3)])
    tasks = await claim(store, limit=3, lease=1)
    before = (await store.require(tasks[0].id)).lease_expires_at
    async with store.transaction() as conn:
        held = await store.tasks.heartbeat(
            conn, worker_id=W, lease_seconds=600, task_ids=[t.id for t in tasks[:2]]
        )
    assert held == {t.id for t in tasks[:2]}
    assert (await store.require(tasks[0].id)).lease_expires_at > before + dt.timedelta(minutes=5)
    # a row the worker does not know it holds (a claim whose reply was lost) is not renewed
    assert (await store.require(tasks[2].id)).lease_expires_at <= before + dt.timedelta(seconds=5)


async def test_expired_lease_is_rescued_to_not_finished_and_claimable_apart(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.x", max_attempts=3)
    await claim(store, lease=-1)  # a lease already in the past: the worker "crashed"
    async with store.transaction() as conn:
        rescued = await store.tasks.rescue_expired(conn)
    assert rescued == {task_id: TaskStatus.NOT_FINISHED}
    info = await store.require(task_id)
    assert info.status is TaskStatus.NOT_FINISHED and info.error["type"] == "LeaseExpired"
    fresh = await store.enqueue("t.x")
    # batches leave orphans (rescued from a dead worker) alone; they are claimed one by one
    assert [t.id for t in await claim(store, worker="worker-b")] == [fresh]
    [again] = await claim(store, worker="worker-b", orphans=True)
    assert (again.id, again.attempt) == (task_id, 2)
    async with store.reading() as conn:  # the log names the worker that lost the lease
        [lost, running] = await store.tasks.attempts_log(conn, await store.require(task_id))
    assert (lost["attempt"], lost["outcome"], lost["worker_id"]) == (1, "lease_expired", W)
    assert (running["attempt"], running["worker_id"]) == (2, "worker-b")


async def test_a_task_cut_off_at_shutdown_is_no_orphan_and_is_claimed_in_a_batch(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.x")
    [task] = await claim(store)
    async with store.transaction() as conn:
        cut = await store.tasks.interrupt_many(
            conn, worker_id=W, cut=[(task.id, task.fence, '{"type": "Shutdown"}')]
        )
    assert cut == {task_id}
    info = await store.require(task_id)
    assert (info.status, info.worker_id) == (TaskStatus.NOT_FINISHED, W)
    assert info.attempts == 0  # a graceful stop is not the task's failed attempt
    assert await claim(store, worker="worker-b", orphans=True) == []
    [again] = await claim(store, worker="worker-b")
    assert (again.id, again.attempt, again.fence) == (task_id, 1, 2)


async def test_a_task_cut_off_at_shutdown_keeps_its_place_in_line(store: TaskStore) -> None:
    first, _later = await store.enqueue_many([{"name": "t.x"}, {"name": "t.x"}])
    [task] = await claim(store, limit=1)
    async with store.transaction() as conn:
        await store.tasks.interrupt_many(conn, worker_id=W, cut=[(task.id, task.fence, None)])
    assert [t.id for t in await claim(store, limit=1)] == [first]


async def test_rescue_fails_a_task_that_used_its_last_attempt(store: TaskStore) -> None:
    task_id = await store.enqueue("t.x", max_attempts=1)
    await claim(store, lease=-1)
    async with store.transaction() as conn:
        assert await store.tasks.rescue_expired(conn) == {task_id: TaskStatus.FAILED}
    assert (await store.require(task_id)).finished_at is not None


async def test_rescue_leaves_live_leases_alone(store: TaskStore) -> None:
    await store.enqueue("t.x")
    await claim(store, lease=600)
    async with store.transaction() as conn:
        assert await store.tasks.rescue_expired(conn) == {}


async def test_stats_count_per_queue_and_status(store: TaskStore) -> None:
    await store.enqueue_many([{"name": "t.x", "queue": "a"} for _ in range(3)])
    await store.enqueue("t.x", queue="b")
    await claim(store, queue="a", limit=1)
    stats = {s.queue: s for s in await store.stats()}
    assert stats["a"].counts == {"created": 2, "running": 1}
    assert stats["b"].counts == {"created": 1}
    assert stats["a"].oldest_pending_seconds is not None


async def test_list_filters_by_status_and_queue_newest_first(store: TaskStore) -> None:
    ids = await store.enqueue_many([{"name": "t.x", "queue": q} for q in ("a", "b", "a")])
    await store.cancel(ids[0])
    assert [t.id for t in await store.list(queue="a")] == [ids[2], ids[0]]
    assert [t.id for t in await store.list(status="cancelled")] == [ids[0]]
    assert [t.id for t in await store.list(limit=1)] == [ids[2]]
    with pytest.raises(InvalidInput, match="unknown status"):
        await store.list(status="bogus")


async def test_purge_deletes_only_finished_tasks_older_than_the_cutoff(store: TaskStore) -> None:
    old, recent, live = await store.enqueue_many([{"name": "t.x"} for _ in range(3)])
    await store.cancel(old)
    await store.cancel(recent)
    async with store.transaction() as conn:  # age the first one by a day
        await conn.execute(
            TaskEntity.__table__.update()
            .where(TaskEntity.id == old)
            .values(finished_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        )
    assert await store.purge(dt.timedelta(hours=1)) == 1
    assert await store.get(old) is None
    assert await store.get(recent) is not None and await store.get(live) is not None
    with pytest.raises(InvalidInput, match="the age for purge must be from 0 to 100 years"):
        await store.purge(dt.timedelta(days=99_999_999))  # past what a database can subtract


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"blob": b"bytes"}, "not JSON"),
        ({"s": {1, 2}}, "not JSON"),
        ({"x": float("nan")}, "NaN"),
        ({"o": object()}, "not JSON"),
        ({1: "int key"}, r"non-string key 1 \(JSON object keys are strings"),
        ([1, 2], "must be a JSON object"),
        ("text", "must be a JSON object"),
    ],
)
async def test_non_json_payloads_are_refused_before_writing(
    store: TaskStore, payload: object, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await store.enqueue("t.x", payload)  # type: ignore[arg-type]
    assert await count_rows(store) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x'; DROP TABLE taskstore_tasks; --"}, "invalid task name"),
        ({"name": ""}, "invalid task name"),
        ({"name": "a..b"}, "invalid task name 'a..b'"),
        ({"name": "pkg.mod."}, "invalid task name"),
        ({"name": "a" * 201}, "invalid task name"),
        ({"queue": "Media"}, "invalid queue name"),
        ({"queue": "a" * 65}, "invalid queue name"),
        ({"queue": "q'; DELETE FROM taskstore_tasks; --"}, "invalid queue name"),
        ({"priority": 1.5}, "priority"),
        ({"delay": -1}, "delay must be from 0 to 100 years in seconds, got -1"),
        ({"delay": 1.8e12}, "delay must be from 0 to 100 years"),  # an epoch in ms
        ({"delay": dt.timedelta(days=999_999_999)}, "delay must be from 0 to 100 years"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "timezone-aware"),
        ({"run_at": dt.datetime(9999, 1, 1, tzinfo=dt.UTC)}, "before the year 9001"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"dedup_key": ""}, "dedup_key"),
    ],
)
async def test_invalid_names_and_options_are_refused_before_writing(
    store: TaskStore, kwargs: dict, message: str
) -> None:
    options = dict(kwargs)
    name = options.pop("name", "t.x")
    with pytest.raises(InvalidInput, match=message):
        await store.enqueue(name, {}, **options)
    assert await count_rows(store) == 0


async def test_a_payload_nested_too_deeply_is_refused_in_one_line(store: TaskStore) -> None:
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["a"] = inner = {}
    with pytest.raises(InvalidInput, match="payload is nested more than 256 levels deep"):
        await store.enqueue("t.x", deep)
    assert await count_rows(store) == 0


async def test_payload_over_the_limit_is_refused(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("TASKSTORE_MAX_PAYLOAD_BYTES", "1000")
    async with TaskStore.from_url(db_url) as small:
        await small.enqueue("t.x", {"s": "x" * 900})
        with pytest.raises(InvalidInput, match=r"over the limit of 1000"):
            await small.enqueue("t.x", {"s": "x" * 1000})
        assert await count_rows(small) == 1


@pytest.mark.parametrize(
    ("orphans", "index"),
    [(False, "ix_taskstore_tasks_claim"), (True, "ix_taskstore_tasks_orphaned")],
)
async def test_claim_statements_use_their_partial_index(
    store: TaskStore, backend: str, orphans: bool, index: str
) -> None:
    ids = await store.enqueue_many([{"name": "t.x", "queue": f"q{i % 20}"} for i in range(2000)])
    values = {"p_queue": "q3", "p_limit": 10, "p_worker_id": "w", "p_lease": 30.0}
    async with store.transaction() as conn:
        await conn.execute(
            update(TaskEntity).where(TaskEntity.id.in_(ids[:50])).values(status="not_finished")
        )
        if backend == "postgres":
            await conn.execute(text("ANALYZE taskstore_tasks"))
        # EXPLAIN the product's own statement, with its parameters bound as when it runs
        compiled = store.tasks._claim[orphans, False].compile(conn.sync_connection)
        bound = compiled.construct_params(values)
        args = tuple(bound[key] for key in compiled.positiontup or ())
        prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
        rows = (await conn.exec_driver_sql(prefix + compiled.string, args)).all()
    plan = "\n".join(str(r) for r in rows)
    assert index in plan, plan


async def test_bulk_retry_requeues_failed_tasks_but_not_a_held_dedup_key(
    store: TaskStore,
) -> None:
    ids = await store.enqueue_many(
        [
            {"name": "t.x", "queue": "a"},
            {"name": "t.x", "queue": "b"},
            {"name": "t.x", "queue": "a", "dedup_key": "k"},
        ]
    )
    claimed = await claim(store, queue="a") + await claim(store, queue="b")
    for task in claimed:
        async with store.transaction() as conn:
            await store.tasks.fail(
                conn, task_id=task.id, worker_id=W, fence=task.fence, error={}, retry_in=None
            )
    holder = await store.enqueue("t.x", queue="a", dedup_key="k")  # key taken again
    assert await store.count_failed(queue="a") == 1
    assert await store.retry_failed(queue="a") == 1
    assert (await store.require(ids[0])).status is TaskStatus.CREATED
    assert (await store.require(ids[1])).status is TaskStatus.FAILED  # other queue
    assert (await store.require(ids[2])).status is TaskStatus.FAILED  # key held by `holder`
    assert (await store.require(holder)).status is TaskStatus.CREATED
    url = store.settings.database_url.render_as_string(hide_password=False)
    argv = [sys.executable, "-m", "taskstore.cli", "retry", "--failed", "--queue", "a"]
    done = await anyio.run_process([*argv, "--database-url", url], check=False)
    assert done.returncode == 0, done.stderr  # the CLI says what it left, and why
    assert done.stdout.decode().splitlines() == [
        "retried 0 tasks",
        "1 stay failed: another live task holds each one's dedup key "
        "(retry them once it has finished)",
    ]


async def test_a_closed_store_refuses_use_until_opened_again(db_url: str) -> None:
    store = await TaskStore.from_url(db_url).open()
    first = await store.enqueue("app.job")
    await store.close()
    await store.close()  # twice is harmless
    for use in (store.enqueue("app.job"), store.get(first), store.list(), store.wait(first)):
        with pytest.raises(StoreClosed, match="this TaskStore is closed: open"):
            await use
    async with store:  # opens it again, and closes it at the end
        assert (await store.require(first)).status == "created"
        assert await store.enqueue("app.job") == first + 1
    with pytest.raises(StoreClosed):
        await store.stats()


async def test_a_schedules_tick_records_older_than_a_day_are_pruned(store: TaskStore) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ticks = [now - dt.timedelta(hours=h) for h in (72, 30, 2, 0)]
    for tick in ticks:
        assert await store.enqueue_periodic("app.tick", tick) is not None
    assert await store.enqueue_periodic("other.tick", ticks[0]) is not None
    assert await store.enqueue_periodic("app.tick", ticks[-1]) is None  # still taken
    async with store.reading() as conn:
        rows = (await conn.execute(select(PeriodicTick.name, PeriodicTick.tick))).all()
    kept = sorted((name, tick.replace(tzinfo=dt.UTC)) for name, tick in rows)
    # another schedule's ticks are its own to prune
    assert kept == [("app.tick", ticks[2]), ("app.tick", ticks[3]), ("other.tick", ticks[0])]
