"""WorkerRepository: the registry of live workers, written by their heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, bindparam, delete, select

from taskstore.backends import Backend
from taskstore.models.worker import WorkerEntity
from taskstore.records import WorkerInfo
from taskstore.repositories.task_table import Executor

__all__ = ["WorkerInfo", "WorkerRepository"]
W = WorkerEntity.__table__
_BEAT_COLUMNS = [
    "host",
    "pid",
    "queues",
    "concurrency",
    "lease_seconds",
    "running",
    "tasks",
    "last_heartbeat_at",
]


class WorkerRepository:
    """Upsert on every heartbeat, delete on a clean stop, prune the dead."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        now = backend.now()
        self._beat = backend.upsert(W, ["id"], _BEAT_COLUMNS).values(
            id=bindparam("p_id"),
            host=bindparam("p_host"),
            pid=bindparam("p_pid"),
            queues=bindparam("p_queues", type_=W.c.queues.type),
            concurrency=bindparam("p_concurrency"),
            lease_seconds=bindparam("p_lease", type_=Float),
            running=bindparam("p_running"),
            tasks=bindparam("p_tasks", type_=W.c.tasks.type),
            started_at=now,
            last_heartbeat_at=now,
        )
        # dead: no heartbeat for three leases
        self._dead = W.c.last_heartbeat_at < backend.now_plus(-3 * W.c.lease_seconds)

    async def beat(
        self,
        conn: Executor,
        *,
        worker_id: str,
        host: str,
        pid: int,
        queues: dict[str, Any],
        concurrency: int,
        lease_seconds: float,
        running: int,
        tasks: Sequence[str] = (),
    ) -> None:
        await conn.execute(
            self._beat,
            {
                "p_id": worker_id,
                "p_host": host,
                "p_pid": pid,
                "p_queues": queues,
                "p_concurrency": concurrency,
                "p_lease": lease_seconds,
                "p_running": running,
                "p_tasks": list(tasks),
            },
        )

    async def remove(self, conn: Executor, worker_id: str) -> None:
        await conn.execute(delete(W).where(W.c.id == worker_id))

    async def prune_dead(self, conn: Executor) -> int:
        return (await conn.execute(delete(W).where(self._dead))).rowcount or 0

    def _alive(self) -> Any:
        # a heartbeat within the last lease (compared on the database's clock)
        return W.c.last_heartbeat_at >= self.backend.now_plus(-1 * W.c.lease_seconds)

    async def served(self, conn: Executor) -> tuple[set[str], set[str]]:
        """(queues, task names) that some live worker serves."""
        rows = await conn.execute(select(W.c.queues, W.c.tasks).where(self._alive()))
        queues: set[str] = set()
        names: set[str] = set()
        for row in rows:
            queues.update(row.queues or {})
            names.update(row.tasks or [])
        return queues, names

    async def list(self, conn: Executor) -> list[WorkerInfo]:
        alive = self._alive()
        rows = await conn.execute(select(*W.c, alive.label("alive")).order_by(W.c.started_at))
        return [
            WorkerInfo(**{**row._mapping, "tasks": row.tasks or [], "alive": bool(row.alive)})
            for row in rows
        ]
