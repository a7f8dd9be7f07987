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
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Select,
    any_,
    bindparam,
    cast,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskstore.logs import get_logger
from taskstore.settings import Settings

log = get_logger("taskstore.listen")
_LISTEN_PING_SECONDS = 5.0

NOTIFY_CHANNEL = "taskstore"
_MIGRATION_LOCK_KEY = 0x7461736B73746F  # "tasksto"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_MAX_NOTIFY_BYTES = 7_900
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_TUNE_TASKS = text(
    "ALTER TABLE taskstore_tasks SET (fillfactor = 70, "
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000)"
)


def notify_payload(queues: Sequence[str]) -> str:
    """Comma-separated queue names, bounded below PostgreSQL's 8,000-byte payload limit."""
    payload = ",".join(sorted(set(queues)))
    return payload if len(payload) <= _MAX_NOTIFY_BYTES else "*"


class PostgresBackend:
    """The production backend."""

    name = "postgresql"
    render_as_batch = False
    read_options: dict[str, Any] = {}
    # a single UPDATE ... RETURNING is atomic: no BEGIN/COMMIT round trips around it
    statement_options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}

    def writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # row locks and SKIP LOCKED let writers overlap

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        return {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_pre_ping": settings.pool_pre_ping,
            "connect_args": {"server_settings": {"application_name": "taskstore"}},
        }

    def configure_engine(self, engine: AsyncEngine, settings: Settings) -> None:
        return None

    def now(self) -> ColumnElement[Any]:
        return func.now()

    def now_plus(self, seconds: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)

    def claim_where(self, id_column: ColumnElement[Any], picked: Select[Any]) -> ColumnElement[Any]:
        # A CTE, not `IN (subquery)`: the planner may re-run a LIMITed IN-subquery.
        locked = picked.with_for_update(skip_locked=True).cte("picked")
        return id_column == locked.c.id

    def ids_match(self, column: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        return column == any_(bindparam(key, type_=ARRAY(BigInteger)))

    def batch_source(self, key: str, columns: Sequence[tuple[str, Any]]) -> FromClause:
        # unnest() calls side by side in one select list walk their arrays in step
        return select(
            *(
                func.unnest(bindparam(f"{key}_{name}", type_=ARRAY(type_))).label(name)
                for name, type_ in columns
            )
        ).subquery(key)

    def batch_values(
        self, key: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        return {f"{key}_{name}": [row[i] for row in rows] for i, (name, _) in enumerate(columns)}

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
        op.execute(_TUNE_TASKS)

    def lock_migrations(self, connection: Any) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})

    #: with NOTIFY waking idle workers, polling is only the fallback
    idle_poll_max_seconds = 2.0
    idle_probe_seconds: float | None = None  # NOTIFY wakes idle workers; no probing

    async def listen(self, engine: AsyncEngine, wake: Callable[[str], None]) -> None:
        """Forever: LISTEN on one dedicated connection, calling `wake(payload)` per NOTIFY.

        After every (re)connect `wake("*")` runs once, since notifications sent while we
        were away are lost. A dropped connection is noticed by a periodic ping and replaced.
        """
        delay = 0.1
        while True:
            try:
                async with engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    await raw.add_listener(NOTIFY_CHANNEL, lambda *args: wake(args[-1]))
                    wake("*")
                    delay = 0.1
                    while True:
                        await anyio.sleep(_LISTEN_PING_SECONDS)
                        with anyio.fail_after(_LISTEN_PING_SECONDS):
                            await raw.execute("SELECT 1")
            except Exception as exc:  # connection lost or server down: reconnect with backoff
                log.warning("LISTEN connection lost; reconnecting", error=str(exc).strip()[:200])
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def notify(self, conn: AsyncConnection, queues: Sequence[str]) -> None:
        await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL, "payload": notify_payload(queues)})
