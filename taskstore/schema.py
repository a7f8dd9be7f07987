"""Migrations run from code: locate the scripts, upgrade, and check the schema is current.

The scripts live in the repository's top-level ``migrations/``; the wheel carries them as
``taskstore/_migrations``, so `taskstore migrate` works from any directory. Our version
table has its own name, so an application's own alembic history can share the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, inspect, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from taskstore.errors import DatabaseRefused, SchemaOutOfDate, TaskStoreError

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "taskstore_alembic_version"
#: Every revision taskstore ships, oldest first; the last is the head the code needs.
#: (A test checks this against the scripts, so the check below needs no alembic import:
#: alembic costs a third of a second at every CLI start.)
REVISIONS: tuple[str, ...] = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
    "0015",
    "0016",
)
HEAD = REVISIONS[-1]
#: a PostgreSQL search_path none of whose schemas exists: said when reading and creating
NO_SCHEMA = "has no schema to create taskstore's tables in"
NO_SCHEMA_HINT = (
    "does the URL's search_path name a schema that does not exist? Create it first "
    "(CREATE SCHEMA ...)"
)
_VERSIONS = table(VERSION_TABLE, column("version_num"))


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed package, else the repo root."""
    packaged = Path(__file__).parent / "_migrations"
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(extra_version_dirs: tuple[str, ...] = ()) -> Config:
    """An alembic Config built in code (no alembic.ini needed)."""
    from alembic.config import Config

    for folder in extra_version_dirs:
        if not Path(folder).is_dir():
            raise TaskStoreError(
                f"no version folder {folder!r} (from {Path.cwd()}): pass your application's "
                "revisions folder, absolute or relative to the current directory"
            )
    cfg = Config()
    location = migrations_dir()
    cfg.set_main_option("script_location", str(location))
    locations = [str(location / "versions"), *extra_version_dirs]
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    return cfg


async def current_revisions(engine: AsyncEngine, read_options: dict[str, Any]) -> frozenset[str]:
    """The revisions recorded in the database (empty if taskstore never migrated it)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**read_options)
        try:
            rows = await conn.execute(select(_VERSIONS.c.version_num))
        except DBAPIError:  # no version table: never migrated
            return frozenset()
        return frozenset(r[0] for r in rows)


async def check_schema(engine: AsyncEngine, read_options: dict[str, Any]) -> None:
    """Raise `SchemaOutOfDate` unless the database is at (or beyond) the code's head."""
    current = await current_revisions(engine, read_options)
    if not current:
        if engine.dialect.default_schema_name is None:  # read at connect: current_schema()
            raise DatabaseRefused(f"the database {NO_SCHEMA}: {NO_SCHEMA_HINT}")
        raise SchemaOutOfDate("the database has no taskstore schema yet: run `taskstore migrate`")
    if HEAD in current:
        return
    if current <= set(REVISIONS):
        raise SchemaOutOfDate(
            f"the database schema is behind (at {', '.join(sorted(current))}, code needs "
            f"{HEAD}): run `taskstore migrate`"
        )
    # A revision we do not know: an application's own (stacked on one of ours, which may
    # be older than our head), or a newer taskstore's. Our tables tell which of ours ran.
    async with engine.connect() as conn:
        conn = await conn.execution_options(**read_options)
        missing = await conn.run_sync(missing_columns)
    if missing:
        raise SchemaOutOfDate(_behind_beneath(current, missing))


def missing_columns(sync_conn: Any) -> list[str]:
    """Columns of taskstore's own tables that the code needs and the database lacks."""
    from taskstore.models import Base

    inspector = inspect(sync_conn)
    names = set(inspector.get_table_names())
    missing = []
    for table_ in Base.metadata.sorted_tables:
        if not table_.name.startswith("taskstore_"):
            continue  # the result tables, which an application extends
        if table_.name not in names:
            missing.append(table_.name)
            continue
        have = {c["name"] for c in inspector.get_columns(table_.name)}
        missing += [f"{table_.name}.{c.name}" for c in table_.columns if c.name not in have]
    return missing


def _behind_beneath(current: frozenset[str], missing: list[str]) -> str:
    """Why a database with revisions we do not know is behind our head."""
    unknown = ", ".join(sorted(current - set(REVISIONS)))
    return (
        f"the database is at revision {unknown}, which this taskstore does not know, and "
        f"lacks {missing[0]} of taskstore's revision {HEAD}: migrate with your application's "
        "migrations, which must include taskstore's (taskstore.schema.upgrade with "
        "extra_version_dirs)"
    )


async def _alembic(
    engine: AsyncEngine, command_name: str, version_dirs: tuple[str, ...], *args: Any, **kw: Any
) -> Any:
    """Run an alembic command on one connection of `engine`, in one transaction."""
    from alembic import command

    def run(sync_conn: Any) -> Any:
        cfg = alembic_config(version_dirs)
        cfg.attributes["connection"] = sync_conn
        return getattr(command, command_name)(cfg, *args, **kw)

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def upgrade(
    engine: AsyncEngine, revision: str = "heads", extra_version_dirs: tuple[str, ...] = ()
) -> None:
    """Apply pending migrations (ours, and an application's in `extra_version_dirs`).

    Safe when several processes do it at once: the migration transaction is serialised by
    the database (an advisory lock on PostgreSQL, the write lock on SQLite).
    """
    if not extra_version_dirs:
        async with engine.connect() as conn:
            if await conn.run_sync(_refuse_unknown_revisions):
                return
    await _alembic(engine, "upgrade", extra_version_dirs, revision)


def _refuse_unknown_revisions(sync_conn: Any) -> bool:
    """Alembic cannot upgrade from a revision it does not know: True when there is none
    of ours to apply beneath it, else say what to do."""
    # One read of the names: another migrator's first migration, committed meanwhile, is
    # seen whole (its tables with their version table) or not at all.
    names = set(inspect(sync_conn).get_table_names())
    if VERSION_TABLE not in names:
        _refuse_taken_names(names)
        return False
    current = frozenset(row[0] for row in sync_conn.execute(select(_VERSIONS.c.version_num)))
    if current <= set(REVISIONS):
        return False
    if missing := missing_columns(sync_conn):
        raise TaskStoreError(_behind_beneath(current, missing))
    return True  # a newer taskstore's revision, or an application's on ours: nothing to do


def _refuse_taken_names(names: set[str]) -> None:
    """A first migration into a database that already has tables of taskstore's names
    (an application's own ``video``, say; `names` are its tables) would stop half-way
    with a driver error."""
    from taskstore.models import Base

    ours = {
        mapper.local_table.name
        for mapper in Base.registry.mappers
        if mapper.class_.__module__.startswith("taskstore.models.")
    }
    taken = sorted(ours.intersection(names))
    if taken:
        raise TaskStoreError(
            f"cannot create taskstore's tables: the database already has {', '.join(taken)}, "
            "which taskstore did not create (give taskstore a database of its own, or "
            f"rename yours; its tables are {', '.join(sorted(ours))})"
        )


async def autogenerate(
    engine: AsyncEngine, message: str, version_dir: Path, extra_version_dirs: tuple[str, ...] = ()
) -> Path:
    """Write a revision for models added on top of taskstore's (e.g. an entity subclass).

    Import the modules that define them first; the revision goes into `version_dir`, your
    application's own folder, and stacks on taskstore's head.
    """
    from alembic.util import CommandError

    version_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (alembic's file work blocks too)
    dirs = (str(version_dir), *extra_version_dirs)
    try:
        script = await _alembic(
            engine,
            "revision",
            dirs,
            message=message,
            autogenerate=True,
            version_path=str(version_dir),
        )
    except (KeyError, CommandError) as exc:  # alembic's look-up of the database's revision
        if "not up to date" in str(exc):
            raise TaskStoreError(
                "cannot write a revision: the database is behind the version folders given "
                "(apply their revisions first: taskstore.schema.upgrade with "
                "extra_version_dirs)"
            ) from None
        raise TaskStoreError(
            f"cannot write a revision: the database is at a revision none of the version "
            f"folders given holds ({exc}): pass your application's folders in "
            "extra_version_dirs, as to upgrade"
        ) from None
    return Path(script.path)


async def downgrade(
    engine: AsyncEngine, revision: str, extra_version_dirs: tuple[str, ...] = ()
) -> None:
    """Step back to `revision` (an application's folders as for `upgrade`)."""
    await _alembic(engine, "downgrade", extra_version_dirs, revision)
