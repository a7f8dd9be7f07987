"""Claims from concurrent connections and processes never hand a task out twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity

N_TASKS = 5000
ROOT = Path(__file__).resolve().parents[2]


async def _fill(store: TaskStore) -> set[int]:
    ids: list[int] = []
    for start in range(0, N_TASKS, 1000):
        batch = [{"name": "t.x", "payload": {"i": i}} for i in range(start, start + 1000)]
        ids += await store.enqueue_many(batch)
    return set(ids)


async def _status_counts(store: TaskStore) -> dict[str, int]:
    async with store.reading() as conn:
        rows = await conn.execute(
            select(TaskEntity.status, func.count()).group_by(TaskEntity.status)
        )
        return dict(rows.all())


async def _claimer(url: str, name: str, batch: int) -> list[int]:
    seen: list[int] = []
    async with TaskStore.from_url(url) as store:
        while True:
            async with store.transaction() as conn:
                got = await store.tasks.claim(
                    conn, worker_id=name, queue="default", limit=batch, lease_seconds=60
                )
            if not got:
                return seen
            seen.extend(t.id for t in got)
            async with store.transaction() as conn:
                await store.tasks.complete_many(
                    conn, worker_id=name, done=[(t.id, t.fence, None) for t in got]
                )


def _run_claimer_processes(url: str, count: int) -> tuple[list, list]:
    cmd = [sys.executable, "-m", "tests.helpers.claimer", url, "50"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    return procs, [p.communicate(timeout=300) for p in procs]


async def test_eight_concurrent_claimers_hand_out_every_task_exactly_once(
    store: TaskStore, db_url: str
) -> None:
    expected = await _fill(store)
    results = await asyncio.gather(*(_claimer(db_url, f"w{i}", 37) for i in range(8)))
    handed = [i for r in results for i in r]
    assert len(handed) == len(set(handed)) == N_TASKS
    assert set(handed) == expected
    assert sum(1 for r in results if r) >= 2  # the work really was shared
    assert await _status_counts(store) == {TaskStatus.COMPLETED.value: N_TASKS}


async def test_three_claimer_processes_hand_out_every_task_exactly_once(
    store: TaskStore, db_url: str
) -> None:
    expected = await _fill(store)
    procs, outputs = await asyncio.to_thread(_run_claimer_processes, db_url, 3)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
    handed = [int(line) for out, _ in outputs for line in out.split()]
    assert len(handed) == len(set(handed)) == N_TASKS
    assert set(handed) == expected
    assert await _status_counts(store) == {TaskStatus.COMPLETED.value: N_TASKS}
