"""alembic environment for taskstore, async-aware.

Called two ways:
- from taskstore (`taskstore migrate`, worker start-up): a sync connection arrives in
  ``config.attributes["connection"]``, already inside a transaction;
- from the ``alembic`` command line in the repository: we build the async engine from the
  settings chain (``TASKSTORE_DATABASE_URL`` etc.) and run on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context

from taskstore.backends import backend_of
from taskstore.engine import create_engine
from taskstore.models import Base
from taskstore.schema import VERSION_TABLE
from taskstore.settings import Settings

config = context.config
target_metadata = Base.metadata


def do_run_migrations(connection: Any) -> None:
    backend = backend_of(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=backend.render_as_batch,
        compare_type=True,
    )
    with context.begin_transaction():
        backend.lock_migrations(connection)
        context.run_migrations()


async def run_async_migrations() -> None:
    engine, _ = create_engine(Settings.from_env())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_offline() -> None:
    settings = Settings.from_env()
    context.configure(
        url=settings.database_url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    do_run_migrations(config.attributes["connection"])
else:
    asyncio.run(run_async_migrations())
