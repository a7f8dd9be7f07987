"""Tasks a worker has no handler for go back, uncharged, to workers that have one.

Two apps serving one queue (or a rolling deploy that adds a task) must not fail each
other's tasks: the worker that claims one it cannot run hands it back without counting
an attempt, and it fails only once no live worker has served its name for the grace
period.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest

from taskstore import TaskStatus, TaskStore
from taskstore.consumer import Consumer, Registration
from tests.helpers.keyed import scan_at_most
from tests.helpers.processes import executions, start_worker, stderr_of
from tests.integration.test_cli import taskstore


def _registration(tasks: list[str]) -> Registration:
    return Registration("host", 1, {"default": None}, 4, 30.0, tasks)


@pytest.fixture
async def pair(store: TaskStore):
    """(serving, lacking): a live worker with the handler of ``x.served``, one without."""
    serving = Consumer(store, "serving-worker", 30.0)
    lacking = Consumer(store, "lacking-worker", 30.0)
    await serving.heartbeat([], 0, _registration(["x.served"]))
    yield serving, lacking
    await serving.close()
    await lacking.close()


async def test_a_worker_without_the_handler_leaves_the_task_for_a_live_worker_that_has_it(
    store: TaskStore, pair: tuple[Consumer, Consumer]
) -> None:
    serving, lacking = pair
    task_id = await store.enqueue("x.served")
    [task] = await lacking.claim("default", 10)
    status = await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0)
    info = await store.require(task_id)
    assert (status, info.status, info.attempts) == (TaskStatus.CREATED, TaskStatus.CREATED, 0)
    assert info.error["type"] == "UnknownTask" and info.error["unserved_since"] is None
    [again] = await serving.claim("default", 10)
    assert (again.id, again.attempt) == (task_id, 1)  # its first counted attempt


@pytest.mark.parametrize(
    "limits",
    [{}, {"concurrency": 5}, {"key_concurrency": 1}],
    ids=["unlimited", "concurrency", "key-concurrency"],
)
async def test_a_handed_back_name_is_left_to_the_worker_that_has_it_not_claimed_again(
    store: TaskStore, pair: tuple[Consumer, Consumer], limits: dict[str, int]
) -> None:
    serving, lacking = pair
    if limits:
        await store.set_queue("default", **limits)
    served_id = await store.enqueue("x.served")
    [task] = await lacking.claim("default", 10)
    # A long retry delay: the task is due at once all the same, for the worker that has it.
    await lacking.hand_back_unserved(task, retry_in=3600, grace_seconds=0.0)
    ours_id = await store.enqueue("x.ours")
    assert [t.id for t in await lacking.claim("default", 10)] == [ours_id]
    assert lacking.skipped("default") == ("x.served",) and lacking.skipped("other") == ()
    assert [t.id for t in await serving.claim("default", 10)] == [served_id]


async def test_a_skipped_name_is_claimed_again_once_the_skip_lapses(
    store: TaskStore, pair: tuple[Consumer, Consumer]
) -> None:
    _, lacking = pair
    task_id = await store.enqueue("x.served")
    [task] = await lacking.claim("default", 10)
    await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0, skip_seconds=0.2)
    assert await lacking.claim("default", 10) == []
    await anyio.sleep(0.3)  # the worker that had the handler may be gone by now
    [again] = await lacking.claim("default", 10)
    assert again.id == task_id and lacking.skipped("default") == ()


async def test_a_task_no_live_worker_serves_waits_for_the_grace_period_then_fails(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("x.nobody", max_attempts=5)
    lacking = Consumer(store, "lacking-worker", 30.0)
    try:
        [task] = await lacking.claim("default", 10)
        status = await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=3600)
        info = await store.require(task_id)
        assert (status, info.attempts) == (TaskStatus.CREATED, 0)
        assert info.error["unserved_since"] is not None  # noted once, kept while it waits
        [task] = await lacking.claim("default", 10)
        status = await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0)
        info = await store.require(task_id)
        assert (status, info.status) == (TaskStatus.FAILED, TaskStatus.FAILED)
        assert info.error["type"] == "UnknownTask" and "x.nobody" in info.error["message"]
    finally:
        await lacking.close()


async def test_two_apps_on_one_queue_run_each_others_tasks_without_spending_attempts(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    ours = await store.enqueue_many([{"name": "tests.noop"} for _ in range(5)])
    theirs = await store.enqueue_many(
        [{"name": "other.echo", "payload": {"word": "hi"}} for _ in range(5)]
    )
    log = tmp_path / "exec.log"
    args = ("--concurrency", "4")
    pipeline = start_worker(db_url, *args, exec_log=log)
    other = start_worker(db_url, *args, exec_log=log, app="tests.apps.other")
    try:
        with anyio.fail_after(60):  # both registered: their signal handlers are in place
            while len([w for w in await store.workers() if w.alive]) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        # Each worker hands the other app's tasks back once and then leaves them alone,
        # so they do not bounce between the two (which took minutes when they did).
        with anyio.fail_after(60):
            while (await store.stats())[0].counts.get("completed", 0) < 10:  # noqa: ASYNC110
                await anyio.sleep(0.1)
    finally:
        pipeline.send_signal(signal.SIGTERM)  # once each: a second SIGTERM cuts off
        other.send_signal(signal.SIGTERM)
        assert pipeline.wait(60) == 0 and other.wait(60) == 0, stderr_of(log)
    infos = [await store.require(i) for i in ours + theirs]
    assert {(i.status, i.attempts) for i in infos} == {(TaskStatus.COMPLETED, 1)}
    assert set(executions(log).values()) == {1}


async def test_status_flags_tasks_whose_queue_or_handler_no_live_worker_serves(
    store: TaskStore,
) -> None:
    await store.enqueue("demo.record", queue="default")  # the handler says queue="demo"
    await store.enqueue("demo.record", queue="demo")
    await store.enqueue("demo.other", queue="demo")
    live = Consumer(store, "demo-worker", 30.0)
    try:
        await live.heartbeat([], 0, Registration("h", 1, {"demo": None}, 4, 30.0, ["demo.record"]))
        flagged = {(u.queue, u.name, u.count, u.reason) for u in await store.unserved()}
    finally:
        await live.close()
    assert flagged == {
        ("default", "demo.record", 1, "no live worker serves the queue"),
        ("demo", "demo.other", 1, "no live worker has this handler"),
    }


async def test_enqueue_notes_a_queue_no_live_worker_serves_and_a_name_near_a_handlers(
    store: TaskStore, db_url: str
) -> None:
    """`taskstore enqueue app.probe` puts it in queue default while the workers serve the
    handler's queue: it would wait for good with nothing said until `status` is run."""
    before_any_worker = taskstore("enqueue", "demo.record", url=db_url)
    live = Consumer(store, "demo-worker", 30.0)
    try:
        await live.heartbeat([], 0, Registration("h", 1, {"demo": None}, 4, 30.0, ["demo.record"]))
        elsewhere = taskstore("enqueue", "demo.record", url=db_url)
        lines = taskstore(
            "enqueue", "demo.record", "--jsonl", "-", "--json", url=db_url, input="{}\n{}\n"
        )
        typo = taskstore("enqueue", "demo.recrod", "--queue", "demo", url=db_url)
        served = taskstore("enqueue", "demo.record", "--queue", "demo", url=db_url)
        unknown = taskstore("enqueue", "other.thing", "--queue", "demo", url=db_url)
        # a new handler of the same module (a rolling deploy): no typo of the old one
        new = taskstore("enqueue", "demo.refund_order", "--queue", "demo", url=db_url)
    finally:
        await live.close()
    task_id = int(elsewhere.stdout)
    assert elsewhere.stderr == (
        f"note: no live worker serves queue default (they serve: demo); task {task_id} "
        "waits until one does (--queue chooses the queue)\n"
    )
    assert len(json.loads(lines.stdout)) == 2 and "each of these 2 tasks waits" in lines.stderr
    assert typo.stderr == (
        "note: no live worker has a handler named demo.recrod: did you mean demo.record?\n"
    )
    # Quiet before any worker is up, and for a name a worker may find only when it
    # claims it (Django's resolver).
    assert [r.stderr for r in (before_any_worker, served, unknown, new)] == ["", "", "", ""]
    assert {r.returncode for r in (before_any_worker, elsewhere, lines, typo)} == {0}


async def test_an_idle_worker_does_not_wake_for_a_name_it_leaves_to_another(
    store: TaskStore, pair: tuple[Consumer, Consumer]
) -> None:
    _, lacking = pair
    await store.enqueue("x.served")
    [task] = await lacking.claim("default", 10)
    await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0)
    # Its idle probe would otherwise find the task due and claim nothing, again and again.
    assert not await lacking.any_due(["default", "other"])
    await store.enqueue("x.elsewhere", queue="other")
    assert await lacking.any_due(["default", "other"])
    assert not await lacking.any_due(["default"])
    await store.enqueue("x.ours")
    assert await lacking.any_due(["default"])


async def test_a_name_left_to_another_worker_is_not_taken_from_a_key_beyond_the_scan(
    store: TaskStore, pair: tuple[Consumer, Consumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, lacking = pair
    await store.set_queue("default", key_concurrency=1)
    backlog = await store.enqueue_many(
        [{"name": "x.ours", "concurrency_key": "big"} for _ in range(12)]
    )
    first = await store.enqueue("x.served", concurrency_key="tenant-a")
    scan_at_most(store, monkeypatch, 5)
    ours, task = await lacking.claim("default", 10)
    assert (ours.id, task.id) == (backlog[0], first)
    await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0)
    lacking.queue_changed("default")
    assert await lacking.claim("default", 10) == []  # big is busy; `first` is not ours
    assert [t.id for t in await serving.claim("default", 10)] == [first]


async def test_a_keyed_task_left_to_another_worker_keeps_its_place_in_its_keys_order(
    store: TaskStore, pair: tuple[Consumer, Consumer]
) -> None:
    serving, lacking = pair
    await store.set_queue("default", key_concurrency=1)
    first = await store.enqueue("x.served", concurrency_key="tenant-a")
    second = await store.enqueue("x.ours", concurrency_key="tenant-a")
    [task] = await lacking.claim("default", 10)
    assert task.id == first
    await lacking.hand_back_unserved(task, retry_in=0.0, grace_seconds=0.0)
    lacking.queue_changed("default")
    assert await lacking.claim("default", 10) == []  # `second` waits for `first`
    assert [t.id for t in await serving.claim("default", 10)] == [first]
    assert (await store.require(second)).status == TaskStatus.CREATED
