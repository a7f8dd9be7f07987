"""Shared fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL tests need ``TASKSTORE_TEST_POSTGRES_URL`` (an admin URL; the suite creates
and drops its own database). Without it they are left out, and one summary line says how
many and why, unless ``TASKSTORE_TEST_REQUIRE_POSTGRES=1`` (set by CI): then they fail.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from taskstore import TaskStore

PG_ENV = "TASKSTORE_TEST_POSTGRES_URL"
REQUIRE_PG = os.environ.get("TASKSTORE_TEST_REQUIRE_POSTGRES") == "1"
TABLES = (
    "taskstore_tasks, media, video, transcript, caption, taskstore_workers, "
    "taskstore_periodic_ticks, taskstore_queues, taskstore_rate_slots, taskstore_task_deps, "
    "taskstore_task_attempts"
)

_PG_LEFT_OUT = pytest.StashKey[int]()
# The Django tests need Django 6 (Python 3.12+): they run in their own environment
# (`pytest tests/django`, see .ci/run); where Django is missing they are not collected.
collect_ignore = [] if importlib.util.find_spec("django") else ["django"]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(PG_ENV):
        return f"PostgreSQL tests: on ({PG_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({PG_ENV} is not set)"


def _needs_postgres(item: pytest.Item) -> bool:
    return item.get_closest_marker("postgres") is not None or "pg_admin_url" in getattr(
        item, "fixturenames", ()
    )


@pytest.hookimpl(trylast=True)  # after -k / -m: count only what would have run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a PostgreSQL server, leave its cases out (one summary line says how many
    and why) instead of reporting each one as skipped. CI sets the variable and, with
    TASKSTORE_TEST_REQUIRE_POSTGRES=1, wants them to fail instead: nothing changes then."""
    if os.environ.get(PG_ENV) or REQUIRE_PG:
        return
    left_out = [item for item in items if _needs_postgres(item)]
    if left_out:
        items[:] = [item for item in items if not _needs_postgres(item)]
        config.hook.pytest_deselected(items=left_out)
    config.stash[_PG_LEFT_OUT] = len(left_out)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    left_out = config.stash.get(_PG_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(f"PostgreSQL tests: {left_out} skipped ({PG_ENV} is not set)")


def _dsn(url: str) -> str:
    """A plain libpq-style DSN asyncpg accepts (no +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    store = TaskStore.from_url(url)
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if REQUIRE_PG:
            pytest.fail(f"{PG_ENV} must be set (TASKSTORE_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(f"PostgreSQL tests skipped: {PG_ENV} is not set")
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except Exception as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc}")
    return url


def create_pg_database(admin_url: str, *, migrate: bool = True) -> str:
    """A fresh database on the test server; the caller drops it with `drop_pg_database`."""
    name = f"taskstore_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(admin_url, name)
    if migrate:
        asyncio.run(_migrate(url))
    return url


def drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    url = create_pg_database(pg_admin_url)
    yield url
    drop_pg_database(pg_admin_url, url)


@pytest.fixture
def unmigrated_pg_database(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database of the test's own (no taskstore schema)."""
    url = create_pg_database(pg_admin_url, migrate=False)
    yield url
    drop_pg_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


def fresh_sqlite(template: Path, folder: Path) -> str:
    target = folder / f"{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on the backend under test."""
    if backend == "sqlite":
        return fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
    url = request.getfixturevalue("pg_database")
    asyncio.run(_admin(url, f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[TaskStore]:
    async with TaskStore.from_url(db_url) as opened:
        yield opened
