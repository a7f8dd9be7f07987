"""The connection budget on PostgreSQL: two server connections per worker process and
one per supervisor (its LISTEN, relayed to the workers), with heartbeats, rescue and the
registry inside it; and the relay really wakes the workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from taskstore import TaskStore
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers.processes import ROOT, executions

SUPERVISORS, PROCESSES, TASKS = 3, 8, 30_000
BUDGET = 2 * SUPERVISORS * PROCESSES + SUPERVISORS


@pytest.fixture
def own_database(pg_admin_url: str) -> Iterator[str]:
    """A database of its own: every connection to it is one the test can account for."""
    url = create_pg_database(pg_admin_url)
    yield url
    drop_pg_database(pg_admin_url, url)


def _supervisor(url: str, log: Path, *args: str) -> subprocess.Popen:
    """A supervisor; its log and its workers' go to `log` with the suffix .err."""
    env = {**os.environ, "TASKSTORE_DATABASE_URL": url, "TEST_EXEC_LOG": str(log)}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline", *args]
    with open(log.with_suffix(".err"), "a") as err:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stderr=err)


async def _live_workers(url: str) -> list[int]:
    async with TaskStore.from_url(url) as store:
        return [w.pid for w in await store.workers() if w.alive]


async def _wait_for_workers(url: str, count: int, procs: list[subprocess.Popen]) -> list[int]:
    with anyio.fail_after(180):
        while len(pids := await _live_workers(url)) < count:
            assert all(p.poll() is None for p in procs), "a supervisor exited"
            await anyio.sleep(0.5)
    return pids


async def _server_connections(probe: asyncpg.Connection, database: str) -> int:
    return await probe.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        database,
        "taskstore",
    )


async def test_three_supervisors_of_eight_drain_30000_once_within_two_connections_per_process(
    own_database: str, tmp_path: Path
) -> None:
    log = tmp_path / "exec.log"
    args = ("--processes", str(PROCESSES), "--lease-seconds", "3")  # beats every second
    supervisors = [_supervisor(own_database, log, *args) for _ in range(SUPERVISORS)]
    database = own_database.rsplit("/", 1)[1]
    dsn = own_database.replace("postgresql+asyncpg://", "postgresql://")
    probe = await asyncpg.connect(dsn, server_settings={"application_name": "budget-probe"})
    try:
        await _wait_for_workers(own_database, SUPERVISORS * PROCESSES, supervisors)
        async with TaskStore.from_url(own_database) as store:
            for _batch in range(TASKS // 5_000):
                await store.enqueue_many([{"name": "tests.noop"} for _ in range(5_000)])
        # The producer's connections are closed: from here on every one is a worker's.
        peak = 0
        with anyio.fail_after(300):
            while len(executions(log)) < TASKS:
                peak = max(peak, await _server_connections(probe, database))
                await anyio.sleep(0.02)
        for _ in range(100):  # a few heartbeats and rescues more, all workers idle
            peak = max(peak, await _server_connections(probe, database))
            await anyio.sleep(0.03)
    finally:
        await probe.close()
        for proc in supervisors:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(120) for proc in supervisors]
    assert codes == [0] * SUPERVISORS
    runs = executions(log)
    assert len(runs) == TASKS and set(runs.values()) == {1}  # every task exactly once
    assert SUPERVISORS * PROCESSES < peak <= BUDGET, f"{peak} connections (budget {BUDGET})"


async def test_the_supervisor_relays_wakeups_and_its_workers_listen_alone_once_it_is_gone(
    own_database: str, tmp_path: Path
) -> None:
    """An idle worker's polls come ever further apart (0.05 s doubling, here up to a
    minute): 13-14.5 s into idling the next is due no sooner than 25.5 s in, so a task
    that starts within 8 s was woken by the relayed notification."""
    log = tmp_path / "exec.log"
    supervisor = _supervisor(own_database, log, "--processes", "2", "--poll-max", "60s")
    pids: list[int] = []
    try:
        pids = await _wait_for_workers(own_database, 2, [supervisor])
        await anyio.sleep(13)
        async with TaskStore.from_url(own_database) as store:
            first = await store.enqueue("tests.noop")
            with anyio.fail_after(8):
                while first not in executions(log):  # noqa: ASYNC110 - a file, not a store
                    await anyio.sleep(0.05)
            supervisor.kill()  # its workers read the end of their pipes
            supervisor.wait(30)
            with anyio.fail_after(30):
                while log.with_suffix(".err").read_text().count(_ALONE) < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            second = await store.enqueue("tests.noop")
            with anyio.fail_after(60):
                while second not in executions(log):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        with anyio.fail_after(60):
            while any(_running(pid) for pid in pids):  # noqa: ASYNC110
                await anyio.sleep(0.2)
    assert set(executions(log).values()) == {1}


_ALONE = "listening on a connection of our own"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow to collect it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


async def test_libpq_options_in_the_url_reach_the_server(pg_database: str) -> None:
    """URLs copied from other tools carry sslmode, application_name and connect_timeout."""
    options = "sslmode=disable&application_name=ops-console&connect_timeout=5"
    async with TaskStore.from_url(f"{pg_database}?{options}") as store:
        task_id = await store.enqueue("t.x")  # (the database is shared: other tasks may be)
        async with store.reading() as conn:
            name = await conn.exec_driver_sql("SELECT current_setting('application_name')")
            assert name.scalar_one() == "ops-console"
        assert (await store.require(task_id)).name == "t.x"


async def test_several_hosts_in_the_url_are_tried_in_turn(pg_database: str) -> None:
    """A standby list, as libpq takes it: the first host is down, the second serves."""
    from sqlalchemy.engine import make_url

    real = make_url(pg_database)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        down = f"127.0.0.1:{closed.getsockname()[1]}"
        hosts = f"host={down}&host={real.host}:{real.port or 5432}"
        url = real.set(host=None, port=None).render_as_string(hide_password=False)
        async with TaskStore.from_url(f"{url}?{hosts}&target_session_attrs=read-write") as store:
            task_id = await store.enqueue("t.x")
            assert (await store.require(task_id)).name == "t.x"


def test_a_server_that_refuses_ssl_is_named_as_such_not_unreachable(pg_admin_url: str) -> None:
    from tests.integration.test_cli import taskstore

    done = taskstore("status", url=f"{pg_admin_url}?sslmode=require")
    if done.returncode == 0:
        pytest.skip("this server accepts SSL")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "does not accept SSL (drop sslmode, or enable SSL there)" in done.stderr
    assert "cannot reach" not in done.stderr


def test_a_port_that_never_answers_is_named_after_the_connect_timeout() -> None:
    """Something other than PostgreSQL listens there (or a firewall drops the packets):
    the driver gives up with a bare TimeoutError."""
    import socket

    from tests.integration.test_cli import taskstore

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=1"
        done = taskstore("status", url=url)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot reach the database" in done.stderr
    assert "no answer in time (a firewall that drops packets, or a port where" in done.stderr


async def test_a_listen_connection_that_never_connected_says_so_in_the_drivers_words(
    pg_admin_url: str,
) -> None:
    from sqlalchemy.engine import make_url
    from structlog.testing import capture_logs

    missing = make_url(pg_admin_url).set(database="taskstore_no_such_database")
    store = TaskStore.from_url(missing.render_as_string(hide_password=False))
    try:
        with capture_logs() as logs, anyio.move_on_after(0.5):
            await store.backend.listen(store.engine, lambda payload: None)
    finally:
        await store.close()
    assert logs, "no log line"
    assert logs[0]["event"] == "LISTEN connection failed; trying again"
    assert logs[0]["error"] == 'database "taskstore_no_such_database" does not exist'


async def test_a_search_path_in_the_urls_options_keeps_the_tables_in_that_schema(
    unmigrated_pg_database: str,
) -> None:
    """libpq's `options` (as a Django project or a shared database sets search_path)."""
    conn = await asyncpg.connect(unmigrated_pg_database)
    try:
        await conn.execute("CREATE SCHEMA tenant_a")
        store = TaskStore.from_url(f"{unmigrated_pg_database}?options=-c%20search_path%3Dtenant_a")
        try:
            await store.migrate()
            await store.open()
            task_id = await store.enqueue("t.x")
            assert (await store.require(task_id)).name == "t.x"
        finally:
            await store.close()
        where = await conn.fetch(
            "SELECT DISTINCT table_schema FROM information_schema.tables"
            " WHERE table_name LIKE 'taskstore%'"
        )
        assert [row[0] for row in where] == ["tenant_a"]
    finally:
        await conn.close()


def test_a_search_path_of_schemas_that_do_not_exist_is_named_in_one_line(
    unmigrated_pg_database: str,
) -> None:
    from tests.integration.test_cli import assert_one_line_error, taskstore

    url = f"{unmigrated_pg_database}?options=-c%20search_path%3Dtenant_missing"
    done = taskstore("migrate", url=url)
    assert_one_line_error(done, 1, "has no schema to create taskstore's tables in")
    assert "tenant_missing" in done.stderr and "CREATE SCHEMA" in done.stderr
    assert "cannot reach" not in done.stderr and "unexpected" not in done.stderr
    # and a reading command says so too, rather than send the user to `migrate`
    done = taskstore("status", url=url)
    assert_one_line_error(done, 1, "has no schema to create taskstore's tables in")
    assert "CREATE SCHEMA" in done.stderr


def test_a_missing_ssl_file_is_named_as_such_not_unreachable(
    pg_admin_url: str, tmp_path: Path
) -> None:
    from tests.integration.test_cli import taskstore

    for name, text in (("missing.pem", None), ("not-a-cert.pem", "hello")):
        if text is not None:
            (tmp_path / name).write_text(text)
        ssl = f"sslmode=verify-full&sslrootcert={tmp_path / name}"
        done = taskstore("status", url=f"{pg_admin_url}?{ssl}")
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "cannot read the SSL files the database URL names (" in done.stderr
        assert "cannot reach" not in done.stderr
