"""`taskstore queue list | set | pause | resume`: flow control of queues, from the shell.

Settings live in the database: every worker on every host obeys them, and a queue can be
limited or paused before it has any task.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import Command, Group, database_url_option, emit_json
from taskstore.cli_store import with_store

if TYPE_CHECKING:
    from taskstore.records import QueueInfo
    from taskstore.store import TaskStore


@click.group(cls=Group)
def queue() -> None:
    """Flow control per queue: limits, rate, pause and resume."""


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


def _render(infos: list[QueueInfo]) -> str:
    from taskstore.formatting import table

    if not infos:
        return "no queues"
    rows = [
        [
            q.name,
            "yes" if q.paused else "no",
            _shown(q.concurrency),
            _shown(q.rate),
            _shown(q.key_concurrency),
            q.counts.get("created", 0) + q.counts.get("not_finished", 0),
            q.counts.get("running", 0),
        ]
        for q in infos
    ]
    # "queued": created or not_finished (due now or later); "waiting" is a status of its own
    headers = ["queue", "paused", "concurrency", "rate", "key_concurrency", "queued", "running"]
    return table(headers, rows)


@queue.command(name="list", cls=Command)
@click.option("--json", "as_json", is_flag=True)
@database_url_option
def list_queues(url: str | None, as_json: bool) -> None:
    """Each queue with its settings and task counts."""

    async def go(store: TaskStore) -> list[QueueInfo]:
        return await store.queues()

    infos = with_store(url, go)
    if as_json:
        emit_json([q.to_json() for q in infos])
    else:
        click.echo(_render(infos))


def _limit(value: str | None, what: str) -> Any:
    """CLI spelling -> `set_queue` value: absent (unset), ``none`` (clear), or a number."""
    from taskstore.flow_admin import UNSET

    if value is None:
        return UNSET
    if value.strip().lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        from taskstore.cli_common import fail

        fail(f"--{what} must be a whole number from 1 to 1,000,000 or 'none', got {value!r}", 2)


@queue.command(name="set", cls=Command)
@click.argument("name")
@click.option("--concurrency", default=None, metavar="N|none", help="Most running at once.")
@click.option("--rate", default=None, metavar="N/PERIOD|none", help="Most starts per period.")
@click.option(
    "--key-concurrency", default=None, metavar="N|none", help="Most running per concurrency key."
)
@database_url_option
def set_queue(
    url: str | None,
    name: str,
    concurrency: str | None,
    rate: str | None,
    key_concurrency: str | None,
) -> None:
    """Limit a queue across every worker (an option left out keeps its value)."""
    from taskstore.cli_common import fail
    from taskstore.flow_admin import UNSET

    if concurrency is None and rate is None and key_concurrency is None:
        fail("nothing to set: give --concurrency, --rate or --key-concurrency (N, or none)", 2)
    options = {
        "concurrency": _limit(concurrency, "concurrency"),
        "key_concurrency": _limit(key_concurrency, "key-concurrency"),
        "rate": UNSET if rate is None else (None if rate.strip().lower() == "none" else rate),
    }

    async def go(store: TaskStore) -> tuple[str, str]:
        await store.set_queue(name, **options)
        infos = await store.queues()
        shown = [q for q in infos if q.name == name]
        # back at its defaults with no task: no longer listed, which is not "no queues"
        said = _render(shown) if shown else f"queue {name} has no limits (and no tasks)"
        return said, await _unused_note(store, name, infos)

    _echo(*with_store(url, go))


@queue.command(cls=Command)
@click.argument("name")
@database_url_option
def pause(url: str | None, name: str) -> None:
    """Start nothing new from the queue (running tasks finish), on every worker."""

    async def go(store: TaskStore) -> tuple[str, str]:
        await store.pause_queue(name)
        return f"queue {name} is paused", await _unused_note(store, name, await store.queues())

    _echo(*with_store(url, go))


@queue.command(cls=Command)
@click.argument("name")
@database_url_option
def resume(url: str | None, name: str) -> None:
    """Start the queue's tasks again."""

    async def go(store: TaskStore) -> tuple[str, str]:
        await store.resume_queue(name)
        return f"queue {name} is running", await _unused_note(store, name, await store.queues())

    _echo(*with_store(url, go))


async def _unused_note(store: TaskStore, name: str, infos: list[QueueInfo]) -> str:
    """A queue may be set up before its first task, so a new name is no error; but a
    typo would otherwise pass unnoticed, so say that neither a task nor a live worker
    uses it. Quiet in a database where none is used yet (a first set-up)."""
    async with store.reading() as conn:
        served, _ = await store.worker_registry.served(conn)
    used = {q.name for q in infos if any(q.counts.values())} | set(served)
    if name in used or not used:
        return ""
    near = difflib.get_close_matches(name, sorted(used), n=1)
    guess = f"did you mean {near[0]}?" if near else "is the name right?"
    return (
        f"note: no task or live worker uses queue {name} yet (in use: "
        f"{', '.join(sorted(used))}); {guess}"
    )


def _echo(done: str, note: str) -> None:
    click.echo(done)
    if note:
        click.echo(note, err=True)


COMMANDS = [queue]
