"""SQLite's writes on the event loop's own thread: a producer's lone statements (an
`enqueue`) and a worker's link transactions run there while the write lock is free, with
nothing else of the loop in between; while another program holds the lock they wait for
it elsewhere, so they neither fail with "database is locked" nor stall the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from sqlalchemy.engine import make_url

from taskstore import TaskStatus, TaskStore, validation
from taskstore.links import Link

T = TypeVar("T")


def _new(name: str) -> validation.NewTask:
    return validation.new_task(name, {}, max_payload_bytes=1000)


async def _waits_for_it_with_the_loop_running(work: Awaitable[T], other: sqlite3.Connection) -> T:
    """Run `work` while `other` holds SQLite's lock: it waits (does not fail) and the
    event loop runs meanwhile; once `other` commits, it ends. Its result."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        pending = asyncio.ensure_future(work)
        await anyio.sleep(0.3)
        assert not pending.done()  # waiting for the lock, not failed
        assert ticks >= 5  # and the event loop was not held up by the wait
        other.execute("COMMIT")
        with anyio.fail_after(30):
            result = await pending
        group.cancel_scope.cancel()
    return result


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_enqueue_waits_for_another_programs_write_lock_and_the_loop_runs_meanwhile(
    store: TaskStore, db_url: str
) -> None:
    await store.enqueue("t.x", {})  # the fast path's connection is open and warm
    other = sqlite3.connect(make_url(db_url).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # not one of ours: it takes no turn, only SQLite's lock
    task_id = await _waits_for_it_with_the_loop_running(store.enqueue("t.x", {"n": 2}), other)
    other.close()
    info = await store.get(task_id)
    assert info is not None and (info.status, info.payload) == (TaskStatus.CREATED, {"n": 2})


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_lone_writes_on_the_loops_thread_are_committed_for_other_connections(
    store: TaskStore, db_url: str
) -> None:
    ids = [await store.enqueue("t.x", {"i": i}) for i in range(20)]
    await store.cancel(ids[3])
    with sqlite3.connect(make_url(db_url).database) as other:
        rows = dict(other.execute("SELECT id, status FROM taskstore_tasks").fetchall())
    assert sorted(rows) == sorted(ids)
    assert rows[ids[3]] == "cancelled" and rows[ids[4]] == "created"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_links_transaction_holds_the_write_lock_without_letting_the_loop_in(
    store: TaskStore,
) -> None:
    link, ran = Link(store.engine, store.backend, store.translate), []
    try:
        async with link.transaction() as conn:
            asyncio.get_running_loop().call_soon(ran.append, "other work")
            await store.tasks.insert(conn, [_new("t.a")])
            await store.tasks.insert(conn, [_new("t.b")])
            assert ran == []  # a second worker process waits only for SQLite's own work
        await asyncio.sleep(0)
        assert ran == ["other work"]
    finally:
        await link.close()
    assert sorted(t.name for t in await store.list()) == ["t.a", "t.b"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_links_transaction_waits_for_another_programs_write_lock(
    store: TaskStore, db_url: str
) -> None:
    link = Link(store.engine, store.backend, store.translate)
    other = sqlite3.connect(make_url(db_url).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with link.transaction() as conn:
            await store.tasks.insert(conn, [_new("t.late")])

    try:
        pending = asyncio.ensure_future(write())
        await anyio.sleep(0.3)
        assert not pending.done()
        other.execute("COMMIT")
        with anyio.fail_after(10):
            await pending
    finally:
        other.close()
        await link.close()
    assert [t.name for t in await store.list()] == ["t.late"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_cancel_waits_for_another_programs_lock_and_a_get_reads_meanwhile(
    store: TaskStore, db_url: str
) -> None:
    task_id = await store.enqueue("t.x", {})
    other = sqlite3.connect(make_url(db_url).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE taskstore_tasks SET priority = 7 WHERE id = ?", (task_id,))
    try:
        pending = asyncio.ensure_future(store.cancel(task_id))
        with anyio.fail_after(5):
            info = await store.get(task_id)  # reads never wait for a writer
        assert info is not None and (info.status, info.priority) == (TaskStatus.CREATED, 0)
        await anyio.sleep(0.2)
        assert not pending.done()
        other.execute("COMMIT")
        with anyio.fail_after(10):
            assert await pending == TaskStatus.CANCELLED
    finally:
        other.close()
    info = await store.get(task_id)
    assert info is not None and (info.status, info.priority) == (TaskStatus.CANCELLED, 7)


async def test_a_new_file_another_connection_is_writing_is_opened_once_it_is_free(
    tmp_path: Path,
) -> None:
    # A new file still in SQLite's first journal mode, mid-write: switching it to WAL is
    # refused at once (no busy wait), as when several workers start on a new file together.
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE elsewhere (x)")
    store = TaskStore.from_url(f"sqlite:///{path}")
    try:
        await _waits_for_it_with_the_loop_running(store.migrate(), other)
        assert await store.enqueue("t.x", {}) > 0
    finally:
        other.close()
        await store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
