"""An id names one task (and one transcript, one caption) forever: purging or deleting the
newest rows never gives their ids to new ones, on either backend, and migrating an
existing database keeps every reference to a task id."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
import pytest
from sqlalchemy import delete, func, insert, select

from taskstore import TaskStore
from taskstore.models import (
    CaptionEntity,
    MediaEntity,
    PeriodicTick,
    TaskEntity,
    TranscriptEntity,
)
from taskstore.schema import upgrade


async def _old_task(store: TaskStore, name: str, payload: dict) -> int:
    """A task row written with only the columns schema 0005 had."""
    table = TaskEntity.__table__
    stmt = insert(table).values(name=name, queue="default", payload=payload).returning(table.c.id)
    async with store.engine.begin() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def purge(store: TaskStore, ids: list[int]) -> None:
    for task_id in ids:
        await store.cancel(task_id)
    await anyio.sleep(0.01)  # finished_at must lie strictly before the purge's "now"
    assert await store.purge(0) == len(ids)


async def test_task_ids_are_never_reused_after_purging_everything(store: TaskStore) -> None:
    old = [await store.enqueue("pkg.fn", {"n": n}) for n in range(3)]
    await purge(store, old)
    assert await store.stats() == []
    new = await store.enqueue("pkg.fn", {"n": 3})
    [batch] = await store.enqueue_many([{"name": "pkg.fn"}])
    assert new > max(old) and batch > new


async def results_of(store: TaskStore, media_id: str, n: int) -> list[int]:
    async with store.sessions() as session:
        if await session.get(MediaEntity, media_id) is None:
            session.add(MediaEntity(id=media_id, media_type="media"))
        rows = [TranscriptEntity(media_id=media_id, text=str(i)) for i in range(n)]
        rows += [CaptionEntity(media_id=media_id, text=str(i)) for i in range(n)]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


async def test_transcript_and_caption_ids_are_never_reused_after_deleting_them(
    store: TaskStore,
) -> None:
    old = await results_of(store, "m1", 3)
    async with store.sessions() as session:
        await session.execute(delete(TranscriptEntity))
        await session.execute(delete(CaptionEntity))
        await session.commit()
    new = await results_of(store, "m1", 1)
    transcripts, captions = old[:3], old[3:]
    assert new[0] > max(transcripts) and new[1] > max(captions)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    yield request.getfixturevalue("unmigrated_pg_database")


async def test_migrating_an_existing_database_keeps_task_references_and_never_reuses_their_ids(
    empty_db_url: str,
) -> None:
    store = TaskStore.from_url(empty_db_url)
    try:
        await upgrade(store.engine, "0005")  # the schema before ids were protected
        await store.open(check_schema=False)
        # Rows as that schema holds them (the current enqueue writes later columns too).
        kept = [await _old_task(store, "pkg.fn", {"n": n}) for n in range(3)]
        tick = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        ticked = await _old_task(store, "pkg.tick", {})
        async with store.engine.begin() as conn:
            ticks = PeriodicTick.__table__.insert()
            await conn.execute(ticks.values(name="pkg.tick", tick=tick, task_id=ticked))
        assert ticked > max(kept)
        async with store.sessions() as session:
            session.add(MediaEntity(id="m1", media_type="media", task_id=kept[1]))
            session.add(TranscriptEntity(media_id="m1", task_id=kept[2], text="t"))
            await session.commit()
        async with store.engine.begin() as conn:  # the newest task is gone, its tick remains
            tasks = TaskEntity.__table__
            await conn.execute(tasks.delete().where(tasks.c.id == ticked))

        await upgrade(store.engine)

        async with store.sessions() as session:
            assert (await session.get(MediaEntity, "m1")).task_id == kept[1]
            assert await session.scalar(select(TranscriptEntity.task_id)) == kept[2]
            assert await session.scalar(select(func.count()).select_from(PeriodicTick)) == 1
        assert [(await store.get(i)).payload["n"] for i in kept] == [0, 1, 2]
        assert await store.enqueue("pkg.fn", {"n": 9}) > ticked
    finally:
        await store.close()
