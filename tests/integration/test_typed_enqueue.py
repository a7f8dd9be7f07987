"""Enqueueing a handler by reference (`transcribe.enqueue(store, video_id=...)`), on both
backends and with both store types: the handler's defaults, `using(...)` options, batches,
the caller's transaction, and arguments refused before anything is written."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from taskstore import InvalidInput, TaskStatus, TaskStore
from taskstore.sync import SyncTaskStore
from tests.integration.test_sync_api import sync_url
from worker import Registry, TaskContext, Worker, WorkerConfig, WrongArguments, task

reg = Registry()


@task(name="typed.transcribe", queue="media", priority=3, max_attempts=5, registry=reg)
async def transcribe(
    ctx: TaskContext, video_id: str, lang: str | None = None, speed: float = 1.0
) -> dict:
    return {"video": video_id, "lang": lang, "speed": speed}


@task(name="typed.tag", registry=reg)
def tag(ctx: TaskContext, labels: list, meta: dict | None = None, *, strict: bool = False) -> int:
    return len(labels)


async def test_enqueue_by_reference_uses_the_handlers_name_queue_priority_and_attempts(
    store: TaskStore,
) -> None:
    task_id = await transcribe.enqueue(store, video_id="v1")
    info = await store.get(task_id)
    assert (info.name, info.queue, info.priority, info.max_attempts) == (
        "typed.transcribe",
        "media",
        3,
        5,
    )
    assert info.payload == {"video_id": "v1"}
    other = await tag.enqueue(store, labels=["a"], strict=True)
    assert (await store.get(other)).queue == "default"


async def test_using_sets_options_for_one_call_and_leaves_the_task_unchanged(
    store: TaskStore,
) -> None:
    later = transcribe.using(delay=30, dedup_key="v1", priority=5, queue="slow", max_attempts=2)
    first = await later.enqueue(store, video_id="v1")
    assert await later.enqueue(store, video_id="v1", lang="en") == first  # dedup key taken
    info = await store.get(first)
    assert (info.queue, info.priority, info.max_attempts, info.dedup_key) == ("slow", 5, 2, "v1")
    assert info.run_at - info.created_at >= dt.timedelta(seconds=29)
    with pytest.raises(AttributeError):
        later.options.priority = 1  # type: ignore[misc]
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    chained = (
        await later.using(run_at=at, dedup_key="v2").using(priority=7).enqueue(store, video_id="v2")
    )
    info = await store.get(chained)
    assert (info.run_at, info.priority, info.queue) == (at, 7, "slow")
    plain = await store.get(await transcribe.enqueue(store, video_id="v3"))
    assert (plain.queue, plain.priority, plain.dedup_key) == ("media", 3, None)


async def test_using_takes_a_concurrency_key_and_dependencies_like_enqueue(
    store: TaskStore,
) -> None:
    first = await transcribe.enqueue(store, video_id="v1")
    upstream = [first]
    after = transcribe.using(concurrency_key="tenant-7", depends_on=upstream)
    upstream.append(first + 1000)  # a list changed later does not change the call
    second = await after.enqueue(store, video_id="v2")
    info = await store.require(second)
    assert (info.status, info.concurrency_key) == (TaskStatus.WAITING, "tenant-7")
    [batched] = await after.enqueue_many(store, [{"video_id": "v3"}])
    assert (await store.require(batched)).status is TaskStatus.WAITING
    alone = await store.require(await after.using(depends_on=()).enqueue(store, video_id="v4"))
    assert (alone.status, alone.concurrency_key) == (TaskStatus.CREATED, "tenant-7")
    with pytest.raises(WrongArguments, match="depends_on takes task ids, got int"):
        transcribe.using(depends_on=first)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not a task id"):
        await transcribe.using(depends_on=[0]).enqueue(store, video_id="v5")


async def test_enqueue_many_by_reference_writes_the_batch_in_order(store: TaskStore) -> None:
    ids = await transcribe.using(priority=9).enqueue_many(
        store, [{"video_id": f"v{n}", "speed": n} for n in range(3)]
    )
    infos = [await store.get(i) for i in ids]
    assert [i.payload["video_id"] for i in infos] == ["v0", "v1", "v2"]
    assert {(i.name, i.queue, i.priority) for i in infos} == {("typed.transcribe", "media", 9)}
    assert await transcribe.enqueue_many(store, []) == []


WRONG = [
    ({}, "missing argument 'video_id'"),
    (  # a misspelt key: both halves of the mistake are named
        {"video": "v1"},
        "missing argument 'video_id'; unexpected argument 'video' "
        "(it takes: lang, speed, video_id)",
    ),
    (
        {"video_id": "v1", "language": "en"},
        "unexpected argument 'language' (it takes: lang, speed, video_id)",
    ),
    ({"video_id": 42}, "argument 'video_id' must be str, got int 42"),
    ({"video_id": "v1", "lang": 3}, "argument 'lang' must be str or None, got int 3"),
    ({"video_id": "v1", "speed": "fast"}, "argument 'speed' must be float, got str 'fast'"),
    ({"video_id": "v1", "speed": True}, "argument 'speed' must be float, got bool True"),
]


@pytest.mark.parametrize(("arguments", "problem"), WRONG)
async def test_wrong_arguments_are_refused_in_one_line_before_anything_is_written(
    store: TaskStore, arguments: dict[str, Any], problem: str
) -> None:
    with pytest.raises(WrongArguments) as refused:
        await transcribe.enqueue(store, **arguments)
    assert str(refused.value) == f"cannot enqueue typed.transcribe: {problem}"
    assert isinstance(refused.value, InvalidInput)
    with pytest.raises(WrongArguments, match=re.escape(f"{problem} (item 1)")):
        await transcribe.enqueue_many(store, [{"video_id": "ok"}, arguments])
    assert await store.stats() == []


async def test_plain_type_annotations_accept_what_json_carries(store: TaskStore) -> None:
    ids = [
        await transcribe.enqueue(store, video_id="v", lang=None, speed=2),  # an int is a float
        await tag.enqueue(store, labels=("a", "b")),  # a tuple arrives as a list
        await tag.enqueue(store, labels=[], meta={"k": 1}, strict=False),
    ]
    assert [(await store.get(i)).payload for i in ids] == [
        {"video_id": "v", "lang": None, "speed": 2},
        {"labels": ["a", "b"]},
        {"labels": [], "meta": {"k": 1}, "strict": False},
    ]
    with pytest.raises(WrongArguments, match="argument 'meta' must be dict or None, got list"):
        await tag.enqueue(store, labels=[], meta=[])


async def test_a_positional_payload_is_refused(store: TaskStore) -> None:
    with pytest.raises(WrongArguments, match="pass the payload as keyword arguments"):
        await transcribe.enqueue(store, "v1")  # type: ignore[call-overload]
    assert await store.stats() == []


async def test_enqueue_by_reference_joins_the_callers_transaction(store: TaskStore) -> None:
    async with store.sessions() as session:
        await transcribe.using(session=session).enqueue(store, video_id="gone")
        await session.rollback()
    async with store.sessions() as session:
        [kept] = await transcribe.using(session=session).enqueue_many(store, [{"video_id": "k"}])
        await session.commit()
    assert [s.counts for s in await store.stats()] == [{"created": 1}]  # "gone" never landed
    assert (await store.get(kept)).payload == {"video_id": "k"}


def test_the_sync_store_enqueues_by_reference_and_returns_the_ids(db_url: str) -> None:
    with SyncTaskStore(db_url) as tasks:
        task_id = transcribe.enqueue(tasks, video_id="v1")
        [a, b] = transcribe.using(queue="sync").enqueue_many(
            tasks, [{"video_id": "a"}, {"video_id": "b"}]
        )
        assert isinstance(task_id, int) and task_id < a < b
        assert tasks.get(task_id).queue == "media" and tasks.get(b).queue == "sync"
        with pytest.raises(WrongArguments, match="missing argument 'video_id'"):
            transcribe.enqueue(tasks, lang="en")
        assert sum(sum(s.counts.values()) for s in tasks.stats()) == 3


def test_sync_enqueue_by_reference_joins_a_sync_session(db_url: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with SyncTaskStore(db_url) as tasks:
            with Session(engine) as session:
                transcribe.using(session=session).enqueue(tasks, video_id="gone")
                session.rollback()
            with Session(engine) as session:
                kept = transcribe.using(session=session).enqueue(tasks, video_id="k")
                session.commit()
            assert tasks.get(kept).payload == {"video_id": "k"}
            assert [s.counts for s in tasks.stats()] == [{"created": 1}]  # "gone" never landed
    finally:
        engine.dispose()


def test_an_async_session_is_refused_by_the_sync_store(db_url: str) -> None:
    with SyncTaskStore(db_url) as tasks, pytest.raises(InvalidInput, match="synchronous"):
        transcribe.using(session=object()).enqueue(tasks, video_id="v1")


async def test_a_task_enqueued_by_reference_runs_with_its_keyword_arguments(
    store: TaskStore,
) -> None:
    first = await transcribe.enqueue(store, video_id="v1", speed=1.5)
    second = await tag.enqueue(store, labels=["x", "y"])
    config = WorkerConfig(queues={"media": None, "default": None}, burst=True)
    await Worker(store, reg, config).run()
    done = await store.get(first)
    assert done.status is TaskStatus.COMPLETED
    assert done.result == {"video": "v1", "lang": None, "speed": 1.5}
    assert (await store.get(second)).result == 2


async def test_the_decorated_handler_is_still_the_function_when_called() -> None:
    assert await transcribe(None, "v1", speed=2.0) == {"video": "v1", "lang": None, "speed": 2.0}
    assert tag(None, ["a"]) == 1
