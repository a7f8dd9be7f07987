"""`taskstore-worker --processes N`: the supervisor runs N workers (forked from its zygote,
or new programs once that is gone), restarts one that is killed, stops them all gracefully
on SIGTERM (exit 0), and with --burst ends once they have drained their queues."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from taskstore import TaskStore
from tests.helpers.processes import ROOT, executions


async def _live_pids(store: TaskStore) -> set[int]:
    return {w.pid for w in await store.workers() if w.alive}


async def test_a_supervisor_runs_n_workers_restarts_a_killed_one_and_stops_them_all(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    ids = await store.enqueue_many(
        [{"name": "tests.record", "payload": {"n": n}} for n in range(300)]
    )
    log = tmp_path / "exec.log"
    supervisor = _start_supervisor(db_url, log, "--processes", "3", "--lease-seconds", "3")
    try:
        with anyio.fail_after(90):
            while len(await _live_pids(store)) < 3:  # noqa: ASYNC110 - the registry is the point
                await anyio.sleep(0.1)
            while {(await store.require(i)).status.value for i in ids} != {"completed"}:  # noqa: ASYNC110
                await anyio.sleep(0.2)
        first = await _live_pids(store)
        assert len(first) == 3 and supervisor.pid not in first
        os.kill(min(first), signal.SIGKILL)
        with anyio.fail_after(60):  # a fresh process takes the killed one's place
            while not (await _live_pids(store) - first):  # noqa: ASYNC110
                await anyio.sleep(0.2)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0
    runs = executions(log)
    assert len(runs) == 300 and set(runs.values()) == {1}
    for pid in first - {min(first)}:
        assert not _running(pid)  # stopped with the supervisor


async def test_workers_are_forked_from_one_zygote_and_new_programs_once_it_is_gone(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    supervisor = _start_supervisor(db_url, tmp_path / "exec.log", "--processes", "2")
    try:
        with anyio.fail_after(60):
            while len(await _live_pids(store)) < 2:  # noqa: ASYNC110 - the registry is the point
                await anyio.sleep(0.1)
        first = await _live_pids(store)
        [zygote] = {_parent(pid) for pid in first}  # both forked by one process
        assert zygote != supervisor.pid and _parent(zygote) == supervisor.pid
        os.kill(zygote, signal.SIGKILL)
        with anyio.fail_after(10):  # reaped at once, not left a zombie till a worker ends
            while _process_entry(zygote):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        with anyio.fail_after(60):  # restarted without the zygote: a program of its own
            while not (fresh := await _live_pids(store) - first):  # noqa: ASYNC110
                await anyio.sleep(0.2)
        assert {_parent(pid) for pid in fresh} == {supervisor.pid}
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0
    assert not _running(max(first))  # the zygote's other worker stopped with the rest


async def test_workers_whose_supervisor_is_killed_finish_their_tasks_and_stop(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    supervisor = _start_supervisor(db_url, tmp_path / "exec.log", "--processes", "2")
    workers: set[int] = set()
    try:
        with anyio.fail_after(60):
            while len(await _live_pids(store)) < 2:  # noqa: ASYNC110 - the registry is the point
                await anyio.sleep(0.1)
        workers = await _live_pids(store)
        ids = await store.enqueue_many(
            [{"name": "tests.sleep", "payload": {"seconds": 2}} for _ in range(4)]
        )
        with anyio.fail_after(30):
            while {(await store.require(i)).status.value for i in ids} != {"running"}:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        supervisor.kill()
        with anyio.fail_after(30):  # gracefully: what they ran completes, then they exit
            while any(_alive(pid) for pid in workers):  # noqa: ASYNC110
                await anyio.sleep(0.2)
    finally:
        supervisor.kill()
        supervisor.wait(60)
        for pid in workers:  # without the fix they would run on
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    tasks = [await store.require(i) for i in ids]
    assert {t.status.value for t in tasks} == {"completed"}
    assert {t.attempts for t in tasks} == {1}
    assert not await _live_pids(store)  # unregistered on the way out


async def _two_running(store: TaskStore, seconds: float) -> tuple[set[int], list[int]]:
    """Once a supervisor's two workers are up, a task of `seconds` running on each: the
    workers' pids and the tasks' ids."""
    with anyio.fail_after(60):
        while len(await _live_pids(store)) < 2:  # noqa: ASYNC110 - the registry is the point
            await anyio.sleep(0.1)
    ids = await store.enqueue_many(
        [{"name": "tests.sleep", "payload": {"seconds": seconds}} for _ in range(2)]
    )
    with anyio.fail_after(30):
        while {(await store.require(i)).status.value for i in ids} != {"running"}:  # noqa: ASYNC110
            await anyio.sleep(0.1)
    return await _live_pids(store), ids


async def test_a_stop_sent_to_every_process_is_one_graceful_stop_not_two(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    """systemd's default KillMode, `pkill`: each worker hears the stop from its sender and
    again through the supervisor. As a second stop, that would cut its task off."""
    with _supervising(db_url, tmp_path / "exec.log", "--processes", "2") as supervisor:
        workers, ids = await _two_running(store, seconds=3)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        await anyio.sleep(0.5)  # stopping, when the supervisor passes the stop on
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
    tasks = [await store.require(i) for i in ids]
    assert [(t.status.value, t.attempts) for t in tasks] == [("completed", 1)] * 2


@pytest.mark.parametrize(
    "stops", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGQUIT,)], ids=["second_stop", "sigquit"]
)
async def test_a_second_stop_or_a_sigquit_to_the_supervisor_cuts_its_workers_tasks_off(
    store: TaskStore, db_url: str, tmp_path: Path, stops: tuple[signal.Signals, ...]
) -> None:
    with _supervising(db_url, tmp_path / "exec.log", "--processes", "2") as supervisor:
        _, ids = await _two_running(store, seconds=60)
        for stop in stops:
            supervisor.send_signal(stop)
            await anyio.sleep(0.5)
        assert supervisor.wait(30) == 0  # not the minute the tasks would take
    tasks = [await store.require(i) for i in ids]
    # handed back to run again, the attempt not charged
    assert [(t.status.value, t.attempts) for t in tasks] == [("not_finished", 0)] * 2


async def test_a_stop_while_a_dead_worker_waits_for_its_restart_is_still_a_clean_stop(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    """A deploy's stop during a crash loop: the crash was logged and would have been
    restarted, so the stop itself succeeded (exit 0, the unit not marked failed)."""
    with _supervising(db_url, tmp_path / "exec.log", "--processes", "2") as supervisor:
        with anyio.fail_after(60):
            while len(pids := await _live_pids(store)) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        os.kill(min(pids), signal.SIGKILL)
        await anyio.sleep(0.5)  # noticed, and waiting out its backoff (1 s) to restart
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0


async def test_a_burst_supervisor_ends_once_its_workers_have_drained_the_queue(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    ids = await store.enqueue_many(
        [{"name": "tests.record", "payload": {"n": n}} for n in range(200)]
    )
    log = tmp_path / "exec.log"
    supervisor = _start_supervisor(db_url, log, "--processes", "2", "--burst")
    assert supervisor.wait(120) == 0  # not restarted: each drained its queue and exited 0
    assert {(await store.require(i)).status.value for i in ids} == {"completed"}
    assert len(executions(log)) == 200 and set(executions(log).values()) == {1}


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_workers_collect_garbage_while_they_run_though_not_while_they_start(
    store: TaskStore, db_url: str, tmp_path: Path, processes: str
) -> None:
    ids = await store.enqueue_many([{"name": "tests.collector"} for _ in range(4)])
    supervisor = _start_supervisor(
        db_url, tmp_path / "exec.log", "--processes", processes, "--burst"
    )
    assert supervisor.wait(120) == 0
    assert [(await store.require(i)).result for i in ids] == [{"collecting": True}] * 4


def test_a_burst_supervisor_whose_workers_cannot_start_exits_1_without_restarts() -> None:
    """As a burst worker alone does: a cron job or CI step must not wait on restarts."""
    url = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
    env = {**os.environ, "TASKSTORE_DATABASE_URL": url}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline", "--burst"]
    done = subprocess.run(
        [*argv, "--processes", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "cannot reach the database" in done.stderr
    assert "restarting it" not in done.stderr
    assert "burst run ended after worker processes failed" in done.stderr


@pytest.mark.parametrize("delay", [0.0, 0.003, 0.02])
def test_a_stop_while_the_supervisor_starts_its_workers_stops_every_one_cleanly(
    tmp_path: Path, delay: float
) -> None:
    """Workers started after the stop came never start; one it reached before it could
    stop gracefully held no tasks: the stop is still a clean one (exit 0)."""
    url = f"sqlite:///{tmp_path / 'start.db'}"
    subprocess.run(
        [sys.executable, "-m", "taskstore.cli", "migrate", "--database-url", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    supervisor = _start_supervisor(url, tmp_path / "exec.log", "--processes", "12")
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:  # its zygote, and a worker
            seen |= _descendants(supervisor.pid)
            time.sleep(0.0005)
        time.sleep(delay)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
        assert not [pid for pid in seen | _descendants(supervisor.pid) if _running(pid)]
    finally:
        for pid in seen | {supervisor.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> set[int]:
    """The processes below `pid` now (read from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


async def test_a_burst_run_in_which_a_worker_died_exits_non_zero(
    store: TaskStore, db_url: str
) -> None:
    """The restarted worker drains what is claimable and exits 0, but the dead one's task
    waits out its lease unrun: a cron job or CI step must not read that as success."""
    await store.enqueue("faulty.poison")
    await store.enqueue_many([{"name": "faulty.noop", "payload": {}} for _ in range(20)])
    env = {**os.environ, "TASKSTORE_DATABASE_URL": db_url}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.faulty", "--burst"]
    argv += ["--processes", "2"]
    with anyio.fail_after(120):
        done = await anyio.run_process(argv, cwd=ROOT, env=env, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr[-2000:]
    assert "killed by SIGKILL" in stderr
    assert "burst run ended after worker processes died" in stderr


def test_a_supervisor_whose_workers_refuse_their_options_stops_instead_of_restarting(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db"}
    app = "tests.apps.no_such_app"  # its package is there: only importing it tells
    argv = [sys.executable, "-m", "worker.cli", "--app", app, "--processes", "2"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count(f"cannot import app '{app}'") >= 1
    assert "stopping the others" in done.stderr and "restarting" not in done.stderr


def test_an_app_that_is_not_there_is_said_once_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db"}
    for app, error in (
        ("no_such_app", "cannot import app 'no_such_app': No module named 'no_such_app' ("),
        ("missing/tasks.py", "app file missing/tasks.py does not exist"),
    ):
        argv = [sys.executable, "-m", "worker.cli", "--app", app, "--processes", "3"]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        [line] = done.stderr.splitlines()  # not one per worker, and no supervisor started
        assert line.startswith(f"taskstore-worker: error: {error}"), line


def test_a_metrics_port_already_taken_stops_the_supervisor_instead_of_restarting(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "TASKSTORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db"}
        argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline", "--burst"]
        argv += ["--processes", "2", "--metrics-port", str(port - 1)]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "restarting" not in done.stderr


def test_metrics_ports_past_65535_are_refused_before_any_worker_starts(tmp_path: Path) -> None:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db"}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline"]
    argv += ["--processes", "3", "--metrics-port", "65534"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "taskstore-worker: error: --metrics-port 65534 with 3 processes needs ports up to "
        "65536; the last port is 65535"
    ]


def _alive(pid: int) -> bool:
    """Is this pid a process that has not ended (nor become a zombie)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _process_entry(pid: int) -> bool:
    """Is there still a process (a zombie too) with this pid?"""
    return Path(f"/proc/{pid}").exists()


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


@contextlib.contextmanager
def _supervising(db_url: str, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A supervisor for the block, killed after it whatever the block did."""
    supervisor = _start_supervisor(db_url, log, *args)
    try:
        yield supervisor
    finally:
        supervisor.kill()
        supervisor.wait(60)


def _start_supervisor(db_url: str, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": db_url, "TEST_EXEC_LOG": str(log)}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline", *args]
    return subprocess.Popen(argv, cwd=ROOT, env=env)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
