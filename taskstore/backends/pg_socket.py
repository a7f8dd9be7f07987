"""Dead-peer detection on PostgreSQL connections: TCP keepalives and a user timeout.

A network that drops packets (a cable, a firewall, a server host that vanished) sends no
reset: a statement written into it waits for the kernel to give up, about fifteen
minutes, and an idle or waiting connection never learns. Every connection therefore
gets TCP keepalives and ``TCP_USER_TIMEOUT``: once sent data (or a keepalive probe) has
gone unanswered that long, the connection fails, and the store says the database cannot
be reached. A long statement is not cut short: the server's kernel answers the probes
while the server works.

The URL may set them with libpq's names (``keepalives``, ``keepalives_idle``,
``keepalives_interval``, ``keepalives_count`` in seconds, ``tcp_user_timeout`` in
milliseconds, 0 for the system's default); asyncpg has no names for them.
"""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from taskstore.errors import ConfigError

#: libpq's option names, with the values used when the URL names none
DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
OPTION_NAMES = tuple(DEFAULTS)
#: the largest value the kernel takes for each (Linux's limits)
_MAXIMA = {
    "keepalives": 1,
    "keepalives_idle": 32_767,
    "keepalives_interval": 32_767,
    "keepalives_count": 127,
    "tcp_user_timeout": 2**31 - 1,
}
_SOCKET_OPTIONS = (  # (option, TCP socket option name): what this platform has is set
    ("keepalives_idle", "TCP_KEEPIDLE"),
    ("keepalives_interval", "TCP_KEEPINTVL"),
    ("keepalives_count", "TCP_KEEPCNT"),
    ("tcp_user_timeout", "TCP_USER_TIMEOUT"),
)


def tcp_options(url: URL) -> dict[str, int]:
    """The URL's keepalive options over the defaults; a value not a whole number >= 0 is a
    `ConfigError` naming it."""
    options = dict(DEFAULTS)
    for name in OPTION_NAMES:
        if name not in url.query:
            continue
        given = url.query[name]
        if isinstance(given, tuple):
            raise ConfigError(f"{name} is given twice in the database URL")
        try:
            value = int(given)
        except ValueError:
            value = -1
        if not 0 <= value <= _MAXIMA[name]:
            raise ConfigError(
                f"{name} in the database URL must be a whole number from 0 to "
                f"{_MAXIMA[name]}, got {given!r}"
            )
        options[name] = value
    return options


def watch_dead_peers(engine: AsyncEngine, options: dict[str, int]) -> None:
    """Set `options` on the socket of every new connection `engine` makes."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        sock = _socket_of(dbapi_connection)
        if sock is not None:
            apply(sock, options)


def apply(sock: Any, options: dict[str, int]) -> None:
    """Keepalives and the user timeout on a TCP socket (a Unix socket is left alone)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not options["keepalives"]:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, constant in _SOCKET_OPTIONS:
        if options[name] and hasattr(socket, constant):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, constant), options[name])


def _socket_of(dbapi_connection: Any) -> Any:
    """The socket under SQLAlchemy's adapted asyncpg connection (asyncpg names no public
    way to it); None where there is none to be found."""
    transport = getattr(dbapi_connection.driver_connection, "_transport", None)
    return None if transport is None else transport.get_extra_info("socket")
