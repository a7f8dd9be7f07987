"""Which database Django's connection reaches, and whether it is the task database.

A task enqueued inside ``transaction.atomic()`` can commit or roll back with the caller's
data only when the task table lives in the database that transaction writes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from sqlalchemy.engine import URL

from taskstore.settings import PG_DSN_OPTIONS, normalize_url

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_DEFAULT_PORTS = {"postgresql": 5432}
#: Django's PostgreSQL OPTIONS (psycopg's connection options) that a task URL carries too:
#: the schema its tables live in, the SSL it asks for, and how it connects
_CARRIED_OPTIONS = (
    *PG_DSN_OPTIONS,
    *("sslmode", "application_name", "connect_timeout", "target_session_attrs", "passfile"),
    *("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"),
    "tcp_user_timeout",
)


def url_of(alias: str) -> str:
    """A taskstore URL for Django's database `alias` (SQLite file or PostgreSQL)."""
    connection = connections[alias]
    settings: dict[str, Any] = connection.settings_dict
    vendor = connection.vendor
    if vendor == "sqlite":
        return _sqlite_url(alias, str(settings.get("NAME") or ""))
    if vendor == "postgresql":
        port, host = settings.get("PORT"), settings.get("HOST") or None
        # A socket directory goes in the query: as the URL's host it would be read back
        # as part of the database's name.
        socket = host is not None and host.startswith("/")
        options = settings.get("OPTIONS") or {}
        query = {name: str(options[name]) for name in _CARRIED_OPTIONS if name in options}
        return URL.create(
            "postgresql",
            username=settings.get("USER") or None,
            password=settings.get("PASSWORD") or None,
            host=None if socket else host,
            port=int(port) if port else None,
            database=settings.get("NAME") or None,
            query={"host": host, **query} if socket else query,
        ).render_as_string(hide_password=False)
    raise ImproperlyConfigured(
        f"taskstore stores tasks in SQLite or PostgreSQL; Django's database {alias!r} is "
        f"{vendor}: give OPTIONS['database_url']"
    )


def _sqlite_url(alias: str, path: str) -> str:
    """A file's URL; a ``file:`` URI as one (Django's test runner names its in-memory test
    database ``file:memorydb_...?mode=memory&cache=shared``, which other connections of
    the process share). A private in-memory database cannot be shared."""
    if path.startswith("file:"):
        name, _, query = path.partition("?")
        options = dict(parse_qsl(query))
        if options.get("mode") != "memory" or options.get("cache") == "shared":
            return URL.create(
                "sqlite", database=name, query={**options, "uri": "true"}
            ).render_as_string()
    elif path and path != ":memory:":
        return URL.create("sqlite", database=str(Path(path).resolve())).render_as_string()
    raise ImproperlyConfigured(
        f"taskstore cannot share Django's private in-memory SQLite database {alias!r}: "
        "give OPTIONS['database_url'] or a database file"
    )


def same_database(task_url: str, alias: str) -> bool:
    """Do the task URL and Django's database `alias` name the same database?"""
    try:
        django_url = normalize_url(url_of(alias))
    except ImproperlyConfigured:
        return False
    return _identity(normalize_url(task_url)) == _identity(django_url)


def _identity(url: URL) -> tuple[Any, ...]:
    """What tells two URLs of one database apart (not the user, the driver or how they
    connect; but the server settings, which may name another schema)."""
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite":
        return (backend, str(Path(database).resolve()) if database else "")
    host = url.host or str(url.query.get("host") or "")
    local = host in _LOCAL_HOSTS or host.startswith("/")
    port = url.port or _DEFAULT_PORTS.get(backend)
    where = "local" if local else host.lower()
    return (backend, where, port, database, url.query.get("options") or "")
