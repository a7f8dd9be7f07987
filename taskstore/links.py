"""Link: one connection held across a hot loop's many short statements.

A worker's fetch and acknowledge loops each run thousands of single statements. Checking a
connection out of the pool for each (with a pre-ping) and wrapping it in BEGIN/COMMIT costs
three extra round trips per statement. A link keeps its connection and, where the backend
allows, runs each statement in autocommit (a single UPDATE ... RETURNING is atomic on its
own); on SQLite every use is still a ``BEGIN IMMEDIATE`` transaction. After a failure the
connection is dropped and the next use opens a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from taskstore.store import TaskStore


class Link:
    """A reconnecting connection for one loop; not shared between concurrent users."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._conn: AsyncConnection | None = None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._store.engine.connect()
            self._conn = await conn.execution_options(**self._store.backend.statement_options)
        return self._conn

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one atomic statement (or a short write transaction)."""
        async with self._store._translate():
            conn = await self._connection()
            try:
                if self._store.backend.statement_options:  # autocommit
                    yield conn
                    await conn.commit()  # ends SQLAlchemy's bookkeeping; nothing is sent
                else:
                    async with self._store.backend.writing(), conn.begin():
                        yield conn
            except BaseException:
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.invalidate()  # never hand a doubtful connection back
                raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
