"""Flow control on both databases: settings, limits at claim time, pause, snooze.

Claims go through `taskstore.consumer.Consumer` as a worker's would; several consumers
stand for several workers (each its own connections), so every limit here is the one
the database enforces, not one worker's memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from taskstore import TaskStatus, TaskStore
from taskstore.consumer import Consumer
from taskstore.errors import InvalidInput
from tests.helpers.keyed import scan_at_most


@pytest.fixture
async def consumers(store: TaskStore):
    made: list[Consumer] = []

    def make(lease: float = 30.0) -> Consumer:
        made.append(Consumer(store, f"worker-{len(made)}", lease))
        return made[-1]

    yield make
    for consumer in made:
        await consumer.close()


async def test_a_queue_is_limited_and_paused_before_it_has_any_task(store: TaskStore) -> None:
    await store.set_queue("api", concurrency=3, rate="100/1s", key_concurrency=1)
    await store.pause_queue("api")
    [info] = await store.queues()
    assert (info.name, info.paused, info.concurrency, info.rate, info.key_concurrency) == (
        "api",
        True,
        3,
        "100/1s",
        1,
    )
    assert info.counts == {}
    await store.resume_queue("api")
    assert not (await store.queues())[0].paused


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": "10/0s"}, "period must be from 0.001s to 1d"),
        ({"rate": "1/0.0000000001s"}, "period must be from 0.001s to 1d"),
        ({"rate": "ten a second"}, "invalid rate"),
        ({"concurrency": -1}, "concurrency must be a whole number"),
        ({"key_concurrency": 0}, "key_concurrency must be a whole number"),
    ],
)
async def test_bad_flow_settings_are_refused_in_one_line_and_change_nothing(
    store: TaskStore, options: dict, message: str
) -> None:
    await store.set_queue("api", concurrency=2)
    with pytest.raises(InvalidInput, match=message):
        await store.set_queue("api", **options)
    [info] = await store.queues()
    assert (info.concurrency, info.rate, info.key_concurrency) == (2, None, None)
    with pytest.raises(InvalidInput, match="invalid queue name"):
        await store.set_queue("Bad Queue!", concurrency=1)


@pytest.mark.parametrize(
    ("given", "shown"),
    [("10/60s", "10/1m"), ("10/1h30m", "10/1h30m"), ("5/0.5s", "5/0.5s"), ("1/0.001", "1/0.001s")],
)
async def test_a_rate_is_shown_in_the_units_it_can_be_typed_in(
    store: TaskStore, given: str, shown: str
) -> None:
    await store.set_queue("api", rate=given)
    [info] = await store.queues()
    assert info.rate == shown


async def test_a_setting_left_out_is_kept_and_none_clears_it(store: TaskStore) -> None:
    await store.set_queue("api", concurrency=3, rate="5/1m")
    await store.set_queue("api", key_concurrency=2)
    await store.set_queue("api", rate=None)
    [info] = await store.queues()
    assert (info.concurrency, info.rate, info.key_concurrency) == (3, None, 2)


async def test_a_queue_back_at_its_defaults_with_no_task_is_no_longer_listed(
    store: TaskStore,
) -> None:
    await store.pause_queue("typo")
    await store.set_queue("kept", concurrency=2)
    await store.enqueue("t.x", queue="busy")
    await store.set_queue("busy", concurrency=1)
    assert [q.name for q in await store.queues()] == ["busy", "kept", "typo"]
    await store.resume_queue("typo")
    await store.set_queue("busy", concurrency=None)
    assert [q.name for q in await store.queues()] == ["busy", "kept"]  # busy has a task


async def test_concurrency_caps_running_tasks_across_workers(store: TaskStore, consumers) -> None:
    await store.set_queue("api", concurrency=3)
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(10)])
    first, second = consumers(), consumers()
    got = await first.claim("api", 10) + await second.claim("api", 10)
    assert len(got) == 3  # the limit is the database's, whoever claims
    assert first.held_back("api") > 0 or second.held_back("api") > 0
    await first.complete([(got[0].id, got[0].fence, None)])
    first.queue_changed("api")  # drop the hold-back hint; the count is what decides
    assert len(await first.claim("api", 10)) == 1


async def test_a_limit_or_pause_binds_a_workers_next_claim_before_it_rereads_the_settings(
    store: TaskStore, consumers
) -> None:
    """A worker trusts what it read of a queue's settings for a second (a notification
    drops it, but may come after the next claim): "set the limit, then enqueue" must not
    start the whole burst at once meanwhile."""
    worker = consumers()
    await store.enqueue_many([{"name": "t.x", "queue": q} for q in ("api", "media")])
    assert len(await worker.claim("api", 10) + await worker.claim("media", 10)) == 2
    # The worker now holds both queues as unlimited, and nothing tells it otherwise.
    await store.set_queue("api", concurrency=2)
    await store.pause_queue("media")
    await store.enqueue_many([{"name": "t.x", "queue": q} for q in ("api", "media") * 6])
    for _ in range(3):
        assert await worker.claim("api", 10) + await worker.claim("media", 10) == []
    assert await _running(store) == {"api": 1, "media": 1}
    # Where no notification drops the worker's view, its idle probe keeps finding tasks
    # due: the claim that then takes nothing has it read the settings again.
    assert await worker.any_due(["api"])
    assert await worker.claim("api", 10) == []
    assert len(await worker.claim("api", 10)) == 1  # within the limit, now known
    assert await _running(store) == {"api": 2, "media": 1}


async def _running(store: TaskStore) -> dict[str, int]:
    return {q.name: q.counts.get("running", 0) for q in await store.queues()}


async def test_a_queue_stays_reported_held_by_its_limit_after_the_hold_lapses(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", concurrency=1)
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(3)])
    worker = consumers()
    assert len(await worker.claim("api", 10)) == 1
    assert await worker.claim("api", 10) == []
    assert worker.held_by("api") == "concurrency"
    await asyncio.sleep(0.1)  # past the hold: the next claim may look again, but
    assert worker.held_back("api") == 0 and worker.held_by("api") == "concurrency"
    assert await worker.claim("api", 10) == [] and worker.held_by("api") == "concurrency"
    await store.set_queue("api", concurrency=5)
    assert len(await worker.claim("api", 1)) == 1  # took what it asked: met no limit
    assert worker.held_by("api") is None


async def test_concurrent_claims_of_a_limited_queue_never_take_more_than_its_room(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", concurrency=5)
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(60)])
    workers = [consumers() for _ in range(4)]  # each holds two of the pool's connections
    for _ in range(5):  # claims race each other; each one counts what the others took
        rounds = await asyncio.gather(*(w.claim("api", 3) for w in workers))
        running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
        assert len(running) == sum(map(len, rounds)) <= 5
        for worker, got in zip(workers, rounds, strict=True):
            worker.queue_changed("api")
            if got:
                await worker.complete([(task.id, task.fence, None) for task in got])
    assert len(running) == 5  # the limit is reached, not only kept


async def _keyed_queue(store: TaskStore, tasks: int, keys: int) -> dict[int, str]:
    """Queue "api" at key concurrency 1 with `tasks` tasks over `keys` keys, taken in
    turn; returns each task's key."""
    await store.set_queue("api", key_concurrency=1)
    items = [
        {"name": "t.x", "queue": "api", "concurrency_key": f"k{i % keys}"} for i in range(tasks)
    ]
    ids = await store.enqueue_many(items)
    return {task_id: item["concurrency_key"] for task_id, item in zip(ids, items, strict=True)}


async def test_concurrent_claims_of_a_keyed_queue_never_run_two_of_one_key_and_keep_its_order(
    store: TaskStore, consumers
) -> None:
    key_of = await _keyed_queue(store, tasks=45, keys=3)
    workers = [consumers() for _ in range(4)]
    started: list[int] = []
    most = 0
    for _ in range(20):  # claims race each other; each must see what the others took
        rounds = await asyncio.gather(*(w.claim("api", 3) for w in workers))
        running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
        keys = [key_of[t.id] for t in running]
        assert len(keys) == len(set(keys)) == sum(map(len, rounds))  # one per key at most
        most = max(most, len(keys))
        started += sorted(t.id for got in rounds for t in got)
        for worker, got in zip(workers, rounds, strict=True):
            worker.queue_changed("api")
            if got:
                await worker.complete([(task.id, task.fence, None) for task in got])
    assert most == 3 and len(started) == 45  # every key busy at once, and all drained
    for key in ("k0", "k1", "k2"):
        ids = [i for i in started if key_of[i] == key]
        assert ids == sorted(ids)  # each key's tasks in their order


async def test_completions_claim_the_slots_they_free_in_the_same_write(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", concurrency=3)
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(10)])
    worker = consumers()
    first = await worker.claim("api", 10)
    assert len(first) == 3 and worker.refillable("api")
    stale = (first[2].id, first[2].fence + 1, None)  # fenced out: frees nothing
    done = [(task.id, task.fence, None) for task in first[:2]]
    accepted, refill = await worker.complete_and_claim([*done, stale], "api", 10)
    assert accepted == {first[0].id, first[1].id}
    assert len(refill) == 2  # two slots freed, two taken; the third still runs
    running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
    assert {t.id for t in running} == {first[2].id, *(t.id for t in refill)}
    assert [t.id for t in refill] == sorted(t.id for t in refill)  # in claim order
    assert (await store.get(first[0].id)).status == TaskStatus.COMPLETED


async def test_completion_refills_racing_claims_never_exceed_the_limit(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", concurrency=6)
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(200)])
    workers = [consumers() for _ in range(4)]
    held: list[list] = [[] for _ in workers]
    most = 0
    for _ in range(12):  # refills of two workers race plain claims of the other two

        async def turn(i: int, tasks: list) -> list:
            worker = workers[i]
            done = [(task.id, task.fence, None) for task in tasks]
            if done and i % 2 == 0:
                return (await worker.complete_and_claim(done, "api", 3))[1]
            if done:
                await worker.complete(done)
            worker.queue_changed("api")
            return await worker.claim("api", 3)

        held = await asyncio.gather(*(turn(i, tasks) for i, tasks in enumerate(held)))
        running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
        assert len(running) == sum(map(len, held)) <= 6
        most = max(most, len(running))
    assert most == 6  # the limit is reached, not only kept


async def test_completions_claim_the_keys_they_free_in_the_same_write(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", key_concurrency=1)
    a1, b1, c1, a2, b2 = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": k} for k in "abcab"]
    )
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [a1, b1, c1]
    assert worker.refillable("api")
    stale = (c1, 2, None)  # fenced out: frees nothing
    accepted, refill = await worker.complete_and_claim(
        [(a1, 1, None), (b1, 1, None), stale], "api", 10
    )
    assert accepted == {a1, b1}
    assert [t.id for t in refill] == [a2, b2]  # keys a and b freed, c still busy
    running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
    assert {t.id for t in running} == {c1, a2, b2}


async def test_keyed_refills_racing_claims_never_run_two_of_one_key_and_keep_its_order(
    store: TaskStore, consumers
) -> None:
    key_of = await _keyed_queue(store, tasks=60, keys=4)
    workers = [consumers() for _ in range(4)]
    held: list[list] = [[] for _ in workers]
    started: list[int] = []
    for _ in range(40):  # refills of two workers race plain claims of the other two

        async def turn(i: int, tasks: list) -> list:
            worker = workers[i]
            done = [(task.id, task.fence, None) for task in tasks]
            if done and i % 2 == 0 and worker.refillable("api"):
                return (await worker.complete_and_claim(done, "api", 3))[1]
            if done:
                await worker.complete(done)
            worker.queue_changed("api")
            return await worker.claim("api", 3)

        held = await asyncio.gather(*(turn(i, tasks) for i, tasks in enumerate(held)))
        running = await store.list(status=TaskStatus.RUNNING, queue="api", limit=100)
        keys = [key_of[t.id] for t in running]
        assert len(keys) == len(set(keys)) == sum(map(len, held))  # one per key at most
        started += sorted(t.id for tasks in held for t in tasks)
    assert len(started) == 60
    for key in ("k0", "k1", "k2", "k3"):
        order = [i for i in started if key_of[i] == key]
        assert order == sorted(order)


async def test_a_paused_queue_starts_nothing_until_resumed(store: TaskStore, consumers) -> None:
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(4)])
    worker = consumers()
    await store.pause_queue("api")
    assert await worker.claim("api", 10) == []
    assert worker.held_back("api") > 0
    await store.resume_queue("api")
    worker.queue_changed("api")  # what the resume's notification does in a worker
    assert len(await worker.claim("api", 10)) == 4


async def test_a_rate_allows_n_starts_in_a_window_and_holds_back_until_a_slot_frees(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", rate="5/1h")
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(8)])
    first, second = consumers(), consumers()
    assert len(await first.claim("api", 3)) == 3
    assert len(await second.claim("api", 10)) == 2  # 5 in the window, whoever starts them
    assert await first.claim("api", 10) == []
    if store.backend.notifies:  # sleeps until the oldest slot frees (a change would say so)
        assert 3000 < first.held_back("api") <= 3600
    else:  # nothing would say the rate changed: looks again within a second
        assert 0.5 < first.held_back("api") <= 1.0


async def slot_rows(store: TaskStore, queue: str) -> int:
    from sqlalchemy import func, select

    from taskstore.models.queue import RateSlotEntity

    async with store.reading() as conn:
        query = select(func.count()).where(RateSlotEntity.queue == queue)
        return (await conn.execute(query)).scalar_one()


async def test_a_huge_rate_costs_nothing_up_front_and_a_lowered_one_holds_at_once(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", rate="1000000/1h")
    assert await slot_rows(store, "api") == 0  # slots are made as starts need them
    await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(12)])
    first, second = consumers(), consumers()
    assert len(await first.claim("api", 4)) == 4
    assert len(await second.claim("api", 3)) == 3
    assert await slot_rows(store, "api") == 7
    await store.set_queue("api", rate="5/1h")  # 7 started this hour: none more
    assert await slot_rows(store, "api") == 5
    assert await first.claim("api", 10) == [] and await second.claim("api", 10) == []


async def test_key_concurrency_one_runs_a_keys_tasks_in_turn_without_holding_up_others(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", key_concurrency=1)
    a1, a2, b1, free, a3 = await store.enqueue_many(
        [
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-a"},
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-a"},
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-b"},
            {"name": "t.x", "queue": "api"},
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-a", "priority": 5},
        ]
    )
    worker = consumers()
    got = {t.id for t in await worker.claim("api", 10)}
    assert got == {a3, b1, free}  # tenant-a's best first (priority), one per key
    assert await worker.claim("api", 10) == []
    await worker.complete([(a3, 1, None)])
    worker.queue_changed("api")
    assert [t.id for t in await worker.claim("api", 10)] == [a1]  # then in id order
    await worker.complete([(a1, 1, None)])
    worker.queue_changed("api")
    assert [t.id for t in await worker.claim("api", 10)] == [a2]


@pytest.mark.parametrize("with_rate", [False, True], ids=["key-limit-only", "with-rate"])
async def test_key_concurrency_above_one_fills_each_keys_room_in_its_order(
    store: TaskStore, consumers, with_rate: bool
) -> None:
    await store.set_queue("api", key_concurrency=3, rate="1000/1s" if with_rate else None)
    a = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "a"} for _ in range(6)]
    )
    [b] = await store.enqueue_many([{"name": "t.x", "queue": "api", "concurrency_key": "b"}])
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [*a[:3], b]  # the limit reached
    await worker.complete([(a[1], 1, None)])
    worker.queue_changed("api")
    assert [t.id for t in await worker.claim("api", 10)] == [a[3]]  # room for one
    await worker.complete([(a[0], 1, None), (a[2], 1, None)])
    worker.queue_changed("api")
    assert [t.id for t in await worker.claim("api", 10)] == a[4:]  # room for two


@pytest.mark.parametrize("again", ["retry", "snooze"])
async def test_a_keyed_task_waiting_to_run_again_keeps_its_place_before_its_keys_later_tasks(
    store: TaskStore, consumers, again: str
) -> None:
    await store.set_queue("api", key_concurrency=1)
    a1, a2, b1 = await store.enqueue_many(
        [
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-a"},
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-a"},
            {"name": "t.x", "queue": "api", "concurrency_key": "tenant-b"},
        ]
    )
    worker = consumers()
    assert {t.id for t in await worker.claim("api", 10)} == {a1, b1}
    if again == "retry":
        await worker.fail(a1, 1, {"type": "Boom", "message": "later"}, retry_in=3600)
    else:
        assert await worker.snooze(a1, 1, 3600)
    await worker.complete([(b1, 1, None)])
    [b2] = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "tenant-b"}]
    )
    worker.queue_changed("api")
    # a2 waits for a1, due in an hour; tenant-b is not held up
    assert [t.id for t in await worker.claim("api", 10)] == [b2]
    assert (await store.require(a2)).status == TaskStatus.CREATED


async def test_a_keyed_task_scheduled_for_later_does_not_hold_its_keys_tasks_due_now(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", key_concurrency=1)
    later = await store.enqueue("t.x", queue="api", concurrency_key="tenant-a", delay=3600)
    now = await store.enqueue("t.x", queue="api", concurrency_key="tenant-a")
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [now]
    assert (await store.require(later)).status == TaskStatus.CREATED


async def test_a_keyed_claim_holds_the_queue_only_while_due_tasks_wait_for_busy_keys(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", key_concurrency=1)
    a1, a2 = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "a"} for _ in range(2)]
    )
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [a1]
    assert worker.held_by("api") == "key_concurrency"  # a2 waits for a1: no claim till then
    await worker.complete([(a1, 1, None)])
    assert worker.held_back("api") == 0
    assert [t.id for t in await worker.claim("api", 10)] == [a2]
    assert worker.held_back("api") == 0  # nothing else is due: a new task is claimed at once


async def test_an_orphan_claim_that_finds_none_does_not_hold_a_keyed_queue_back(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", key_concurrency=1)
    ids = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": k} for k in ("a", "b")]
    )
    worker = consumers()
    assert await worker.claim("api", 1, orphans=True) == []  # an idle worker looks first
    assert worker.held_back("api") == 0  # no key is busy: the batch claim goes ahead
    assert sorted(t.id for t in await worker.claim("api", 10)) == ids


async def test_a_busy_key_is_not_held_back_when_our_completions_land_during_the_claim(
    store: TaskStore, consumers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a claim counts from a snapshot that a completion of ours, written
    on the other connection meanwhile, has outdated: holding the queue on that count
    would idle the worker though the key is free."""
    await store.set_queue("api", key_concurrency=1)
    a1, a2 = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "a"} for _ in range(2)]
    )
    worker = consumers()
    [first] = await worker.claim("api", 10)
    assert first.id == a1
    claim_limited = store.tasks.claim_limited

    async def completed_meanwhile(conn, **options):
        tasks = await claim_limited(conn, **options)  # key "a" is busy in this count
        worker._flow.freed()  # what the write of our completion of `first` reports
        return tasks

    monkeypatch.setattr(store.tasks, "claim_limited", completed_meanwhile)
    assert await worker.claim("api", 10) == []
    monkeypatch.undo()
    assert worker.held_back("api") == 0  # not held: the next claim looks again at once
    await worker.complete([(first.id, first.fence, None)])
    assert [t.id for t in await worker.claim("api", 10)] == [a2]


@pytest.mark.parametrize("with_rate", [False, True], ids=["key-limit-only", "with-rate"])
async def test_a_key_with_more_tasks_than_the_claim_scans_does_not_hold_up_other_keys(
    store: TaskStore, consumers, monkeypatch: pytest.MonkeyPatch, with_rate: bool
) -> None:
    """A tenant's backlog fills the candidates a claim weighs (here 5); the other keys'
    first tasks, behind it in claim order, still start while the tenant's first runs."""
    await store.set_queue("api", key_concurrency=1, rate="1000/1s" if with_rate else None)
    backlog = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "big"} for _ in range(12)]
    )
    b1, c1, b2 = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": k} for k in "bcb"]
    )
    scan_at_most(store, monkeypatch, 5)
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [backlog[0], b1, c1]
    worker.queue_changed("api")
    assert await worker.claim("api", 10) == []  # every key busy
    await worker.complete([(b1, 1, None), (backlog[0], 1, None)])
    worker.queue_changed("api")
    assert [t.id for t in await worker.claim("api", 10)] == [backlog[1], b2]


async def test_a_key_beyond_the_scan_waits_for_its_first_task_due_again_later(
    store: TaskStore, consumers, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.set_queue("api", key_concurrency=1)
    backlog = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "big"} for _ in range(12)]
    )
    b1, b2 = await store.enqueue_many(
        [{"name": "t.x", "queue": "api", "concurrency_key": "b"} for _ in range(2)]
    )
    scan_at_most(store, monkeypatch, 5)
    worker = consumers()
    assert [t.id for t in await worker.claim("api", 10)] == [backlog[0], b1]
    await worker.fail(b1, 1, {"type": "Boom", "message": "later"}, retry_in=3600)
    await worker.complete([(backlog[0], 1, None)])
    worker.queue_changed("api")
    # b1 keeps its place at the head of key b, due in an hour: b2 waits behind it
    assert [t.id for t in await worker.claim("api", 10)] == [backlog[1]]
    assert (await store.require(b2)).status == TaskStatus.CREATED


@pytest.mark.parametrize("scan", [1, 2, 5000])
async def test_a_keys_tasks_keep_their_order_when_the_claim_scans_fewer_than_wait(
    store: TaskStore, consumers, monkeypatch: pytest.MonkeyPatch, scan: int
) -> None:
    """A keyed claim ranks only the first `scan` candidates in claim order (priority,
    due time, id), while a key's own order is (priority, id): a task enqueued first but
    due later is still its key's first, even where it lies beyond the candidates."""
    await store.set_queue("api", key_concurrency=1)
    now = dt.datetime.now(dt.UTC)
    first = await store.enqueue(
        "t.x", queue="api", concurrency_key="a", run_at=now - dt.timedelta(seconds=10)
    )
    second = await store.enqueue(
        "t.x", queue="api", concurrency_key="a", run_at=now - dt.timedelta(seconds=20)
    )
    scan_at_most(store, monkeypatch, scan)
    worker = consumers()
    taken = [t.id for t in await worker.claim("api", 1)]  # scans max(scan, 1) candidates
    # `second` comes first in claim order; with it the only candidate, nothing may start
    assert taken == ([] if scan == 1 else [first])
    assert (await store.require(second)).status == TaskStatus.CREATED


async def test_expired_leases_of_a_dead_worker_give_their_slots_back(
    store: TaskStore, consumers
) -> None:
    await store.set_queue("api", concurrency=2)
    ids = await store.enqueue_many([{"name": "t.x", "queue": "api"} for _ in range(4)])
    dead, alive = consumers(lease=-1), consumers()
    assert len(await dead.claim("api", 10)) == 2  # then it dies: its leases run out
    assert await alive.claim("api", 10) == []
    await alive.rescue(["api"])
    alive.queue_changed("api")
    assert len(await alive.claim("api", 10)) == 2
    statuses = {(await store.require(i)).status for i in ids}
    assert statuses == {TaskStatus.RUNNING, TaskStatus.NOT_FINISHED}  # nothing lost


async def test_a_snoozed_task_runs_later_with_its_attempt_not_charged(
    store: TaskStore, consumers
) -> None:
    task_id = await store.enqueue("t.x")
    worker = consumers()
    [task] = await worker.claim("default", 1)
    assert await worker.snooze(task.id, task.fence, 3600)
    info = await store.require(task_id)
    assert (info.status, info.attempts, info.worker_id) == (TaskStatus.CREATED, 0, None)
    assert await worker.claim("default", 1) == []  # not due for an hour


async def test_a_burst_worker_drains_a_keyed_rate_limited_queue_and_exits(store: TaskStore) -> None:
    import anyio

    from worker import Registry, Worker, WorkerConfig, task

    reg = Registry()

    @task(name="t.keyed", queue="api", registry=reg)
    async def keyed(ctx) -> None:
        return None

    await store.set_queue("api", rate="50/1s", key_concurrency=1)
    items = [{"name": "t.keyed", "queue": "api", "concurrency_key": f"k{i % 3}"} for i in range(9)]
    await store.enqueue_many(items)
    worker = Worker(store, reg, WorkerConfig(queues={"api": None}, burst=True))
    with anyio.fail_after(30):  # it exits once nothing is left, not when the timeout hits
        await worker.run()
    assert {s.queue: s.counts for s in await store.stats()} == {"api": {"completed": 9}}


async def test_a_worker_logs_each_snooze_with_its_task_and_delay(store: TaskStore) -> None:
    """Nothing on the row tells a snooze apart (no error, the attempt not counted)."""
    import anyio
    from structlog.testing import capture_logs

    from worker import Registry, Snooze, Worker, WorkerConfig, task

    reg = Registry()

    @task(name="t.later", registry=reg)
    async def later(ctx) -> None:
        raise Snooze(60)

    task_id = await store.enqueue("t.later")
    worker = Worker(store, reg, WorkerConfig(queues={"default": None}, burst=True))
    with anyio.fail_after(30), capture_logs() as logs:
        await worker.run()
    [said] = [line for line in logs if line["event"] == "task snoozed"]
    assert (said["task_id"], said["name"], said["queue"], said["seconds"]) == (
        task_id,
        "t.later",
        "default",
        60,
    )


async def test_a_worker_waiting_for_a_rate_slot_sees_the_rate_lifted_within_seconds(
    store: TaskStore,
) -> None:
    import anyio

    from worker import Registry, Worker, WorkerConfig, task

    reg = Registry()

    @task(name="t.call", queue="api", registry=reg)
    async def call(ctx) -> None:
        return None

    await store.set_queue("api", rate="1/1h")
    await store.enqueue_many([{"name": "t.call", "queue": "api"}] * 3)
    worker = Worker(store, reg, WorkerConfig(queues={"api": None}))

    async def completed() -> int:
        return sum(s.counts.get("completed", 0) for s in await store.stats())

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(15):
            while await completed() < 1:  # noqa: ASYNC110 - polling the database is the point
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # the worker now waits for the hour's next slot
        assert await completed() == 1
        await store.set_queue("api", rate=None)
        with anyio.fail_after(5):  # not an hour: every worker hears of it (or looks again)
            while await completed() < 3:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        worker.stop()
