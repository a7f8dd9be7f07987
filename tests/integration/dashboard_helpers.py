"""What the dashboard tests share: a token, tasks ended on purpose, an in-process client.

Imported by the dashboard test modules after their skip for a missing web extra.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import httpx

from taskstore import TaskStore
from taskstore.dashboard.app import create_app

TOKEN = "t0ken-for-tests"
WORKER = "worker-test"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "pipeline.py", line 7, in probe\n'
    "    raise ValueError(url)\n"
    'ValueError: bad <url> & "quotes"\n'
)


async def finish(store: TaskStore, name: str, *, queue: str = "default", **end: Any) -> int:
    """Enqueue a task, claim it and end it: `error=` fails it, `result=` completes it."""
    task_id = await store.enqueue(name, end.pop("payload", {}), queue=queue, max_attempts=1)
    async with store.transaction() as conn:
        [task] = await store.tasks.claim(
            conn, worker_id=WORKER, queue=queue, limit=1, lease_seconds=30
        )
        assert task.id == task_id
    async with store.transaction() as conn:
        if "error" in end:
            await store.tasks.fail(
                conn,
                task_id=task_id,
                worker_id=WORKER,
                fence=task.fence,
                error=end["error"],
                retry_in=None,
            )
        else:
            done = [(task_id, task.fence, json.dumps(end.get("result")))]
            await store.tasks.complete_many(conn, worker_id=WORKER, done=done)
    return task_id


async def fail(store: TaskStore, name: str = "pkg.media.probe", **kw: Any) -> int:
    error = {"type": "ValueError", "message": "bad <url>", "traceback": TRACEBACK}
    return await finish(store, name, error=error, **kw)


async def register_worker(
    store: TaskStore,
    worker_id: str,
    *,
    host: str,
    queues: dict[str, Any] | None = None,
    tasks: Sequence[str] = (),
) -> None:
    """Make `worker_id` the only registered worker, as its heartbeat would: serving
    `queues` (media and email by default) with handlers of the `tasks` names."""
    async with store.transaction() as conn:
        for stale in await store.worker_registry.list(conn):
            await store.worker_registry.remove(conn, stale.id)
        await store.worker_registry.beat(
            conn,
            worker_id=worker_id,
            host=host,
            pid=42,
            queues={"media": 4, "email": None} if queues is None else queues,
            concurrency=4,
            lease_seconds=30,
            running=1,
            tasks=tasks,
        )


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-task-id="(\d+)" href', page)]


def client_for(store: TaskStore, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(store, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")
