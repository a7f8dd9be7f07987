"""What a new user of `taskstore` and `taskstore-worker` runs into, as real processes.

Durations spelled the same everywhere, read-only commands that never create a database,
payloads from files and stdin, bulk enqueue from JSON lines, filters and JSON output, the
ready/scheduled split of `status`, quiet Ctrl-C on `--watch`, and app files that register
the same task names from any directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskstore import TaskStore, cli_tasks
from taskstore.cli import main
from tests.integration.test_cli import assert_one_line_error, taskstore
from tests.integration.test_store import W, claim


def worker(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def ids_of(url: str, *args: str) -> list[int]:
    return [t["id"] for t in json.loads(taskstore("list", "--json", *args, url=url).stdout)]


# ------------------------------------------------------------------------ durations
@pytest.mark.parametrize(("delay", "seconds"), [("1h", 3600), ("30", 30), ("5m", 300)])
def test_enqueue_delay_takes_the_same_durations_as_purge(
    db_url: str, delay: str, seconds: int
) -> None:
    out = taskstore("enqueue", "a.b", "--delay", delay, "--json", url=db_url)
    assert out.returncode == 0, out.stderr
    shown = json.loads(
        taskstore("show", str(json.loads(out.stdout)["id"]), "--json", url=db_url).stdout
    )
    ahead = dt.datetime.fromisoformat(shown["run_at"]) - dt.datetime.fromisoformat(
        shown["created_at"]
    )
    assert abs(ahead.total_seconds() - seconds) < 5


def test_purge_older_than_a_bare_number_means_seconds(db_url: str) -> None:
    task_id = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    taskstore("cancel", task_id, url=db_url)
    assert taskstore("purge", "--older-than", "3600", url=db_url).stdout.strip() == "purged 0 tasks"
    assert taskstore("purge", "--older-than", "0", url=db_url).stdout.strip() == "purged 1 tasks"


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["enqueue", "a.b", "--delay", "1x"], "--delay", "1x"),
        (["enqueue", "a.b", "--delay", "-1"], "--delay", "-1"),
        (["purge", "--older-than", "soon"], "--older-than", "soon"),
        (["status", "--watch", "--interval", "fast"], "--interval", "fast"),
    ],
)
def test_a_bad_duration_is_one_line_naming_the_option_and_the_value(
    tmp_path: Path, args: list[str], option: str, value: str
) -> None:
    result = taskstore(*args, url=f"sqlite:///{tmp_path / 'never.db'}")
    assert_one_line_error(result, 2, option, repr(value), "invalid duration")
    assert not (tmp_path / "never.db").exists()


# ------------------------------------------------------------- no database created
NEVER_CREATE = [
    ["status"],
    ["status", "--json"],
    ["list"],
    ["show", "1"],
    ["workers"],
    ["cancel", "1"],
    ["retry", "1"],
    ["purge", "--older-than", "1d"],
    ["queue", "list"],
    ["queue", "set", "q1", "--concurrency", "3"],
    ["queue", "pause", "q1"],
    ["queue", "resume", "q1"],
]


@pytest.mark.parametrize("command", NEVER_CREATE, ids=" ".join)
def test_commands_but_migrate_and_enqueue_never_create_a_missing_sqlite_file(
    tmp_path: Path, command: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskstore.cli", "--database-url", "sqlite:///data/x.db", *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert_one_line_error(result, 1, f"no database file at {tmp_path / 'data' / 'x.db'}")
    assert "four slashes" in result.stderr and "sqlite:////data/x.db" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_missing_absolute_sqlite_path_is_named_without_the_slashes_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x.db"
    result = taskstore("list", url=f"sqlite:///{missing}")
    assert_one_line_error(result, 1, f"no database file at {missing}")
    assert "four slashes" not in result.stderr and not missing.parent.exists()


def test_migrate_and_enqueue_may_still_create_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'x.db'}"
    assert taskstore("migrate", url=url).returncode == 0
    assert taskstore("enqueue", "a.b", url=url).stdout.strip() == "1"


@pytest.mark.parametrize("command", [["status"], ["migrate"]], ids=" ".join)
def test_a_folder_given_as_the_sqlite_file_is_not_called_unreachable(
    tmp_path: Path, command: list[str]
) -> None:
    result = taskstore(*command, url=f"sqlite:///{tmp_path}")
    assert_one_line_error(result, 1, f"cannot open the database file at {tmp_path}: it is a folder")
    assert "cannot reach" not in result.stderr


@pytest.mark.parametrize("command", [["migrate"], ["list"], ["enqueue", "a.b"]], ids=" ".join)
def test_a_file_that_is_not_a_database_is_named_as_such_and_left_alone(
    tmp_path: Path, command: list[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, and long enough to have a header of its own\n" * 4)
    before = notes.read_bytes()
    result = taskstore(*command, url=f"sqlite:///{notes}")
    assert_one_line_error(
        result, 1, f"the file at {notes} is not an SQLite database", "path right?"
    )
    assert "unexpected" not in result.stderr and "cannot reach" not in result.stderr
    assert notes.read_bytes() == before


def test_an_empty_database_url_is_refused_not_taken_for_the_default() -> None:
    """`--database-url "$DB"` with DB unset must not quietly use the default database."""
    for argv in (["--database-url", "", "status"], ["status", "--database-url", " "]):
        assert_one_line_error(taskstore(*argv), 2, "--database-url is empty")


def test_enqueue_into_a_new_sqlite_file_creates_it_with_its_schema(tmp_path: Path) -> None:
    """Not an empty file that every later command calls schema-less."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert taskstore("enqueue", "a.b", url=url).stdout.strip() == "1"
    assert json.loads(taskstore("show", "1", "--json", url=url).stdout)["name"] == "a.b"
    manual = tmp_path / "manual.db"
    result = taskstore(
        "enqueue", "a.b", url=f"sqlite:///{manual}", env={"TASKSTORE_AUTO_MIGRATE": "0"}
    )
    assert_one_line_error(result, 1, f"no database file at {manual}")
    assert not manual.exists()


# -------------------------------------------------------------------- payloads
def test_enqueue_reads_the_payload_from_a_file_or_stdin(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"video_id": "v1"}')
    from_file = taskstore("enqueue", "a.b", "--payload", f"@{tmp_path / 'p.json'}", url=db_url)
    from_stdin = subprocess.run(
        [sys.executable, "-m", "taskstore.cli", "enqueue", "a.b", "--payload", "-"],
        input='{"video_id": "v2"}',
        capture_output=True,
        text=True,
        env={**os.environ, "TASKSTORE_DATABASE_URL": db_url},
        timeout=60,
    )
    payloads = [
        json.loads(taskstore("show", out.stdout.strip(), "--json", url=db_url).stdout)["payload"]
        for out in (from_file, from_stdin)
    ]
    assert payloads == [{"video_id": "v1"}, {"video_id": "v2"}]


def test_an_unreadable_payload_file_is_one_line(db_url: str, tmp_path: Path) -> None:
    result = taskstore("enqueue", "a.b", "--payload", f"@{tmp_path / 'none.json'}", url=db_url)
    assert_one_line_error(result, 2, "cannot read payload file", "none.json")


def test_enqueue_jsonl_prints_the_ids_in_line_order_over_several_chunks(
    db_url: str, tmp_path: Path
) -> None:
    lines = tmp_path / "tasks.jsonl"
    lines.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(2500)))
    out = taskstore("enqueue", "a.b", "--jsonl", str(lines), "--queue", "bulk", url=db_url)
    assert out.returncode == 0, out.stderr
    ids = [int(line) for line in out.stdout.split()]
    listed = json.loads(taskstore("list", "--json", "--limit", "5000", url=db_url).stdout)
    payload_of = {t["id"]: t["payload"]["i"] for t in listed if t["queue"] == "bulk"}
    assert [payload_of[i] for i in ids] == list(range(2500))


def test_enqueue_jsonl_from_stdin_as_a_json_list(db_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskstore.cli", "enqueue", "a.b", "--jsonl", "-", "--json"],
        input='{"n": 1}\n\n{"n": 2}\n',
        capture_output=True,
        text=True,
        env={**os.environ, "TASKSTORE_DATABASE_URL": db_url},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sorted(ids_of(db_url))


def test_enqueue_jsonl_with_a_bad_line_names_it_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    rows = [json.dumps({"i": i}) for i in range(2500)]
    rows[2000] = '{"i": NaN}'  # after two whole chunks
    (tmp_path / "bad.jsonl").write_text("\n".join(rows))
    result = taskstore("enqueue", "a.b", "--jsonl", str(tmp_path / "bad.jsonl"), url=db_url)
    assert_one_line_error(result, 2, "line 2001", "NaN is not allowed")
    assert ids_of(db_url) == []


def test_enqueue_jsonl_without_a_name_says_each_line_is_a_payload_for_it(
    db_url: str, tmp_path: Path
) -> None:
    # Lines that look like whole tasks are the likely mistake: they are payloads of NAME.
    line = {"name": "a.b", "queue": "bulk", "payload": {"i": 1}}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(line) + "\n")
    result = taskstore("enqueue", "--jsonl", str(tmp_path / "tasks.jsonl"), url=db_url)
    assert_one_line_error(result, 2, "Missing argument 'NAME'", "every --jsonl line is a payload")
    assert ids_of(db_url) == []


# ------------------------------------------------------------ listing and acting
def test_list_filters_by_task_name(db_url: str) -> None:
    wanted = [
        taskstore("enqueue", name, url=db_url).stdout.strip() for name in ("a.b", "c.d", "a.b")
    ]
    assert ids_of(db_url, "--name", "a.b") == [int(wanted[2]), int(wanted[0])]


def test_retry_json_prints_the_task_like_show_json(db_url: str) -> None:
    task_id = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    taskstore("cancel", task_id, url=db_url)
    retried = json.loads(taskstore("retry", task_id, "--json", url=db_url).stdout)
    shown = json.loads(taskstore("show", task_id, "--json", url=db_url).stdout)
    assert retried == shown and retried["status"] == "created"


def test_retry_says_what_it_did_even_when_a_worker_takes_the_task_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live worker may claim (and fail again) the retried task before the command reads
    # it back: the first line still says the retry queued it, the second what became of it.
    task_id = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    taskstore("cancel", task_id, url=db_url)
    read_back = cli_tasks._task_doc

    async def worker_first(store: TaskStore, wanted: int) -> dict:
        async with store.engine.begin() as conn:
            await store.tasks.claim(
                conn, worker_id="w-quick", queue="default", limit=1, lease_seconds=30
            )
        return await read_back(store, wanted)

    monkeypatch.setattr(cli_tasks, "_task_doc", worker_first)
    result = CliRunner().invoke(main, ["retry", task_id, "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"task {task_id} is created",
        f"a worker took it at once: now running (taskstore show {task_id})",
    ]


async def test_show_sums_up_a_fan_in_of_many_on_one_short_line(store, db_url: str) -> None:
    leaves = [{"name": "a.b", "key": f"n{n}"} for n in range(300)]
    fan_in = {"name": "a.sum", "key": "sum", "depends_on": [f"n{n}" for n in range(300)]}
    ids = await store.enqueue_many([*leaves, fan_in])
    out = taskstore("show", str(ids[-1]), url=db_url).stdout
    [line] = [line for line in out.splitlines() if line.startswith("depends_on")]
    assert line.endswith(f"{ids[298]}, {ids[299]} (300 tasks; --json lists them all)")
    assert len(line) < 160
    shown = json.loads(taskstore("show", str(ids[-1]), "--json", url=db_url).stdout)
    assert shown["depends_on"] == ids[:300]


def test_show_gives_the_attempt_limit_a_task_runs_under_not_a_dash(db_url: str) -> None:
    unset = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    own = taskstore("enqueue", "a.b", "--max-attempts", "5", url=db_url).stdout.strip()

    def limit(task_id: str) -> str:
        out = taskstore("show", task_id, url=db_url).stdout.splitlines()
        return next(line for line in out if line.startswith("max_attempts")).split(None, 1)[1]

    assert limit(unset) == "3 (default, unless its handler's @task sets max_attempts)"
    assert limit(own) == "5"
    assert json.loads(taskstore("show", unset, "--json", url=db_url).stdout)["max_attempts"] is None


def test_status_shows_scheduled_tasks_apart_from_ready_ones(db_url: str) -> None:
    taskstore("enqueue", "a.b", url=db_url)
    taskstore("enqueue", "a.b", "--delay", "1h", url=db_url)
    taskstore("enqueue", "a.b", "--delay", "1h", url=db_url)
    [queue] = json.loads(taskstore("status", "--json", url=db_url).stdout)["queues"]
    assert (queue["counts"], queue["ready"], queue["scheduled"]) == ({"created": 3}, 1, 2)
    human = taskstore("status", url=db_url).stdout.splitlines()
    columns = dict(zip(human[0].split(), human[2].split(), strict=False))
    assert (columns["created"], columns["ready"], columns["scheduled"]) == ("3", "1", "2")


def test_cancelling_an_already_cancelled_task_is_not_an_error(db_url: str) -> None:
    task_id = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    taskstore("cancel", task_id, url=db_url)
    again = taskstore("cancel", task_id, url=db_url)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.strip() == f"task {task_id} was already cancelled"


def test_cancel_names_what_it_cancelled_below_and_retry_json_what_waits_again(
    db_url: str,
) -> None:
    first = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    second = taskstore("enqueue", "a.b", "--depends-on", first, url=db_url).stdout.strip()
    third = taskstore("enqueue", "a.b", "--depends-on", second, url=db_url).stdout.strip()
    said = taskstore("cancel", first, url=db_url).stdout.splitlines()
    assert said == [
        f"task {first} is cancelled",
        f"cancelled with it (they waited for it): {second}, {third}",
    ]
    retried = taskstore("retry", first, "--with-dependents", "--json", url=db_url)
    doc = json.loads(retried.stdout)
    assert (doc["status"], doc["waiting_again"]) == ("created", [int(second), int(third)])


def test_status_watch_ends_quietly_on_ctrl_c(db_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskstore.cli", "status", "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TASKSTORE_DATABASE_URL": db_url},
        # As from a terminal: a suite run as a background job would hand it SIGINT ignored.
        preexec_fn=_ctrl_c_as_from_a_terminal,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # it is watching
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (0, "")


def _ctrl_c_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ------------------------------------------------------------------------ worker
def test_worker_errors_are_prefixed_taskstore_worker(db_url: str, tmp_path: Path) -> None:
    result = worker("--app", "no_such_module_here", url=db_url, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("taskstore-worker: error: cannot import app")
    bad = worker("--app", "x", "--shutdown-timeout", "later", url=db_url, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("taskstore-worker: error: Invalid value for '--shutdown-timeout'")


def test_a_url_option_from_another_tool_points_to_database_url(db_url: str, tmp_path: Path) -> None:
    """`--url` (rq) or `--dsn` (asyncpg, pgqueuer): click would suggest `--burst`."""
    hint = "the database URL goes in --database-url (or TASKSTORE_DATABASE_URL)."
    assert_one_line_error(taskstore("status", "--dsn", db_url, url=db_url), 2, hint)
    ran = worker("--app", "x", "--url", db_url, url=db_url, cwd=tmp_path)
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith("taskstore-worker: error: No such option '--url': " + hint)


def test_a_stray_positional_value_is_named_with_the_option_it_belongs_to(
    db_url: str, tmp_path: Path
) -> None:
    """`taskstore enqueue NAME '{...}'` and `taskstore-worker app.tasks` (as other queues'
    CLIs take them): click alone says only "unexpected extra argument", or that --app is
    missing, and nothing is enqueued."""
    payload = taskstore("enqueue", "app.record", '{"n": 1}', url=db_url)
    hint = 'unexpected extra argument ({"n": 1}): the payload goes in --payload JSON'
    assert_one_line_error(payload, 2, hint)
    assert taskstore("list", "--json", url=db_url).stdout.strip() == "[]"
    several = taskstore("retry", "4", "5", url=db_url)  # as xargs passes them
    assert_one_line_error(several, 2, "argument (5): one TASK_ID at a time, or --failed for")
    for args in (["app.tasks"], ["app.tasks", "--burst"], ["--app", "app.tasks", "media"]):
        ran = worker(*args, url=db_url, cwd=tmp_path)
        stray = "media" if "--app" in args else "app.tasks"
        assert ran.returncode == 2 and ran.stderr.count("\n") == 1, ran.stderr
        assert ran.stderr.startswith(
            f"taskstore-worker: error: Got unexpected extra argument ({stray}): "
            "an app goes in --app MODULE, a queue in --queue Q"
        )
    missing = worker("--burst", url=db_url, cwd=tmp_path)
    assert missing.stderr.startswith("taskstore-worker: error: Missing option '--app'.")


def _dashboard_lines(db_url: str, host: str) -> tuple[str, str]:
    """The dashboard's second line on `host` (port 0), and the address its first said."""
    command = [sys.executable, "-m", "taskstore.dashboard", "--port", "0", "--host", host]
    proc = subprocess.Popen([*command, "--database-url", db_url], stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline() if proc.stderr else ""
        second = proc.stderr.readline() if proc.stderr else ""
        said = re.match(r"taskstore dashboard at (http://[^ ]+:(\d+)/) on ", first)
        assert said, first
        with urllib.request.urlopen(f"http://127.0.0.1:{said[2]}/", timeout=10) as page:
            assert page.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    return second, said[1]


def test_the_dashboard_says_at_which_address_to_open_it(db_url: str) -> None:
    """uvicorn, given a socket of ours, prints no address: the first line does, with the
    port the system chose for --port 0. On an address others can reach, the next line
    says that reading needs no token."""
    second, address = _dashboard_lines(db_url, "127.0.0.1")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", address)
    assert not second.startswith("note:")
    second, address = _dashboard_lines(db_url, "0.0.0.0")
    assert address.startswith("http://0.0.0.0:")
    assert second.startswith("note: listening on 0.0.0.0: whoever reaches the port reads")


APP = """
from worker import task

@task(queue="media")
def record(ctx, n: int) -> int:
    return n
"""


def served(result: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """The queues -> task names of the worker's one start-up line, which names its worker
    (under --processes there is one per worker)."""
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [line] = [e for e in events if e["event"] == "serving tasks"]
    [started] = [e for e in events if e["event"] == "worker started"]
    assert line["worker"] == started["worker"]
    return line["queues"]


def test_an_app_file_registers_the_same_task_names_from_any_directory(
    db_url: str, tmp_path: Path
) -> None:
    package = tmp_path / "newcomer" / "app" / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(APP)
    loose = tmp_path / "scripts"
    loose.mkdir()
    (loose / "jobs.py").write_text(APP)
    for cwd in (tmp_path, package):
        app = os.path.relpath(package / "tasks.py", cwd)
        assert served(worker("--app", app, "--burst", url=db_url, cwd=cwd)) == {
            "media": ["myapp.tasks.record"]
        }
    for cwd in (tmp_path, loose):
        app = os.path.relpath(loose / "jobs.py", cwd)
        assert served(worker("--app", app, "--burst", url=db_url, cwd=cwd)) == {
            "media": ["jobs.record"]
        }


def test_a_worker_says_which_database_it_serves_and_when_it_made_a_new_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "jobs.py").write_text(APP)
    url = "sqlite:///typo.db"

    def events() -> dict[str, dict[str, object]]:
        result = worker("--app", "jobs.py", "--burst", url=url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        return {e["event"]: e for e in lines}

    first = events()
    assert first["created a new database"]["path"] == str(tmp_path / "typo.db")
    assert first["worker started"]["database"] == "sqlite+aiosqlite:///typo.db"
    assert "created a new database" not in events()
    url = "sqlite:///new/folder/jobs.db"  # the default path on a new machine is like it
    assert events()["created a new database"]["path"] == str(tmp_path / "new/folder/jobs.db")


async def test_of_workers_starting_together_on_a_new_sqlite_file_one_says_it_made_it(
    tmp_path: Path,
) -> None:
    import asyncio

    from structlog.testing import capture_logs

    from taskstore.store import TaskStore
    from worker.cli import _migrate

    stores = [TaskStore.from_url(f"sqlite:///{tmp_path / 'new.db'}") for _ in range(3)]
    try:
        with capture_logs() as logs:
            await asyncio.gather(*(_migrate(store) for store in stores))
    finally:
        for store in stores:
            await store.close()
    made = [line for line in logs if line["event"] == "created a new database"]
    assert [line["path"] for line in made] == [str(tmp_path / "new.db")]


def test_wait_exits_by_outcome_and_its_json_is_what_show_prints(db_url: str) -> None:
    first = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    second = taskstore("enqueue", "a.b", url=db_url).stdout.strip()
    assert taskstore("cancel", first, url=db_url).returncode == 0
    waited = taskstore("wait", first, "--json", url=db_url)
    assert waited.returncode == 1  # cancelled
    shown = json.loads(taskstore("show", first, "--json", url=db_url).stdout)
    assert json.loads(waited.stdout) == shown and "dependents" in shown
    assert_one_line_error(
        taskstore("wait", second, "--timeout", "0.2", url=db_url), 3, "did not finish within"
    )
    assert_one_line_error(taskstore("wait", "999999", url=db_url), 2, "no task with id 999999")


async def test_wait_for_a_task_that_completed_after_a_failed_attempt_prints_no_error(
    db_url: str,
) -> None:
    async with TaskStore.from_url(db_url) as store:
        task_id = await store.enqueue("a.b")
        [task] = await claim(store)
        async with store.transaction() as conn:
            error = {"type": "RuntimeError", "message": "marker missing"}
            await store.tasks.fail(
                conn, task_id=task_id, worker_id=W, fence=task.fence, error=error, retry_in=0
            )
        [task] = await claim(store)
        async with store.transaction() as conn:
            await store.tasks.complete_many(conn, worker_id=W, done=[(task_id, task.fence, None)])
    waited = taskstore("wait", str(task_id), url=db_url)
    assert (waited.returncode, waited.stdout) == (0, f"task {task_id} completed\n")
    assert "earlier error" in taskstore("show", str(task_id), url=db_url).stdout
