"""The HTML pages: overview (and its auto-refreshed partial), tasks, one task, workers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from taskstore.dashboard import data, views
from taskstore.dashboard.markup import layout
from taskstore.dashboard.params import TaskFilter, parse_task_id
from taskstore.store import TaskStore


def store_of(request: Request) -> TaskStore:
    return request.app.state.store


def writable(request: Request) -> bool:
    return bool(request.app.state.token)


def render(request: Request, title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """`body` (markup) inside the page layout."""
    page = layout(
        title,
        body,
        root=request.scope.get("root_path", ""),
        database=store_of(request).settings.safe_url,
        writable=writable(request),
    )
    return HTMLResponse(page, status_code=status_code)


async def index(request: Request) -> HTMLResponse:
    view = await data.overview(store_of(request))
    return render(request, "Overview", views.overview_page(view))


async def overview_partial(request: Request) -> HTMLResponse:
    view = await data.overview(store_of(request))
    return HTMLResponse(views.overview_partial(view))


async def tasks(request: Request) -> HTMLResponse:
    page = await data.task_page(store_of(request), TaskFilter.parse(request.query_params))
    return render(request, "Tasks", views.task_list_page(page))


async def task(request: Request) -> HTMLResponse:
    task_id = parse_task_id(request.path_params["task_id"])
    detail = await data.task_detail(store_of(request), task_id)
    body = views.task_detail_page(detail, writable(request))
    return render(request, f"Task #{task_id}", body)


async def workers(request: Request) -> HTMLResponse:
    found = await store_of(request).workers()
    return render(request, "Workers", views.workers_page(found))


routes = [
    Route("/", index),
    Route("/partials/overview", overview_partial),
    Route("/tasks", tasks),
    Route("/tasks/{task_id}", task),
    Route("/workers", workers),
]
