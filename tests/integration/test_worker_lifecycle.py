"""Real worker processes: graceful shutdown, crash and rescue, cancellation from the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from taskstore import TaskStatus, TaskStore
from tests.helpers.processes import ROOT, executions, free_port, start_worker, stderr_of
from tests.helpers.terminal import start_on_terminal


async def counts(store: TaskStore) -> dict[str, int]:
    return {k: v for s in await store.stats() for k, v in s.counts.items()}


async def wait_for(check, seconds: float = 60.0) -> None:
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - polling the database is the point
            await anyio.sleep(0.05)


async def running(store: TaskStore, n: int) -> None:
    async def check() -> bool:
        return (await counts(store)).get("running", 0) == n

    await wait_for(check)


async def exit_code(proc: subprocess.Popen, seconds: float = 60) -> int:
    return await anyio.to_thread.run_sync(lambda: proc.wait(seconds))


async def test_sigterm_cuts_off_tasks_past_the_grace_period_and_they_run_once_more(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    ids = await store.enqueue_many(
        [{"name": "tests.sleep", "payload": {"seconds": 30}} for _ in range(20)]
    )
    log = tmp_path / "exec.log"
    worker = start_worker(db_url, "--concurrency", "20", "--shutdown-timeout", "1", exec_log=log)
    await running(store, 20)
    worker.send_signal(signal.SIGTERM)
    assert await exit_code(worker) == 0, stderr_of(log)
    assert await counts(store) == {"not_finished": 20}  # none left running
    info = await store.require(ids[0])
    assert info.error["type"] == "CutOff" and info.attempts == 0  # not a failed attempt
    assert info.worker_id is not None  # handed back by a live worker: no orphan, no isolation

    again = start_worker(
        db_url, "--burst", "--concurrency", "20", exec_log=log, env={"TEST_SLEEP_SCALE": "0"}
    )
    assert await exit_code(again) == 0, stderr_of(log)
    assert await counts(store) == {"completed": 20}
    assert set(executions(log).values()) == {2}  # cut off once, then exactly once more


async def test_three_rolling_deploys_do_not_spend_a_long_tasks_attempts(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    task_id = await store.enqueue("tests.sleep", {"seconds": 30}, max_attempts=3)
    log = tmp_path / "exec.log"
    for _ in range(3):  # three SIGTERMs while it runs: three deploys
        worker = start_worker(db_url, "--shutdown-timeout", "0.5", exec_log=log)
        await running(store, 1)
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker) == 0, stderr_of(log)
        info = await store.require(task_id)
        assert (info.status, info.attempts) == (TaskStatus.NOT_FINISHED, 0)
        assert "NonRetryable" not in json.dumps(info.error)
    last = start_worker(db_url, "--burst", exec_log=log, env={"TEST_SLEEP_SCALE": "0"})
    assert await exit_code(last) == 0, stderr_of(log)
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.COMPLETED, 1)
    assert executions(log)[task_id] == 4  # three cut off, the fourth ran to the end


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
async def test_a_stop_signal_lets_running_tasks_finish_within_the_grace_period(
    store: TaskStore, db_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGHUP too (`kill -HUP`, a closed terminal): unhandled, it killed the worker, whose
    tasks then waited out their leases and were charged the attempt."""
    await store.enqueue_many([{"name": "tests.sleep", "payload": {"seconds": 1}} for _ in range(5)])
    log = tmp_path / "exec.log"
    worker = start_worker(db_url, "--concurrency", "5", "--shutdown-timeout", "20", exec_log=log)
    await running(store, 5)
    worker.send_signal(stop)
    assert await exit_code(worker) == 0, stderr_of(log)
    assert await counts(store) == {"completed": 5}
    assert set(executions(log).values()) == {1}


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_worker_whose_terminal_closes_finishes_its_tasks_and_exits_0(
    store: TaskStore, db_url: str, tmp_path: Path, processes: str
) -> None:
    """A closed terminal: SIGHUP, and every log line after it fails with EIO. That failed
    write crashed the worker (exit 1), leaving its tasks running until their leases ran
    out, each charged an attempt."""
    await store.enqueue_many([{"name": "tests.sleep", "payload": {"seconds": 2}} for _ in range(2)])
    log = tmp_path / "exec.log"
    env = {**os.environ, "TASKSTORE_DATABASE_URL": db_url, "TEST_EXEC_LOG": str(log)}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline"]
    argv += ["--log-level", "INFO", "--concurrency", "2", "--processes", processes]
    terminal = start_on_terminal(argv, ROOT, env)
    try:
        await running(store, 2)
        terminal.communicate("hang up\n", timeout=60)
    finally:
        terminal.kill()
    assert terminal.returncode == 0
    assert await counts(store) == {"completed": 2}
    assert set(executions(log).values()) == {1}


async def test_a_second_sigterm_or_one_sigquit_cuts_a_lone_workers_tasks_off_at_once(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "exec.log"
    for signals in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGQUIT,)):
        task_id = await store.enqueue("tests.sleep", {"seconds": 60})
        worker = start_worker(db_url, "--shutdown-timeout", "60", exec_log=log)
        await running(store, 1)
        for signum in signals:
            worker.send_signal(signum)
            await anyio.sleep(0.3)
        assert await exit_code(worker, 20) == 0, stderr_of(log)  # not the minute of grace
        info = await store.require(task_id)
        assert (info.status, info.attempts) == (TaskStatus.NOT_FINISHED, 0), signals
        await store.cancel(task_id)  # the next worker runs only the next task


def _remove_files(folder: Path, pattern: str) -> None:
    for path in folder.glob(pattern):
        path.unlink()


async def test_a_worker_whose_sqlite_file_is_deleted_stops_with_an_error_saying_so(
    tmp_path: Path,
) -> None:
    """A reset with `rm` while a worker runs: it would go on with the deleted file, and
    what is enqueued into the new one would wait for good."""
    path, log = tmp_path / "reset.db", tmp_path / "exec.log"
    worker = start_worker(f"sqlite:///{path}", exec_log=log)

    async def started() -> bool:
        return '"worker started"' in stderr_of(log)

    try:
        await wait_for(started)
        _remove_files(tmp_path, "reset.db*")
        assert await exit_code(worker, 30) == 1
    finally:
        worker.kill()
    said = stderr_of(log).strip().splitlines()
    assert said[-1] == (
        f"taskstore-worker: error: the database file {path} was deleted or replaced while "
        "the worker ran: start the worker again to serve the new one"
    )


async def test_a_killed_workers_tasks_are_rescued_and_run_again(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    ids = await store.enqueue_many(
        [{"name": "tests.sleep", "payload": {"seconds": 60}} for _ in range(4)]
    )
    last_try = await store.enqueue("tests.sleep", {"seconds": 60}, max_attempts=1)
    log = tmp_path / "exec.log"
    doomed = start_worker(db_url, "--concurrency", "5", "--lease-seconds", "2", exec_log=log)
    await running(store, 5)

    async def all_started() -> bool:  # "running" is written by the claim, before the start
        return len(executions(log)) == 5

    await wait_for(all_started)
    doomed.send_signal(signal.SIGKILL)
    await exit_code(doomed)
    killed_at = time.monotonic()

    rescuer = start_worker(
        db_url,
        "--concurrency",
        "5",
        "--lease-seconds",
        "2",
        exec_log=log,
        env={"TEST_SLEEP_SCALE": "0"},
    )
    try:

        async def all_done() -> bool:
            return await counts(store) == {"completed": 4, "failed": 1}

        await wait_for(all_done)
        recovered_in = time.monotonic() - killed_at
    finally:
        rescuer.send_signal(signal.SIGTERM)
        await exit_code(rescuer)
    for task_id in ids:
        info = await store.require(task_id)
        assert (info.status, info.attempts) == (TaskStatus.COMPLETED, 2)
    failed = await store.require(last_try)
    assert failed.error["type"] == "LeaseExpired" and failed.attempts == 1
    assert executions(log)[ids[0]] == 2 and executions(log)[last_try] == 1
    assert recovered_in < 30


async def test_a_running_task_cancelled_from_the_cli_stops_within_two_heartbeats(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    task_id = await store.enqueue("tests.sleep", {"seconds": 120})
    log = tmp_path / "exec.log"
    # lease 3 s: heartbeats every second
    worker = start_worker(db_url, "--lease-seconds", "3", exec_log=log)
    try:
        await running(store, 1)
        cancel = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "taskstore.cli",
                "--database-url",
                db_url,
                "cancel",
                str(task_id),
            ],
            check=False,
        )
        assert cancel.returncode == 0, cancel.stderr
        cancelled_at = time.monotonic()

        async def stopped() -> bool:
            for line in stderr_of(log).splitlines():
                if line.startswith("{") and json.loads(line).get("task_id") == task_id:
                    return "stopped" in json.loads(line)["event"]
            return False

        await wait_for(stopped, seconds=30)
        took = time.monotonic() - cancelled_at
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker) == 0
    assert (await store.require(task_id)).status is TaskStatus.CANCELLED
    print(f"cancelled task stopped {took:.2f}s after `taskstore cancel` (heartbeat 1 s)")
    assert took < 2 * 1.0 + 2.0  # two heartbeat intervals, plus slack for a busy machine


@pytest.mark.parametrize("metrics", [False, True], ids=["plain", "metrics"])
async def test_a_sigterm_while_the_worker_starts_is_a_graceful_stop(
    store: TaskStore, db_url: str, tmp_path: Path, metrics: bool
) -> None:
    # With metrics, the gauges' first count is under way as the stop comes: cancelled
    # mid-statement, its SQLite connection's close never returned and the worker hung.
    task_id = await store.enqueue("slow_import.noop")
    marker = tmp_path / "importing"
    proc = start_worker(
        db_url,
        *(["--metrics-port", str(free_port())] if metrics else []),
        app="tests.apps.slow_import",
        exec_log=tmp_path / "exec.log",
        env={"TEST_IMPORT_MARKER": str(marker)},
    )
    with anyio.fail_after(30):
        while not marker.exists():  # noqa: ASYNC110 - the child's progress is a file
            await anyio.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # a deploy stops it before it ever claimed
    assert proc.wait(60) == 0
    assert (await store.require(task_id)).status is TaskStatus.CREATED  # nothing started


def test_a_failing_startup_or_shutdown_hook_stops_the_worker_in_one_line_naming_it(
    db_url: str, tmp_path: Path
) -> None:
    app = tmp_path / "hooked.py"
    app.write_text(
        "import os\n"
        "from worker import on_shutdown, on_startup, task\n\n"
        "@on_startup\n"
        "async def load_model(resources):\n"
        "    if os.environ.get('FAIL_AT') == 'startup':\n"
        "        raise RuntimeError('model file missing')\n\n"
        "@on_shutdown\n"
        "def save_state(resources):\n"
        "    if os.environ.get('FAIL_AT') == 'shutdown':\n"
        "        raise ValueError('cannot save')\n\n"
        "@task(queue='hooked')\n"
        "async def noop(ctx):\n"
        "    return None\n"
    )
    for phase, message in [
        ("startup", "startup hook hooked.load_model failed: RuntimeError: model file missing"),
        ("shutdown", "shutdown hook hooked.save_state failed: ValueError: cannot save"),
    ]:
        env = {**os.environ, "TASKSTORE_DATABASE_URL": db_url, "FAIL_AT": phase}
        argv = [sys.executable, "-m", "worker.cli", "--app", str(app), "--burst"]
        argv += ["--log-level", "error"]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"taskstore-worker: error: {message}"]
