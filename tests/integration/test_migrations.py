"""Migrations: up/down/up on both backends, no drift from the models, safe concurrent
migrators, a clear error when the schema is behind, and a wheel that carries them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, event, inspect, table, update

from taskstore import SchemaOutOfDate, TaskStore, TaskStoreError
from taskstore.models import Base
from taskstore.schema import HEAD, REVISIONS, VERSION_TABLE, alembic_config, downgrade, upgrade
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """A database with no schema at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin, migrate=False)
    yield url
    drop_pg_database(admin, url)


def _tables(sync_conn) -> set[str]:
    return set(inspect(sync_conn).get_table_names())


def _drift(sync_conn) -> list:
    ctx = MigrationContext.configure(sync_conn, opts={"version_table": VERSION_TABLE})
    return compare_metadata(ctx, Base.metadata)


async def test_upgrade_downgrade_upgrade_round_trips(empty_db_url: str) -> None:
    store = TaskStore.from_url(empty_db_url)
    try:
        await upgrade(store.engine)
        async with store.engine.connect() as conn:
            assert {"taskstore_tasks", "media", "video"} <= await conn.run_sync(_tables)
        await downgrade(store.engine, "base")
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {VERSION_TABLE}
        await upgrade(store.engine)
        await store.open()  # schema check passes
        assert await store.enqueue("t.x") == 1
    finally:
        await store.close()


async def test_models_and_migrations_do_not_drift(empty_db_url: str) -> None:
    store = TaskStore.from_url(empty_db_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_drift) == []
    finally:
        await store.close()


async def test_opening_a_store_on_an_unmigrated_database_names_taskstore_migrate(
    empty_db_url: str,
) -> None:
    # SQLite: no file yet, and opening makes none; PostgreSQL: a database without tables
    with pytest.raises(SchemaOutOfDate, match="`taskstore migrate`"):
        async with TaskStore.from_url(empty_db_url):
            pass


async def test_opening_a_store_after_a_downgrade_says_the_schema_is_behind(
    empty_db_url: str,
) -> None:
    store = TaskStore.from_url(empty_db_url)
    try:
        await store.migrate()
        await downgrade(store.engine, "base")
        with pytest.raises(SchemaOutOfDate, match="taskstore migrate"):
            await store.open()
    finally:
        await store.close()


async def _stamp(url: str, revision: str, *, on: str = "heads") -> None:
    """Our revisions up to `on`, then `revision` recorded as if stacked on it (an
    application's own, or a newer taskstore's)."""
    versions = table(VERSION_TABLE, column("version_num"))
    store = TaskStore.from_url(url)
    try:
        await upgrade(store.engine, on)
        async with store.transaction() as conn:
            await conn.execute(update(versions).values(version_num=revision))
    finally:
        await store.close()


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "taskstore.cli", "--database-url", url, "migrate"]
    return subprocess.run(cli, capture_output=True, text=True, timeout=120)


def test_migrate_beside_a_revision_it_does_not_know_on_its_head_has_nothing_to_do(
    empty_db_url: str,
) -> None:
    """A newer taskstore's revision (a rolled-back deploy), or an application's own on
    our head: our tables are complete, so there is nothing to do, and it says why."""
    asyncio.run(_stamp(empty_db_url, "0999"))
    done = _migrate(empty_db_url)
    assert done.returncode == 0 and done.stdout.endswith(f" is at revision {HEAD}\n")
    assert done.stderr.strip().splitlines() == [
        "note: the database also holds revision 0999, which this taskstore does not know: a"
        " newer taskstore's, or your application's own (migrate those with your"
        " application's)"
    ]


async def test_a_revision_it_does_not_know_stacked_below_its_head_is_behind(
    empty_db_url: str,
) -> None:
    """An application's revision made on an older taskstore: taskstore's later ones are
    not applied, and nothing may run on that schema (a worker would loop on errors)."""
    await _stamp(empty_db_url, "aaaa0001", on=REVISIONS[-2])
    said = (
        "the database is at revision aaaa0001, which this taskstore does not know, and lacks "
        f"taskstore_[a-z_.]+ of taskstore's revision {HEAD}: migrate with your "
        "application's migrations"
    )
    store = TaskStore.from_url(empty_db_url)
    try:
        with pytest.raises(SchemaOutOfDate, match=said):
            await store.open()
    finally:
        await store.close()
    done = await asyncio.to_thread(_migrate, empty_db_url)
    assert done.returncode == 1 and done.stdout == ""
    assert re.match(f"taskstore: error: {said}", done.stderr), done.stderr
    assert done.stderr.count("\n") == 1


def test_a_first_migrate_beside_a_table_of_one_of_its_names_refuses_in_one_line(
    empty_db_url: str,
) -> None:
    """An application's own `video` table: nothing created, and no driver traceback."""

    async def make_theirs() -> None:
        store = TaskStore.from_url(empty_db_url)
        try:
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql("CREATE TABLE video (id INTEGER PRIMARY KEY)")
        finally:
            await store.close()

    async def tables() -> set[str]:
        store = TaskStore.from_url(empty_db_url)
        try:
            async with store.engine.connect() as conn:
                return await conn.run_sync(_tables)
        finally:
            await store.close()

    asyncio.run(make_theirs())
    cli = [sys.executable, "-m", "taskstore.cli", "--database-url", empty_db_url, "migrate"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        "taskstore: error: cannot create taskstore's tables: the database already has video, "
        "which taskstore did not create"
    )
    assert asyncio.run(tables()) == {"video"}


def test_the_schema_heads_constant_matches_the_migration_scripts() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    assert [r.revision for r in script.walk_revisions()][::-1] == list(REVISIONS)


def test_concurrent_migrators_all_succeed(empty_db_url: str) -> None:
    cli = [sys.executable, "-m", "taskstore.cli", "--database-url", empty_db_url, "migrate"]
    procs = [
        subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "is at revision" in out

    async def check() -> None:
        async with TaskStore.from_url(empty_db_url) as store:
            assert await store.enqueue("t.x") == 1

    asyncio.run(check())


async def test_a_migrator_reading_the_schema_while_another_commits_it_does_not_refuse(
    empty_db_url: str, backend: str
) -> None:
    """Workers of a first deploy start at once: one looks for tables of taskstore's names
    that taskstore did not create just as another commits the first migration, and must
    not take those for an application's own."""
    if backend == "sqlite":
        pytest.skip("on SQLite that look holds the write lock: no migration commits meanwhile")
    migrate = [sys.executable, "-m", "taskstore.cli", "--database-url", empty_db_url, "migrate"]
    migrated: list[int] = []

    def other_migrator_commits(*_: object) -> None:
        if not migrated:  # right after our first read of the schema
            migrated.append(subprocess.run(migrate, capture_output=True).returncode)

    store = TaskStore.from_url(empty_db_url)
    event.listen(store.engine.sync_engine, "after_cursor_execute", other_migrator_commits)
    try:
        await upgrade(store.engine)
    finally:
        await store.close()
    assert migrated == [0]
    async with TaskStore.from_url(empty_db_url) as store:
        assert await store.enqueue("t.x") == 1


def test_the_wheel_carries_the_migrations_and_migrates_from_any_directory(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("taskstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "taskstore/_migrations/env.py" in names
    assert any(n.startswith("taskstore/_migrations/versions/0001") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TASKSTORE_DATABASE_URL": ""}
    db = elsewhere / "w.db"
    code = (
        "import taskstore, sys; assert taskstore.__file__.startswith(sys.argv[1]), "
        "taskstore.__file__; from taskstore.cli import main; "
        "sys.argv = ['taskstore', '--database-url', sys.argv[2], 'migrate']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site), f"sqlite:///{db}"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"is at revision {HEAD}" in result.stdout


def test_a_user_entity_subclass_gets_an_autogenerated_revision_and_a_repository(
    empty_db_url: str, tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "tests.apps.extended", empty_db_url, str(versions)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("ok ")


async def test_a_version_folder_that_is_not_there_is_named(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Not alembic's later 'Can't locate revision' about a revision of that folder."""
    store = TaskStore.from_url(empty_db_url)
    try:
        for call in (
            upgrade(store.engine, extra_version_dirs=(str(tmp_path / "nope"),)),
            downgrade(store.engine, "base", extra_version_dirs=("nope/versions",)),
        ):
            with pytest.raises(TaskStoreError, match=r"no version folder '.*nope.*' \(from "):
                await call
    finally:
        await store.close()
