"""The store's connections: its engine, held links, transactions and lifecycle.

`TaskStore` builds its operations on these. Every way in checks first that the store is
open and on the event loop its connections belong to (`taskstore.loop_binding`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from taskstore import schema, validation
from taskstore.engine import create_engine, create_session_factory
from taskstore.errors import SchemaOutOfDate, StoreClosed
from taskstore.links import LinkPool
from taskstore.loop_binding import LoopBinding
from taskstore.repositories.flow import FlowStatements
from taskstore.repositories.tasks import TaskRepository
from taskstore.repositories.workers import WorkerRepository
from taskstore.settings import Settings, missing_sqlite_file, sqlite_file
from taskstore.translate import UNREACHABLE, ErrorTranslator
from taskstore.waiting import Waiters


class StoreConnections:
    """How a store reaches its database (see `TaskStore` for what it does there)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine, self.backend = create_engine(settings)
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(self.engine)
        self.tasks = TaskRepository(self.backend)
        self.worker_registry = WorkerRepository(self.backend)
        self.flow = FlowStatements(self.backend)
        self.translate = ErrorTranslator(settings.safe_url, self.backend, sqlite_file(settings))
        self._loop = LoopBinding(self.backend.connections_per_loop)
        # Single statements reuse held autocommit connections where the backend has them.
        statements = bool(self.backend.statement_options)
        self._links = LinkPool(self.engine, self.backend, self.translate) if statements else None
        self._waiters: Waiters | None = None
        self._closed = False

    async def _usable(self) -> None:
        """Refuse a closed store; drop connections opened on an event loop that has ended
        (see `loop_binding`)."""
        if self._closed:
            raise StoreClosed("this TaskStore is closed: open() it again, or make a new one")
        if self._loop.moved():
            if self._links is not None:  # an idle link goes back to the pool with no I/O
                await self._links.close()
            self.engine.sync_engine.dispose(close=False)
            self._waiters = None

    @classmethod
    def from_url(cls, url: str | None = None, env: Mapping[str, str] | None = None) -> Self:
        """A store for `url`, or for the configuration chain when `url` is None."""
        return cls(Settings.from_env(url, env))

    # -------------------------------------------------------------- lifecycle
    async def open(self, *, check_schema: bool = True) -> Self:
        """Connect once (clear error if unreachable) and check the schema is current.
        A closed store opens again."""
        self._closed = False
        await self._usable()
        if check_schema and (missing := missing_sqlite_file(self.settings)):
            raise SchemaOutOfDate(missing)  # before connecting: that would make an empty file
        try:
            async with self.engine.connect():
                pass
        except (DBAPIError, *UNREACHABLE) as exc:
            # Whatever stops the first connection, said as what it is (see `translate`).
            raise self.translate.at_connect(exc) from None
        if check_schema:
            async with self.translate():
                await schema.check_schema(self.engine, self.backend.read_options)
        return self

    async def close(self) -> None:
        """Release every connection; until `open` is called again, using the store raises
        `StoreClosed` (it would otherwise open connections nobody closes). Idempotent."""
        if self._closed:
            return
        await self._usable()
        self._closed = True
        if self._waiters is not None:
            await self._waiters.close()
        if self._links is not None:
            await self._links.close()
        await self.backend.dispose()
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        try:
            return await self.open()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def migrate(self, *, if_needed: bool = False) -> None:
        """Apply pending migrations (safe when several processes do it at once).

        With `if_needed`, a cheap version check comes first and alembic runs only when the
        schema is behind (a worker's start-up path).
        """
        await self._usable()
        async with self.translate():
            if if_needed:
                try:
                    await schema.check_schema(self.engine, self.backend.read_options)
                    return
                except SchemaOutOfDate:
                    pass
            await schema.upgrade(self.engine)

    # ----------------------------------------------------------- transactions
    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that commits on success."""
        await self._usable()
        async with self.translate(), self.backend.writing(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one atomic statement: autocommit where a lone statement is
        atomic (PostgreSQL: a held link, see `taskstore.links.LinkPool`), a short write
        transaction otherwise (SQLite)."""
        await self._usable()
        if self._links is not None:
            async with self._links.statement() as conn:
                yield conn
            return
        writer = self.backend.single_writer()
        if writer is not None:
            async with self.translate(), self.backend.writing():
                yield writer
            return
        async with (
            self.translate(),
            self.engine.connect() as conn,
            self.backend.writing(),
            conn.begin(),
        ):
            yield conn

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (never takes SQLite's write lock)."""
        await self._usable()
        async with self.translate(), self.engine.connect() as conn:
            conn = await conn.execution_options(**self.backend.read_options)
            async with conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def _write(self, session: AsyncSession | None) -> AsyncIterator[Any]:
        """The caller's session (joined, not committed) or a transaction of our own."""
        await self._usable()
        if session is not None:
            validation.check_session(session)
            async with self.translate():
                yield session
            return
        async with self.translate(), self.backend.writing():
            if (units := self.backend.inline_units()) is not None:  # SQLite: on this thread
                with units.unit_or_none() as inline:
                    if inline is not None:  # else another program writes: wait below
                        yield inline
                        return
            async with self.engine.begin() as conn:
                yield conn
