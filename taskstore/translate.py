"""Driver errors turned into one-line store errors: unreachable database, missing schema.

Whether an error means "the schema is missing" is the backend's to say (each database
words it differently); whether it means "unreachable" is SQLAlchemy's (a connection that
was invalidated, or an operational/interface error).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from taskstore.backends import Backend
from taskstore.errors import DatabaseUnavailable, SchemaOutOfDate

UNREACHABLE = (OperationalError, InterfaceError, OSError, ConnectionError, TimeoutError)


def reason(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else type(orig).__name__
    return re.sub(r"^<class '[\w.]+'>: ", "", first)


class ErrorTranslator:
    """``async with translate():`` around database work of one store."""

    def __init__(self, safe_url: str, backend: Backend) -> None:
        self._safe_url = safe_url
        self._backend = backend

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        try:
            yield
        except DBAPIError as exc:
            if self._backend.missing_schema(exc):
                raise SchemaOutOfDate(
                    f"the taskstore schema is missing or behind ({reason(exc)}): "
                    "run `taskstore migrate`"
                ) from None
            if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
                raise self.unreachable(exc) from None
            raise
        except UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def unreachable(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"cannot reach the database at {self._safe_url}: {reason(exc)}")
