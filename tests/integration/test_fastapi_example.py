"""The FastAPI example on both databases: a video and its task commit together (or
neither does), and a request can await the task's result."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity, VideoEntity

httpx = pytest.importorskip("httpx", reason="the example's tests need httpx")
pytest.importorskip("fastapi", reason="the example's tests need fastapi")


async def counts(store: TaskStore) -> tuple[int, int]:
    async with store.reading() as conn:
        videos = (await conn.execute(select(func.count()).select_from(VideoEntity))).scalar_one()
        tasks = (await conn.execute(select(func.count()).select_from(TaskEntity))).scalar_one()
    return videos, tasks


async def test_a_video_and_its_probe_commit_together_and_the_probe_fills_in_that_video(
    store: TaskStore, db_url: str
) -> None:
    from examples import media_pipeline  # noqa: F401 - registers the handlers
    from examples.fastapi_app import create_app
    from worker import Worker, WorkerConfig
    from worker.registry import registry

    app = create_app(db_url)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        refused = await client.post("/videos", json={"url": "https://x/v.mp4", "title": "a\x00b"})
        assert refused.status_code == 422 and "NUL" in refused.json()["detail"]
        assert await counts(store) == (0, 0)  # the video was rolled back with the task

        made = await client.post("/videos", json={"url": "https://x/v.mp4", "title": "talk"})
        assert made.status_code == 201
        task_id = made.json()["task_id"]
        assert (await client.get(f"/tasks/{task_id}")).json()["status"] == "created"
        assert (await client.get(f"/tasks/{task_id}?wait=0.2")).json()["status"] == "created"
        for unbounded in ("inf", "1e308", "61", "-1", "nan"):  # a request must not wait for good
            assert (await client.get(f"/tasks/{task_id}?wait={unbounded}")).status_code == 422

        config = WorkerConfig(queues={"media": None}, burst=True)
        await Worker(store, registry, config).run()
        done = (await client.get(f"/tasks/{task_id}?wait=10")).json()
        assert done["status"] == TaskStatus.COMPLETED.value
        assert done["result"]["video_id"] == made.json()["video_id"]  # the probe filled it in
        assert (await counts(store))[0] == 1
        assert (await client.get("/tasks/999999?wait=1")).status_code == 404
