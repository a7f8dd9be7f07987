"""Dialect-specific SQL, one module per database, behind the `Backend` protocol."""

from __future__ import annotations

from typing import Any

from taskstore.backends.base import Backend
from taskstore.backends.pgbouncer import PgBouncerBackend
from taskstore.backends.postgres import PostgresBackend
from taskstore.backends.sqlite import SQLiteBackend

_BACKENDS: dict[str, type[Backend]] = {"postgresql": PostgresBackend, "sqlite": SQLiteBackend}


def backend_for(backend_name: str, *, pgbouncer: bool = False) -> Backend:
    """The backend for a URL's backend name (``postgresql`` or ``sqlite``); with
    `pgbouncer`, PostgreSQL reached through PgBouncer in transaction pooling mode."""
    if pgbouncer and backend_name == "postgresql":
        return PgBouncerBackend()
    try:
        return _BACKENDS[backend_name]()
    except KeyError:
        raise ValueError(f"no taskstore backend for {backend_name!r}") from None


def backend_of(connection: Any) -> Backend:
    """The backend for a live (sync or async) connection or engine."""
    return backend_for(connection.dialect.name)


__all__ = [
    "Backend",
    "PgBouncerBackend",
    "PostgresBackend",
    "SQLiteBackend",
    "backend_for",
    "backend_of",
]
