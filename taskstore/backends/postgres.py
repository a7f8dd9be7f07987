"""PostgreSQL backend: many workers on many hosts share one database.

- The claim locks candidate rows with ``FOR UPDATE SKIP LOCKED`` in a CTE, so concurrent
  claimers never wait for (or hand out) each other's rows.
- Batches travel as array parameters (``id = ANY(:ids)``, ``unnest``), one bound value per
  column whatever the batch size, so the statement text (and asyncpg's prepared statement)
  stays the same.
- Enqueues send one ``pg_notify`` per statement (not per row), delivered at commit.
- Concurrent migrators serialise on a transaction-scoped advisory lock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import anyio
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Select,
    String,
    all_,
    any_,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, DisconnectionError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.util import await_only

from taskstore.backends.health import Health, postgres_health
from taskstore.backends.pg_direct import DirectRunner
from taskstore.backends.pg_socket import OPTION_NAMES, tcp_options, watch_dead_peers
from taskstore.errors import ConfigError
from taskstore.logs import get_logger
from taskstore.settings import PG_DSN_OPTIONS, Settings

log = get_logger("taskstore.listen")
_LISTEN_PING_SECONDS = 5.0
_PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "taskstore_idle_since"

NOTIFY_CHANNEL = "taskstore"
ENDED_CHANNEL = "taskstore_ended"  # payload: ids of watched tasks that ended
_MIGRATION_LOCK_KEY = 0x7461736B73746F  # "tasksto"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_MAX_NOTIFY_BYTES = 7_900
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
TUNE_TASKS = (
    "ALTER TABLE taskstore_tasks SET (fillfactor = 70, "
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000)"
)


def notify_payload(queues: Sequence[str]) -> str:
    """Comma-separated queue names, bounded below PostgreSQL's 8,000-byte payload limit."""
    payload = ",".join(sorted(set(queues)))
    return payload if len(payload) <= _MAX_NOTIFY_BYTES else "*"


def connect_args(url: URL) -> dict[str, Any]:
    """asyncpg's connect arguments for libpq options of the URL that it has no name for."""
    name = url.query.get("application_name", "taskstore")
    args: dict[str, Any] = {"server_settings": {"application_name": name}}
    if "connect_timeout" in url.query:  # its value was checked with the URL's (settings)
        args["timeout"] = float(url.query["connect_timeout"])  # type: ignore[arg-type]
    # asyncpg reads these only from a connection string: hand them over as one, beside
    # the URL's other parts (passed as arguments, which take precedence).
    dsn = {option: _single(url, option) for option in PG_DSN_OPTIONS if option in url.query}
    if dsn:
        args["dsn"] = "postgresql://?" + urlencode(dsn, quote_via=quote)
    return args


def _single(url: URL, name: str) -> str:
    value = url.query[name]
    if not isinstance(value, str):
        raise ConfigError(f"{name} is given more than once in the database URL")
    return value


class PostgresBackend:
    """The production backend."""

    name = "postgresql"
    render_as_batch = False
    read_options: dict[str, Any] = {}
    # a single UPDATE ... RETURNING is atomic: no BEGIN/COMMIT round trips around it
    statement_options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    transaction_options: dict[str, Any] = {"isolation_level": "READ COMMITTED"}
    reads_on_link: bool = True
    writes_read_latest: bool = False  # a statement reads the snapshot taken at its start
    connections_per_loop: bool = True  # asyncpg's futures belong to the loop that connected
    lateral_joins: bool = True
    hash_aggregates: bool = True

    def __init__(self) -> None:
        self._direct = DirectRunner()

    def writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # row locks and SKIP LOCKED let writers overlap

    def missing_schema(self, error: DBAPIError) -> bool:
        # undefined_table / undefined_column naming one of ours
        return isinstance(error, ProgrammingError) and "taskstore_" in str(error.orig)

    def locked_out(self, error: DBAPIError) -> bool:
        return False  # row locks wait; only SQLite's single writer gives up after a timeout

    def driver_closed(self, driver_connection: Any) -> bool:
        return bool(driver_connection.is_closed())

    def single_writer(self) -> None:
        return None  # held autocommit links serve lone statements (`taskstore.links`)

    def inline_units(self) -> None:
        return None  # held autocommit links already cost one round trip per statement

    async def dispose(self) -> None:
        return None

    async def rows(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        return await self._direct.rows(conn, statement, params)

    async def rows_later(
        self, conn: Any, statement: Any, params: Mapping[str, Any]
    ) -> Callable[[], Sequence[Sequence[Any]]]:
        rows = await self._direct.rows(conn, statement, params)  # asyncpg decodes them
        return lambda: rows

    url_options_taken = ("application_name", "connect_timeout", *OPTION_NAMES, *PG_DSN_OPTIONS)

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        return {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_pre_ping": False,  # see configure_engine: a cheaper check of our own
            "connect_args": connect_args(settings.database_url),
        }

    def configure_engine(self, engine: AsyncEngine, settings: Settings) -> None:
        watch_dead_peers(engine, tcp_options(settings.database_url))
        if not settings.pool_pre_ping:
            return
        # SQLAlchemy's pre-ping wraps its probe in BEGIN/ROLLBACK here: three round trips
        # on every checkout. Ours costs nothing for a connection whose socket the driver
        # already saw close, and one round trip for one idle in the pool long enough for
        # the server to have gone away unseen; a dead one is swapped for a fresh one.
        pool_events = engine.sync_engine.pool

        @event.listens_for(pool_events, "checkin")
        def _on_checkin(dbapi_connection: Any, record: Any) -> None:
            record.info[_IDLE_SINCE] = time.monotonic()

        @event.listens_for(pool_events, "checkout")
        def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            driver = proxy.driver_connection
            if self.driver_closed(driver):
                raise DisconnectionError("pooled connection was closed")
            idle_since = record.info.get(_IDLE_SINCE)
            if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE_SECONDS:
                return  # new, or in use a moment ago
            try:
                await_only(driver.fetchrow(";"))
            except Exception as exc:
                raise DisconnectionError(f"pooled connection is dead: {exc}") from exc

    def now(self) -> ColumnElement[Any]:
        # The statement's start, not the transaction's (now()): a claim in a transaction
        # that first waited for its queue's row would otherwise record a start before the
        # end of the task whose completion let it in.
        return func.statement_timestamp()

    def now_plus(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        return self.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)

    def claim_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        # A CTE, not `IN (subquery)`: the planner may re-run a LIMITed IN-subquery.
        locked = picked.with_for_update(skip_locked=True).cte("picked")
        return id_column == locked.c.id

    def pick_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        return id_column == picked.cte("picked").c.id  # a CTE runs once

    def computed_once(self, select: Select[Any], name: str) -> FromClause:
        return select.cte(name).prefix_with("MATERIALIZED")

    def ids_match(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return column == any_(bindparam(key, type_=ARRAY(BigInteger)))

    def none_of(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return column != all_(bindparam(key, type_=ARRAY(String)))

    def batch_source(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        # one multi-argument unnest() walks the arrays in step: the cheapest row source
        arrays = [bindparam(f"{key}_{name}", type_=ARRAY(type_)) for name, type_ in columns]
        names = [name for name, _ in columns]
        return func.unnest(*arrays).table_valued(*names).render_derived(name=key)

    def batch_lookup(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        # The first column drives (unnest ... WITH ORDINALITY); the others are subscripts of
        # their arrays at that ordinal. Joined to the table this plans as a hash join on
        # every column (or a primary-key lookup), whatever the statistics say; with the
        # arrays side by side a generic plan nested-looped over the whole batch per row.
        (first, first_type), *rest = columns
        rows = (
            func.unnest(bindparam(f"{key}_{first}", type_=ARRAY(first_type)))
            .table_valued(first, with_ordinality="i")
            .render_derived(name=f"{key}_rows")
        )
        return select(
            rows.c[first].label(first),
            *(
                Grouping(bindparam(f"{key}_{name}", type_=ARRAY(type_)))[rows.c.i].label(name)
                for name, type_ in rest
            ),
        ).subquery(key)

    def batch_values(
        self, key: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for i, (name, _) in enumerate(columns):
            values = [row[i] for row in rows]
            # A column of NULLs travels as one NULL array: unnest() pads it with NULLs, and
            # asyncpg has nothing to encode (max_attempts, run_at and delay, usually).
            params[f"{key}_{name}"] = None if all(v is None for v in values) else values
        return params

    def batch_filter(self, id_column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        # Without it the planner hashes every row the worker holds for each batch.
        return id_column == any_(bindparam(f"{key}_id", type_=ARRAY(BigInteger)))

    def returning_ids(self, insert: Any, id_column: Any, queue_column: Any) -> Any:
        # NOTIFY inside the INSERT statement: no extra round trip, and PostgreSQL folds
        # identical notifications of one transaction into one, so it is one per queue.
        inserted = insert.returning(id_column, queue_column).cte("inserted")
        return select(inserted.c.id, func.pg_notify(NOTIFY_CHANNEL, inserted.c.queue))

    def json_from_text(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(expr, JSONB)

    def insert_ignoring_conflicts(
        self, table: Any, index_elements: list[str], index_where: Any = None
    ) -> Any:
        return pg_insert(table).on_conflict_do_nothing(
            index_elements=index_elements, index_where=index_where
        )

    def upsert(self, table: Any, index_elements: list[str], update: list[str]) -> Any:
        stmt = pg_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=index_elements, set_={c: stmt.excluded[c] for c in update}
        )

    def minute_bucket(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.date_trunc("minute", column)

    async def try_lock(self, conn: AsyncConnection, key: int) -> bool:
        result = await conn.execute(_TRY_LOCK, {"key": key})
        return bool(result.scalar_one())

    def tune_tables(self, op: Any) -> None:
        # Every task row is updated several times: leave room on each page so updates stay
        # HOT (no index churn), and vacuum the churned table far sooner than the defaults.
        op.execute(text(TUNE_TASKS))

    def lock_migrations(self, connection: Any) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})

    #: with NOTIFY waking idle workers, polling is only the fallback
    idle_poll_max_seconds = 2.0
    idle_probe_seconds: float | None = None  # NOTIFY wakes idle workers; no probing

    notifies: bool = True

    async def listen(
        self, engine: AsyncEngine, wake: Callable[[str], None], *, endings: bool = False
    ) -> None:
        """Forever: LISTEN on one dedicated connection, calling `wake(payload)` per NOTIFY.

        After every (re)connect `wake("*")` runs once, since notifications sent while we
        were away are lost. A dropped connection is noticed by a periodic ping and replaced.
        """
        delay = 0.1
        while True:
            began, connected = time.monotonic(), False
            try:
                async with engine.connect() as conn:
                    connected = True
                    try:
                        await self._listen_on(conn, wake, endings)
                    finally:
                        # It listens, and a failure was the driver's, unseen by SQLAlchemy:
                        # never hand this connection back to the pool.
                        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                            await conn.invalidate()
            except Exception as exc:  # connection lost or server down: reconnect with backoff
                if time.monotonic() - began > _LISTEN_PING_SECONDS:
                    delay = 0.1  # it had been up: this is a new outage
                # The driver's own first line: SQLAlchemy's wrapper adds a class and a link.
                orig = getattr(exc, "orig", None) or exc
                error = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]
                if connected:
                    log.warning("LISTEN connection lost; reconnecting", error=error)
                else:
                    log.warning("LISTEN connection failed; trying again", error=error)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _listen_on(
        self, conn: AsyncConnection, wake: Callable[[str], None], endings: bool
    ) -> None:
        raw = (await conn.get_raw_connection()).driver_connection
        channel = ENDED_CHANNEL if endings else NOTIFY_CHANNEL
        await raw.add_listener(channel, lambda *args: wake(args[-1]))
        wake("*")
        while True:
            await anyio.sleep(_LISTEN_PING_SECONDS)
            with anyio.fail_after(_LISTEN_PING_SECONDS):
                await raw.execute("SELECT 1")

    async def notify(self, conn: AsyncConnection, queues: Sequence[str]) -> None:
        await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL, "payload": notify_payload(queues)})

    async def announce_endings(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        # A payload holds under 8,000 bytes: 500 ids of up to 15 digits each.
        for start in range(0, len(ids), 500):
            payload = ",".join(map(str, ids[start : start + 500]))
            await conn.execute(_NOTIFY, {"channel": ENDED_CHANNEL, "payload": payload})

    async def health(self, conn: AsyncConnection, tables: Sequence[str]) -> Health:
        return await postgres_health(conn, tables)
