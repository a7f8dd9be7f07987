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

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    Text,
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

from taskstore.settings import Settings

NOTIFY_CHANNEL = "taskstore"
_MIGRATION_LOCK_KEY = 0x7461736B73746F  # "tasksto"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_MAX_NOTIFY_BYTES = 7_900


def notify_payload(queues: Sequence[str]) -> str:
    """Comma-separated queue names, bounded below PostgreSQL's 8,000-byte payload limit."""
    payload = ",".join(sorted(set(queues)))
    return payload if len(payload) <= _MAX_NOTIFY_BYTES else "*"


class PostgresBackend:
    """The production backend."""

    name = "postgresql"
    render_as_batch = False
    read_options: dict[str, Any] = {}

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

    def batch_rows(self, key: str) -> FromClause:
        return select(
            func.unnest(bindparam(key + "_ids", type_=ARRAY(BigInteger))).label("id"),
            func.unnest(bindparam(key + "_attempts", type_=ARRAY(Integer))).label("attempt"),
            func.unnest(bindparam(key + "_docs", type_=ARRAY(Text))).label("doc"),
        ).subquery("batch")

    def batch_params(self, key: str, rows: Sequence[tuple[int, int, str | None]]) -> dict:
        return {
            key + "_ids": [r[0] for r in rows],
            key + "_attempts": [r[1] for r in rows],
            key + "_docs": [r[2] for r in rows],
        }

    def json_from_text(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(expr, JSONB)

    def insert_skip_duplicates(self, table: Any, index_where: Any) -> Any:
        return pg_insert(table).on_conflict_do_nothing(
            index_elements=["dedup_key"], index_where=index_where
        )

    def lock_migrations(self, connection: Any) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})

    async def notify(self, conn: AsyncConnection, queues: Sequence[str]) -> None:
        await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL, "payload": notify_payload(queues)})
