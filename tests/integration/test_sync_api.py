"""Producing tasks without an event loop: the blocking store and the sync-transaction enqueue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from taskstore import InvalidInput, SchemaOutOfDate, TaskStatus, TaskStore
from taskstore.sync import SyncTaskStore, enqueue_with


def sync_url(db_url: str) -> str:
    """The same database through a blocking driver (pysqlite / psycopg)."""
    url = make_url(db_url)
    driver = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return url.set(drivername=driver).render_as_string(hide_password=False)


def test_sync_store_enqueues_and_reads_without_an_event_loop(db_url: str) -> None:
    with SyncTaskStore(db_url) as tasks:
        task_id = tasks.enqueue("pkg.fn", {"n": 1}, queue="media")
        ids = tasks.enqueue_many([{"name": "pkg.fn", "payload": {"n": i}} for i in range(3)])
        assert tasks.get(task_id).queue == "media" and len(ids) == 3
        assert tasks.cancel(ids[0]) is TaskStatus.CANCELLED
        assert {s.queue for s in tasks.stats()} == {"media", "default"}
        with pytest.raises(InvalidInput, match="invalid queue name"):
            tasks.enqueue("pkg.fn", {}, queue="Bad Queue")


async def test_the_sync_store_refuses_to_block_a_running_event_loop(db_url: str) -> None:
    """Django refuses its sync ORM in async code alike; in a worker on SQLite the blocked
    loop may hold the write lock the call waits for, and nothing would end the wait."""
    tasks = SyncTaskStore(db_url)
    try:
        with pytest.raises(InvalidInput, match=r"SyncTaskStore.enqueue\(\) blocks, and this"):
            tasks.enqueue("pkg.fn", {"n": 1})
        assert await anyio.to_thread.run_sync(tasks.enqueue, "pkg.fn", {"n": 2}) > 0
    finally:
        await anyio.to_thread.run_sync(tasks.close)


def test_enqueue_with_a_sync_session_commits_and_rolls_back_with_it(db_url: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with Session(engine) as session:
            kept = enqueue_with(session, "pkg.fn", {"n": 1}, dedup_key="k")
            again = enqueue_with(session, "pkg.fn", {"n": 2}, dedup_key="k")
            session.commit()
        with Session(engine) as session:
            enqueue_with(session, "pkg.fn", {"n": 3})
            session.rollback()
        with engine.begin() as conn:
            enqueue_with(conn, "pkg.fn", {"n": 4})
    finally:
        engine.dispose()
    assert again == kept
    with SyncTaskStore(db_url) as tasks:
        assert tasks.get(kept).payload == {"n": 1}
        payloads = [tasks.get(i).payload for i in range(1, 10) if tasks.get(i)]
        assert payloads == [{"n": 1}, {"n": 4}]  # the rolled-back {"n": 3} never landed


def test_the_sync_store_joins_a_synchronous_session_it_is_given(db_url: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with SyncTaskStore(db_url) as tasks:
            with Session(engine) as session:
                tasks.enqueue("pkg.fn", {"n": 1}, session=session)
                tasks.enqueue_many([{"name": "pkg.fn", "payload": {"n": 2}}], session=session)
                session.rollback()
            with Session(engine) as session:
                [kept] = tasks.enqueue_many(
                    [{"name": "pkg.fn", "payload": {"n": 3}}], session=session
                )
                session.commit()
            assert tasks.get(kept).payload == {"n": 3}
            assert [s.counts for s in tasks.stats()] == [{"created": 1}]
            with pytest.raises(InvalidInput, match="synchronous SQLAlchemy Session"):
                tasks.enqueue("pkg.fn", {}, session="not a session")
    finally:
        engine.dispose()


@pytest.mark.parametrize("store_kind", ["sync", "async"])
def test_opening_a_missing_sqlite_file_says_so_and_makes_no_file_or_folder(
    tmp_path: Path, store_kind: str
) -> None:
    path = tmp_path / "typo" / "tasks.db"
    with pytest.raises(SchemaOutOfDate, match=f"no database file at {path} .*migrate"):
        if store_kind == "sync":
            SyncTaskStore(f"sqlite:///{path}")
        else:
            asyncio.run(_open_async(f"sqlite:///{path}"))
    assert not path.parent.exists()  # neither the file nor its folder


async def _open_async(url: str) -> None:
    async with TaskStore.from_url(url):
        pass
