"""Small HTML helpers: escaping, values, tables and the page layout.

Every value that reaches a page goes through `esc` (payloads, names and errors are user
data). Links are relative to the `<base>` element, so the dashboard also works behind a
reverse proxy under a path prefix.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

STATUS_ORDER = [
    "created",
    "assigned",
    "running",
    "not_finished",
    "completed",
    "failed",
    "cancelled",
]


def esc(value: Any) -> str:
    """Text safe inside HTML elements and quoted attributes; None shows as a dash."""
    return "-" if value is None else html.escape(str(value), quote=True)


def when(value: dt.datetime | None) -> str:
    """A UTC timestamp to the second, with the full ISO value on hover."""
    if value is None:
        return "-"
    utc = value.astimezone(dt.UTC)
    return f'<time datetime="{esc(utc.isoformat())}">{utc:%Y-%m-%d %H:%M:%S}</time>'


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def pretty_json(value: Any) -> str:
    """A JSON document indented, escaped, inside <pre>."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return f'<pre class="json">{esc(text)}</pre>'


def badge(status: str) -> str:
    return f'<span class="badge s-{esc(status)}">{esc(status)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "none") -> str:
    """A table of cells that are already markup (escape values before passing them)."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def definitions(items: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are markup."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="fields">{rows}</dl>'


def layout(title: str, body: str, *, root: str, database: str, writable: bool) -> str:
    """The whole page around `body` (markup); `title` is text."""
    mode = "retry/cancel need the token" if writable else "read-only"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<base href="{esc(root.rstrip("/"))}/">
<title>{esc(title)} · taskstore</title>
<link rel="stylesheet" href="static/dashboard.css">
<script src="static/dashboard.js" defer></script>
</head>
<body>
<header>
<nav>
<a class="brand" href="./">taskstore</a>
<a href="tasks">Tasks</a>
<a href="workers">Workers</a>
<span class="where" title="database">{esc(database)}</span>
<span class="mode">{esc(mode)}</span>
</nav>
</header>
<main>
<h1>{esc(title)}</h1>
{body}
</main>
<footer>Times are UTC. The same data as JSON: <a href="api/overview">api/overview</a>,
<a href="api/tasks">api/tasks</a>, <a href="api/workers">api/workers</a>.</footer>
</body>
</html>
"""
