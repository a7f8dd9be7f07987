"""The JSON endpoints under /api/: the same data as the pages, retry / cancel, and
pausing / resuming a queue.

Reads are open; POST retry, cancel, retry-failed, pause and resume need the dashboard's
token (see `auth`). The token travels in the Authorization header, which a browser never adds to a
cross-site request by itself, so these writes need no cookie and no CSRF token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from taskstore.cancelling import cancel_once
from taskstore.dashboard import auth, data
from taskstore.dashboard.flow import settings_json
from taskstore.dashboard.params import (
    TaskFilter,
    parse_flag,
    parse_int,
    parse_queue,
    parse_task_id,
)
from taskstore.records import QueueSettings
from taskstore.states import TaskStatus
from taskstore.store import TaskStore


def store_of(request: Request) -> TaskStore:
    return request.app.state.store


async def overview(request: Request) -> JSONResponse:
    view = await data.overview(store_of(request))
    return JSONResponse(view.to_json())


async def throughput(request: Request) -> JSONResponse:
    minutes = parse_int(request.query_params.get("minutes", "60"), "minutes", 1, 1440)
    points = await store_of(request).throughput(minutes=minutes)
    return JSONResponse({"minutes": minutes, "points": data.throughput_json(points)})


async def tasks(request: Request) -> JSONResponse:
    page = await data.task_page(store_of(request), TaskFilter.parse(request.query_params))
    return JSONResponse(page.to_json())


async def task(request: Request) -> JSONResponse:
    task_id = parse_task_id(request.path_params["task_id"])
    detail = await data.task_detail(store_of(request), task_id)
    return JSONResponse(detail.to_json())


async def workers(request: Request) -> JSONResponse:
    found = await store_of(request).workers()
    return JSONResponse({"workers": [w.to_json() for w in found]})


async def queues(request: Request) -> JSONResponse:
    """Every queue with settings or tasks: paused, limits and counts per status."""
    found = await store_of(request).queues()
    return JSONResponse({"queues": [q.to_json() for q in found]})


def refused(request: Request) -> JSONResponse | None:
    """The error response when this request may not write, else None."""
    refusal = auth.refusal(request.app.state.token, request.headers.get("authorization"))
    if refusal is None:
        return None
    status, message = refusal
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def retry(request: Request) -> JSONResponse:
    """Run a failed or cancelled task again; with ``?with_dependents=1`` what its failure
    cancelled waits for it again (``taskstore retry --with-dependents``)."""
    revive = parse_flag(request.query_params.get("with_dependents", ""), "with_dependents")
    return await _operate(
        request, lambda store, task_id: store.retry(task_id, with_dependents=revive)
    )


async def cancel(request: Request) -> JSONResponse:
    """Cancel a task; one already cancelled is not an error (as `taskstore cancel`)."""
    return await _operate(request, _cancel_once)


async def _cancel_once(store: TaskStore, task_id: int) -> TaskStatus:
    return (await cancel_once(store, task_id)).status


async def _operate(
    request: Request, operation: Callable[[TaskStore, int], Awaitable[TaskStatus]]
) -> JSONResponse:
    denied = refused(request)
    if denied is not None:
        return denied
    task_id = parse_task_id(request.path_params["task_id"])
    status = await operation(store_of(request), task_id)
    return JSONResponse({"id": task_id, "status": status.value})


async def retry_failed(request: Request) -> JSONResponse:
    """Run every failed task again: of one queue with ``?queue=Q``, else of all queues."""
    denied = refused(request)
    if denied is not None:
        return denied
    queue = request.query_params.get("queue", "").strip() or None
    name = request.query_params.get("name", "").strip() or None
    retried = await store_of(request).retry_failed(queue=queue, name=name)
    return JSONResponse({"retried": retried, "queue": queue, "name": name})


async def pause_queue(request: Request) -> JSONResponse:
    return await _set_queue(request, TaskStore.pause_queue)


async def resume_queue(request: Request) -> JSONResponse:
    return await _set_queue(request, TaskStore.resume_queue)


async def _set_queue(
    request: Request, operation: Callable[[TaskStore, str], Awaitable[QueueSettings]]
) -> JSONResponse:
    """Pause or resume the queue of the path; the reply holds its settings after that."""
    denied = refused(request)
    if denied is not None:
        return denied
    queue = parse_queue(request.path_params["queue"])
    settings = await operation(store_of(request), queue)
    return JSONResponse(settings_json(settings))


routes = [
    Route("/api/overview", overview),
    Route("/api/throughput", throughput),
    Route("/api/tasks", tasks),
    Route("/api/tasks/{task_id}", task),
    Route("/api/tasks/{task_id}/retry", retry, methods=["POST"]),
    Route("/api/tasks/{task_id}/cancel", cancel, methods=["POST"]),
    Route("/api/workers", workers),
    Route("/api/retry-failed", retry_failed, methods=["POST"]),
    Route("/api/queues", queues),
    Route("/api/queues/{queue}/pause", pause_queue, methods=["POST"]),
    Route("/api/queues/{queue}/resume", resume_queue, methods=["POST"]),
]
