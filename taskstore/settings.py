"""Settings read from the environment: the database URL priority chain and every tunable.

Priority chain for the URL (first hit wins):
1. an explicit URL (``--database-url``) or ``TASKSTORE_DATABASE_URL``;
2. ``TASKSTORE_DATABASE_BACKEND=postgres`` + ``TASKSTORE_POSTGRES_{HOST,PORT,USER,PASSWORD,DB}``;
3. SQLite at ``$XDG_DATA_HOME/taskstore/taskstore.db`` (``~/.local/share/...`` by default).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from taskstore.durations import parse_duration
from taskstore.errors import ConfigError

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
_ALIASES = {"postgres": "postgresql", "postgresql+asyncpg": "postgresql", "pgsql": "postgresql"}
#: libpq's options for the server's settings and SSL's files, which asyncpg reads only
#: from a connection string (the backend hands them over as one)
PG_DSN_OPTIONS = (
    "options",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslpassword",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
)
#: what a PostgreSQL URL's query may hold: asyncpg's connect options, and the libpq ones
#: people copy from other tools (sslmode becomes ssl; the backend takes the others)
_PG_OPTIONS = frozenset(
    {"host", "port", "passfile", "timeout", "statement_cache_size", "command_timeout", "ssl"}
    | {"max_cached_statement_lifetime", "max_cacheable_statement_size", "direct_tls"}
    | {"target_session_attrs", "krbsrvname", "gsslib", "prepared_statement_cache_size"}
    | {"application_name", "connect_timeout", "tcp_user_timeout", "keepalives"}
    | {"keepalives_idle", "keepalives_interval", "keepalives_count", *PG_DSN_OPTIONS}
)
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
#: options whose value is a count (at least 0) or a number of seconds (above 0): the driver
#: would fail on another with a bare TypeError at every connect
_COUNTS = frozenset(
    {"statement_cache_size", "max_cacheable_statement_size", "prepared_statement_cache_size"}
    | {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"}
    | {"tcp_user_timeout", "max_cached_statement_lifetime"}
)
_SECONDS = frozenset({"timeout", "command_timeout", "connect_timeout"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw.strip() == "":  # KEY= in an env file: the default, as elsewhere
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key} must be a boolean (1/0, true/false), got {raw!r}")


def _env_int(env: Mapping[str, str], key: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _env_duration(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in ("off", "never", "0"):
        return 0.0
    try:
        return parse_duration(raw)
    except ValueError:
        raise ConfigError(
            f"{key} must be a duration like 7d, 12h or 0 (never), got {raw!r}"
        ) from None


def _env_port(env: Mapping[str, str]) -> int:
    port = _env_int(env, "TASKSTORE_POSTGRES_PORT", 5432)
    if not 0 < port < 65536:
        raise ConfigError(f"TASKSTORE_POSTGRES_PORT must be from 1 to 65535, got {port}")
    return port


def _env_text(env: Mapping[str, str], key: str, default: str) -> str:
    raw = env.get(key)
    if raw is not None and not raw.strip():
        raise ConfigError(f"{key} is set but empty (unset it for {default!r})")
    return default if raw is None else raw


def default_sqlite_path(env: Mapping[str, str]) -> Path:
    """Where the embedded default database lives."""
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "taskstore" / "taskstore.db"


def safe_url(url: URL | str) -> str:
    """Render a URL for humans with any password masked (an SSL key's too)."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "<unparseable URL>"
    hidden = {key: "***" for key in ("password", "sslpassword") if key in url.query}
    if hidden:
        url = url.update_query_dict(hidden)
    return url.render_as_string(hide_password=True)


def normalize_url(raw: str) -> URL:
    """Parse a database URL and map plain schemes onto the async drivers taskstore uses."""
    if not isinstance(raw, str):
        raise ConfigError(f"the database URL must be a string, got {raw!r}")
    text = raw.strip()
    try:
        url = make_url(text)
        port = url.port
    except (ArgumentError, ValueError):  # ValueError: a non-numeric port, an unclosed '['
        if "," in text.partition("://")[2].partition("/")[0]:  # libpq's host1:5432,host2
            raise ConfigError(
                "several hosts go in the database URL's query, one host= each: "
                "postgresql://user@/db?host=h1:5432&host=h2:5432&target_session_attrs=read-write"
            ) from None
        raise ConfigError(
            "invalid database URL (expected postgresql://user@host/db or sqlite:///path)"
        ) from None
    if url.host and "@" in url.host:  # the rest of a password that holds an '@'
        raise ConfigError(
            "the database URL has an '@' in its password or user name: percent-encode it "
            "as %40 (and ':' as %3A, '/' as %2F)"
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"invalid port {port} in the database URL (1-65535)")
    backend = _ALIASES.get(url.drivername, url.drivername)
    if backend == "sqlite+aiosqlite":
        backend = "sqlite"
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(
            f"unsupported database URL scheme {url.drivername!r} in {safe_url(url)} "
            "(use postgresql:// or sqlite:///)"
        )
    if backend == "sqlite" and url.host:  # sqlite://x.db: the file taken for a host name
        path = "/".join(part for part in (url.host, url.database) if part)
        raise ConfigError(
            f"invalid SQLite URL {safe_url(url)}: the file path follows three slashes, "
            f"sqlite:///{path} (four for an absolute path)"
        )
    url = url.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "postgresql" and not url.database:
        raise ConfigError(f"database URL {safe_url(url)} names no database")
    return _pg_query(url) if backend == "postgresql" else url


def _pg_query(url: URL) -> URL:
    """A PostgreSQL URL's options checked by name (the driver would fail on an unknown
    one at every connect), libpq's ``sslmode`` spelled as asyncpg's ``ssl``."""
    unknown = sorted(set(url.query) - _PG_OPTIONS - {"sslmode"})
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} in the database URL {safe_url(url)} "
            "(sslmode, sslrootcert, options, application_name, connect_timeout, keepalives*, "
            "tcp_user_timeout or an asyncpg connect option)"
        )
    for name, value in url.query.items():
        _check_option(name, value)
    if "sslmode" not in url.query:
        return url
    mode = url.query["sslmode"]
    if mode not in _SSL_MODES:
        raise ConfigError(f"sslmode must be one of {', '.join(_SSL_MODES)}, got {mode!r}")
    return url.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})


def _check_option(name: str, value: str | tuple[str, ...]) -> None:
    """One URL option's value, where the driver takes a number or one of a few words."""
    if name not in _COUNTS | _SECONDS | {"port", "target_session_attrs"}:
        return
    if not isinstance(value, str):
        raise ConfigError(f"the database URL gives {name} more than once")
    if name == "target_session_attrs":
        if value not in _SESSION_ATTRS:
            raise ConfigError(f"{name} must be one of {', '.join(_SESSION_ATTRS)}, got {value!r}")
        return
    try:
        number = float(value) if name in _SECONDS else int(value)
    except ValueError:
        number = -1
    if name == "port" and not 0 < number < 65536:
        raise ConfigError(f"invalid port {value!r} in the database URL (1-65535)")
    if name in _SECONDS and not 0 < number < math.inf:
        raise ConfigError(f"{name} in the database URL must be seconds above 0, got {value!r}")
    if number < 0:
        raise ConfigError(f"{name} in the database URL must be a whole number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of the store, with its documented default."""

    database_url: URL
    echo: bool = False
    sqlite_journal_mode: str = "WAL"
    sqlite_synchronous: str = "NORMAL"
    sqlite_busy_timeout_ms: int = 30_000
    sqlite_cache_size: int = -16_000
    pool_size: int = 5
    max_overflow: int = 5
    pool_pre_ping: bool = True
    auto_migrate: bool = True
    max_payload_bytes: int = 1_048_576
    retention_seconds: float = 7 * 86400  # finished tasks older than this are pruned; 0: never
    #: a task no live worker has a handler for fails after waiting this long for one
    unserved_grace_seconds: float = 600.0
    #: the URL leads to PgBouncer in transaction pooling mode (see `backends.pgbouncer`)
    pgbouncer: bool = False
    #: a direct URL for LISTEN where the main one cannot (PgBouncer); None: poll
    listen_url: URL | None = None

    @property
    def backend(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self.database_url.get_backend_name()

    @property
    def safe_url(self) -> str:
        return safe_url(self.database_url)

    @classmethod
    def from_env(
        cls, database_url: str | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from an explicit URL (optional) and the environment."""
        env = os.environ if env is None else env
        return cls(
            database_url=resolve_database_url(database_url, env),
            echo=_env_bool(env, "TASKSTORE_DATABASE_ECHO", False),
            sqlite_journal_mode=env.get("TASKSTORE_SQLITE_JOURNAL_MODE", "WAL"),
            sqlite_synchronous=env.get("TASKSTORE_SQLITE_SYNCHRONOUS", "NORMAL"),
            sqlite_busy_timeout_ms=_env_int(env, "TASKSTORE_SQLITE_BUSY_TIMEOUT_MS", 30_000, 0),
            sqlite_cache_size=_env_int(env, "TASKSTORE_SQLITE_CACHE_SIZE", -16_000),
            pool_size=_env_int(env, "TASKSTORE_POOL_SIZE", 5, 1),
            max_overflow=_env_int(env, "TASKSTORE_POOL_MAX_OVERFLOW", 5, 0),
            pool_pre_ping=_env_bool(env, "TASKSTORE_POOL_PRE_PING", True),
            auto_migrate=_env_bool(env, "TASKSTORE_AUTO_MIGRATE", True),
            max_payload_bytes=_env_int(env, "TASKSTORE_MAX_PAYLOAD_BYTES", 1_048_576, 2),
            retention_seconds=_env_duration(env, "TASKSTORE_RETENTION", 7 * 86400),
            # 0 (never): a task no worker has a handler for waits for one for good
            unserved_grace_seconds=_env_duration(env, "TASKSTORE_UNSERVED_GRACE", 600.0)
            or math.inf,
            pgbouncer=_env_bool(env, "TASKSTORE_PGBOUNCER", False),
            listen_url=_listen_url(env),
        )


def _listen_url(env: Mapping[str, str]) -> URL | None:
    raw = env.get("TASKSTORE_LISTEN_URL")
    if not raw:
        return None
    try:
        url = normalize_url(raw)
    except ConfigError as exc:
        raise ConfigError(f"TASKSTORE_LISTEN_URL: {exc}") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            "TASKSTORE_LISTEN_URL must be a postgresql:// URL (LISTEN is PostgreSQL's)"
        )
    return url


def resolve_database_url(explicit: str | None, env: Mapping[str, str]) -> URL:
    """Apply the priority chain and return a normalised async URL."""
    if explicit:
        return normalize_url(explicit)
    if env.get("TASKSTORE_DATABASE_URL"):
        return normalize_url(env["TASKSTORE_DATABASE_URL"])
    backend = env.get("TASKSTORE_DATABASE_BACKEND", "sqlite").strip().lower()
    if backend in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+asyncpg",
            username=env.get("TASKSTORE_POSTGRES_USER", "postgres"),
            password=env.get("TASKSTORE_POSTGRES_PASSWORD") or None,
            host=env.get("TASKSTORE_POSTGRES_HOST", "127.0.0.1"),
            port=_env_port(env),
            database=_env_text(env, "TASKSTORE_POSTGRES_DB", "taskstore"),
        )
    if backend != "sqlite":
        raise ConfigError(
            f"TASKSTORE_DATABASE_BACKEND must be 'sqlite' or 'postgres', got {backend!r}"
        )
    return URL.create("sqlite+aiosqlite", database=str(default_sqlite_path(env)))


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file's path; None for PostgreSQL, an in-memory database or a
    ``file:`` URI (``uri=true``: SQLite's to read, not a path; Django's in-memory test
    database is one)."""
    url = settings.database_url
    database = url.database or ""
    if settings.backend != "sqlite" or database in ("", ":memory:") or url.query.get("uri"):
        return None
    return Path(database).expanduser()


def missing_sqlite_file(settings: Settings) -> str | None:
    """Why the settings' SQLite database file cannot be opened without creating it (it
    is not there), or None (it is, or the database is not an SQLite file)."""
    given = sqlite_file(settings)
    if given is None or given.exists():
        return None
    database = settings.database_url.database
    message = f"no database file at {given.resolve()} (`taskstore migrate` creates it)"
    if not given.is_absolute():
        message += (
            f"; sqlite:///{database} is relative to the current directory, four slashes"
            f" make an absolute path: sqlite:////{database}"
        )
    return message
