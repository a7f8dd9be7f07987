"""Migrations run from code: locate the scripts, upgrade, and check the schema is current.

The scripts live in the repository's top-level ``migrations/``; the wheel carries them as
``taskstore/_migrations``, so `taskstore migrate` works from any directory. Our version
table has its own name, so an application's own alembic history can share the database.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from taskstore.errors import SchemaOutOfDate

VERSION_TABLE = "taskstore_alembic_version"


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed package, else the repo root."""
    packaged = Path(__file__).parent / "_migrations"
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(extra_version_dirs: tuple[str, ...] = ()) -> Config:
    """An alembic Config built in code (no alembic.ini needed)."""
    cfg = Config()
    location = migrations_dir()
    cfg.set_main_option("script_location", str(location))
    locations = [str(location / "versions"), *extra_version_dirs]
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    return cfg


@functools.cache
def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _current(sync_conn: Any) -> frozenset[str]:
    context = MigrationContext.configure(sync_conn, opts={"version_table": VERSION_TABLE})
    return frozenset(context.get_current_heads())


async def check_schema(engine: AsyncEngine, read_options: dict[str, Any]) -> None:
    """Raise `SchemaOutOfDate` unless the database is at (or beyond) the code's head."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**read_options)
        current = await conn.run_sync(_current)
    heads = head_revisions()
    if not current:
        raise SchemaOutOfDate("the database has no taskstore schema yet: run `taskstore migrate`")
    if current & heads or _is_ahead(current):
        return
    raise SchemaOutOfDate(
        f"the database schema is behind (at {', '.join(sorted(current))}, code needs "
        f"{', '.join(sorted(heads))}): run `taskstore migrate`"
    )


def _is_ahead(current: frozenset[str]) -> bool:
    """A revision unknown to our scripts is an application's own, stacked on our head."""
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return not current <= known


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply pending migrations; safe when several processes do it at once."""

    def run(sync_conn: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(sync_conn: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
