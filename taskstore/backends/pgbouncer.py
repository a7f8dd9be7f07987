"""PostgreSQL through PgBouncer in transaction pooling mode (``TASKSTORE_PGBOUNCER=1``).

A server connection belongs to a client only for the length of one transaction, so
nothing may outlive one: no named prepared statement cached on a connection (the driver
gets a fresh name per statement and keeps none), no statement outside a transaction (a
prepare and its execution could reach two servers: every statement runs in BEGIN/COMMIT,
so the direct asyncpg path, which needs autocommit, is off), advisory locks only
transaction-scoped (already so), and no LISTEN: it goes to ``TASKSTORE_LISTEN_URL``, a
direct connection, and without one workers look for due tasks every 50 ms and waiters
poll.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from taskstore.backends.pg_socket import tcp_options, watch_dead_peers
from taskstore.backends.postgres import PostgresBackend, connect_args
from taskstore.settings import Settings


def _statement_name() -> str:
    return f"__taskstore_{uuid.uuid4().hex}__"


class PgBouncerBackend(PostgresBackend):
    """`PostgresBackend` with nothing kept on a server connection across transactions."""

    statement_options: dict[str, Any] = {}  # every statement in a transaction of its own
    transaction_options: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        self._listen_engine: AsyncEngine | None = None
        self.notifies = False
        self.idle_probe_seconds = 0.05

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        kwargs = super().engine_kwargs(settings)
        kwargs["connect_args"] = {
            **kwargs["connect_args"],
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _statement_name,
        }
        return kwargs

    def configure_engine(self, engine: AsyncEngine, settings: Settings) -> None:
        super().configure_engine(engine, settings)
        if settings.listen_url is not None:
            url = settings.listen_url
            self._listen_engine = create_async_engine(
                url.difference_update_query(self.url_options_taken),
                poolclass=NullPool,
                connect_args=connect_args(url),
            )
            watch_dead_peers(self._listen_engine, tcp_options(url))
            self.notifies = True
            self.idle_probe_seconds = None

    async def listen(
        self, engine: AsyncEngine, wake: Callable[[str], None], *, endings: bool = False
    ) -> None:
        if self._listen_engine is not None:
            await super().listen(self._listen_engine, wake, endings=endings)
