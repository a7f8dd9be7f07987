"""A fresh, migrated database per scenario: a temporary SQLite file, or a ``bench_*``
PostgreSQL database created through the admin URL and dropped afterwards."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from taskstore import TaskStore

_BENCH_NAME = re.compile(r"bench_[0-9a-f]{12}")


@dataclasses.dataclass(frozen=True)
class BenchDatabase:
    """Where one scenario's tasks live, addressed for each client that needs it."""

    backend: str  # "sqlite" or "postgres"
    url: str  # for taskstore (TaskStore.from_url, TASKSTORE_DATABASE_URL)
    raw: str  # an asyncpg DSN, or the SQLite file path
    workdir: Path  # scratch space for this scenario: logs and marker files


def plain_dsn(url: str, database: str | None = None) -> str:
    """A libpq-style URL asyncpg accepts (no ``+driver``), optionally for another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(
    backend: str, postgres_url: str, scratch: Path
) -> AsyncIterator[BenchDatabase]:
    """A database with the taskstore schema at head, removed on exit."""
    workdir = scratch / secrets.token_hex(4)
    workdir.mkdir(parents=True)
    if backend == "sqlite":
        path = workdir / "bench.db"
        db = BenchDatabase("sqlite", "sqlite:///" + str(path), str(path), workdir)
        await migrate(db.url)
        yield db
        return
    name = "bench_" + secrets.token_hex(6)
    await _admin(postgres_url, "CREATE DATABASE " + _quoted(name))
    try:
        dsn = plain_dsn(postgres_url, name)
        db = BenchDatabase("postgres", dsn, dsn, workdir)
        await migrate(db.url)
        yield db
    finally:
        await _admin(postgres_url, "DROP DATABASE IF EXISTS " + _quoted(name) + " WITH (FORCE)")


async def migrate(url: str) -> None:
    """Bring the schema to head the way `taskstore migrate` does."""
    store = TaskStore.from_url(url)
    try:
        await store.migrate()
    finally:
        await store.close()


def _quoted(name: str) -> str:
    # Identifiers cannot be bound parameters; ours are generated, and checked anyway.
    if not _BENCH_NAME.fullmatch(name):
        raise ValueError(f"refusing unexpected database name {name!r}")
    return '"' + name + '"'


async def _admin(postgres_url: str, statement: str) -> None:
    conn = await asyncpg.connect(plain_dsn(postgres_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
