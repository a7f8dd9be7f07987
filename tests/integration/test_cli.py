"""The `taskstore` command, run as a real process on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

SECRET = "s3cr3t-pw"


def taskstore(*args: str, url: str | None = None, env: dict | None = None, input=None):
    full_env = {**os.environ, **(env or {})}
    if url is not None:
        full_env["TASKSTORE_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "taskstore.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        input=input,
    )


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskstore: error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0]


def test_enqueue_show_list_status_round_trip_as_json(db_url: str) -> None:
    out = taskstore(
        "enqueue",
        "pkg.mod.fn",
        "--payload",
        '{"video_id": "v1"}',
        "--queue",
        "media",
        "--priority",
        "4",
        "--max-attempts",
        "2",
        url=db_url,
    )
    assert out.returncode == 0, out.stderr
    task_id = int(out.stdout.strip())
    as_json = taskstore("enqueue", "pkg.mod.fn", "--json", "--delay", "60", url=db_url)
    second = json.loads(as_json.stdout)["id"]
    shown = json.loads(taskstore("show", str(task_id), "--json", url=db_url).stdout)
    assert {
        k: shown[k]
        for k in (
            "id",
            "name",
            "queue",
            "status",
            "priority",
            "attempts",
            "max_attempts",
            "payload",
            "result",
            "error",
        )
    } == {
        "id": task_id,
        "name": "pkg.mod.fn",
        "queue": "media",
        "status": "created",
        "priority": 4,
        "attempts": 0,
        "max_attempts": 2,
        "payload": {"video_id": "v1"},
        "result": None,
        "error": None,
    }
    assert "run_at" in shown
    listed = json.loads(taskstore("list", "--json", url=db_url).stdout)
    assert [t["id"] for t in listed] == [second, task_id]
    filtered = json.loads(taskstore("list", "--queue", "media", "--json", url=db_url).stdout)
    assert [t["id"] for t in filtered] == [task_id]
    status = json.loads(taskstore("status", "--json", url=db_url).stdout)
    counts = {q["queue"]: q["counts"] for q in status["queues"]}
    assert counts == {"default": {"created": 1}, "media": {"created": 1}}


def test_human_output_is_an_aligned_table(db_url: str) -> None:
    taskstore("enqueue", "a.b", url=db_url)
    status = taskstore("status", url=db_url).stdout.splitlines()
    assert status[0].split()[:3] == ["queue", "created", "assigned"]
    assert status[2].split()[:2] == ["default", "1"]
    shown = taskstore("show", "1", url=db_url).stdout
    assert "status" in shown and "created" in shown


def test_cancel_then_retry_then_purge(db_url: str) -> None:
    task_id = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    assert taskstore("cancel", task_id, url=db_url).stdout.strip() == f"task {task_id} is cancelled"
    again = taskstore("cancel", task_id, url=db_url)  # not an error: see test_cli_more.py
    assert (again.returncode, again.stdout.strip()) == (0, f"task {task_id} was already cancelled")
    assert taskstore("retry", task_id, url=db_url).stdout.strip() == f"task {task_id} is created"
    taskstore("cancel", task_id, url=db_url)
    assert taskstore("purge", "--older-than", "1h", url=db_url).stdout.strip() == "purged 0 tasks"
    assert taskstore("purge", "--older-than", "0s", "--yes", url=db_url).stdout.strip() == (
        "purged 1 tasks"
    )
    assert_one_line_error(taskstore("show", task_id, url=db_url), 2, f"no task with id {task_id}")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--payload", '{"x": '], "payload is not valid JSON"),
        (["--payload", "not json"], "payload is not valid JSON"),
        (["--payload", '{"x": NaN}'], "NaN is not allowed"),
        (["--payload", "[1, 2]"], "payload must be a JSON object"),
        (["--queue", "Bad Queue"], "invalid queue name"),
        (["--queue", "x'; DROP TABLE taskstore_tasks; --"], "invalid queue name"),
        (["--priority", "99999"], "priority"),
    ],
)
def test_bad_enqueue_input_fails_with_one_line_and_writes_nothing(
    db_url: str, args: list[str], fragment: str
) -> None:
    assert_one_line_error(taskstore("enqueue", "a.b", *args, url=db_url), 2, fragment)
    assert json.loads(taskstore("list", "--json", url=db_url).stdout) == []


def test_invalid_task_name_is_refused(db_url: str) -> None:
    result = taskstore("enqueue", "1; DROP TABLE x", url=db_url)
    assert_one_line_error(result, 2, "invalid task name")


def test_payload_over_the_limit_is_refused(db_url: str) -> None:
    result = taskstore(
        "enqueue",
        "a.b",
        "--payload",
        json.dumps({"s": "x" * 200}),
        url=db_url,
        env={"TASKSTORE_MAX_PAYLOAD_BYTES": "100"},
    )
    assert_one_line_error(result, 2, "over the limit of 100")


@pytest.mark.parametrize(
    ("url", "code", "fragment"),
    [
        ("not a url", 2, "invalid database URL"),
        (f"mysql://user:{SECRET}@localhost/db", 2, "unsupported database URL scheme"),
        (f"postgresql://user:{SECRET}@127.0.0.1:1/db", 1, "cannot reach the database"),
        (f"postgresql://user:{SECRET}@no-such-host.invalid/db", 1, "cannot reach the database"),
    ],
)
def test_bad_or_unreachable_database_fails_with_one_line_and_no_password(
    url: str, code: int, fragment: str
) -> None:
    result = taskstore("enqueue", "a.b", "--database-url", url)
    assert_one_line_error(result, code, fragment)
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    ("part", "name", "fragment"),
    [
        ("database", "taskstore_no_such_db", "does not exist: database"),
        ("username", "taskstore_no_such_role", "refused the login: role"),
    ],
)
@pytest.mark.parametrize("command", ["status", "migrate"])
def test_a_server_that_answers_no_such_database_or_role_is_not_called_unreachable(
    pg_admin_url: str, part: str, name: str, fragment: str, command: str
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_admin_url).set(**{part: name}).render_as_string(hide_password=False)
    result = taskstore(command, url=url)
    assert_one_line_error(result, 1, f'{fragment} "{name}" does not exist')
    assert "cannot reach" not in result.stderr


def test_a_port_where_something_other_than_postgresql_answers_is_said_so_not_ssl() -> None:
    """asyncpg's first words ask for SSL; a web server's answer reads to it as "rejected
    SSL upgrade", which with no sslmode given only says the port is wrong."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    with conn:
                        conn.recv(64)
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        result = taskstore("status", url=f"postgresql://u@127.0.0.1:{port}/db")
    assert_one_line_error(result, 1, "does not answer as PostgreSQL does: is that the")
    assert "SSL (drop" not in result.stderr and "cannot reach" not in result.stderr


def test_a_sqlite_file_locked_past_the_busy_timeout_says_locked(tmp_path) -> None:
    import sqlite3

    from tests.conftest import _migrate

    path = tmp_path / "held.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        env = {"TASKSTORE_SQLITE_BUSY_TIMEOUT_MS": "200"}
        for args in (("queue", "pause", "q1"), ("enqueue", "a.b")):
            result = taskstore(*args, url=f"sqlite:///{path}", env=env)
            assert_one_line_error(result, 1, "is locked: database is locked")
            assert "cannot reach" not in result.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert taskstore("list", "--json", url=f"sqlite:///{path}").stdout.strip() == "[]"


def test_database_url_flag_overrides_the_environment(db_url: str, tmp_path) -> None:
    other = f"sqlite:///{tmp_path / 'never.db'}"
    out = taskstore("--database-url", db_url, "enqueue", "a.b", url=other)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "never.db").exists()


def test_unmigrated_database_says_run_taskstore_migrate(tmp_path) -> None:
    result = taskstore("status", url=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert_one_line_error(result, 1, "taskstore migrate")


def test_help_does_not_show_a_password_from_the_environment() -> None:
    result = taskstore(
        "enqueue", "--help", env={"TASKSTORE_DATABASE_URL": f"postgresql://u:{SECRET}@h/db"}
    )
    assert result.returncode == 0 and SECRET not in result.stdout


def test_usage_errors_exit_2() -> None:
    assert taskstore("show", "not-a-number").returncode == 2
    assert taskstore("no-such-command").returncode == 2


def test_status_json_reports_recent_finishes_and_live_workers(db_url: str) -> None:
    import asyncio

    from taskstore import TaskStore
    from worker import Registry, Worker, WorkerConfig

    async def setup() -> str:
        async with TaskStore.from_url(db_url) as store:
            task_id = await store.enqueue("a.b")
            await store.cancel(task_id)
            worker = Worker(store, Registry(), WorkerConfig(queues={"media": 4}, concurrency=8))
            await worker.heartbeat()  # registers the worker row
            await worker.consumer.close()
            return worker.worker_id

    worker_id = asyncio.run(setup())
    report = json.loads(taskstore("status", "--json", url=db_url).stdout)
    assert report["workers"] == {"alive": 1, "registered": 1}
    assert set(report["finished"]) == {"1m", "5m", "15m"}
    assert report["finished"]["1m"] == {"completed": 0, "failed": 0}
    [row] = json.loads(taskstore("workers", "--json", url=db_url).stdout)
    assert (row["id"], row["queues"], row["concurrency"], row["alive"]) == (
        worker_id,
        {"media": 4},
        8,
        True,
    )
    human = taskstore("workers", url=db_url).stdout
    assert worker_id in human and "media:4" in human


def test_purge_counts_and_reports_what_it_deleted(db_url: str) -> None:
    ids = [taskstore("enqueue", "a.b", url=db_url).stdout.strip() for _ in range(3)]
    for task_id in ids[:2]:
        taskstore("cancel", task_id, url=db_url)
    out = taskstore("purge", "--older-than", "0s", "--status", "cancelled", url=db_url)
    assert out.stdout.strip() == "purged 2 tasks"
    assert [t["id"] for t in json.loads(taskstore("list", "--json", url=db_url).stdout)] == [
        int(ids[2])
    ]
    bad = taskstore("purge", "--older-than", "soon", url=db_url)
    assert_one_line_error(bad, 2, "invalid duration")


def test_retry_failed_in_bulk_and_usage_errors(db_url: str) -> None:
    assert taskstore("retry", "--failed", "--queue", "media", url=db_url).stdout.strip() == (
        "retried 0 tasks"
    )
    assert_one_line_error(taskstore("retry", url=db_url), 2, "give a TASK_ID")
    assert_one_line_error(taskstore("retry", "1", "--queue", "x", url=db_url), 2, "TASK_ID")


def test_enqueue_depends_on_waits_for_the_named_tasks_and_refuses_unknown_ones(
    db_url: str,
) -> None:
    first = taskstore("enqueue", "a.first", url=db_url).stdout.strip()
    second = taskstore("enqueue", "a.second", url=db_url).stdout.strip()
    out = taskstore("enqueue", "a.after", "--depends-on", first, "--depends-on", second, url=db_url)
    assert out.returncode == 0, out.stderr
    shown = json.loads(taskstore("show", out.stdout.strip(), "--json", url=db_url).stdout)
    assert shown["status"] == "waiting"
    assert shown["depends_on"] == [int(first), int(second)]
    lines = taskstore(
        "enqueue",
        "a.each",
        "--jsonl",
        "-",
        "--depends-on",
        first,
        url=db_url,
        input='{"n": 1}\n{"n": 2}\n',
    )
    assert lines.returncode == 0, lines.stderr
    for task_id in lines.stdout.split():
        assert json.loads(taskstore("show", task_id, "--json", url=db_url).stdout)[
            "depends_on"
        ] == [int(first)]
    before = taskstore("list", "--json", url=db_url).stdout
    missing = taskstore("enqueue", "a.after", "--depends-on", "999999", url=db_url)
    assert_one_line_error(missing, 2, "--depends-on names no task: 999999")
    for given in ("abc", "0"):
        bad = taskstore("enqueue", "a.after", "--depends-on", given, url=db_url)
        assert_one_line_error(bad, 2, f"'{given}' is not a task id (a whole number from 1)")
    assert taskstore("list", "--json", url=db_url).stdout == before


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["--depends-on", "1", "--dedup-key", "k"],
            "--depends-on cannot be combined with --dedup-key",
        ),
        (["--depends-on", "1", "--depends-on", "1"], "--depends-on names the same task twice"),
        (["--max-attempts", "0"], "--max-attempts must be an integer from 1 to 10000"),
        (["--concurrency-key", ""], "--concurrency-key must be a non-empty string"),
        (["--priority", "40000"], "--priority must be an integer from -32768 to 32767"),
    ],
)
def test_enqueue_errors_name_the_options_as_typed(
    db_url: str, options: list[str], said: str
) -> None:
    assert_one_line_error(taskstore("enqueue", "a.b", *options, url=db_url), 2, said)
    jsonl = taskstore("enqueue", "a.b", "--jsonl", "-", *options, url=db_url, input="{}\n")
    assert jsonl.returncode == 2 and "_" not in jsonl.stderr  # (no Python argument names)
