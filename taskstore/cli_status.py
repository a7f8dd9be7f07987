"""`taskstore status` and `taskstore workers`: the queue at a glance, and who serves it.

`status` splits the claimable tasks (created or not_finished) into *ready* (due now) and
*scheduled* (``run_at`` in the future: a ``--delay``, or a retry's backoff), so a queue of
delayed tasks does not look stuck. ``--watch`` ends with Ctrl-C, quietly and with exit 0:
that is how a watch is meant to stop.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import Command, Duration, database_url_option, emit_json
from taskstore.cli_store import with_store
from taskstore.states import CLAIMABLE, TaskStatus

if TYPE_CHECKING:
    from taskstore.store import TaskStore

STATUSES = [s.value for s in TaskStatus]


async def status_report(store: TaskStore) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready document."""
    stats, due = await store.stats(), await store.due_counts()
    workers = await store.workers()
    limited = [q for q in await store.queues() if q.paused or _limits(q.to_json())]
    return {
        "queues": [_with_schedule(q.to_json(), due.get(q.queue, 0)) for q in stats],
        "flow_control": [{k: v for k, v in q.to_json().items() if k != "counts"} for q in limited],
        "unserved": [u.to_json() for u in await store.unserved()],
        "finished": await store.finished_recently(),
        "workers": {"alive": sum(w.alive for w in workers), "registered": len(workers)},
    }


def _limits(queue: dict[str, Any]) -> str:
    """``paused, concurrency 3, rate 100/1s`` (empty without flow control)."""
    parts = ["paused"] if queue.get("paused") else []
    for key in ("concurrency", "rate", "key_concurrency"):
        if queue.get(key) is not None:
            parts.append(f"{key} {queue[key]}")
    return ", ".join(parts)


def _notes(report: dict[str, Any]) -> str:
    """Lines on queues with flow control and on tasks no live worker can run."""
    lines = [f"flow control: {q['name']}: {_limits(q)}" for q in report["flow_control"]]
    for u in report["unserved"]:
        lines.append(
            f"unserved: {u['count']} task(s) {u['name']} in queue {u['queue']}: {u['reason']}"
        )
    return "\n".join(lines)


def _with_schedule(queue: dict[str, Any], due: int) -> dict[str, Any]:
    claimable = sum(queue["counts"].get(s.value, 0) for s in CLAIMABLE)
    # Counts and due tasks are two reads: a claim in between must not make either negative.
    ready = min(due, claimable)
    return {**queue, "ready": ready, "scheduled": claimable - ready}


def render_status(report: dict[str, Any]) -> str:
    """Aligned tables: per queue, recent finishes, then the workers line."""
    from taskstore.formatting import format_age, table

    rows = [
        [
            q["queue"],
            *(q["counts"].get(st, 0) for st in STATUSES),
            q["ready"],
            q["scheduled"],
            format_age(q["oldest_pending_seconds"]),
        ]
        for q in report["queues"]
    ]
    headers = ["queue", *STATUSES, "ready", "scheduled", "oldest due"]
    queues = table(headers, rows) if rows else "no tasks"
    if rows:
        queues += "\n(ready: due now; scheduled: created or not_finished, due later)"
    windows = list(report["finished"])
    recent = table(
        ["finished", *windows],
        [[st, *(report["finished"][w][st] for w in windows)] for st in ("completed", "failed")],
    )
    workers = report["workers"]
    alive = f"workers: {workers['alive']} alive, {workers['registered']} registered"
    notes = _notes(report)
    return f"{queues}\n\n{recent}\n\n{alive}" + (f"\n\n{notes}" if notes else "")


@click.command(cls=Command)
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C (which exits 0).")
@click.option(
    "--interval",
    default=2.0,
    type=Duration(minimum=0.2),
    metavar="DURATION",
    show_default=True,
    help="Time between refreshes with --watch (2, 2s, 1m).",
)
@database_url_option
def status(url: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Counts per queue and status, ready vs scheduled, oldest due age, recent finishes."""
    if not watch:
        report = with_store(url, status_report)
        emit_json(report) if as_json else click.echo(render_status(report))
        return

    import asyncio

    async def loop(store: TaskStore) -> None:
        while True:
            report = await status_report(store)
            text = json.dumps(report, default=str) if as_json else render_status(report)
            click.echo("\x1b[H\x1b[2J" + text if sys.stdout.isatty() else text)
            await asyncio.sleep(interval)

    with_store(url, loop, interrupted_exit=0)


@click.command(cls=Command)
@click.option("--json", "as_json", is_flag=True)
@database_url_option
def workers(url: str | None, as_json: bool) -> None:
    """Workers registered by their heartbeats: host, pid, queues, load, last heartbeat."""
    from taskstore.formatting import table

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
    headers = ["id", "host", "pid", "queues", "concurrency", "running", "started", "heartbeat"]
    click.echo(table([*headers, "alive"], rows) if rows else "no workers")


COMMANDS = [status, workers]
