"""Driver errors turned into one-line store errors: unreachable database, missing schema.

Whether an error means "the schema is missing" (or "locked by another writer") is the
backend's to say (each database words it differently); whether the database is unavailable
is SQLAlchemy's (a connection that was invalidated, or an operational/interface error) and
the SQLSTATE's. Only an error about the connection itself says "cannot reach": a server
that answered that the database or the role does not exist is reachable.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import types
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from taskstore.backends import Backend
from taskstore.errors import (
    ConfigError,
    DatabaseRefused,
    DatabaseUnavailable,
    SchemaOutOfDate,
    TaskStoreError,
)
from taskstore.schema import NO_SCHEMA, NO_SCHEMA_HINT

UNREACHABLE = (OperationalError, InterfaceError, OSError, ConnectionError, TimeoutError)
#: SQLSTATE classes that mean the connection itself failed: connection exception,
#: authorisation, no such database, too many connections, server shutting down
_CONNECT_CLASSES = ("08", "28", "3D", "53", "57")
#: a prepared statement the driver made is already on the server connection: a pooler
#: in transaction mode handed it another client's connection
_DUPLICATE_PREPARED = "42P05"
#: invalid schema name: a CREATE with nowhere to go (a search_path of missing schemas)
_NO_SCHEMA = "3F000"


def reason(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else type(orig).__name__
    return re.sub(r"^<class '[\w.]+'>: ", "", first)


class ErrorTranslator:
    """``async with translate():`` around database work of one store."""

    def __init__(self, safe_url: str, backend: Backend, file: Path | None = None) -> None:
        self._safe_url = safe_url
        self._backend = backend
        # An SQLite file's troubles are said with its full path: a relative URL hides
        # which folder it was read from.
        self._file = str(file.resolve()) if file is not None else safe_url

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
            if (
                exc.connection_invalidated
                or isinstance(exc, OperationalError | InterfaceError)
                or _NOT_A_DATABASE in reason(exc)
                or (_sqlstate(exc) or "")[:2] in _CONNECT_CLASSES
            ):
                raise self.unreachable(exc) from None
            if _sqlstate(exc) == _DUPLICATE_PREPARED:
                raise self.at_connect(exc) from None
            if _sqlstate(exc) == _NO_SCHEMA:
                raise DatabaseRefused(
                    f"the database at {self._safe_url} {NO_SCHEMA} ({reason(exc)}): "
                    f"{NO_SCHEMA_HINT}"
                ) from None
            raise
        except UNREACHABLE as exc:
            raise self.unreachable(exc) from None

    def at_connect(self, exc: BaseException) -> TaskStoreError:
        """What stopped the first connection: unreachable (host, port, password, missing
        database, too many clients), or refused for another reason, said as such."""
        state = _sqlstate(exc)
        if state is None or state[:2] in _CONNECT_CLASSES or not isinstance(exc, DBAPIError):
            return self.unreachable(exc)
        said = f"the database at {self._safe_url} refused: {reason(exc)}"
        if state == _DUPLICATE_PREPARED:  # a setting to change: every restart fails alike
            return ConfigError(f"{said} (PgBouncer in transaction mode? set TASKSTORE_PGBOUNCER=1)")
        return DatabaseRefused(said)

    def unreachable(self, exc: BaseException) -> DatabaseUnavailable | ConfigError:
        """The database cannot be used now, said as what the server or the driver said
        (a `ConfigError` where a setting of the URL is the cause)."""
        at, why = self._safe_url, reason(exc)
        if _POOLER_REFUSED_SETTING in why:  # PgBouncer, which passes on only what it knows
            return ConfigError(
                f"the database at {at} refused a setting of the URL (a pooler there? set it "
                f"on the server instead: ALTER ROLE ... SET search_path = ...): {why}"
            )
        state = (_sqlstate(exc) or "")[:2]
        if state in _UNAVAILABLE_WORDS:
            return DatabaseUnavailable(f"the database at {at} {_UNAVAILABLE_WORDS[state]}: {why}")
        if _SSL_REFUSED in why and not _ASKS_FOR_SSL.search(at):
            # Under the default sslmode a PostgreSQL server without SSL is used plainly:
            # this answer came from something else (a web server on the port given).
            return DatabaseUnavailable(
                f"the server at {at} does not answer as PostgreSQL does: is that the "
                f"PostgreSQL port? ({why})"
            )
        if _SSL_FILES.search(at) and _bad_file(exc):
            return DatabaseUnavailable(
                f"cannot read the SSL files the database URL names ({at}): {why}"
            )
        if _NO_ROOT_CERT in why:  # verify-ca/-full and no sslrootcert: libpq's default file
            return DatabaseUnavailable(
                f"cannot verify the server at {at}: {why} (name the authority's certificate "
                "in the URL: sslrootcert=/path/to/ca.pem)"
            )
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return DatabaseUnavailable(
                f"the database at {at} did not pass SSL verification: {why} (is sslrootcert "
                "the authority that signed the server's certificate, and the host its name?)"
            )
        for fragment, words in _ANSWERED:  # the server (or a pooler) answered: it is there
            if fragment in why:
                return DatabaseUnavailable(f"the database at {at} {words}: {why}")
        if why in ("TimeoutError", "CancelledError"):  # the driver gave up: nothing more said
            return DatabaseUnavailable(
                f"cannot reach the database at {at}: no answer in time (a firewall that drops "
                "packets, or a port where something other than PostgreSQL listens?)"
            )
        if _NO_FILE in why:  # SQLite: a path, not a network, is the problem
            return DatabaseUnavailable(
                f"cannot open the database file at {self._file}: {why} (is it a folder, or a file "
                "this user may not read and write?)"
            )
        if _NOT_A_DATABASE in why:
            return DatabaseUnavailable(
                f"the file at {self._file} is not an SQLite database ({why}): is the path right?"
            )
        if isinstance(exc, DBAPIError) and self._backend.locked_out(exc):
            return DatabaseUnavailable(
                f"the database at {at} is locked: {why} (another connection held its write "
                "lock past the busy timeout: another process's, or a write session still "
                "open in this one)"
            )
        if isinstance(exc, DBAPIError) and not _connection_failed(exc):
            return DatabaseUnavailable(f"the database at {at} failed: {why}")
        return DatabaseUnavailable(f"cannot reach the database at {at}: {why}")


#: SQLSTATE classes where the server answered, and what it said
_UNAVAILABLE_WORDS = {
    "3D": "does not exist",
    "28": "refused the login",
    "53": "has no room for another connection",
}


_SSL_REFUSED = "rejected SSL upgrade"
#: what a server or a pooler says when it is there but will not take this connection
_ANSWERED = (
    ("no more connections allowed", "has no room for another connection"),  # PgBouncer
    (_SSL_REFUSED, "does not accept SSL (drop sslmode, or enable SSL there)"),
)
_POOLER_REFUSED_SETTING = "unsupported startup parameter"

_ASKS_FOR_SSL = re.compile(r"[?&]ssl(mode)?=(require|verify-ca|verify-full|true|1)\b", re.I)
_SSL_FILES = re.compile(r"[?&](sslrootcert|sslcert|sslkey|sslcrl)=")
_NO_ROOT_CERT = "root certificate file"
_NO_FILE = "unable to open database file"
_NOT_A_DATABASE = "file is not a database"  # SQLite's words for a file of something else


def _chain(exc: BaseException) -> tuple[BaseException | None, ...]:
    """`exc`, the driver's error under it, and what raised each."""
    orig = getattr(exc, "orig", None)
    return (exc, orig, exc.__cause__, orig.__cause__ if orig is not None else None)


def _caused_by(exc: BaseException, kind: type[BaseException] | types.UnionType) -> bool:
    return any(isinstance(error, kind) for error in _chain(exc))


def _bad_file(exc: BaseException) -> bool:
    """Did reading a certificate or key file fail (missing, unreadable, not one)?"""
    if _caused_by(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return True
    return any(
        isinstance(error, ssl.SSLError) and error.library in ("PEM", "X509")
        for error in _chain(exc)
    )


def connection_lost(exc: BaseException) -> bool:
    """Did `exc` come of the connection itself (a lost server, a reset), not of what was
    asked of the database?"""
    if isinstance(exc, DBAPIError):
        return _connection_failed(exc)
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


def _connection_failed(exc: DBAPIError) -> bool:
    """A driver error about the connection itself (refused, reset, timed out, closed)."""
    state = _sqlstate(exc) or ""
    orig = getattr(exc, "orig", None)
    return (
        exc.connection_invalidated
        or state[:2] in ("08", "57")
        or isinstance(orig, OSError | ConnectionError | TimeoutError)
        or isinstance(orig.__cause__ if orig else None, OSError | ConnectionError | TimeoutError)
        or "connection is closed" in str(orig)
    )


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None
