"""The small protocol every database backend implements.

Business code (repositories, the store, the worker) speaks only this protocol; each
dialect's SQL lives in one module beside this one. Statements that differ between
databases are built here from pieces the repository hands over, so the *what* (which
status, which columns) stays in one place and only the *how* varies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, FromClause, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskstore.backends.health import Health
from taskstore.settings import Settings


class Backend(Protocol):
    """What differs between PostgreSQL and SQLite."""

    name: str
    #: alembic must rebuild tables instead of ALTERing them
    render_as_batch: bool
    #: execution options for read-only transactions (SQLite: a deferred BEGIN)
    read_options: dict[str, Any]
    #: execution options under which one statement runs atomically without BEGIN/COMMIT
    #: (empty: wrap each statement in a transaction)
    statement_options: dict[str, Any]
    #: execution options that turn a held autocommit connection back to transactions
    transaction_options: dict[str, Any]
    #: a link's reads may run on its own connection (else each takes a read transaction
    #: from the pool: SQLite, whose link writes under the write lock)
    reads_on_link: bool
    #: a write statement reads the latest committed rows (it holds the only write lock
    #: from its start), so what it counts cannot be overtaken by another writer
    writes_read_latest: bool
    #: the driver's connections belong to the event loop that opened them (a store used
    #: from a new loop, once the old one ended, opens new ones: `taskstore.loop_binding`)
    connections_per_loop: bool
    #: LATERAL joins: a subquery in FROM may name the tables joined before it
    lateral_joins: bool
    #: GROUP BY hashes its groups (else sorts every row first)
    hash_aggregates: bool

    def writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around each of the store's own write transactions in this process."""
        ...

    #: options of the database URL's query that `engine_kwargs` hands the driver itself
    #: (the engine gets the URL without them)
    url_options_taken: tuple[str, ...]

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        """Keyword arguments for `create_async_engine`."""
        ...

    def configure_engine(self, engine: AsyncEngine, settings: Settings) -> None:
        """Install per-connection hooks (pragmas, BEGIN mode)."""
        ...

    def now(self) -> ColumnElement[Any]:
        """The database's clock, as an expression."""
        ...

    def now_plus(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        """The database's clock plus `seconds` (a float expression)."""
        ...

    def claim_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        """The claim UPDATE's condition: `id_column` is one of the ids `picked` selects
        (locking them as the database needs)."""
        ...

    def pick_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        """`id_column` is one of the ids `picked` selects, the select run once (no row
        locks: for a claim whose queue is already locked, with window functions)."""
        ...

    def computed_once(self, select: Select[Any], name: str) -> FromClause:
        """`select` as a named subquery the database runs once per statement, however
        many rows it is joined to (not once per row, as a planner without statistics of
        a small table may choose)."""
        ...

    def ids_match(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        """`column` is one of the ids bound under `key` (a list of ints)."""
        ...

    def none_of(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        """`column` is none of the strings bound under `key` (a non-empty list)."""
        ...

    def batch_source(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        """A FROM of rows with the given (name, type) columns, all bound as one parameter
        per column (PostgreSQL arrays) or one in all (SQLite JSON), whatever the row count."""
        ...

    def batch_lookup(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        """Like `batch_source`, shaped to be joined to a table on its first column (an
        ``id``): the plan stays linear in the batch whatever the table's statistics."""
        ...

    def missing_schema(self, error: DBAPIError) -> bool:
        """Does this driver error say a taskstore table or column does not exist?"""
        ...

    def locked_out(self, error: DBAPIError) -> bool:
        """Does this driver error say another writer held the database too long?"""
        ...

    def driver_closed(self, driver_connection: Any) -> bool:
        """Has the driver seen this connection close? (No round trip.)"""
        ...

    def single_writer(self) -> Any | None:
        """Where lone write statements run without a pooled connection (SQLite: a thread
        of their own, see `sqlite_direct`), or None (`TaskStore.statement` then uses a
        link or a pooled transaction). `rows` accepts it as its connection."""
        ...

    def inline_units(self) -> Any | None:
        """Where a link's write transactions run on the event loop's thread (SQLite, see
        `sqlite_inline`), or None."""
        ...

    async def dispose(self) -> None:
        """Release what the backend holds besides the engine (at `TaskStore.close`)."""
        ...

    async def rows(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Every row of a hot-path statement (`conn` a connection or session), each
        indexable by position; the same as ``(await conn.execute(...)).all()``."""
        ...

    async def rows_later(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Callable[[], Sequence[Sequence[Any]]]:
        """`rows`, run now; call the result for the rows, once the transaction is over:
        values the driver leaves as text (SQLite's JSON, datetimes) are parsed then,
        outside the write lock."""
        ...

    def batch_values(
        self, key: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """The parameters that fill `batch_source(key, columns)` with `rows`."""
        ...

    def batch_filter(self, id_column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        """An extra condition that lets the planner look batch rows up by primary key
        (`key`'s batch must have an ``id`` column)."""
        ...

    def returning_ids(self, insert: Any, id_column: Any, queue_column: Any) -> Any:
        """The INSERT returning the new ids, waking listeners in the same statement where
        the database can (one notification per queue, delivered at commit)."""
        ...

    def json_from_text(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """Turn a JSON text expression into a value for a JSON column."""
        ...

    def insert_ignoring_conflicts(
        self, table: Any, index_elements: list[str], index_where: Any = None
    ) -> Any:
        """INSERT that silently skips rows clashing with a unique index."""
        ...

    def upsert(self, table: Any, index_elements: list[str], update: list[str]) -> Any:
        """INSERT that updates the `update` columns of an existing row instead."""
        ...

    def minute_bucket(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """`column` truncated to the minute."""
        ...

    async def try_lock(self, conn: AsyncConnection, key: int) -> bool:
        """Take a lock named `key` until the transaction ends; False if another holds it."""
        ...

    def tune_tables(self, op: Any) -> None:
        """Storage settings for the hot table, applied by a migration (PostgreSQL only)."""
        ...

    def lock_migrations(self, connection: Any) -> None:
        """Serialise concurrent migrators (called inside the migration transaction)."""
        ...

    #: longest pause between claims of an idle worker
    idle_poll_max_seconds: float
    #: between those, how often an idle worker looks for due tasks with a cheap read
    #: (None: never; notifications wake it instead)
    idle_probe_seconds: float | None

    #: can `listen` wake waiters (else they poll)
    notifies: bool

    async def listen(
        self, engine: AsyncEngine, wake: Callable[[str], None], *, endings: bool = False
    ) -> None:
        """Run forever calling `wake(queues)` when tasks are enqueued, or with `endings`
        `wake(ids)` when watched tasks end (return at once if the database cannot notify).
        `wake("*")` after every (re)connect: anything may have happened meanwhile."""
        ...

    async def notify(self, conn: AsyncConnection, queues: Sequence[str]) -> None:
        """Wake listening workers after an enqueue commits (no-op without LISTEN)."""
        ...

    async def announce_endings(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        """Wake waiters of these tasks once the transaction commits (no-op without LISTEN)."""
        ...

    async def health(self, conn: AsyncConnection, tables: Sequence[str]) -> Health:
        """Rows, dead rows, sizes and maintenance state of `tables` (`taskstore doctor`)."""
        ...
