"""`taskstore dashboard`: serve the web dashboard with uvicorn.

Starlette and uvicorn come with the `web` extra; they are imported only when the command
runs, so `taskstore` works (and this module imports) without them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from taskstore.cli_common import Command, database_url_option, fail, run_guarded
from taskstore.dashboard.auth import TOKEN_ENV, configured

if TYPE_CHECKING:
    from taskstore.settings import Settings

MISSING_EXTRA = "the dashboard needs the web extra: pip install 'taskstore[web]'"


def web_extra_installed() -> bool:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


@click.command("dashboard", cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, type=click.IntRange(0, 65535), show_default=True)
@click.option(
    "--token",
    default=None,
    envvar=TOKEN_ENV,
    metavar="TOKEN",
    help="Allow retry/cancel and pause/resume for requests sending it as a bearer token"
    f" (default: {TOKEN_ENV}; without a token the dashboard is read-only).",
)
@database_url_option
def cli_command(url: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard: queues, throughput, tasks, workers."""
    if not web_extra_installed():
        fail(MISSING_EXTRA, 2)
    from taskstore.cli_store import command_settings, require_database

    settings = command_settings(url)
    require_database(settings)  # a dashboard of a file that does not exist shows nothing
    run_guarded(lambda: serve(settings, host=host, port=port, token=configured(token)))


async def serve(settings: Settings, *, host: str, port: int, token: str | None) -> None:
    """Open the store (one-line errors if unreachable or behind), then serve until stopped."""
    import uvicorn

    from taskstore.dashboard.app import create_app
    from taskstore.store import TaskStore

    store = TaskStore(settings)
    try:
        await store.open()
        listening = _listen(host, port)  # here: uvicorn says it in lines of its own, exit 3
        mode = "retry, cancel, pause need the token" if token else "read-only"
        where = _address(host, listening.getsockname()[1])
        click.echo(f"taskstore dashboard at {where} on {settings.safe_url} ({mode})", err=True)
        if not _loopback(host):
            click.echo(
                f"note: listening on {host}: whoever reaches the port reads every task's "
                "payload, result and error (reading needs no token); put it behind a login "
                "of your proxy, or keep --host 127.0.0.1",
                err=True,
            )
        app = create_app(store, token=token)
        config = uvicorn.Config(app, host=host, port=port, server_header=False, log_level="info")
        with _quiet_signal_reraise():
            await uvicorn.Server(config).serve(sockets=[listening])
    finally:
        await store.close()


def _address(host: str, port: int) -> str:
    """The URL to open (the port the socket got, for --port 0)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _loopback(host: str) -> bool:
    """Is `host` reachable from this machine only?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _listen(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket, or one line on why there cannot be one."""
    from taskstore.errors import TaskStoreError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:  # the port is taken, the address is not this host's or no address
        why = str(exc.strerror or exc).split(" (while attempting", 1)[0]
        raise TaskStoreError(f"cannot listen on {host}:{port}: {why}") from None


@contextlib.contextmanager
def _quiet_signal_reraise() -> Iterator[None]:
    """uvicorn stops gracefully on SIGINT / SIGTERM, then re-raises the signal to the
    previous handler. Being stopped is this command's normal end: ignore that re-raise, so
    the store is closed and the exit status is 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
