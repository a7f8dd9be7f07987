"""Lone write statements on SQLite in one hand-off to a thread of their own.

Through SQLAlchemy and aiosqlite one `enqueue` costs about nine hand-offs between the
event loop and the driver's thread (pool checkout, BEGIN, execute, fetch, COMMIT, checkin
...), each a wake-up of both: far more than SQLite's own work. Here a statement compiled
once (`taskstore.backends.plans`) runs as one unit in a dedicated thread holding its own
connection: ``BEGIN IMMEDIATE``, the statement, its rows, ``COMMIT``, one hand-off each
way. The commit is the same as before (same pragmas, same synchronous setting), and the
caller hears back only after it.

Where a commit does not wait for the disk (WAL with ``synchronous`` NORMAL or OFF: the
defaults) the unit runs right here on the event loop's thread, with no hand-off at all: the
caller already holds this process's write turn and the file lock every writer of ours
takes (`sqlite_turns`), so SQLite's write lock is free and the unit takes tens of
microseconds. Its connection never waits (``busy_timeout=0``): should another program hold
the lock, SQLite says so at ``BEGIN IMMEDIATE``, before anything is written, and the unit
goes to the thread, which waits as every other connection does.

Only statements that need nothing of SQLAlchemy at execution time take this path (others
have no `Plan`, and the caller uses a pooled connection). Driver errors are
raised as SQLAlchemy raises them, so the store translates them the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from taskstore.backends.plans import Plan
from taskstore.backends.sqlite_inline import Busy, InlineUnits, busy
from taskstore.errors import DatabaseUnavailable

_PRAGMA_RETRY_S = 0.01


def make_folder(path: str) -> None:
    """Make the database file's folder if it is missing (before SQLite creates the file)."""
    folder = Path(path).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot create the SQLite database folder {folder}: {exc.strerror}"
        ) from None


def set_pragmas(
    cursor: Any, pragmas: Sequence[str], wait_s: float, pause: Callable[[float], None]
) -> None:
    """Run the store's pragmas on a new connection.

    Turning a new database file to WAL needs the file to itself, and SQLite refuses at
    once, without its busy wait, while another connection is opening it too: several
    workers starting together on a new file. So that refusal is met with `pause` and a new
    try, for up to `wait_s` (the busy timeout); once the file is in WAL the pragma is a
    no-op that takes no lock.
    """
    deadline = time.monotonic() + wait_s
    for pragma in pragmas:
        while True:
            try:
                cursor.execute(pragma)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                pause(_PRAGMA_RETRY_S)


def connect(path: str, pragmas: Sequence[str], timeout: float) -> sqlite3.Connection:
    """A connection of ours: autocommit (we say BEGIN), the store's pragmas, and with
    `timeout` 0 one that never waits for another connection's lock."""
    make_folder(path)
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    set_pragmas(conn, pragmas, timeout, time.sleep)  # this connection's own thread
    if timeout == 0:
        conn.execute("PRAGMA busy_timeout=0")
    return conn


class DirectWriter:
    """One thread, one connection, one write transaction per statement."""

    def __init__(
        self,
        path: str,
        pragmas: Sequence[str],
        busy_timeout_s: float,
        *,
        inline: InlineUnits | None = None,
    ) -> None:
        self._path = path
        self._pragmas = list(pragmas)
        self._timeout = busy_timeout_s
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "taskstore-sqlite-writer")
        self._conn: sqlite3.Connection | None = None  # the thread's
        # Where commits do not wait for the disk: units run right here, on the event loop
        # thread's write connection (the one the links' transactions use too).
        self._inline = inline

    async def rows(self, plan: Plan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement in its own write transaction; its rows once committed."""
        args = plan.arguments(params)
        if self._inline is not None:
            try:
                return self._unit(self._inline.raw(), plan.sql, args, give_way=True)
            except Busy:
                pass  # another program writes: wait for it in the thread
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._unit, None, plan.sql, args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path, self._pragmas, self._timeout)
        return self._conn

    def _unit(
        self,
        conn: sqlite3.Connection | None,
        sql: str,
        args: list[Any],
        *,
        give_way: bool = False,
    ) -> list[tuple[Any, ...]]:
        """BEGIN IMMEDIATE, the statement, COMMIT on `conn` (None: the thread's). With
        `give_way`, `Busy` (nothing written) if another connection holds the lock."""
        try:
            conn = conn or self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if give_way and busy(exc):
                    raise Busy from exc
                raise
            try:
                rows = conn.execute(sql, args).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return rows
        except sqlite3.Error as exc:
            broken = isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError)
            if broken and conn is not None and "locked" not in str(exc):
                self._forget(conn)  # the next unit opens a fresh one
            raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc

    def _forget(self, conn: sqlite3.Connection) -> None:
        if conn is self._conn:
            conn.close()
            self._conn = None
        elif self._inline is not None:
            self._inline.discard()

    def close(self) -> None:
        """Let a unit in progress finish, stop the thread, close the connection (from here:
        it works during interpreter shutdown too, where no new work may be scheduled)."""
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
