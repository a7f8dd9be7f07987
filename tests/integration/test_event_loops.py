"""A store made once, used from one event loop after another (a script calling
``asyncio.run`` twice, a test suite with a loop per test), on both backends."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings

import pytest
from sqlalchemy.exc import SAWarning

from taskstore import TaskStore
from taskstore.errors import WrongEventLoop


async def _use(store: TaskStore) -> list[int]:
    """Every kind of connection a producer's store holds: a held link, the pool (a read,
    a caller's session) and the waiters."""
    first = await store.enqueue("app.job", {"n": 1})
    assert (await store.require(first)).status == "created"
    assert (await store.list())[0].id == first
    async with store.sessions() as session, session.begin():
        second = await store.enqueue("app.job", {"n": 2}, session=session)
    with pytest.raises(TimeoutError):
        await store.wait(first, timeout=0.05)
    assert await store.cancel(second) == "cancelled"
    return [first, second]


def test_a_store_made_once_serves_one_event_loop_after_another(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = TaskStore.from_url(db_url)
    caplog.set_level(logging.ERROR)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ids = asyncio.run(_use(store))
        ids += asyncio.run(_use(store))
        gc.collect()  # connections of the ended loop are dropped quietly, not terminated
        asyncio.run(store.close())
    assert ids == sorted(set(ids)) and len(ids) == 4
    # (asyncpg's ResourceWarning for each connection of the ended loop remains: it was not
    # closed while its loop ran; the garbage collector closes its socket)
    complaints = [str(w.message) for w in seen if issubclass(w.category, SAWarning)]
    assert complaints == []
    assert [r.getMessage() for r in caplog.records] == []


def test_a_store_in_use_by_a_loop_running_in_another_thread(backend: str, db_url: str) -> None:
    """PostgreSQL's connections belong to the loop still using them: a clear refusal.
    SQLite's driver answers whichever loop asks, so both loops may use the store."""
    store = TaskStore.from_url(db_url)
    ready, done = threading.Event(), threading.Event()

    async def hold() -> None:
        await store.enqueue("app.job")
        ready.set()
        await asyncio.to_thread(done.wait, 30)  # the loop runs meanwhile

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert ready.wait(30)
        if backend == "postgres":
            with pytest.raises(WrongEventLoop, match="in use by an event loop running in another"):
                asyncio.run(store.enqueue("app.job"))
        else:
            assert asyncio.run(store.enqueue("app.job")) == 2
    finally:
        done.set()
        holder.join(30)
    asyncio.run(store.close())
