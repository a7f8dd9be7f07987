"""One blocking task store per database URL, shared by every thread of the process.

Django keeps a backend instance per thread; the stores live here instead, so a process
holds one connection pool (and one event-loop thread) per task database, not per thread.
"""

from __future__ import annotations

import threading

from taskstore.background import BackgroundLoop
from taskstore.store import TaskStore
from taskstore.sync import SyncTaskStore

_stores: dict[str, SyncTaskStore] = {}
_lock = threading.Lock()


def shared_store(url: str) -> SyncTaskStore:
    """The process's `SyncTaskStore` for `url`, opened on first use."""
    store = _stores.get(url)
    if store is not None:
        return store
    with _lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = SyncTaskStore(url)
    return store


def close_all() -> None:
    """Close every shared store; the next use opens a new one. Before Django creates or
    drops a database (its test runner): a connection left open to the test database
    would keep PostgreSQL from dropping it."""
    with _lock:
        closing = list(_stores.values())
        _stores.clear()
    for store in closing:
        store.close()


def migrate(url: str) -> None:
    """Bring the task database at `url` up to date (blocking; safe beside other migrators)."""
    loop = BackgroundLoop("taskstore-migrate")
    try:
        loop.call(_migrate, url)
    finally:
        loop.stop()


async def _migrate(url: str) -> None:
    store = TaskStore.from_url(url)
    try:
        await store.migrate(if_needed=True)
    finally:
        await store.close()
