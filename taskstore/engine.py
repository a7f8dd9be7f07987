"""Engine and session factory: built on demand from `Settings`, never at import time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from taskstore.backends import Backend, backend_for
from taskstore.jsoncodec import dumps_json, loads_json
from taskstore.settings import Settings


def create_engine(settings: Settings) -> tuple[AsyncEngine, Backend]:
    """Create the async engine for `settings` and the backend that speaks its dialect."""
    backend = backend_for(settings.backend, pgbouncer=settings.pgbouncer)
    engine = create_async_engine(
        settings.database_url.difference_update_query(backend.url_options_taken),
        echo=settings.echo,
        json_serializer=dumps_json,
        json_deserializer=loads_json,
        hide_parameters=not settings.echo,
        **backend.engine_kwargs(settings),
    )
    backend.configure_engine(engine, settings)
    return engine, backend


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (lazy loads fail under asyncio)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
