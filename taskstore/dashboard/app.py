"""The Starlette application: routes, static files, error pages and security headers.

`create_app(store)` serves an existing `TaskStore` (tests, the CLI); `from_env` builds
one from the environment for ``uvicorn --factory taskstore.dashboard.app:from_env``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskstore.dashboard import api, pages
from taskstore.dashboard.auth import TOKEN_ENV, configured
from taskstore.errors import (
    DatabaseUnavailable,
    IllegalTransition,
    InvalidInput,
    SchemaOutOfDate,
    TaskNotFound,
    TaskStoreError,
)
from taskstore.store import TaskStore

STATUS_FOR_ERROR: list[tuple[type[TaskStoreError], int, str]] = [
    (InvalidInput, 400, "Bad request"),
    (TaskNotFound, 404, "Not found"),
    (IllegalTransition, 409, "Not possible now"),
    (DatabaseUnavailable, 503, "Database unavailable"),
    (SchemaOutOfDate, 503, "Schema out of date"),
]
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response (no inline script runs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(request: Request) -> bool:
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/api/")


async def store_error(request: Request, exc: Exception) -> Response:
    """A store error as a one-line message: JSON under /api/, an HTML page elsewhere."""
    code, title = next(
        ((c, t) for cls, c, t in STATUS_FOR_ERROR if isinstance(exc, cls)), (500, "Error")
    )
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=code)
    return pages.error(request, message, title, code)


def _lifespan(store: TaskStore) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Open `store` when the server starts and close it when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    return lifespan


def create_app(store: TaskStore, *, token: str | None = None, own_store: bool = False) -> Starlette:
    """The dashboard for `store`, read-only unless `token` is given.

    The caller opens and closes `store`, unless `own_store` is set: then the app opens it
    at start-up and closes it at shutdown (in the server's event loop).
    """
    static = StaticFiles(packages=[("taskstore.dashboard", "static")])
    app = Starlette(
        routes=[*pages.routes, *api.routes, Mount("/static", static, name="static")],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={TaskStoreError: store_error},
        lifespan=_lifespan(store) if own_store else None,
    )
    app.state.store = store
    app.state.token = configured(token)
    return app


def from_env() -> Starlette:
    """An app on the configured database, with the token from `TASKSTORE_DASHBOARD_TOKEN`."""
    return create_app(TaskStore.from_url(None), token=os.environ.get(TOKEN_ENV), own_store=True)
