"""Through PgBouncer in transaction pooling mode (Debian's pgbouncer, started here on a
free port in front of the test server): with TASKSTORE_PGBOUNCER=1 the CLI and four worker
processes drain 2,000 tasks exactly once with no error; without it the first command says
what is wrong in one line, and not that the database is unreachable.

Skipped where the `pgbouncer` binary is missing, unless TASKSTORE_TEST_REQUIRE_PGBOUNCER=1
(CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy.engine import make_url

from taskstore import TaskStatus, TaskStore
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers.processes import ROOT, executions, start_worker, stderr_of

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def bouncer_url(pg_admin_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """PgBouncer in front of a new database; `request.param` (indirect): its
    max_client_conn (500)."""
    max_clients = getattr(request, "param", 500)
    if PGBOUNCER is None:
        if os.environ.get("TASKSTORE_TEST_REQUIRE_PGBOUNCER") == "1":
            pytest.fail("pgbouncer is not installed (TASKSTORE_TEST_REQUIRE_PGBOUNCER=1)")
        pytest.skip("PgBouncer tests skipped: no pgbouncer binary (apt-get install pgbouncer)")
    direct = create_pg_database(pg_admin_url)
    server = make_url(direct)
    port = _free_port()
    # Its own folder under the system temp dir: it drops root, and pytest's folders are
    # not open to other users.
    folder = Path(tempfile.mkdtemp(prefix="taskstore-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = {max_clients}\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    run_as = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
    log = tmp_path / "pgbouncer.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([PGBOUNCER, *run_as, str(folder / "pgbouncer.ini")], stderr=out)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(
                        f"pgbouncer did not start: {(folder / 'pgbouncer.log').read_text()}"
                    )
                time.sleep(0.1)
        yield server.set(port=port).render_as_string(hide_password=False)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        shutil.rmtree(folder, ignore_errors=True)
        drop_pg_database(pg_admin_url, direct)


def _cli(url: str, *args: str, pgbouncer: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": url}
    env.pop("TASKSTORE_PGBOUNCER", None)
    if pgbouncer:
        env["TASKSTORE_PGBOUNCER"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "taskstore.cli", *args], env=env, capture_output=True, text=True
    )


async def _enqueued_through(bouncer_url: str, items: list[dict]) -> None:
    """Migrate and enqueue through PgBouncer, then let go of every connection."""
    os.environ["TASKSTORE_PGBOUNCER"] = "1"
    try:
        async with TaskStore.from_url(bouncer_url) as store:
            await store.migrate()
            await store.enqueue_many(items)
    finally:
        os.environ.pop("TASKSTORE_PGBOUNCER", None)


async def test_four_workers_drain_through_pgbouncer_exactly_once_without_errors(
    bouncer_url: str, tmp_path: Path
) -> None:
    # The second client to reuse a server connection meets the first one's statements.
    _cli(bouncer_url, "status", pgbouncer=False)
    without = _cli(bouncer_url, "status", pgbouncer=False)
    assert without.returncode == 2 and "cannot reach" not in without.stderr
    assert "TASKSTORE_PGBOUNCER=1" in without.stderr and without.stderr.count("\n") == 1

    assert _cli(bouncer_url, "status").returncode == 0
    os.environ["TASKSTORE_PGBOUNCER"] = "1"
    try:
        async with TaskStore.from_url(bouncer_url) as store:
            ids = await store.enqueue_many(
                [{"name": "tests.record", "payload": {"n": n}} for n in range(2000)]
            )
            log = tmp_path / "exec.log"
            env = {"TASKSTORE_PGBOUNCER": "1"}
            fleet = [start_worker(bouncer_url, exec_log=log, env=env) for _ in range(4)]
            try:
                with anyio.fail_after(180):
                    while True:
                        stats = {s.queue: s.counts for s in await store.stats()}
                        if stats.get("default", {}).get("completed") == 2000:
                            break
                        await anyio.sleep(0.2)
            finally:
                for proc in fleet:
                    proc.send_signal(signal.SIGTERM)
                codes = [proc.wait(60) for proc in fleet]
            info = await store.require(ids[-1])
    finally:
        os.environ.pop("TASKSTORE_PGBOUNCER", None)
    assert codes == [0, 0, 0, 0]
    assert info.status is TaskStatus.COMPLETED
    runs = executions(log)
    assert len(runs) == 2000 and set(runs.values()) == {1}  # exactly once
    errors = [line for line in stderr_of(log).splitlines() if '"error"' in line]
    assert errors == []


@pytest.mark.parametrize("bouncer_url", [1], indirect=True)
async def test_a_pgbouncer_with_no_room_for_another_client_is_not_called_unreachable(
    bouncer_url: str,
) -> None:
    import asyncpg

    from tests.conftest import _dsn

    held = await asyncpg.connect(_dsn(bouncer_url), statement_cache_size=0)
    try:
        refused = _cli(bouncer_url, "status")
    finally:
        await held.close()
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "has no room for another connection: no more connections allowed" in refused.stderr
    assert "cannot reach" not in refused.stderr


def test_workers_whose_url_pgbouncer_refuses_stop_instead_of_restarting(
    bouncer_url: str,
) -> None:
    """A setting to change, as bad options are: every restart would fail alike."""
    env = {**os.environ, "TASKSTORE_PGBOUNCER": "1"}
    env["TASKSTORE_DATABASE_URL"] = f"{bouncer_url}?options=-c%20search_path%3Dtenant_a"
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline", "--processes", "2"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refused a setting of the URL" in done.stderr and "restarting it" not in done.stderr


async def test_a_setting_pgbouncer_does_not_pass_on_is_named_not_called_unreachable(
    bouncer_url: str,
) -> None:
    refused = _cli(f"{bouncer_url}?options=-c%20search_path%3Dtenant_a", "status")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "refused a setting of the URL (a pooler there? set it on the server" in refused.stderr
    assert "unsupported startup parameter: options" in refused.stderr
    assert "cannot reach" not in refused.stderr


async def test_a_worker_through_pgbouncer_holds_two_client_connections_and_no_more(
    bouncer_url: str, tmp_path: Path
) -> None:
    """As on a direct connection: one for claims and reads, one for endings
    (deploy/README.md, "Connection budget"); PgBouncer's log counts its logins."""
    await _enqueued_through(bouncer_url, [{"name": "tests.noop"} for _ in range(50)])
    logins = tmp_path / "pgbouncer.log"
    before = logins.read_text().count("login attempt")
    log = tmp_path / "exec.log"
    worker = start_worker(bouncer_url, exec_log=log, env={"TASKSTORE_PGBOUNCER": "1"})
    try:
        with anyio.fail_after(60):
            while len(executions(log)) < 50:  # noqa: ASYNC110 - its log is the point
                await anyio.sleep(0.1)
        await anyio.sleep(2.5)  # idle: it reads the queues' settings again, and polls
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    assert logins.read_text().count("login attempt") - before == 2


@pytest.mark.parametrize("bouncer_url", [2], indirect=True)
async def test_a_burst_run_whose_outcomes_the_database_refused_exits_1(
    bouncer_url: str, tmp_path: Path
) -> None:
    """Its two connections fill PgBouncer: each handler's own session (``ctx.session()``)
    is refused a third, so no completion is recorded. A cron job or CI step must not read
    that as success."""
    await _enqueued_through(
        bouncer_url, [{"name": "tests.record", "payload": {"n": n}} for n in range(3)]
    )
    log = tmp_path / "exec.log"
    worker = start_worker(bouncer_url, "--burst", exec_log=log, env={"TASKSTORE_PGBOUNCER": "1"})
    assert worker.wait(120) == 1
    said = stderr_of(log)
    assert "completion failed; the task will be rescued and rerun" in said
    assert "the burst run ended with 3 task outcome(s) the database did not take" in said
