"""The page bodies: overview, task list, task detail, workers and errors.

Pure functions from snapshots (see `data`) to markup; every value is escaped with `esc`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from taskstore.dashboard.chart import throughput_svg
from taskstore.dashboard.data import Overview, TaskDetail, TaskPage
from taskstore.dashboard.markup import (
    STATUS_ORDER,
    age,
    badge,
    definitions,
    esc,
    pretty_json,
    table,
    when,
)
from taskstore.dashboard.params import TaskFilter
from taskstore.repositories.workers import WorkerInfo
from taskstore.states import Event, sources

RETRYABLE = sources(Event.REQUEUE)
CANCELLABLE = sources(Event.CANCEL)
MAX_CAPTIONS_SHOWN = 200


def tasks_link(text: str, **filters: Any) -> str:
    return f'<a href="tasks?{esc(TaskFilter().query(**filters))}">{esc(text)}</a>'


# ------------------------------------------------------------------ overview
def overview_partial(view: Overview, now: dt.datetime | None = None) -> str:
    """The auto-refreshed part of the front page."""
    totals = view.totals()
    cards = "".join(
        f'<a class="card s-{esc(s)}" href="tasks?{esc(TaskFilter().query(status=s))}">'
        f'<span class="count">{totals.get(s, 0)}</span><span class="label">{esc(s)}</span></a>'
        for s in STATUS_ORDER
    )
    alive = sum(w.alive for w in view.workers)
    return (
        f'<div class="cards">{cards}</div>'
        f"<h2>Queues</h2>{queues_table(view)}"
        f'<div class="split"><div><h2>Throughput</h2>{legend()}'
        f"{throughput_svg(view.throughput, now)}</div>"
        f"<div><h2>Finished recently</h2>{recent_table(view.recent)}"
        f'<h2>Workers</h2><p><a href="workers">{alive} alive</a> '
        f"of {len(view.workers)} registered</p></div></div>"
    )


def overview_page(view: Overview) -> str:
    return (
        '<section id="overview" data-refresh="partials/overview">'
        f"{overview_partial(view)}</section>"
    )


def queues_table(view: Overview) -> str:
    rows = [
        [
            tasks_link(q.queue, queue=q.queue),
            *(_count_link(q.queue, s, q.counts.get(s, 0)) for s in STATUS_ORDER),
            esc(age(q.oldest_pending_seconds)),
        ]
        for q in view.queues
    ]
    return table(["queue", *STATUS_ORDER, "oldest due"], rows, empty="no tasks yet")


def _count_link(queue: str, status: str, count: int) -> str:
    return tasks_link(str(count), queue=queue, status=status) if count else "0"


def recent_table(recent: dict[str, dict[str, int]]) -> str:
    rows = [
        [esc(window), esc(c.get("completed", 0)), esc(c.get("failed", 0))]
        for window, c in recent.items()
    ]
    return table(["last", "completed", "failed"], rows)


def legend() -> str:
    return (
        '<p class="legend"><span class="key key-ok"></span>completed '
        '<span class="key key-fail"></span>failed (per minute)</p>'
    )


# ----------------------------------------------------------------- task list
def filter_form(filters: TaskFilter) -> str:
    options = ['<option value="">any status</option>']
    for status in STATUS_ORDER:
        selected = " selected" if status == filters.status else ""
        options.append(f'<option value="{esc(status)}"{selected}>{esc(status)}</option>')
    return (
        '<form class="filters" method="get" action="tasks">'
        f'<label>status <select name="status">{"".join(options)}</select></label>'
        f'<label>queue <input name="queue" value="{esc(filters.queue or "")}" '
        'placeholder="any queue"></label>'
        f'<label>name <input name="name" value="{esc(filters.name or "")}" '
        'placeholder="any task name"></label>'
        '<button type="submit" id="apply-filters">Filter</button>'
        '<a href="tasks">clear</a></form>'
    )


def task_rows(page: TaskPage) -> list[list[str]]:
    return [
        [
            f'<a class="task-link" data-task-id="{t.id}" href="tasks/{t.id}">#{t.id}</a>',
            esc(t.name),
            tasks_link(t.queue, queue=t.queue),
            badge(t.status.value),
            esc(t.priority),
            f"{t.attempts}/{esc(t.max_attempts)}",
            when(t.run_at),
            when(t.created_at),
            esc(t.worker_id),
        ]
        for t in page.tasks
    ]


def pager(page: TaskPage) -> str:
    links = []
    if page.filters.before_id is not None:
        links.append(f'<a href="tasks?{esc(page.filters.query(before_id=None))}">newest</a>')
    if page.next_before_id is not None:
        query = page.filters.query(before_id=page.next_before_id)
        links.append(f'<a id="next-page" href="tasks?{esc(query)}">next page</a>')
    return f'<p class="pager">{" ".join(links)}</p>' if links else ""


def task_list_page(page: TaskPage) -> str:
    headers = ["id", "name", "queue", "status", "priority", "attempts", "run at", "created"]
    return (
        filter_form(page.filters)
        + table([*headers, "worker"], task_rows(page), empty="no tasks match")
        + pager(page)
    )


# ---------------------------------------------------------------- task detail
def task_fields(detail: TaskDetail) -> str:
    t = detail.task
    progress = None if t.progress is None else f"{t.progress:.0%}"
    return definitions(
        [
            ("status", badge(t.status.value)),
            ("name", esc(t.name)),
            ("queue", tasks_link(t.queue, queue=t.queue)),
            ("priority", esc(t.priority)),
            ("attempts", f"{t.attempts} of {esc(t.max_attempts)}"),
            ("run at", when(t.run_at)),
            ("created", when(t.created_at)),
            ("started", when(t.started_at)),
            ("finished", when(t.finished_at)),
            ("updated", when(t.updated_at)),
            ("worker", esc(t.worker_id)),
            ("lease expires", when(t.lease_expires_at)),
            ("progress", esc(progress)),
            ("dedup key", esc(t.dedup_key)),
        ]
    )


def actions(detail: TaskDetail, writable: bool) -> str:
    """Retry / Cancel buttons, shown only when the dashboard has a token."""
    if not writable:
        return ""
    status = detail.task.status
    buttons = []
    if status in RETRYABLE:
        buttons.append('<button type="button" data-action="retry">Retry</button>')
    if status in CANCELLABLE:
        buttons.append('<button type="button" data-action="cancel">Cancel</button>')
    if not buttons:
        return ""
    return (
        f'<div class="actions" data-task-id="{detail.task.id}">{"".join(buttons)}'
        '<button type="button" class="quiet" data-action="forget">forget token</button>'
        '<span class="action-status" role="status"></span></div>'
    )


def error_block(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    fields = [
        ("type", esc(error.get("type"))),
        ("message", esc(error.get("message"))),
    ]
    fields += [(key, esc(error[key])) for key in ("attempt", "worker") if key in error]
    trace = error.get("traceback")
    trace_html = f'<pre class="traceback">{esc(trace)}</pre>' if trace else ""
    return f'<h2>Error</h2><div class="error-box">{definitions(fields)}{trace_html}</div>'


def results_block(detail: TaskDetail) -> str:
    if not (detail.media or detail.transcripts or detail.captions):
        return ""
    captions = detail.captions[:MAX_CAPTIONS_SHOWN]
    hidden = len(detail.captions) - len(captions)
    more = f'<p class="empty">and {hidden} more (see the JSON)</p>' if hidden else ""
    return (
        "<h2>Results</h2>"
        + entity_table("Media", detail.media)
        + entity_table("Transcripts", detail.transcripts)
        + entity_table("Captions", captions)
        + more
    )


def entity_table(title: str, rows: list[dict[str, Any]]) -> str:
    """Any entity rows (all their columns, user subclasses included) as a table."""
    if not rows:
        return ""
    headers = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    return f"<h3>{esc(title)}</h3>" + table(headers, cells)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
        return f'<span class="clip" title="{esc(text)}">{esc(text[:120])}</span>'
    return esc(value)


def task_detail_page(detail: TaskDetail, writable: bool) -> str:
    t = detail.task
    result = "" if t.result is None else f"<h2>Result</h2>{pretty_json(t.result)}"
    return (
        actions(detail, writable)
        + task_fields(detail)
        + f"<h2>Payload</h2>{pretty_json(t.payload)}"
        + result
        + error_block(t.error)
        + results_block(detail)
        + f'<p><a href="api/tasks/{t.id}">as JSON</a></p>'
    )


# -------------------------------------------------------------------- workers
def workers_page(workers: list[WorkerInfo], now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    rows = [
        [
            esc(w.id),
            esc(w.host),
            esc(w.pid),
            esc(queue_limits(w.queues)),
            f"{w.running}/{w.concurrency}",
            esc(f"{w.lease_seconds:g}s"),
            when(w.started_at),
            esc(age((now - w.last_heartbeat_at).total_seconds()) + " ago"),
            badge("alive" if w.alive else "silent"),
        ]
        for w in workers
    ]
    headers = ["id", "host", "pid", "queues", "running", "lease", "started", "heartbeat"]
    return table([*headers, "state"], rows, empty="no workers registered")


def queue_limits(queues: dict[str, Any]) -> str:
    """``media:4, email`` (a queue without its own limit shares the concurrency)."""
    parts = [f"{q}:{n}" if n else str(q) for q, n in sorted(queues.items())]
    return ", ".join(parts) or "-"


def error_page(message: str) -> str:
    return f'<p class="error">{esc(message)}</p><p><a href="./">back to the overview</a></p>'
