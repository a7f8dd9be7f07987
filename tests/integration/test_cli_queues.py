"""`taskstore queue list | set | pause | resume` as real processes, on both databases."""

from __future__ import annotations

import json

from taskstore import TaskStore
from tests.integration.dashboard_helpers import register_worker
from tests.integration.test_cli import assert_one_line_error, taskstore


def _queues(db_url: str) -> dict[str, dict]:
    listed = taskstore("queue", "list", "--json", url=db_url)
    assert listed.returncode == 0, listed.stderr
    return {q["name"]: q for q in json.loads(listed.stdout)}


def test_queue_set_pause_resume_and_list_round_trip(db_url: str) -> None:
    made = taskstore("queue", "set", "api", "--concurrency", "3", "--rate", "10/1s", url=db_url)
    assert made.returncode == 0, made.stderr
    assert taskstore("queue", "set", "api", "--key-concurrency", "1", url=db_url).returncode == 0
    assert taskstore("queue", "pause", "api", url=db_url).stdout.strip() == "queue api is paused"
    api = _queues(db_url)["api"]
    assert (api["paused"], api["concurrency"], api["rate"], api["key_concurrency"]) == (
        True,
        3,
        "10/1s",
        1,
    )
    taskstore("queue", "resume", "api", url=db_url)
    taskstore("queue", "set", "api", "--concurrency", "none", url=db_url)
    api = _queues(db_url)["api"]
    assert (api["paused"], api["concurrency"], api["rate"]) == (False, None, "10/1s")
    status = taskstore("status", "--json", url=db_url)
    assert json.loads(status.stdout)["flow_control"][0]["name"] == "api"


def test_bad_queue_settings_are_one_line_errors_that_change_nothing(db_url: str) -> None:
    taskstore("queue", "set", "api", "--concurrency", "2", url=db_url)
    cases = [
        (("--rate", "10/0s"), "period must be from 0.001s to 1d"),
        (("--concurrency", "-1"), "concurrency must be a whole number"),
        (("--concurrency", "many"), "--concurrency must be a whole number from 1 to"),
        (("--rate", "fast"), "invalid rate"),
        (("--rate", "10/1x"), "invalid rate '10/1x': the period '1x' is not a duration"),
        ((), "nothing to set: give --concurrency, --rate or --key-concurrency"),
    ]
    for args, fragment in cases:
        assert_one_line_error(taskstore("queue", "set", "api", *args, url=db_url), 2, fragment)
    assert_one_line_error(
        taskstore("queue", "pause", "Not A Queue", url=db_url), 2, "invalid queue name"
    )
    api = _queues(db_url)["api"]
    assert (api["concurrency"], api["rate"], api["paused"]) == (2, None, False)


def test_enqueue_takes_a_concurrency_key(db_url: str) -> None:
    made = taskstore("enqueue", "t.x", "--concurrency-key", "tenant-1", url=db_url)
    assert made.returncode == 0, made.stderr
    shown = json.loads(taskstore("show", made.stdout.strip(), "--json", url=db_url).stdout)
    assert shown["concurrency_key"] == "tenant-1"


def test_a_queue_no_task_has_used_gets_a_note_but_is_still_set(db_url: str) -> None:
    """Queues may be limited before their first task, so a new name is no error; a
    mistyped one must not pass unnoticed either. A first set-up, before any queue is in
    use, has nothing to be mistaken for: no note."""
    first = taskstore("queue", "set", "api", "--concurrency", "3", url=db_url)
    assert (first.returncode, first.stderr) == (0, "")
    assert taskstore("enqueue", "t.x", "--queue", "mail", url=db_url).returncode == 0
    known = taskstore("queue", "pause", "mail", url=db_url)
    assert (known.returncode, known.stderr) == (0, "")
    typo = taskstore("queue", "pause", "mial", url=db_url)
    assert (typo.returncode, typo.stdout.strip()) == (0, "queue mial is paused")
    assert typo.stderr.strip() == (
        "note: no task or live worker uses queue mial yet (in use: mail); did you mean mail?"
    )
    for args in (("resume", "mial"), ("set", "mial", "--concurrency", "2")):
        again = taskstore("queue", *args, url=db_url)
        assert "no task or live worker uses queue mial" in again.stderr
    assert "is the name right?" in taskstore("queue", "pause", "zzz", url=db_url).stderr
    assert _queues(db_url)["mial"]["concurrency"] == 2
    cleared = taskstore("queue", "set", "fresh", "--concurrency", "none", url=db_url)
    assert cleared.stdout.strip() == "queue fresh has no limits (and no tasks)"


def test_enqueue_into_a_paused_queue_notes_that_it_waits_for_a_resume(db_url: str) -> None:
    taskstore("queue", "pause", "api", url=db_url)
    paused = taskstore("enqueue", "t.x", "--queue", "api", url=db_url)
    assert paused.returncode == 0 and paused.stdout.strip().isdigit()
    assert paused.stderr == (
        f"note: queue api is paused: task {paused.stdout.strip()} waits until it is resumed\n"
    )
    taskstore("queue", "resume", "api", url=db_url)
    assert taskstore("enqueue", "t.x", "--queue", "api", url=db_url).stderr == ""


async def test_a_queue_a_live_worker_serves_gets_no_note(store: TaskStore, db_url: str) -> None:
    """Set up while its workers run, before its first task: the name is in use."""
    await store.enqueue("t.x", queue="mail")
    await register_worker(store, "w-1", host="h", queues={"reports": None})
    served = taskstore("queue", "set", "reports", "--concurrency", "1", url=db_url)
    assert (served.returncode, served.stderr) == (0, "")
    other = taskstore("queue", "pause", "report", url=db_url).stderr
    assert other.strip().endswith("(in use: mail, reports); did you mean reports?")
