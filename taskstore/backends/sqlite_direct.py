"""Lone write statements on SQLite in one hand-off to a thread of their own.

Through SQLAlchemy and aiosqlite one `enqueue` costs about nine hand-offs between the
event loop and the driver's thread (pool checkout, BEGIN, execute, fetch, COMMIT, checkin
...), each a wake-up of both: far more than SQLite's own work. Here a statement compiled
once (`taskstore.backends.plans`) runs as one unit in a dedicated thread holding its own
connection: ``BEGIN IMMEDIATE``, the statement, its rows, ``COMMIT``, one hand-off each
way. The commit is the same as before (same pragmas, same synchronous setting), and the
caller hears back only after it.

Only statements that need nothing of SQLAlchemy at execution time take this path (others
get None from `compile_plan`, and the caller uses a pooled connection). Driver errors are
raised as SQLAlchemy raises them, so the store translates them the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from taskstore.backends.plans import Plan, compile_plan


class DirectWriter:
    """One thread, one connection, one write transaction per statement."""

    def __init__(self, path: str, pragmas: Sequence[str], busy_timeout_s: float) -> None:
        self._path = path
        self._pragmas = list(pragmas)
        self._timeout = busy_timeout_s
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "taskstore-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._plans: dict[int, Plan | None] = {}

    def plan(self, statement: Executable, dialect: Dialect) -> Plan | None:
        key = id(statement)
        if key not in self._plans:
            self._plans[key] = compile_plan(statement, dialect)
        return self._plans[key]

    async def rows(self, plan: Plan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement in its own write transaction; its rows once committed."""
        loop = asyncio.get_running_loop()
        args = plan.arguments(params)
        return await loop.run_in_executor(self._thread, self._unit, plan.sql, args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            for pragma in self._pragmas:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    def _unit(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
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
            if broken and self._conn is not None and "locked" not in str(exc):
                self._conn.close()  # the next unit opens a fresh one
                self._conn = None
            raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc

    def close(self) -> None:
        """Let a unit in progress finish, stop the thread, close the connection (from here:
        it works during interpreter shutdown too, where no new work may be scheduled)."""
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
