"""Hot statements run on the asyncpg connection directly, in autocommit.

A worker's claim and acknowledge loops run the same two Core statements thousands of
times a second on connections they hold in autocommit. SQLAlchemy compiles them once
already; what is left per execution (cursor adaptation, the statement cache lookup,
result rows and their processors) costs more Python time than the statement costs the
server. Here a statement is compiled once into its SQL text, its parameter order and its
bind processors, and then handed to the driver as is. The rows are the driver's records.

Only autocommit connections take this path: SQLAlchemy starts the transaction of any
other connection lazily, on its own first statement, and a statement run beside it
would escape that transaction. Errors are raised as SQLAlchemy would raise them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from taskstore.backends.plans import Plans

_AUTOCOMMIT = "AUTOCOMMIT"


class DirectRunner:
    """Runs hot statements on autocommit connections without SQLAlchemy's cursor layer."""

    def __init__(self) -> None:
        self._plans = Plans()

    async def rows(
        self, conn: Any, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        if (
            not isinstance(conn, AsyncConnection)
            or conn.sync_connection.get_execution_options().get("isolation_level") != _AUTOCOMMIT
        ):
            return (await conn.execute(statement, params)).all()
        plan = self._plans.get(statement, conn.dialect)
        if plan is None:
            return (await conn.execute(statement, params)).all()
        sync = conn.sync_connection
        if sync.closed or sync.invalidated:  # let SQLAlchemy reconnect or refuse
            driver = (await conn.get_raw_connection()).driver_connection
        else:  # an attribute read, where get_raw_connection() costs a greenlet switch
            driver = sync.connection.driver_connection
        try:
            return await driver.fetch(plan.sql, *plan.arguments(params))
        except Exception as exc:
            error = _as_sqlalchemy_error(exc, plan.sql, conn.dialect)
            if error is exc:
                raise
            raise error from exc


def _as_sqlalchemy_error(exc: Exception, sql: str, dialect: Dialect) -> Exception:
    """The exception SQLAlchemy would raise for a driver error: its DBAPI translation,
    wrapped as a `DBAPIError` marked invalidated when the connection is gone; anything
    the DBAPI layer does not translate (an OSError) is raised as it came."""
    dbapi = dialect.loaded_dbapi
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, exc)
    except Exception as translated:
        exc = translated
    if not isinstance(exc, dbapi.Error):
        return exc
    gone = dialect.is_disconnect(exc, None, None)
    return DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=gone)
