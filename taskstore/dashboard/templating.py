"""The dashboard's Jinja2 templates: loaded from the package, every value autoescaped.

Templates live in ``taskstore/dashboard/templates`` (shipped in the wheel with the
package). Autoescaping is on for every template, SVG included, and undefined names fail
loudly instead of rendering as empty text.
"""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from taskstore.dashboard import display
from taskstore.dashboard.params import TaskFilter
from taskstore.formatting import format_age


def task_query(**filters: Any) -> str:
    """The query string of the task list for `filters` (status, queue, name)."""
    return TaskFilter().query(**filters)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("taskstore.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        age=format_age,
        utc=display.utc,
        pretty_json=display.pretty_json,
        error_line=display.error_line,
        error_summary=display.error_summary,
        error_hover=display.error_hover,
        percent=display.progress,
        queue_limits=display.queue_limits,
        seconds_since=display.seconds_since,
        relative=display.relative,
        columns=display.columns,
        cell=display.cell,
        rate=display.rate,
        rate_hint=display.rate_hint,
        unserved=display.unserved,
    )
    env.globals.update(
        STATUS_ORDER=display.STATUS_ORDER,
        MAX_CAPTIONS_SHOWN=display.MAX_CAPTIONS_SHOWN,
        DEFAULT_LIMIT_HINT=display.DEFAULT_LIMIT_HINT,
        attempt_limit=display.attempt_limit,
        retryable=display.retryable,
        cancellable=display.cancellable,
        task_query=task_query,
    )
    return env


templates = Jinja2Templates(env=environment())


def render(
    request: Request, name: str, title: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The page template `name` inside the layout, with what every page shows."""
    state = request.app.state
    page = {
        "title": title,
        "root": request.scope.get("root_path", "").rstrip("/"),
        "database": state.store.settings.safe_url,
        "writable": bool(state.token),
        **context,
    }
    return templates.TemplateResponse(request, name, page, status_code=status_code)


def render_fragment(name: str, **context: Any) -> str:
    """A template rendered alone, outside the layout (the refreshed overview)."""
    return templates.get_template(name).render(context)
