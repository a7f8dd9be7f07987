"""The `taskstore` command: migrate, enqueue, and inspect / retry / cancel / purge tasks.

Every command honours ``--database-url`` (or ``TASKSTORE_DATABASE_URL``); listings have
``--json`` (one JSON document on stdout, nothing else). Errors are one line on stderr:
exit code 2 for bad input or usage, 1 for runtime failures.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from taskstore import validation
from taskstore.dashboard import cli_command as dashboard_command
from taskstore.errors import InvalidInput, TaskStoreError
from taskstore.formatting import format_age, parse_duration, table
from taskstore.records import TaskInfo
from taskstore.schema import HEAD
from taskstore.settings import Settings
from taskstore.states import FINISHED, TaskStatus
from taskstore.store import TaskStore

R = TypeVar("R")
_STATUS_ORDER = [s.value for s in TaskStatus]


def fail(message: str, code: int) -> None:
    click.echo(f"taskstore: error: {message}", err=True)
    sys.exit(code)


def run_guarded(coro_fn: Callable[[], Awaitable[R]]) -> R:
    """Run a coroutine; turn every failure into one line on stderr and an exit code."""
    # Everything imported so far lives as long as the process: keep the garbage collector
    # off it. Its passes over SQLAlchemy's object graph otherwise cost the hot loop, and
    # about a quarter of a second at interpreter exit.
    gc.freeze()
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # the promise is: no traceback reaches the user
        if os.environ.get("TASKSTORE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"unexpected {type(exc).__name__}: {first} (set TASKSTORE_DEBUG=1 for details)", 1)
    raise AssertionError("unreachable")


def database_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--database-url`` on every subcommand (it also works before the subcommand)."""

    @click.option(
        "--database-url",
        "database_url",
        default=None,
        metavar="URL",
        help="Database URL (default: TASKSTORE_DATABASE_URL, then the settings chain).",
    )
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, database_url: str | None, **kwargs: Any) -> Any:
        url = database_url or (ctx.obj or {}).get("database_url")
        return fn(url, **kwargs)

    return wrapper


def with_store(url: str | None, action: Callable[[TaskStore], Awaitable[R]], **open_kw: Any) -> R:
    async def go() -> R:
        store = TaskStore(Settings.from_env(url))
        try:
            await store.open(**open_kw)
            return await action(store)
        finally:
            await store.close()

    return run_guarded(go)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", default=None, metavar="URL", help="Database URL for every command.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """taskstore: an async task queue whose queue is a database table."""
    ctx.obj = {"database_url": database_url}


@main.command()
@database_option
def migrate(url: str | None) -> None:
    """Create or upgrade the schema (alembic upgrade head)."""

    async def go() -> str:
        store = TaskStore(Settings.from_env(url))
        try:
            await store.migrate()
            return store.settings.safe_url
        finally:
            await store.close()

    where = run_guarded(go)
    click.echo(f"{where} is at revision {HEAD}")


def _parse_payload(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}

    def no_constants(name: str) -> Any:
        raise InvalidInput(f"payload is not valid JSON: {name} is not allowed")

    try:
        payload = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
    return payload


@main.command()
@click.argument("name")
@click.option("--payload", default=None, metavar="JSON", help="JSON object of keyword arguments.")
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", default=0, type=int, show_default=True, help="Higher runs first.")
@click.option("--delay", default=None, type=float, metavar="SECONDS")
@click.option("--max-attempts", default=None, type=int)
@click.option("--dedup-key", default=None)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
@database_option
def enqueue(url: str | None, name: str, payload: str | None, as_json: bool, **options: Any) -> None:
    """Enqueue task NAME; prints the new task's id."""
    try:
        body = _parse_payload(payload)
        # Validate before connecting: bad input never needs (or touches) the database.
        validation.new_task(
            name, body, max_payload_bytes=Settings.from_env(url).max_payload_bytes, **options
        )
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    task_id = with_store(url, lambda store: store.enqueue(name, body, **options))
    emit_json({"id": task_id}) if as_json else click.echo(task_id)


async def _status_report(store: TaskStore) -> dict[str, Any]:
    workers = await store.workers()
    return {
        "queues": [q.to_json() for q in await store.stats()],
        "finished": await store.finished_recently(),
        "workers": {"alive": sum(w.alive for w in workers), "registered": len(workers)},
    }


def _render_status(report: dict[str, Any]) -> str:
    rows = [
        [
            q["queue"],
            *(q["counts"].get(st, 0) for st in _STATUS_ORDER),
            format_age(q["oldest_pending_seconds"]),
        ]
        for q in report["queues"]
    ]
    queues = table(["queue", *_STATUS_ORDER, "oldest due"], rows) if rows else "no tasks"
    windows = list(report["finished"])
    recent = table(
        ["finished", *windows],
        [
            [status, *(report["finished"][w][status] for w in windows)]
            for status in ("completed", "failed")
        ],
    )
    workers = report["workers"]
    return (
        f"{queues}\n\n{recent}\n\nworkers: {workers['alive']} alive, "
        f"{workers['registered']} registered"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="Refresh in place until interrupted.")
@click.option(
    "--interval",
    default=2.0,
    type=click.FloatRange(0.2),
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@database_option
def status(url: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Counts per queue and status, oldest due age, recent completions, live workers."""
    if not watch:
        report = with_store(url, _status_report)
        emit_json(report) if as_json else click.echo(_render_status(report))
        return

    async def loop(store: TaskStore) -> None:
        while True:
            report = await _status_report(store)
            text = json.dumps(report, default=str) if as_json else _render_status(report)
            click.echo("\x1b[H\x1b[2J" + text if sys.stdout.isatty() else text, nl=True)
            await asyncio.sleep(interval)

    with_store(url, loop)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@database_option
def workers(url: str | None, as_json: bool) -> None:
    """Workers registered by their heartbeats: host, pid, queues, load, last heartbeat."""
    found = with_store(url, lambda store: store.workers())
    if as_json:
        emit_json([w.to_json() for w in found])
        return
    rows = [
        [
            w.id,
            w.host,
            w.pid,
            ",".join(f"{q}:{n}" if n else q for q, n in w.queues.items()),
            w.concurrency,
            w.running,
            w.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            w.last_heartbeat_at.strftime("%H:%M:%S"),
            "yes" if w.alive else "no",
        ]
        for w in found
    ]
    headers = [
        "id",
        "host",
        "pid",
        "queues",
        "concurrency",
        "running",
        "started",
        "heartbeat",
        "alive",
    ]
    click.echo(table(headers, rows) if rows else "no workers")


def _task_row(info: TaskInfo) -> list[Any]:
    return [
        info.id,
        info.name,
        info.queue,
        info.status.value,
        info.priority,
        info.attempts,
        info.created_at.strftime("%Y-%m-%d %H:%M:%S"),
    ]


@main.command(name="list")
@click.option("--status", "status_", default=None, type=click.Choice(_STATUS_ORDER))
@click.option("--queue", default=None)
@click.option("--limit", default=50, type=click.IntRange(1, 100_000), show_default=True)
@click.option("--json", "as_json", is_flag=True)
@database_option
def list_(
    url: str | None, status_: str | None, queue: str | None, limit: int, as_json: bool
) -> None:
    """List tasks, newest first."""
    tasks = with_store(url, lambda s: s.list(status=status_, queue=queue, limit=limit))
    if as_json:
        emit_json([t.to_json() for t in tasks])
        return
    headers = ["id", "name", "queue", "status", "priority", "attempts", "created"]
    click.echo(table(headers, [_task_row(t) for t in tasks]) if tasks else "no tasks")


@main.command()
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@database_option
def show(url: str | None, task_id: int, as_json: bool) -> None:
    """Show one task in full: payload, result, error, attempts."""
    info = with_store(url, lambda store: store.require(task_id))
    if as_json:
        emit_json(info.to_json())
        return
    doc = info.to_json()
    error = doc.pop("error")
    for key in ("payload", "result"):
        doc[key] = None if doc[key] is None else json.dumps(doc[key])
    width = max(map(len, doc))
    for key, value in doc.items():
        click.echo(f"{key.ljust(width)}  {'-' if value is None else value}")
    if error:
        click.echo(f"{'error'.ljust(width)}  {error.get('type')}: {error.get('message')}")
        if error.get("traceback"):
            click.echo(error["traceback"].rstrip())


@main.command()
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
@database_option
def retry(
    url: str | None,
    task_id: int | None,
    all_failed: bool,
    queue: str | None,
    name: str | None,
    yes: bool,
) -> None:
    """Run a failed or cancelled task again (or, with --failed, every failed task)."""
    if (task_id is None) == (not all_failed) or (task_id is not None and (queue or name)):
        fail("give a TASK_ID, or --failed [--queue Q] [--name N]", 2)
    if task_id is not None:
        new = with_store(url, lambda store: store.retry(task_id))
        click.echo(f"task {task_id} is {new.value}")
        return

    async def go(store: TaskStore) -> int:
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

        return await store.retry_failed(queue=queue, name=name, progress=progress)

    click.echo(f"retried {with_store(url, go)} tasks")


@main.command()
@click.argument("task_id", type=int)
@database_option
def cancel(url: str | None, task_id: int) -> None:
    """Cancel a task that has not finished (a running one stops at its next heartbeat)."""
    new = with_store(url, lambda store: store.cancel(task_id))
    click.echo(f"task {task_id} is {new.value}")


@main.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Age since the task finished, e.g. 90s, 30m, 12h, 7d.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(sorted(s.value for s in FINISHED)),
    help="Only these finished statuses (repeatable; default all three).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@database_option
def purge(url: str | None, older_than: str, statuses: tuple[str, ...], yes: bool) -> None:
    """Delete finished tasks older than DURATION (asks first on a terminal)."""
    try:
        seconds = parse_duration(older_than)
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    chosen = statuses or tuple(s.value for s in FINISHED)
    interactive = sys.stdin.isatty() and not yes

    async def go(store: TaskStore) -> int:
        count = await store.count_purgeable(seconds, statuses=chosen)
        if count == 0:
            return 0
        if interactive and not click.confirm(
            f"Delete {count} {'/'.join(chosen)} tasks that ended over {older_than} ago?"
        ):
            fail("purge aborted", 1)

        def progress(done: int) -> None:
            if count > 5000:
                click.echo(f"purged {done}/{count}", err=True)

        return await store.purge(seconds, statuses=chosen, progress=progress)

    click.echo(f"purged {with_store(url, go)} tasks")


main.add_command(dashboard_command)

if __name__ == "__main__":
    main()
