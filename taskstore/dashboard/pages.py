"""The HTML pages: overview (and its auto-refreshed partial), tasks, one task, workers."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from taskstore.dashboard import data
from taskstore.dashboard.chart import throughput_chart
from taskstore.dashboard.params import TaskFilter, parse_task_id
from taskstore.dashboard.templating import render, render_fragment
from taskstore.states import TaskStatus
from taskstore.store import TaskStore


def store_of(request: Request) -> TaskStore:
    return request.app.state.store


async def index(request: Request) -> Response:
    view = await data.overview(store_of(request))
    chart = throughput_chart(view.throughput)
    return render(request, "overview.html", "Overview", view=view, chart=chart)


async def overview_partial(request: Request) -> HTMLResponse:
    view = await data.overview(store_of(request))
    chart = throughput_chart(view.throughput)
    writable = bool(request.app.state.token)  # the pause / resume buttons
    return HTMLResponse(
        render_fragment("_overview.html", view=view, chart=chart, writable=writable)
    )


async def tasks(request: Request) -> Response:
    filters = TaskFilter.parse(request.query_params)
    page = await data.task_page(store_of(request), filters)
    failed = await _retryable_failures(request, filters)
    now = dt.datetime.now(dt.UTC)
    return render(request, "tasks.html", "Tasks", page=page, failed=failed, now=now)


async def _retryable_failures(request: Request, filters: TaskFilter) -> int:
    """How many failed tasks the list's "retry all failed" would take (0: no button).

    Offered only on the list of failed tasks, where the rows shown are the ones it retries.
    """
    if not request.app.state.token or filters.status != TaskStatus.FAILED.value:
        return 0
    return await store_of(request).count_failed(queue=filters.queue, name=filters.name)


async def task(request: Request) -> Response:
    task_id = parse_task_id(request.path_params["task_id"])
    detail = await data.task_detail(store_of(request), task_id)
    return render(request, "task.html", f"Task #{task_id}", detail=detail)


async def workers(request: Request) -> Response:
    found = await store_of(request).workers()
    return render(request, "workers.html", "Workers", workers=found)


def error(request: Request, message: str, title: str, status_code: int) -> Response:
    return render(request, "error.html", title, status_code=status_code, message=message)


routes = [
    Route("/", index),
    Route("/partials/overview", overview_partial),
    Route("/tasks", tasks),
    Route("/tasks/{task_id}", task),
    Route("/workers", workers),
]
