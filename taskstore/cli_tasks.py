"""`taskstore list | show | retry | cancel | purge`: look at tasks and act on them.

None of these creates a database (see `taskstore.cli_store`); heavy modules load inside
the commands, so ``--help`` stays cheap.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import (
    ONE_TASK,
    ONE_TASK_OR_FAILED,
    Command,
    Duration,
    database_url_option,
    emit_json,
    fail,
)
from taskstore.cli_store import with_store
from taskstore.states import FINISHED, TaskStatus

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore

STATUSES = [s.value for s in TaskStatus]


def _task_row(info: TaskInfo) -> list[Any]:
    created = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return [
        info.id,
        info.name,
        info.queue,
        info.status.value,
        info.priority,
        info.attempts,
        created,
    ]


@click.command(name="list", cls=Command)
@click.option("--status", "status_", default=None, type=click.Choice(STATUSES))
@click.option("--queue", default=None)
@click.option("--name", default=None, help="Only tasks of this name.")
@click.option("--limit", default=50, type=click.IntRange(1, 100_000), show_default=True)
@click.option("--json", "as_json", is_flag=True)
@database_url_option
def list_(url: str | None, limit: int, as_json: bool, **filters: Any) -> None:
    """List tasks, newest first."""
    from taskstore.formatting import table

    status = filters.pop("status_")
    tasks = with_store(url, lambda s: s.list(status=status, limit=limit, **filters))
    if as_json:
        emit_json([t.to_json() for t in tasks])
        return
    headers = ["id", "name", "queue", "status", "priority", "attempts", "created"]
    click.echo(table(headers, [_task_row(t) for t in tasks]) if tasks else "no tasks")


@click.command(cls=Command, extra_hint=ONE_TASK)
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@database_url_option
def show(url: str | None, task_id: int, as_json: bool) -> None:
    """Show one task in full: payload, result, error, attempts, dependencies."""
    from taskstore.formatting import attempt_limit, error_summary

    doc = with_store(url, lambda store: _task_doc(store, task_id))
    if as_json:
        emit_json(doc)
        return
    for key in ("depends_on", "dependents"):
        doc[key] = _ids(doc[key])
    log = doc.pop("attempts_log")
    error = doc.pop("error")
    if doc["held_up"] is None:
        del doc["held_up"]  # running or finished: nothing holds it up
    for key in ("payload", "result"):
        doc[key] = None if doc[key] is None else json.dumps(doc[key])
    doc["max_attempts"] = attempt_limit(doc["max_attempts"], error)
    width = max(map(len, doc))
    for key, value in doc.items():
        click.echo(f"{key.ljust(width)}  {'-' if value is None else value}")
    if error:
        # A completed task keeps the error met before it completed: say it is history.
        label = "error" if doc["status"] != "completed" else "earlier error"
        summary = error_summary(error.get("type"), error.get("message"))
        click.echo(f"{label.ljust(width)}  {summary}")
        if error.get("traceback"):
            click.echo(error["traceback"].rstrip())
    if log:
        click.echo("attempts:")
        for entry in log:
            click.echo("  " + _attempt_line(entry))


def _ids(ids: list[int], shown: int = 12) -> str | None:
    """Task ids on one line; a long list (a fan-in of thousands) by its ends and size."""
    if len(ids) <= shown:
        return ", ".join(map(str, ids)) or None
    head = ", ".join(map(str, ids[: shown - 2]))
    return f"{head}, ... {ids[-2]}, {ids[-1]} ({len(ids)} tasks; --json lists them all)"


def _attempt_line(entry: dict[str, Any]) -> str:
    from taskstore.formatting import error_summary

    started = (entry["started_at"] or "-")[:19].replace("T", " ")
    finished = (entry["finished_at"] or "-")[:19].replace("T", " ")
    line = f"#{entry['number']}  {entry['outcome']:<13} {started} -> {finished}"
    line += f"  {entry['worker_id'] or '-'}"
    if entry["error_type"]:
        line += f"  {error_summary(entry['error_type'], entry['error_message'])}"
    return line


@click.command(cls=Command, extra_hint=ONE_TASK_OR_FAILED)
@click.argument("task_id", type=int, required=False)
@click.option(
    "--failed",
    "all_failed",
    is_flag=True,
    help="Instead of one task: every failed task (narrow with --queue / --name).",
)
@click.option("--queue", default=None, help="With --failed: only this queue.")
@click.option("--name", default=None, help="With --failed: only tasks of this name.")
@click.option("--yes", is_flag=True, help="With --failed: do not ask on a terminal.")
@click.option(
    "--with-dependents",
    is_flag=True,
    help="With TASK_ID: the tasks its failure cancelled (down the graph) wait for it again.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the task as `show --json` does.")
@database_url_option
def retry(
    url: str | None,
    task_id: int | None,
    all_failed: bool,
    queue: str | None,
    name: str | None,
    yes: bool,
    with_dependents: bool,
    as_json: bool,
) -> None:
    """Run a failed or cancelled task again (or, with --failed, every failed task)."""
    if (task_id is None) == (not all_failed) or (task_id is not None and (queue or name)):
        fail("give a TASK_ID, or --failed [--queue Q] [--name N]", 2)
    if task_id is not None:
        _retry_one(url, task_id, as_json, with_dependents)
        return
    if with_dependents:
        fail("--with-dependents goes with a TASK_ID", 2)
    retried, held = with_store(url, lambda store: _retry_failed(store, queue, name, yes))
    if as_json:
        emit_json({"retried": retried, "held": held})
        return
    click.echo(f"retried {retried} tasks")
    if held:
        click.echo(
            f"{held} stay failed: another live task holds each one's dedup key "
            "(retry them once it has finished)"
        )


async def _task_doc(store: TaskStore, task_id: int) -> dict[str, Any]:
    """What `show --json` prints: the task, and its place in its workflow."""
    from taskstore.task_detail import task_links

    info = await store.require(task_id)
    return {**info.to_json(), **(await task_links(store, info)).to_json()}


def _retry_one(url: str | None, task_id: int, as_json: bool, with_dependents: bool) -> None:
    async def go(store: TaskStore) -> tuple[TaskStatus, dict[str, Any], list[int]]:
        status = await store.retry(task_id, with_dependents=with_dependents)
        revived = await _waiting_below(store, task_id) if with_dependents else []
        return status, await _task_doc(store, task_id), revived

    status, doc, revived = with_store(url, go)
    if as_json:
        emit_json({**doc, "waiting_again": revived} if with_dependents else doc)
        return
    # What the retry did, not what a live worker made of it since: a task that ran again
    # at once and failed would otherwise read as a retry that did nothing.
    click.echo(f"task {task_id} is {status.value}")
    if doc["status"] != status.value:
        click.echo(f"a worker took it at once: now {doc['status']} (taskstore show {task_id})")
    if revived:
        click.echo(f"waiting for it again: {_ids(revived)}")
    elif with_dependents:  # none was cancelled by it, or those were purged since
        click.echo("no dependent of it waits for it now")


async def _waiting_below(store: TaskStore, task_id: int) -> list[int]:
    """The tasks down the graph from `task_id`, through waiting ones, that wait now: after
    a retry with dependents, those it revived (one that still waits on another failed or
    cancelled task stays cancelled, and so do the tasks below it)."""
    found: list[int] = []
    frontier = [task_id]
    async with store.reading() as conn:
        while frontier:
            below = {d for t in frontier for d in await store.tasks.dependents(conn, t)}
            infos = [await store.tasks.get(conn, d) for d in sorted(below - set(found))]
            frontier = [i.id for i in infos if i and i.status is TaskStatus.WAITING]
            found += frontier
    return sorted(found)


async def _retry_failed(
    store: TaskStore, queue: str | None, name: str | None, yes: bool
) -> tuple[int, int]:
    count = await store.count_failed(queue=queue, name=name)
    if (
        count
        and sys.stdin.isatty()
        and not yes
        and not click.confirm(f"Retry {count} failed tasks?")
    ):
        fail("retry aborted", 1)

    def progress(done: int) -> None:
        if count > 5000:
            click.echo(f"retried {done}/{count}", err=True)

    retried = await store.retry_failed(queue=queue, name=name, progress=progress)
    # Those left are the ones whose dedup key a live task holds (retry_failed skips them).
    held = await store.list(status=TaskStatus.FAILED, queue=queue, name=name, limit=100_000)
    return retried, len(held)


@click.command(cls=Command, extra_hint=ONE_TASK)
@click.argument("task_id", type=int)
@database_url_option
def cancel(url: str | None, task_id: int) -> None:
    """Cancel a task that has not finished (a running one stops at its next heartbeat).

    Cancelling a task that is already cancelled is not an error.
    """

    async def go(store: TaskStore) -> str:
        from taskstore.cancelling import cancel_once

        done = await cancel_once(store, task_id)
        if done.already:
            return f"task {task_id} was already cancelled"
        said = f"task {task_id} is {done.status}"
        # What waited for it is cancelled with it: say which, so nothing vanishes unseen.
        gone = done.with_it
        return said + (f"\ncancelled with it (they waited for it): {_ids(gone)}" if gone else "")

    click.echo(with_store(url, go))


@click.command(cls=Command)
@click.option(
    "--older-than",
    "older_than",
    required=True,
    type=Duration(),
    metavar="DURATION",
    help="Age since the task finished: 30 (seconds), 30s, 5m, 12h, 7d.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(sorted(s.value for s in FINISHED)),
    help="Only these finished statuses (repeatable; default all three).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@database_url_option
def purge(url: str | None, older_than: float, statuses: tuple[str, ...], yes: bool) -> None:
    """Delete finished tasks older than DURATION (asks first on a terminal)."""
    from taskstore.durations import format_duration

    chosen = statuses or tuple(s.value for s in FINISHED)
    interactive = sys.stdin.isatty() and not yes

    async def go(store: TaskStore) -> int:
        count = await store.count_purgeable(older_than, statuses=chosen)
        if count == 0:
            return 0
        age = format_duration(older_than)
        if interactive and not click.confirm(
            f"Delete {count} {'/'.join(chosen)} tasks that ended over {age} ago?"
        ):
            fail("purge aborted", 1)

        def progress(done: int) -> None:
            if count > 5000:
                click.echo(f"purged {done}/{count}", err=True)

        return await store.purge(older_than, statuses=chosen, progress=progress)

    click.echo(f"purged {with_store(url, go)} tasks")


COMMANDS = [list_, show, retry, cancel, purge]
