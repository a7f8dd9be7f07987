"""Link: one connection held across a hot loop's many short statements.

A worker's fetch and acknowledge loops each run thousands of single statements. Checking a
connection out of the pool for each (with a pre-ping) and wrapping it in BEGIN/COMMIT costs
three extra round trips per statement. A link keeps its connection and, where the backend
allows, runs each statement in autocommit (a single UPDATE ... RETURNING is atomic on its
own); on SQLite every use is still a ``BEGIN IMMEDIATE`` transaction, run on the event
loop's thread where it can (`taskstore.backends.sqlite_inline`). After the driver
fails (or a use is cancelled mid-statement) the connection is dropped and the next use opens
a fresh one; a caller's own error only rolls its transaction back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskstore.backends import Backend
from taskstore.backends.sqlite_inline import NOT_READ, read_inline
from taskstore.translate import ErrorTranslator

R = TypeVar("R")


class Link:
    """A reconnecting connection for one loop. Concurrent users take turns on it (a
    worker's few occasional writers share its two links instead of opening more)."""

    def __init__(self, engine: AsyncEngine, backend: Backend, translate: ErrorTranslator) -> None:
        self._engine = engine
        self._backend = backend
        self._translate = translate
        self._conn: AsyncConnection | None = None
        self._turn = anyio.Lock(fast_acquire=True)

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(**self._backend.statement_options)
        return self._conn

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one atomic statement (or a short write transaction)."""
        async with self._use(several=False) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction of several statements on the held connection."""
        async with self._use(several=True) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read. Where statements run in autocommit, a lone SELECT on the held
        connection; through PgBouncer, a transaction on it (no connection more); on
        SQLite, whose link writes under the write lock, a read transaction of its own,
        which never waits for writers."""
        if self._backend.statement_options:
            async with self.statement() as conn:
                yield conn
            return
        if self._backend.reads_on_link:
            async with self.transaction() as conn:
                yield conn
            return
        async with self._translate(), self._engine.connect() as conn:
            conn = await conn.execution_options(**self._backend.read_options)
            async with conn.begin():
                yield conn

    async def read(self, read: Callable[[Any], Awaitable[R]]) -> R:
        """`read(conn)`, a lone read: on SQLite on the event loop's own thread where it
        can begin at once (`read_inline`; an idle worker reads every few milliseconds),
        else as `reading` does."""
        found = await read_inline(self._backend, self._translate, read)
        if found is not NOT_READ:
            return found
        async with self.reading() as conn:
            return await read(conn)

    @contextlib.asynccontextmanager
    async def _use(self, *, several: bool) -> AsyncIterator[AsyncConnection]:
        units = self._backend.inline_units()
        if units is not None:
            async with self._turn, self._translate(), self._backend.writing():
                with units.unit_or_none() as conn:
                    if conn is not None:  # else another program writes: wait for it below
                        yield conn
                        return
        autocommit = bool(self._backend.statement_options)
        async with self._turn, self._translate():
            conn = await self._connection()
            try:
                if autocommit and not several:
                    yield conn
                    if conn.in_transaction():  # SQLAlchemy's bookkeeping; nothing is sent
                        await conn.commit()
                    return
                if autocommit:  # switching costs no round trip on asyncpg
                    await conn.execution_options(**self._backend.transaction_options)
                try:
                    async with self._backend.writing(), conn.begin():
                        yield conn
                finally:
                    if autocommit and not conn.in_transaction():
                        await conn.execution_options(**self._backend.statement_options)
            except BaseException as exc:
                if _sound_after(exc) and not conn.in_transaction():
                    raise  # the caller's own error; the connection is as good as before
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.invalidate()  # never hand a doubtful connection back
                raise

    def seen_closed(self) -> bool:
        """Has the driver seen this link's connection close (killed while it sat idle)?"""
        conn = self._conn
        if conn is None:
            return False
        sync = conn.sync_connection
        if sync.closed or sync.invalidated:
            return True
        return self._backend.driver_closed(sync.connection.driver_connection)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _sound_after(exc: BaseException) -> bool:
    """Is the connection still good after `exc` left a use of it? Yes for the caller's
    own errors (a lease lost, a bad argument: the transaction rolled back); no for the
    driver's, a lost connection, or a cancellation mid-statement."""
    return isinstance(exc, Exception) and not isinstance(exc, DBAPIError | OSError)


class LinkPool:
    """A few links kept for one store's single statements (where they run in autocommit).

    A producer enqueueing one task at a time would otherwise pay, per call, a pool
    checkout, an isolation-level switch, a commit and a check-in: more Python time than
    the INSERT costs the server. A link comes back here after its statement; only a few
    are kept, and one idle for longer than a moment goes back to the engine's pool,
    whose checkout check then deals with a connection the server may have dropped.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        backend: Backend,
        translate: ErrorTranslator,
        keep: int = 2,
        idle_seconds: float = 1.0,
    ) -> None:
        self._new_link = lambda: Link(engine, backend, translate)
        self._keep = keep
        self._idle_seconds = idle_seconds
        self._idle: list[tuple[Link, float]] = []  # most recently used last

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        link = await self._take()
        try:
            async with link.statement() as conn:
                yield conn
        finally:
            await self._give_back(link)

    async def _take(self) -> Link:
        now = time.monotonic()
        while self._idle:
            link, since = self._idle.pop()
            if now - since <= self._idle_seconds and not link.seen_closed():
                return link
            await link.close()
        return self._new_link()

    async def _give_back(self, link: Link) -> None:
        if len(self._idle) < self._keep:
            self._idle.append((link, time.monotonic()))
        else:
            await link.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for link, _ in idle:
            await link.close()
