"""Real `taskstore-worker` processes sharing one database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from taskstore import TaskStore
from taskstore.models import MediaEntity, TranscriptEntity, VideoEntity
from tests.helpers.processes import executions, start_worker, stderr_of

N_TASKS = 1000


async def test_two_worker_processes_drain_every_task_exactly_once(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    for start in range(0, N_TASKS, 500):
        await store.enqueue_many(
            [{"name": "tests.record", "payload": {"n": n}} for n in range(start, start + 500)]
        )
    log = tmp_path / "exec.log"
    procs = [start_worker(db_url, "--burst", "--concurrency", "8", exec_log=log) for _ in range(2)]
    codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 300) for p in procs))
    errors = stderr_of(log)
    assert codes == [0, 0], errors
    assert "database is locked" not in errors and "Traceback" not in errors

    runs = executions(log)
    assert len(runs) == N_TASKS and set(runs.values()) == {1}  # each task ran exactly once
    stats = {s.queue: s.counts for s in await store.stats()}
    assert stats == {"default": {"completed": N_TASKS}}  # none assigned/running/failed

    async with store.sessions() as session:
        media = (await session.scalars(select(MediaEntity))).all()
        transcripts = await session.scalar(select(func.count()).select_from(TranscriptEntity))
    assert len(media) == N_TASKS and all(isinstance(m, VideoEntity) for m in media)
    assert {m.task_id for m in media} == set(runs)
    assert transcripts == N_TASKS
