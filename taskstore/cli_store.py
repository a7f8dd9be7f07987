"""Opening the store for one `taskstore` command, and closing it again.

Commands that only look at (or change) existing tasks never create a database: on SQLite
a missing file is one line naming the absolute path it was looked for at. Only `migrate`
and `enqueue` may create it. Heavy modules (SQLAlchemy, the store) load here, on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskstore.cli_common import fail, run_guarded

if TYPE_CHECKING:
    from taskstore.settings import Settings
    from taskstore.store import TaskStore

R = TypeVar("R")


def command_settings(url: str | None) -> Settings:
    """The settings for `url` (None: the settings chain); a bad URL is one line, exit 2."""
    from taskstore.errors import TaskStoreError
    from taskstore.settings import Settings

    try:
        return Settings.from_env(url)
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)


def missing_database(settings: Settings) -> str | None:
    """Why an SQLite database file cannot be opened without creating it, or None."""
    from taskstore.settings import missing_sqlite_file

    return missing_sqlite_file(settings)


def require_database(settings: Settings) -> None:
    """Exit 1 with one line if the database is an SQLite file that does not exist."""
    problem = missing_database(settings)
    if problem is not None:
        fail(problem, 1)


def with_store(
    url: str | None,
    action: Callable[[TaskStore], Awaitable[R]],
    *,
    may_create: bool = False,
    interrupted_exit: int | None = None,
    **open_kw: Any,
) -> R:
    """Open the store, run `action` with it, close it; failures are one line. With
    `may_create`, a new SQLite file is created with its schema (auto-migrate allowing)."""
    settings = command_settings(url)
    missing = missing_database(settings)
    if missing is not None and not (may_create and settings.auto_migrate):
        fail(missing, 1)
    from taskstore.store import TaskStore

    async def go() -> R:
        store = TaskStore(settings)
        try:
            if missing is not None:  # not an empty file that no command can use
                await store.migrate()
            await store.open(**open_kw)
            return await action(store)
        finally:
            await store.close()

    return run_guarded(go, interrupted_exit=interrupted_exit)
