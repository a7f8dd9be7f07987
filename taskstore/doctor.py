"""`taskstore doctor`: what keeps a queue table fast, checked, each problem with its fix.

A queue table is the most churned table most databases have: every task is inserted,
updated several times and deleted. It stays fast while finished rows are pruned, dead rows
vacuumed, and every index the claim relies on exists. The checks: missing indexes (the
CREATE INDEX that restores each), dead rows piling up and autovacuum off or held back by
an old transaction (PostgreSQL), free pages and a large write-ahead log (SQLite), finished
tasks past retention that no worker prunes, and the task table's storage options.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import inspect
from sqlalchemy.schema import CreateIndex

from taskstore.backends import health as fixes
from taskstore.backends.health import Health, TableHealth
from taskstore.backends.postgres import TUNE_TASKS
from taskstore.formatting import format_age
from taskstore.models.base import Base

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from taskstore.store import TaskStore

TASK_TABLE = "taskstore_tasks"
TABLES = sorted(name for name in Base.metadata.tables if name.startswith("taskstore_"))
DEAD_ROWS_AT = 10_000  # below this many dead rows, vacuum is not worth mentioning
DEAD_SHARE_AT = 0.2  # ... nor while they are under a fifth of the live rows
OLD_TRANSACTION_SECONDS = 600.0
SQLITE_FREE_SHARE_AT, SQLITE_FREE_BYTES_AT = 0.25, 64 * 2**20
SQLITE_WAL_BYTES_AT = 256 * 2**20
PRUNE_BACKLOG_AT = 10_000


@dataclasses.dataclass(frozen=True)
class Finding:
    level: Literal["ok", "warn"]
    check: str
    message: str
    fix: str | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    health: Health
    findings: list[Finding]

    @property
    def healthy(self) -> bool:
        return all(f.level == "ok" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "tables": [dataclasses.asdict(t) for t in self.health.tables],
            "findings": [dataclasses.asdict(f) for f in self.findings],
        }


async def examine(store: TaskStore) -> Report:
    """Read the database's state and judge it."""
    async with store.reading() as conn:
        health = await store.backend.health(conn, TABLES)
        missing = await _missing_indexes(conn)
    retention = store.settings.retention_seconds
    backlog = await store.count_purgeable(retention) if retention > 0 else None
    findings = [_indexes(missing), *_dead_rows(health), *_database(health)]
    findings += [_retention(backlog, retention), _tuning(health)]
    return Report(health, [f for f in findings if f is not None])


async def _missing_indexes(conn: AsyncConnection) -> list[str]:
    """CREATE INDEX statements for the indexes the models declare and the database lacks."""

    def look(sync: Any) -> list[str]:
        inspector = inspect(sync)
        present = set(inspector.get_table_names())
        wanted = []
        for name in TABLES:
            if name not in present:
                continue
            have = {ix["name"] for ix in inspector.get_indexes(name)}
            for index in sorted(Base.metadata.tables[name].indexes, key=lambda i: i.name or ""):
                if index.name not in have:
                    wanted.append(str(CreateIndex(index).compile(dialect=sync.dialect)).strip())
        return wanted

    return await conn.run_sync(look)


def _indexes(missing: list[str]) -> Finding:
    if not missing:
        return Finding("ok", "indexes", "every index the claim and the other queries use exists")
    return Finding(
        "warn",
        "indexes",
        f"{len(missing)} index(es) missing: claims and purges scan the whole table",
        ";\n".join(missing) + ";",
    )


def _dead_rows(health: Health) -> list[Finding]:
    found = []
    for table in health.tables:
        if table.dead_rows is None or table.dead_rows < DEAD_ROWS_AT:
            continue
        if table.dead_rows < DEAD_SHARE_AT * max(table.live_rows, 1):
            continue
        found.append(
            Finding(
                "warn",
                "dead rows",
                f"{table.name}: {table.dead_rows:,} dead rows beside {table.live_rows:,} live"
                f" (last vacuum: {_vacuumed(table)}); every scan walks past them",
                fixes.PG_VACUUM.format(table=table.name),
            )
        )
    if not found and any(t.dead_rows is not None for t in health.tables):
        found.append(Finding("ok", "dead rows", "no table carries many dead rows"))
    return found


def _vacuumed(table: TableHealth) -> str:
    if table.last_vacuum is None:
        return "never"
    return format_age((dt.datetime.now(dt.UTC) - table.last_vacuum).total_seconds()) + " ago"


def _database(health: Health) -> list[Finding]:
    found = []
    if health.autovacuum is False:
        found.append(
            Finding(
                "warn",
                "autovacuum",
                "autovacuum is off: dead rows of finished and retried tasks are never removed",
                fixes.PG_AUTOVACUUM_ON,
            )
        )
    seconds = health.oldest_transaction_seconds
    if seconds is not None and seconds > OLD_TRANSACTION_SECONDS:
        found.append(
            Finding(
                "warn",
                "old transaction",
                f"a transaction has been open for {format_age(seconds)}: no vacuum can remove"
                " rows that died since it began",
                fixes.PG_FIND_OLD_TRANSACTIONS,
            )
        )
    if health.file_bytes is not None:
        found += _sqlite_space(health)
    return found


def _sqlite_space(health: Health) -> list[Finding]:
    found = []
    free, size = health.free_bytes or 0, health.file_bytes or 0
    if free > SQLITE_FREE_BYTES_AT and free > SQLITE_FREE_SHARE_AT * size:
        found.append(
            Finding(
                "warn",
                "free pages",
                f"{_mb(free)} of the {_mb(size)} file is free pages (rows deleted since)",
                fixes.SQLITE_VACUUM,
            )
        )
    if (health.wal_bytes or 0) > SQLITE_WAL_BYTES_AT:
        found.append(
            Finding(
                "warn",
                "write-ahead log",
                f"the write-ahead log is {_mb(health.wal_bytes or 0)}: a long reader keeps"
                " it from being checkpointed",
                fixes.SQLITE_CHECKPOINT,
            )
        )
    if not found:
        found.append(Finding("ok", "space", f"{_mb(size)} file, {_mb(free)} free pages"))
    return found


def _mb(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


def _retention(backlog: int | None, retention_seconds: float) -> Finding:
    if backlog is None:  # TASKSTORE_RETENTION=0: the history is kept on purpose
        return Finding("ok", "retention", "finished tasks are kept (TASKSTORE_RETENTION=0)")
    if backlog < PRUNE_BACKLOG_AT:
        return Finding("ok", "retention", f"{backlog:,} finished task(s) past retention")
    age = format_age(retention_seconds)
    return Finding(
        "warn",
        "retention",
        f"{backlog:,} finished tasks are older than the retention ({age}): workers prune"
        " them only while they run, with the same TASKSTORE_RETENTION",
        f"taskstore purge --older-than {int(retention_seconds)}s --yes",
    )


def _tuning(health: Health) -> Finding | None:
    tasks = next((t for t in health.tables if t.name == TASK_TABLE), None)
    if tasks is None or health.autovacuum is None:  # SQLite has no storage options
        return None
    if any(option.startswith("fillfactor=") for option in tasks.options):
        return Finding("ok", "table options", ", ".join(tasks.options))
    return Finding(
        "warn",
        "table options",
        f"{TASK_TABLE} has no fillfactor: its updates cannot stay on their page (HOT),"
        " so every status change also writes every index",
        TUNE_TASKS + ";",
    )
