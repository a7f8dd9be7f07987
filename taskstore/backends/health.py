"""What `taskstore doctor` reads from the database's own bookkeeping, per dialect.

PostgreSQL: live and dead rows, sizes and the last vacuum from its statistics views,
the table options, whether autovacuum runs, and the oldest open transaction (it holds back
every vacuum). SQLite: rows, free pages (its dead space) and the write-ahead log's size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

# The fixes `taskstore doctor` prints: dialect SQL, so it is written here.
PG_VACUUM = "VACUUM (ANALYZE) {table};"
PG_AUTOVACUUM_ON = "ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();"
PG_FIND_OLD_TRANSACTIONS = (
    "SELECT pid, usename, application_name, xact_start, state, query FROM pg_stat_activity"
    " WHERE xact_start IS NOT NULL ORDER BY xact_start; then end one with"
    " SELECT pg_terminate_backend(<pid>);"
)
SQLITE_VACUUM = "stop the workers, then: sqlite3 <database file> 'VACUUM;'"
SQLITE_CHECKPOINT = "sqlite3 <database file> 'PRAGMA wal_checkpoint(TRUNCATE);'"


@dataclasses.dataclass(frozen=True)
class TableHealth:
    name: str
    live_rows: int
    dead_rows: int | None  # None where the database keeps no such count (SQLite)
    table_bytes: int | None
    index_bytes: int | None
    last_vacuum: dt.datetime | None = None
    options: tuple[str, ...] = ()  # storage options set on the table (fillfactor=70, ...)


@dataclasses.dataclass(frozen=True)
class Health:
    tables: list[TableHealth]
    autovacuum: bool | None = None  # None: not a PostgreSQL notion
    oldest_transaction_seconds: float | None = None  # another session's open transaction
    file_bytes: int | None = None  # SQLite: the database file
    free_bytes: int | None = None  # SQLite: pages on the free list
    wal_bytes: int | None = None  # SQLite: the write-ahead log


_PG_TABLES = text(
    "SELECT s.relname AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,"
    " pg_table_size(s.relid) AS table_bytes, pg_indexes_size(s.relid) AS index_bytes,"
    " greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum, c.reloptions AS options"
    " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.relname IN :names AND s.schemaname = current_schema()"
).bindparams(bindparam("names", expanding=True))
_PG_AUTOVACUUM = text("SELECT current_setting('autovacuum') = 'on'")
_PG_OLDEST = text(
    "SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL"
)


async def postgres_health(conn: AsyncConnection, tables: Sequence[str]) -> Health:
    rows = (await conn.execute(_PG_TABLES, {"names": list(tables)})).mappings().all()
    found = [
        TableHealth(
            r["name"],
            r["live"],
            r["dead"],
            r["table_bytes"],
            r["index_bytes"],
            r["last_vacuum"],
            tuple(r["options"] or ()),
        )
        for r in rows
    ]
    oldest = (await conn.execute(_PG_OLDEST)).scalar()
    return Health(
        sorted(found, key=lambda t: t.name),
        autovacuum=bool((await conn.execute(_PG_AUTOVACUUM)).scalar()),
        oldest_transaction_seconds=None if oldest is None else float(oldest),
    )


_SQLITE_FILE = text("SELECT file FROM pragma_database_list WHERE name = 'main'")
_SQLITE_PAGES = text("PRAGMA page_count")
_SQLITE_PAGE_SIZE = text("PRAGMA page_size")
_SQLITE_FREE = text("PRAGMA freelist_count")
_SQLITE_ROWS = {  # constant text per table: names are never formatted into SQL
    "taskstore_tasks": text("SELECT count(*) FROM taskstore_tasks"),
    "taskstore_task_deps": text("SELECT count(*) FROM taskstore_task_deps"),
    "taskstore_task_attempts": text("SELECT count(*) FROM taskstore_task_attempts"),
    "taskstore_workers": text("SELECT count(*) FROM taskstore_workers"),
    "taskstore_queues": text("SELECT count(*) FROM taskstore_queues"),
    "taskstore_rate_slots": text("SELECT count(*) FROM taskstore_rate_slots"),
    "taskstore_periodic_ticks": text("SELECT count(*) FROM taskstore_periodic_ticks"),
}


async def sqlite_health(conn: AsyncConnection, tables: Sequence[str]) -> Health:
    async def scalar(stmt: object) -> int:
        return int((await conn.execute(stmt)).scalar() or 0)  # type: ignore[call-overload]

    page = await scalar(_SQLITE_PAGE_SIZE)
    found = [
        TableHealth(name, await scalar(_SQLITE_ROWS[name]), None, None, None)
        for name in tables
        if name in _SQLITE_ROWS
    ]
    path = (await conn.execute(_SQLITE_FILE)).scalar() or ""
    return Health(
        found,
        file_bytes=await scalar(_SQLITE_PAGES) * page,
        free_bytes=await scalar(_SQLITE_FREE) * page,
        wal_bytes=_size(path + "-wal") if path else 0,
    )


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
