"""SQLite backend: one writer at a time, made explicit.

- Every connection gets the configured pragmas (WAL, synchronous, busy_timeout,
  foreign_keys, cache size).
- The driver's implicit transaction handling is switched off and we emit BEGIN ourselves:
  ``BEGIN IMMEDIATE`` for any transaction that may write, so the write lock is taken up
  front and waits for ``busy_timeout`` instead of failing with "database is locked" when a
  deferred reader tries to upgrade; ``BEGIN`` (deferred) for read-only work.
- The claim is ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` inside that
  immediate transaction; no row locks are needed because the writer is alone.
- The database clock is ``strftime('%Y-%m-%d %H:%M:%f')`` padded to the microsecond format
  SQLAlchemy stores, so stored and computed times compare as strings in time order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    Text,
    bindparam,
    event,
    func,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import await_only

from taskstore.backends.health import Health, sqlite_health
from taskstore.backends.plans import Plans
from taskstore.backends.sqlite_direct import DirectWriter, connect, make_folder, set_pragmas
from taskstore.backends.sqlite_inline import InlineConnection, InlineUnits
from taskstore.backends.sqlite_turns import WriterTurns
from taskstore.errors import ConfigError, DatabaseUnavailable
from taskstore.settings import Settings, sqlite_file

_BEGIN_OPTION = "taskstore_sqlite_begin"
_BEGIN_MODES = {"IMMEDIATE": "BEGIN IMMEDIATE", "DEFERRED": "BEGIN"}
_CLOCK_FORMAT = "%Y-%m-%d %H:%M:%f000"
_JOURNAL_MODES = {"WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "OFF"}
_SYNC_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}


def _refuse_unopenable(path: Path) -> None:
    """Say why the file cannot be opened before the driver tries: a failed open leaves
    aiosqlite's thread answering a loop that may have closed, which prints a traceback.
    Nothing is created here: a missing folder is made at the first connection (see
    `sqlite_direct.make_folder`), so a store that refuses to open leaves none behind."""
    if path.is_dir():
        raise DatabaseUnavailable(
            f"cannot open the database file at {path}: it is a folder (name a file in it, "
            f"such as {path / 'taskstore.db'})"
        )
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise DatabaseUnavailable(
                f"cannot open the database file at {path}: this user may not read and write it"
            )
        return
    there = next(p for p in path.absolute().parents if p.exists())
    if not there.is_dir():
        raise DatabaseUnavailable(
            f"cannot create the SQLite database folder {path.parent}: {there} is a file"
        )
    if not os.access(there, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(
            f"cannot create the database file at {path}: this user may not write in {there}"
        )


def _checked(value: str, allowed: set[str], setting: str) -> str:
    mode = value.strip().upper()
    if mode not in allowed:
        raise ConfigError(f"{setting} must be one of {sorted(allowed)}, got {value!r}")
    return mode


def _json_value(value: Any) -> Any:
    """Datetimes in the text form SQLAlchemy stores (UTC), so they compare as stored."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


class SQLiteBackend:
    """The embedded default."""

    name = "sqlite"
    url_options_taken: tuple[str, ...] = ()
    render_as_batch = True  # ALTER TABLE is limited: alembic rebuilds tables instead
    read_options: dict[str, Any] = {_BEGIN_OPTION: "DEFERRED"}
    # empty: every statement still runs in its own BEGIN IMMEDIATE transaction, because an
    # autocommit UPDATE can fail to upgrade its read lock ("database is locked")
    statement_options: dict[str, Any] = {}
    transaction_options: dict[str, Any] = {}
    reads_on_link: bool = False  # a read must not wait for the link's write lock
    writes_read_latest: bool = True
    connections_per_loop: bool = False  # aiosqlite's threads answer whichever loop asks
    lateral_joins: bool = False
    hash_aggregates: bool = False  # it sorts groups; DISTINCT keeps a small index

    def writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        # One writer at a time in this process, and across processes turns handed over by
        # the kernel: contending connections would wait in SQLite's busy handler, which
        # sleeps in 1-100 ms steps (see `sqlite_turns`).
        if self._turns is None:
            self._turns = WriterTurns(None)
        return self._turns()

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        path = sqlite_file(settings)
        if path is not None:
            _refuse_unopenable(path)
        return {"connect_args": {"timeout": settings.sqlite_busy_timeout_ms / 1000}}

    def configure_engine(self, engine: AsyncEngine, settings: Settings) -> None:
        pragmas = [
            "PRAGMA journal_mode="
            + _checked(
                settings.sqlite_journal_mode, _JOURNAL_MODES, "TASKSTORE_SQLITE_JOURNAL_MODE"
            ),
            "PRAGMA synchronous="
            + _checked(settings.sqlite_synchronous, _SYNC_MODES, "TASKSTORE_SQLITE_SYNCHRONOUS"),
            "PRAGMA busy_timeout=" + str(int(settings.sqlite_busy_timeout_ms)),
            "PRAGMA cache_size=" + str(int(settings.sqlite_cache_size)),
            "PRAGMA foreign_keys=ON",
        ]
        if settings.database_url.query.get("cache") == "shared":
            # A shared-cache database (Django's in-memory test database) locks tables
            # between the process's connections, and a reader that meets another's write
            # fails at once: the busy timeout does not apply. Reads then take no lock.
            pragmas.append("PRAGMA read_uncommitted=1")

        busy_s = settings.sqlite_busy_timeout_ms / 1000
        database = settings.database_url.database
        if database and database != ":memory:" and "mode=memory" not in str(settings.database_url):
            path = str(Path(database).expanduser())
            # Commits that wait for no disk flush may run on the event loop's own thread.
            inline = (
                settings.sqlite_journal_mode.upper() == "WAL"
                and settings.sqlite_synchronous.upper() in ("NORMAL", "OFF")
            )
            if inline:
                self._units = InlineUnits(functools.partial(connect, path, pragmas, 0))
            self._writer = DirectWriter(path, pragmas, busy_s, inline=self._units)
            self._turns = WriterTurns(path)
            if not settings.database_url.query.get("uri"):
                event.listen(engine.sync_engine, "do_connect", lambda *_: make_folder(path))
        self._engine = engine

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the driver; _on_begin emits BEGIN.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # Called in the engine's greenlet on the event loop: pause without blocking it.
            set_pragmas(cursor, pragmas, busy_s, lambda s: await_only(asyncio.sleep(s)))
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
            connection.exec_driver_sql(_BEGIN_MODES[mode])

    def now(self) -> ColumnElement[Any]:
        return func.strftime(_CLOCK_FORMAT, "now", type_=String)

    def now_plus(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        modifier = func.printf("%+.6f seconds", seconds)
        return func.strftime(_CLOCK_FORMAT, "now", modifier, type_=String)

    def claim_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        # The IMMEDIATE transaction already holds the only write lock: nothing to lock.
        return id_column.in_(picked.scalar_subquery())

    def pick_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        return id_column.in_(picked.scalar_subquery())

    def computed_once(self, select: Select[Any], name: str) -> FromClause:
        return select.subquery(name)  # an aggregate subquery: SQLite fills it once

    def ids_match(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return column.in_(bindparam(key, expanding=True))

    def none_of(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return column.not_in(bindparam(key, expanding=True))

    def batch_source(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        rows = func.json_each(bindparam(key, type_=Text)).table_valued("value")
        return select(
            *(
                type_coerce(func.json_extract(rows.c.value, f"$[{i}]"), type_).label(name)
                for i, (name, type_) in enumerate(columns)
            )
        ).subquery(key)

    def batch_lookup(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        return self.batch_source(key, columns)  # joined by rowid: one form serves both

    def missing_schema(self, error: DBAPIError) -> bool:
        return "no such table" in str(error.orig) or "no such column" in str(error.orig)

    def locked_out(self, error: DBAPIError) -> bool:
        text = str(error.orig)
        return "database is locked" in text or "database table is locked" in text

    def driver_closed(self, driver_connection: Any) -> bool:
        return False  # a file: nothing closes it behind our back

    def single_writer(self) -> DirectWriter | None:
        return self._writer

    def inline_units(self) -> InlineUnits | None:
        return self._units

    async def dispose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()  # waits at most for one statement in progress
        if self._units is not None:
            units, self._units = self._units, None
            units.close()
        if self._turns is not None:
            self._turns.close()

    async def rows(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        return (await self.rows_later(conn, statement, params))()

    async def rows_later(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Callable[[], Sequence[Sequence[Any]]]:
        if isinstance(conn, InlineConnection):
            plan = self._plans.get(statement, self._engine.dialect)
            if plan is not None:
                # JSON and datetimes are parsed by the caller, after its unit: a second
                # worker process waits for the write lock meanwhile
                return functools.partial(plan.processed, conn.rows(plan, params))
        rows = await self._rows_now(conn, statement, params)
        return lambda: rows

    async def _rows_now(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        if isinstance(conn, DirectWriter):
            # Inserts return ids only: raw driver rows need no result processing.
            plan = self._plans.get(statement, self._engine.dialect) if statement.is_insert else None
            if plan is not None:
                return await conn.rows(plan, params)
            async with self._engine.begin() as pooled:  # needs SQLAlchemy at execution
                return (await pooled.execute(statement, params)).all()
        return (await conn.execute(statement, params)).all()

    def batch_values(
        self, key: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        encoded = [[_json_value(v) for v in row] for row in rows]
        return {key: json.dumps(encoded, separators=(",", ":"))}

    def batch_filter(self, id_column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return true()  # SQLite walks json_each and looks rows up by rowid already

    def returning_ids(self, insert: Any, id_column: Any, queue_column: Any) -> Any:
        return insert.returning(id_column)

    def json_from_text(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        # JSON columns are TEXT here; no cast (CAST AS JSON would apply numeric affinity).
        return expr

    def insert_ignoring_conflicts(
        self, table: Any, index_elements: list[str], index_where: Any = None
    ) -> Any:
        return sqlite_insert(table).on_conflict_do_nothing(
            index_elements=index_elements, index_where=index_where
        )

    def upsert(self, table: Any, index_elements: list[str], update: list[str]) -> Any:
        stmt = sqlite_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=index_elements, set_={c: stmt.excluded[c] for c in update}
        )

    def minute_bucket(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.strftime("%Y-%m-%d %H:%M:00", column)

    async def try_lock(self, conn: AsyncConnection, key: int) -> bool:
        return True  # the IMMEDIATE transaction already excludes every other writer

    def tune_tables(self, op: Any) -> None:
        return None  # pragmas are per connection (see configure_engine)

    def lock_migrations(self, connection: Any) -> None:
        # alembic's transaction began IMMEDIATE: concurrent migrators already queue here.
        return None

    #: no NOTIFY on SQLite: an idle worker looks for due tasks with a read every 20 ms
    #: (no write lock taken) and claims only when there is something to claim
    idle_poll_max_seconds = 1.0
    idle_probe_seconds: float | None = 0.02

    def __init__(self) -> None:
        self._turns: WriterTurns | None = None
        self._writer: DirectWriter | None = None
        self._units: InlineUnits | None = None
        self._engine: Any = None
        self._plans = Plans()

    notifies: bool = False

    async def listen(
        self, engine: AsyncEngine, wake: Callable[[str], None], *, endings: bool = False
    ) -> None:
        return None

    async def notify(self, conn: AsyncConnection, queues: Sequence[str]) -> None:
        return None  # idle SQLite workers poll with a short backoff instead

    async def announce_endings(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        return None  # waiters poll

    async def health(self, conn: AsyncConnection, tables: Sequence[str]) -> Health:
        return await sqlite_health(conn, tables)
