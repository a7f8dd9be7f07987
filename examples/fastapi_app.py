"""Example web app (FastAPI): enqueue in the request's own transaction, then await the result.

- ``POST /videos`` records a `VideoEntity` and enqueues ``probe_video`` for it in one
  transaction: both are written, or (a bad request, a crash) neither is, so no worker ever
  probes a video the app did not store, and no stored video lacks its probe. The probe
  fills in that same row.
- ``GET /tasks/{id}?wait=S`` returns the task, after waiting up to S seconds (at most
  `MAX_WAIT`, so a request cannot hold a connection, or the server's shutdown, for good)
  for it to finish (`TaskStore.wait`: LISTEN on PostgreSQL, no polling).

Run it (the ``fastapi`` and ``uvicorn`` packages), with a worker beside it:

    uvicorn examples.fastapi_app:app
    taskstore-worker --app examples.media_pipeline
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel

from taskstore import TaskStore
from taskstore.errors import InvalidInput, TaskNotFound
from taskstore.models import VideoEntity
from taskstore.models.media import new_media_id

PROBE = "examples.media_pipeline.probe_video"
MAX_WAIT = 60.0  # seconds a request may wait for its task


class NewVideo(BaseModel):
    url: str
    title: str | None = None


def create_app(url: str | None = None) -> FastAPI:
    """The app, on the database `url` (default: the settings chain)."""
    store = TaskStore.from_url(url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    app = FastAPI(title="taskstore example", lifespan=lifespan)

    @app.post("/videos", status_code=201)
    async def add_video(video: NewVideo) -> dict[str, Any]:
        async with store.sessions() as session, session.begin():
            row = VideoEntity(id=new_media_id(), url=video.url, title=video.title)
            session.add(row)
            try:  # a refused task rolls the video back too
                payload = {"url": video.url, "title": video.title, "video_id": row.id}
                task_id = await store.enqueue(PROBE, payload, queue="media", session=session)
            except InvalidInput as exc:
                raise HTTPException(422, str(exc)) from None
        return {"video_id": row.id, "task_id": task_id}

    @app.get("/tasks/{task_id}")
    async def task_status(
        task_id: int, wait: float = Query(0.0, ge=0.0, le=MAX_WAIT)
    ) -> dict[str, Any]:
        try:
            info = await store.wait(task_id, timeout=wait) if wait > 0 else None
        except TimeoutError:
            info = None
        except TaskNotFound:
            raise HTTPException(404, f"no task with id {task_id}") from None
        if info is None:
            found = await store.get(task_id)
            if found is None:
                raise HTTPException(404, f"no task with id {task_id}")
            info = found
        return info.to_json()

    return app


app = create_app()
