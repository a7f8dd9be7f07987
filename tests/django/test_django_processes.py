"""Django's task API against taskstore, end to end: ``.enqueue()`` in one process,
``manage.py taskstore_worker --burst`` in another, results read back in a third, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.django.conftest import BIN, Site

ADD = "demo_app.tasks.add"


def _show(site: Site, task_id: str) -> dict:
    return site.taskstore("show", task_id)


def test_sync_async_and_context_tasks_succeed(site: Site) -> None:
    [sync_id, context_id] = site.enqueue(
        {"task": ADD, "args": [2], "kwargs": {"b": 3}}, {"task": "demo_app.tasks.which_attempt"}
    )
    [async_id] = site.enqueue({"task": "demo_app.tasks.async_add", "args": [4, 5]}, how="aenqueue")
    before = site.results(sync_id, async_id)
    assert [r["status"] for r in before] == ["READY", "READY"]
    assert before[0]["enqueued_at"] and before[0]["started_at"] is None

    site.work()

    sync, async_, context = site.results(sync_id, async_id, context_id)
    assert (sync["status"], sync["return_value"]) == ("SUCCESSFUL", 5)
    assert (async_["status"], async_["return_value"]) == ("SUCCESSFUL", 9)
    assert context["return_value"] == {"attempt": 1, "id": context_id}
    assert sync["args"] == [2] and sync["kwargs"] == {"b": 3}
    for result in (sync, async_, context):
        assert result["attempts"] == 1 and len(result["worker_ids"]) == 1
        assert result["errors"] == []
        for stamp in ("enqueued_at", "started_at", "finished_at", "last_attempted_at"):
            assert result[stamp] is not None, stamp
        assert result["finished_at"] >= result["started_at"] >= result["enqueued_at"]

    shown = _show(site, sync_id)  # the result id is the taskstore id
    assert shown["id"] == int(sync_id) and shown["name"] == ADD
    assert (shown["status"], shown["result"]) == ("completed", 5)
    assert shown["payload"] == {"args": [2], "kwargs": {"b": 3}}


def test_a_search_path_in_djangos_options_holds_the_task_tables_too(pg_admin_url: str) -> None:
    """A project whose tables live in a schema of their own (OPTIONS' psycopg `options`):
    migrate, enqueue in Django's transaction, and the worker all use that schema."""
    import asyncio

    import asyncpg

    from tests.conftest import create_pg_database, drop_pg_database

    async def sql(url: str, query: str) -> list:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    url = create_pg_database(pg_admin_url, migrate=False)
    try:
        asyncio.run(sql(url, "CREATE SCHEMA shop"))
        site = Site(url, None)
        site.env["DEMO_DJANGO_OPTIONS"] = json.dumps({"options": "-c search_path=shop"})
        site.task_url = f"{url}?options=-c%20search_path%3Dshop"  # for the `taskstore` CLI
        site.manage("migrate", "-v0")
        [task_id] = site.enqueue({"task": ADD, "args": [2], "kwargs": {"b": 3}})
        site.demo("atomic", "demo_app.tasks.count_notes", "rollback")  # on Django's connection
        committed = site.demo("atomic", "demo_app.tasks.count_notes", "commit")["id"]
        site.work()
        sums, notes = site.results(task_id, committed)
        assert (sums["status"], sums["return_value"]) == ("SUCCESSFUL", 5)
        assert (notes["status"], notes["return_value"]) == ("SUCCESSFUL", 1)
        assert sorted(t["id"] for t in site.taskstore("list")) == [int(task_id), int(committed)]
        tables = "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name"
        tasks = asyncio.run(sql(url, tables + " LIKE 'taskstore%'"))
        django = asyncio.run(sql(url, tables + " = 'django_migrations'"))
        assert [row[0] for row in tasks] == [row[0] for row in django] == ["shop"]
    finally:
        drop_pg_database(pg_admin_url, url)


def test_tasks_in_another_django_database_are_migrated_by_migrate_of_that_database(
    tmp_path: Path,
) -> None:
    """OPTIONS' `database` names a second alias: a plain `migrate` runs only on the
    default one, so the missing tables' error names the command that makes them."""
    site = Site(f"sqlite:///{tmp_path / 'app.db'}", None)
    site.env["DEMO_DJANGO_OTHER_DATABASE"] = f"sqlite:///{tmp_path / 'other.db'}"
    site.env["DEMO_TASKS_OPTIONS"] = json.dumps({"database": "other"})
    site.manage("migrate", "-v0")
    call = json.dumps([{"task": ADD, "args": [1, 2]}])
    refused = site.manage("demo", "enqueue", call, check=False)
    assert refused.returncode != 0
    assert "(`manage.py migrate --database other` creates it)" in refused.stderr, refused.stderr
    site.env["DEMO_DJANGO_OTHER_DATABASE"] = f"sqlite:///{tmp_path / 'app.db'}"  # no tables
    refused = site.manage("demo", "enqueue", call, check=False)
    assert "run `manage.py migrate --database other`" in refused.stderr, refused.stderr
    site.env["DEMO_DJANGO_OTHER_DATABASE"] = f"sqlite:///{tmp_path / 'other.db'}"
    site.manage("migrate", "--database", "other", "-v0")
    [task_id] = site.enqueue({"task": ADD, "args": [1, 2]})
    site.work()
    assert site.results(task_id)[0]["return_value"] == 3


def test_call_command_runs_the_worker_and_returns_like_any_django_command(site: Site) -> None:
    [task_id] = site.enqueue({"task": ADD, "args": [2, 3]})
    assert site.demo("work_in_process") == "returned"  # not SystemExit(0)
    [result] = site.results(task_id)
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 5)


def test_call_command_with_bad_worker_options_raises_command_error(site: Site) -> None:
    assert site.demo("work_with_bad_options") == {"raised": "CommandError", "returncode": 2}


def test_a_raising_task_is_failed_with_its_exception_class(site: Site) -> None:
    [task_id] = site.enqueue({"task": "demo_app.tasks.explode", "args": ["bad"]})
    site.work()
    [result] = site.results(task_id)
    assert result["status"] == "FAILED"
    [error] = result["errors"]
    assert error["exception_class_path"] == "demo_app.tasks.Boom"
    assert result["exception_class"] == "Boom"
    assert "demo_app.tasks.Boom: bad" in error["traceback"]
    shown = _show(site, task_id)
    assert shown["status"] == "failed" and shown["attempts"] == 1  # Django tasks: one attempt


def test_run_after_priority_and_queue_reach_the_row(site: Site) -> None:
    later, mail = site.enqueue(
        {"task": ADD, "args": [1, 1], "using": {"run_after_seconds": 3600}},
        {"task": "demo_app.tasks.send_mail", "args": ["a@example.org"], "using": {"priority": -5}},
    )
    site.work()
    waiting, sent = site.results(later, mail)
    assert waiting["status"] == "READY" and waiting["started_at"] is None  # not run early
    run_at = dt.datetime.fromisoformat(_show(site, later)["run_at"])
    assert run_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    assert (sent["status"], sent["return_value"]) == ("SUCCESSFUL", "sent hello to a@example.org")
    assert (sent["queue_name"], sent["priority"]) == ("emails", -5)
    shown = _show(site, mail)
    assert (shown["queue"], shown["priority"]) == ("emails", -5)
    # Django takes any whole number as a priority (7.0, True): so does the backend
    [whole] = site.enqueue({"task": ADD, "args": [2, 2], "using": {"priority": 7.0}})
    assert _show(site, whole)["priority"] == 7


def test_a_rolled_back_atomic_block_leaves_no_task(site: Site) -> None:
    rolled_back = site.demo("atomic", "demo_app.tasks.count_notes", "rollback")
    assert rolled_back["id"]  # it was written, inside the transaction
    assert site.demo("notes") == 0
    assert site.taskstore("list") == []

    committed = site.demo("atomic", "demo_app.tasks.count_notes", "commit")
    assert site.demo("notes") == 1
    assert [t["id"] for t in site.taskstore("list")] == [int(committed["id"])]
    site.work()
    [result] = site.results(committed["id"])
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 1)  # saw the note


def test_tasks_in_djangos_own_database_join_its_transactions(own_database_site: Site) -> None:
    site = own_database_site
    site.demo("atomic", "demo_app.tasks.count_notes", "rollback")
    assert site.taskstore("list") == []
    [task_id] = site.enqueue({"task": ADD, "args": [20, 22]})
    site.work()
    [result] = site.results(task_id)
    assert result["return_value"] == 42


def test_a_separate_task_database_commits_at_once(separate_site: Site) -> None:
    """Not the same database: the enqueue cannot join Django's transaction (the README
    says to use transaction.on_commit), and the worker still finds it."""
    site = separate_site
    rolled_back = site.demo("atomic", "demo_app.tasks.count_notes", "rollback")
    assert site.demo("notes") == 0
    assert [t["id"] for t in site.taskstore("list")] == [int(rolled_back["id"])]
    site.work()
    [result] = site.results(rolled_back["id"])
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 0)


def test_the_worker_refuses_what_is_not_a_django_task(site: Site) -> None:
    taskstore = str(BIN / "taskstore")
    done = site.run(
        taskstore, "enqueue", "demo_app.tasks.not_a_task", "--database-url", site.task_url
    )
    task_id = done.stdout.strip()
    site.work()
    shown = _show(site, task_id)
    assert shown["status"] == "failed"
    assert "not a Django task" in shown["error"]["message"]
    [result] = site.results(task_id)
    assert "not a Django task" in result["missing"]


def test_the_worker_command_takes_worker_options_and_fails_in_one_line(tmp_path: Path) -> None:
    site = Site(f"sqlite:///{tmp_path / 'app.db'}", None)
    helped = site.manage("taskstore_worker", "--help")
    for option in ("--burst", "--queue", "--concurrency", "--backend", "--app", "--database-url"):
        assert option in helped.stdout
    for args, message in [
        (["--backend", "immediate"], "is ImmediateBackend, not the taskstore backend"),
        (["--backend", "nowhere"], "--backend nowhere: TASKS has no such backend (it has: "),
        (["--queue", "Bad Queue", "--burst"], "invalid queue name"),
        (["--concurrency", "0"], "Invalid value for '--concurrency'"),
    ]:
        done = site.manage("taskstore_worker", *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("taskstore-worker: error: ") and message in done.stderr


def test_bad_backend_options_stop_every_manage_command_and_the_worker_in_one_line(
    tmp_path: Path,
) -> None:
    site = Site(f"sqlite:///{tmp_path / 'app.db'}", None)
    site.env["DEMO_TASKS_OPTIONS"] = json.dumps({"databse": "x", "database": "other"})
    checked = site.manage("check", check=False)
    assert checked.returncode == 1, checked.stderr
    assert "taskstore.E001" in checked.stderr and "taskstore.E002" in checked.stderr
    done = site.manage("taskstore_worker", "--burst", "--skip-checks", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("taskstore-worker: error: TASKS['default']: unknown OPTIONS")


def test_an_empty_queues_list_is_warned_of_since_the_worker_serves_only_default(
    tmp_path: Path,
) -> None:
    """Django takes QUEUES [] for "any queue name"; a worker cannot serve names it is
    never told, so `.using(queue_name=...)` tasks would wait for good, unannounced."""
    site = Site(f"sqlite:///{tmp_path / 'app.db'}", None)
    site.env["DEMO_TASKS_QUEUES"] = "[]"
    checked = site.manage("check")
    assert "taskstore.W001" in checked.stderr and "QUEUES is empty" in checked.stderr
    site.manage("migrate", "--verbosity", "0")
    worked = site.manage("taskstore_worker", "--burst", "--processes", "2")
    assert worked.stderr.count("(taskstore.W001) QUEUES is empty") == 1, worked.stderr


def test_processes_n_runs_django_tasks_in_n_worker_processes(site: Site) -> None:
    """``--processes 2``: two workers forked with Django set up; each runs some tasks
    (the ORM too, on connections of its own) and the burst supervisor exits 0."""
    pids = [{"task": "demo_app.tasks.process_id", "args": [0.3]} for _ in range(8)]
    ids = site.enqueue(*pids, {"task": "demo_app.tasks.count_notes"})
    done = site.manage(
        "taskstore_worker", "--processes", "2", "--concurrency", "2", "--burst",
        "--log-level", "warning",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = site.results(*ids)
    assert [r["status"] for r in results] == ["SUCCESSFUL"] * 9
    assert len({r["return_value"] for r in results[:8]}) == 2
    assert results[8]["return_value"] == 0


def test_manage_py_test_runs_on_the_test_database_and_drops_it(own_database_site: Site) -> None:
    """Django's test runner puts the tasks in its test database (an in-memory one on
    SQLite), and drops that database after: no task connection may hold it open."""
    done = own_database_site.manage("test", "demo_app", "--noinput", "-v", "1", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ran 5 tests" in done.stderr and "\nOK" in done.stderr
    assert "being accessed by other users" not in done.stderr


def test_migrate_beside_an_apps_table_of_a_taskstore_name_fails_in_one_line(
    new_site: Site,
) -> None:
    """A project with its own `video` table: `manage.py migrate` names the clash."""
    new_site.manage("shell", "-c", _CREATE_VIDEO)
    done = new_site.manage("migrate", "-v0", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "CommandError: taskstore: cannot create taskstore's tables: the database already has "
        "video, which taskstore did not create (give taskstore a database of its own, or "
        "rename yours; its tables are caption, media, taskstore_periodic_ticks, "
        "taskstore_queues, taskstore_rate_slots, taskstore_task_attempts, "
        "taskstore_task_deps, taskstore_tasks, taskstore_workers, transcript, video)"
    ]


def test_migrate_on_a_private_in_memory_database_says_why_in_one_line() -> None:
    site = Site("sqlite:///:memory:", None)
    done = site.manage("migrate", "-v0", check=False)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        "CommandError: taskstore: taskstore cannot share Django's private in-memory SQLite"
    )


def test_a_missing_task_table_asks_for_manage_py_migrate_in_and_out_of_a_transaction(
    new_site: Site,
) -> None:
    new_site.manage("migrate", "-v0")
    new_site.manage("shell", "-c", _DROP_TASKS)
    calls = json.dumps([{"task": ADD, "args": [1, 2]}])
    for action in (("enqueue", calls), ("atomic", "demo_app.tasks.count_notes", "commit")):
        done = new_site.manage("demo", *action, check=False)
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert "the taskstore schema is missing or behind" in last, done.stderr[-1500:]
        assert last.endswith("run `manage.py migrate`")


_DROP_TASKS = (
    "from django.db import connection\n"
    "cascade = ' CASCADE' if connection.vendor == 'postgresql' else ''\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('DROP TABLE taskstore_tasks' + cascade)\n"
)
_CREATE_VIDEO = (
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('CREATE TABLE video (id INTEGER PRIMARY KEY)')\n"
)
