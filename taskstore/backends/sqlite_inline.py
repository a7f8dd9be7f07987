"""A worker's write transactions on SQLite, run on the event loop's own thread.

Through aiosqlite a transaction of one claim is four hand-offs to the driver's thread
(BEGIN, execute, fetch, COMMIT), and between them the event loop runs whatever else is
ready: dozens of handlers, while this process holds SQLite's write lock and a second
worker process waits for it. Where commits wait for no disk flush (see `sqlite_direct`),
a worker's links instead run each transaction here, on a synchronous SQLAlchemy connection
over one `sqlite3` connection of this thread: its statements run one after another without
the event loop in between, so the write lock is held for SQLite's own work and no longer.
Hot statements go further: compiled once (`plans`), they run on the driver's connection
without SQLAlchemy's execution and result layers, and where the caller can wait (a claim)
their values become Python's types only after the commit (`SQLiteBackend.rows_later`).

The caller holds this process's write turn and the file lock every writer of ours takes
(`sqlite_turns`), so ``BEGIN IMMEDIATE`` finds the lock free. The connection never waits
(``busy_timeout=0``): when another program holds the lock, `Busy` is raised before anything
is written, and the caller runs the transaction through aiosqlite instead.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from taskstore.backends.plans import Plan
from taskstore.jsoncodec import dumps_json, loads_json

if TYPE_CHECKING:
    from taskstore.backends.base import Backend

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class Busy(Exception):
    """Another connection holds SQLite's write lock; nothing was written."""


def busy(error: BaseException) -> bool:
    """Did SQLite refuse at once because another connection holds its lock? (`error` from
    the driver, or as SQLAlchemy wraps it.)"""
    error = getattr(error, "orig", None) or error
    return getattr(error, "sqlite_errorcode", None) in _BUSY_CODES


#: what `read_inline` returns where it did not read
NOT_READ: Any = object()


async def read_inline(
    backend: Backend,
    translate: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    read: Callable[[Any], Awaitable[Any]],
) -> Any:
    """`read(conn)` as a lone read on the event loop's own thread, without a pooled
    connection's hand-offs to the driver's thread; `NOT_READ` where the backend has no
    such reads (PostgreSQL) or SQLite could not begin one at once: read as any other."""
    if (units := backend.inline_units()) is None:
        return NOT_READ
    async with translate():
        try:
            with units.read() as conn:
                return await read(conn)
        except Busy:
            return NOT_READ


class InlineConnection:
    """The part of a connection the repositories use (``await conn.execute(...)``,
    ``conn.dialect``), over a synchronous one: every call completes before it returns,
    so awaiting it never lets the event loop run anything else."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self._conn.execute(statement, parameters, **options)

    async def get_raw_connection(self) -> Any:
        return self._conn.connection

    def rows(self, plan: Plan, params: Mapping[str, Any]) -> list[Any]:
        """The statement's rows as the driver gives them (see `Plan.processed`): no
        SQLAlchemy execution or result layer between the unit's BEGIN and its COMMIT."""
        args = plan.arguments(params)
        try:
            return self._conn.connection.driver_connection.execute(plan.sql, args).fetchall()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(plan.sql, args, exc, sqlite3.Error) from exc


class InlineUnits:
    """``with units.unit() as conn:`` one ``BEGIN IMMEDIATE`` ... ``COMMIT`` on this thread;
    ``with units.read() as conn:`` one lone read."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        # One connection for the process's writes (every unit runs under its write turn),
        # another for lone reads, which need no turn and must never see a write unit's
        # uncommitted rows.
        self._engine = _engine(connect)
        self._reads = _engine(connect)
        self._raw: sqlite3.Connection | None = None

        @event.listens_for(self._engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(self._reads, "begin")
        def _on_read(connection: Connection) -> None:
            pass  # no BEGIN: a lone SELECT is its own consistent read in autocommit

    @contextlib.contextmanager
    def unit_or_none(self) -> Iterator[InlineConnection | None]:
        """`unit`, or None while another program holds the write lock (nothing written)."""
        with contextlib.ExitStack() as stack:
            try:
                conn: InlineConnection | None = stack.enter_context(self.unit())
            except Busy:
                conn = None
            yield conn

    def raw(self) -> sqlite3.Connection:
        """The write connection itself, for a unit of precompiled SQL (`sqlite_direct`),
        which says its own BEGIN IMMEDIATE and COMMIT. (The engine keeps this one
        connection until `discard`; units never overlap, so the two uses never meet.)"""
        if self._raw is None:
            with self._engine.connect() as conn:
                self._raw = conn.connection.driver_connection
        return self._raw

    @contextlib.contextmanager
    def read(self) -> Iterator[InlineConnection]:
        """One SELECT of a few rows; `Busy` if SQLite cannot begin the read at once."""
        with self._reads.connect() as conn:
            try:
                yield InlineConnection(conn)
            except OperationalError as exc:
                if busy(exc):
                    raise Busy from exc
                raise
            finally:
                conn.rollback()

    @contextlib.contextmanager
    def unit(self) -> Iterator[InlineConnection]:
        with self._engine.connect() as conn:
            try:
                conn.begin()
            except OperationalError as exc:
                if busy(exc):
                    raise Busy from exc
                self._drop(exc)
                raise
            try:
                yield InlineConnection(conn)
                conn.commit()
            except BaseException as exc:
                with contextlib.suppress(DBAPIError):
                    conn.rollback()
                if isinstance(exc, DBAPIError):
                    self._drop(exc)
                raise

    def _drop(self, exc: DBAPIError) -> None:
        """A driver error other than a busy lock: the next unit opens a fresh connection."""
        if "locked" not in str(exc.orig):
            self.discard()

    def discard(self) -> None:
        """Close the write connection after a driver error; the next unit opens a fresh one."""
        self._raw = None
        self._engine.dispose()

    def close(self) -> None:
        self._raw = None
        self._engine.dispose()
        self._reads.dispose()


def _engine(connect: Callable[[], sqlite3.Connection]) -> Engine:
    """A synchronous engine over one connection made by `connect`."""
    return create_engine(
        "sqlite://",
        creator=connect,
        poolclass=StaticPool,
        pool_reset_on_return=None,
        json_serializer=dumps_json,  # as the store's own engine: strict JSON
        json_deserializer=loads_json,
        hide_parameters=True,
    )
