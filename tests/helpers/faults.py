"""Fault injection for the fault battery.

- `Fleet`: a set of real `taskstore-worker` processes serving `tests.apps.faulty`, which
  the test can `kill -9` one at a time and replace (a supervisor in miniature);
- `TcpProxy`: an asyncio TCP forwarder between workers and PostgreSQL that can `cut()`
  every connection (and refuse new ones) and `restore()` service on the same port;
- PostgreSQL control: terminate the workers' connections, restart the server, make sure
  it is up again;
- inspection of the task table from the test process (counts, rows a dead worker held).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from taskstore import TaskStore
from taskstore.models import TaskEntity
from tests.helpers.processes import start_worker, stderr_of

FAULTY_APP = ("--app", "tests.apps.faulty")
WORKERS_APPLICATION_NAME = "taskstore"  # what the PostgreSQL backend sets on connections
ADMIN_APPLICATION_NAME = "taskstore-fault-admin"


# ----------------------------------------------------------------- waiting
async def wait_until(
    check: Callable[[], Awaitable[bool]], seconds: float = 60.0, interval: float = 0.05
) -> None:
    """Poll `check` until it is true; TimeoutError after `seconds`."""
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - polling the database is the point
            await anyio.sleep(interval)


async def wait_exit(proc: subprocess.Popen, seconds: float = 60.0) -> int:
    return await anyio.to_thread.run_sync(lambda: proc.wait(seconds))


# ------------------------------------------------------------------ fleets
@dataclasses.dataclass
class Fleet:
    """`size` workers on `url`; killed ones are replaced by `replace_dead`."""

    url: str
    size: int
    exec_log: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    procs: list[subprocess.Popen] = dataclasses.field(default_factory=list)
    exits: dict[int, int] = dataclasses.field(default_factory=dict)  # pid -> exit code
    spawned: dict[int, float] = dataclasses.field(default_factory=dict)  # pid -> monotonic

    def start(self) -> Fleet:
        for _ in range(self.size):
            self._spawn()
        return self

    def _spawn(self) -> subprocess.Popen:
        proc = start_worker(self.url, *FAULTY_APP, *self.args, exec_log=self.exec_log, env=self.env)
        self.procs.append(proc)
        self.spawned[proc.pid] = time.monotonic()
        return proc

    @property
    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def reap(self) -> list[int]:
        """Record exits of processes that ended; returns their pids."""
        ended = [p for p in self.procs if p.poll() is not None]
        for proc in ended:
            self.exits[proc.pid] = proc.returncode
            self.procs.remove(proc)
        return [p.pid for p in ended]

    def kill_random(self, rng: random.Random) -> int:
        """SIGKILL one live worker and wait for it to be gone; returns its pid."""
        victim = rng.choice(self.alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        return victim.pid

    def replace_dead(self) -> int:
        """Start a worker for each one that exited; returns how many were started."""
        dead = self.reap()
        for _ in dead:
            self._spawn()
        return len(dead)

    def started(self) -> set[int]:
        """Pids of workers that logged "worker started" (their signal handlers are set)."""
        lines = stderr_of(self.exec_log).splitlines()
        ids = [json.loads(line)["worker"] for line in lines if '"worker started"' in line]
        return {int(worker_id.rsplit(":", 2)[1]) for worker_id in ids}

    async def stop(self, grace: float = 60.0) -> dict[int, int]:
        """SIGTERM the live workers (SIGKILL after `grace`); every exit code seen, by pid.

        A worker still starting up has no signal handler yet (SIGTERM would just kill it),
        so wait for every live one to have started first."""
        with anyio.move_on_after(30):
            while any(p.pid not in self.started() for p in self.alive):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        if any(time.monotonic() - self.spawned[p.pid] < 5 for p in self.alive):
            await anyio.sleep(0.5)  # the receiver starts just after "worker started" is logged
        for proc in self.alive:
            proc.send_signal(signal.SIGTERM)
        for proc in list(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                await wait_exit(proc, grace)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.reap()
        return dict(self.exits)


# -------------------------------------------------------------- inspection
async def status_counts(store: TaskStore) -> dict[str, int]:
    """{status: count} over the whole task table."""
    async with store.reading() as conn:
        rows = await conn.execute(
            select(TaskEntity.status, func.count()).group_by(TaskEntity.status)
        )
        return dict(rows.all())  # type: ignore[arg-type]


async def held_by_process(store: TaskStore, pid: int) -> int:
    """Rows a worker process holds (assigned/running under its worker id).

    Worker ids are ``host:pid:random``; after `kill -9` these rows are frozen until their
    lease expires, so counting them right after the kill is exact.
    """
    stmt = select(func.count()).where(
        TaskEntity.status.in_(["assigned", "running"]),
        TaskEntity.worker_id.like(f"%:{pid}:%"),
    )
    async with store.reading() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def running_attempts(store: TaskStore) -> set[tuple[int, int]]:
    """(id, attempt) of every running row: a later snapshot tells which are still stuck."""
    stmt = select(TaskEntity.id, TaskEntity.attempts).where(TaskEntity.status == "running")
    async with store.reading() as conn:
        return {(r.id, r.attempts) for r in (await conn.execute(stmt)).all()}


def duplicates(runs: collections.Counter[int]) -> int:
    """Executions beyond the first, over all tasks."""
    return sum(n - 1 for n in runs.values() if n > 1)


# -------------------------------------------------------------- TCP proxy
_READY = b"Z\x00\x00\x00\x05"  # PostgreSQL ReadyForQuery, then the transaction status
_IDLE = ord("I")  # ... no transaction open: whatever ran before is committed


@dataclasses.dataclass(eq=False)
class _Link:
    """One proxied connection and what the proxy knows of the statement on it."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    busy: bool = False  # a request went to the server and its reply has not come back
    claim_open: bool = False  # claimed rows came back; their commit is not confirmed yet
    muted: bool = False  # server replies are dropped: the worker never hears them


class TcpProxy:
    """Forward 127.0.0.1:<port> to a PostgreSQL server; `cut()` takes the server away.

    While cut, every forwarded connection is aborted and new connections are refused
    (the listening socket is closed); `restore()` listens on the same port again.

    The proxy reads the protocol just enough to know when a statement is in flight and
    when claimed rows (a reply naming a task, `claim_marker`) are committed (the next
    ReadyForQuery reporting no open transaction: in autocommit that is the rows' own
    reply, in a transaction the COMMIT's). So it can cut where the worker heard of
    everything the server committed (`cut_when_idle`), or exactly where it did not
    (`lose_next_claim_reply`).
    """

    def __init__(self, target_host: str, target_port: int, claim_marker: bytes) -> None:
        self.target = (target_host, target_port)
        self.claim_marker = claim_marker
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._lose_claim: asyncio.Event | None = None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url_for(self, url: str) -> str:
        """`url` with host and port pointing at the proxy (plain text: the proxy reads it)."""
        proxied = make_url(url).set(host="127.0.0.1", port=self.port)
        proxied = proxied.update_query_dict({"ssl": "disable"})
        return proxied.render_as_string(hide_password=False)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until `restore`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in self._links:
            link.client.transport.abort()
            link.server.transport.abort()
        self._links.clear()

    async def cut_when_idle(self) -> None:
        """Cut at a moment when no statement is in flight on any connection."""
        with anyio.fail_after(30):
            while any(link.busy for link in self._links):  # noqa: ASYNC110 - a poll
                await asyncio.sleep(0.0005)
        self.cut()  # no await since the check: nothing ran in between

    def lose_next_claim_reply(self) -> asyncio.Event:
        """Drop the reply that confirms the next claim's commit, then cut everything; the
        event is set once that happened."""
        self._lose_claim = asyncio.Event()
        return self._lose_claim

    async def restore(self) -> None:
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        pumps = [
            asyncio.create_task(self._pump(reader, link, upstream=True)),
            asyncio.create_task(self._pump(up_reader, link, upstream=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            link.client.transport.abort()
            link.server.transport.abort()
            self._links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, link: _Link, upstream: bool) -> None:
        writer = link.server if upstream else link.client
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if upstream:
                    link.busy = True
                elif not self._deliver(link, data):
                    continue
                writer.write(data)
                await writer.drain()

    def _deliver(self, link: _Link, data: bytes) -> bool:
        """Follow a server reply; False if it must not reach the worker."""
        if self.claim_marker in data:
            link.claim_open = True
        if data[-6:-1] != _READY:
            return not link.muted
        link.busy = False
        if data[-1] == _IDLE and link.claim_open:
            link.claim_open = False
            event, self._lose_claim = self._lose_claim, None
            if event is not None:
                link.muted = True  # committed on the server, never heard by the worker
                asyncio.get_running_loop().call_soon(self._cut_and_tell, event)
        return not link.muted

    def _cut_and_tell(self, event: asyncio.Event) -> None:
        self.cut()
        event.set()


# --------------------------------------------------------------- PostgreSQL
def plain_dsn(url: str) -> str:
    """A libpq-style DSN (no +driver) asyncpg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def admin_connect(url: str, seconds: float = 30.0) -> asyncpg.Connection:
    """A connection of our own (not named like the workers'), retried while the server
    is coming back."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await asyncpg.connect(
                plain_dsn(url), server_settings={"application_name": ADMIN_APPLICATION_NAME}
            )
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.1)


async def terminate_worker_connections(admin: asyncpg.Connection) -> int:
    """pg_terminate_backend on every connection the workers hold to this database; it
    returns once those server processes have exited (or after 5 s)."""
    return await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database() "
        "AND pid <> pg_backend_pid()",
        WORKERS_APPLICATION_NAME,
    )


async def pg_status_counts(admin: asyncpg.Connection) -> dict[str, int]:
    rows = await admin.fetch("SELECT status, count(*) AS n FROM taskstore_tasks GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The local PostgreSQL cluster `pg_ctlcluster` controls."""

    version: str
    name: str

    @classmethod
    def local(cls) -> Cluster | None:
        """The only cluster under the Debian config folder, or None if not controllable."""
        base = Path("/etc/postgresql")
        if not base.is_dir() or not _on_path("pg_ctlcluster"):
            return None
        found = [(v.name, c.name) for v in base.iterdir() if v.is_dir() for c in v.iterdir()]
        return cls(*found[0]) if len(found) == 1 else None

    def ctl(self, action: str) -> subprocess.CompletedProcess:
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    async def restart(self) -> None:
        done = await anyio.to_thread.run_sync(self.ctl, "restart")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctlcluster restart failed: {done.stderr.strip()}")

    async def ensure_up(self, url: str) -> None:
        """Start the server if it is down; return once it accepts connections."""
        try:
            conn = await admin_connect(url, seconds=2)
        except (OSError, asyncpg.PostgresError):
            await anyio.to_thread.run_sync(self.ctl, "start")
            conn = await admin_connect(url, seconds=60)
        await conn.close()


def _on_path(program: str) -> bool:
    return any(
        os.access(os.path.join(folder, program), os.X_OK)
        for folder in os.environ.get("PATH", "").split(os.pathsep)
    )
