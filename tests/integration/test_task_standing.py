"""What holds a task up, as `taskstore wait --timeout`, `taskstore show` and the
dashboard's task page say it: for a task waiting on others, what holds up the first of
them down the chain."""

from __future__ import annotations

import json

from taskstore import TaskStore
from taskstore.consumer import Consumer, Registration
from tests.integration.test_cli import taskstore


def _standing(db_url: str, task_id: int) -> str:
    waited = taskstore("wait", str(task_id), "--timeout", "0.1", url=db_url)
    assert waited.returncode == 3 and waited.stderr.count("\n") == 1, waited.stderr
    prefix = f"taskstore: error: task {task_id} did not finish within 0.1s: "
    assert waited.stderr.startswith(prefix), waited.stderr
    return waited.stderr.removeprefix(prefix).strip()


async def test_a_timed_out_wait_says_what_holds_the_task_up(store: TaskStore, db_url: str) -> None:
    first = await store.enqueue("demo.first", queue="demo")
    second = await store.enqueue("demo.second", queue="demo", depends_on=[first])
    last = await store.enqueue("demo.last", queue="demo", depends_on=[second])
    later = await store.enqueue("demo.first", queue="demo", delay=3600)
    held_up = f"it waits for task {second}; task {first}"  # what holds up the chain
    assert _standing(db_url, last) == (
        f"{held_up} is ready in queue demo, but no live worker serves the queue"
    )
    await store.pause_queue("demo")
    assert _standing(db_url, first) == "it is ready, but its queue demo is paused"
    await store.resume_queue("demo")
    assert _standing(db_url, later).startswith("it is scheduled for ")

    live = Consumer(store, "demo-worker", 30.0)
    try:
        await live.heartbeat([], 0, Registration("h", 1, {"demo": None}, 4, 30.0, ["demo.first"]))
        assert _standing(db_url, first) == "it is ready, not yet claimed"
        assert [t.id for t in await live.claim("demo", 1)] == [first]
        assert _standing(db_url, last) == (
            f"{held_up} is running (attempt 1, on worker demo-worker)"
        )
    finally:
        await live.close()


async def test_show_says_what_holds_up_a_task_that_waits_to_start(
    store: TaskStore, db_url: str
) -> None:
    first = await store.enqueue("demo.first", queue="demo")
    last = await store.enqueue("demo.last", queue="demo", depends_on=[first])
    shown = taskstore("show", str(last), url=db_url).stdout
    assert (
        f"held_up           it waits for task {first}; task {first} is ready in queue demo, "
        "but no live worker serves the queue\n"
    ) in shown
    await store.cancel(first)  # and so `last` too
    assert "held_up" not in taskstore("show", str(last), url=db_url).stdout
    assert json.loads(taskstore("show", str(last), "--json", url=db_url).stdout)["held_up"] is None


async def test_a_fan_in_names_its_first_pending_dependencies_only(store: TaskStore) -> None:
    from taskstore.standing import NAMED, standing

    ids = await store.enqueue_many([{"name": "demo.part", "queue": "demo"} for _ in range(30)])
    last = await store.require(await store.enqueue("demo.join", queue="demo", depends_on=ids))
    said = await standing(store, last)
    named = ", ".join(map(str, ids[:NAMED]))
    assert said.startswith(f"it waits for tasks {named} and more; task {ids[0]} is ready"), said


async def test_two_or_three_pending_dependencies_read_as_a_list(store: TaskStore) -> None:
    from taskstore.standing import standing

    ids = await store.enqueue_many([{"name": "demo.part", "queue": "demo"} for _ in range(3)])
    both = await store.require(await store.enqueue("demo.join", depends_on=ids[:2]))
    three = await store.require(await store.enqueue("demo.join", depends_on=ids))
    assert (await standing(store, both)).startswith(f"it waits for tasks {ids[0]} and {ids[1]};")
    listed = f"tasks {ids[0]}, {ids[1]} and {ids[2]}; task {ids[0]} is ready"
    assert (await standing(store, three)).startswith(f"it waits for {listed}")


async def test_a_chain_deeper_than_is_followed_is_not_called_ready(store: TaskStore) -> None:
    from taskstore.standing import CHAIN_FOLLOWED, standing

    ids = [await store.enqueue("demo.root", delay=3600)]
    for _ in range(CHAIN_FOLLOWED + 4):
        ids.append(await store.enqueue("demo.step", depends_on=[ids[-1]]))
    said = await standing(store, await store.require(ids[-1]))
    head = ids[-2 - CHAIN_FOLLOWED]
    assert said == (
        f"it waits for task {ids[-2]}; task {head}, {CHAIN_FOLLOWED} down the chain,"
        " waits for others in turn"
    )
    shallow = await standing(store, await store.require(ids[3]))
    assert shallow.startswith(f"it waits for task {ids[2]}; task {ids[0]} is scheduled for ")
