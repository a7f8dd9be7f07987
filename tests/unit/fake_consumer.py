"""FakeConsumer: `taskstore.consumer.Consumer` in memory, so the worker's services run
without a database. It hands out the tasks it is given and records every write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskstore.consumer import Ending, Registration
from taskstore.records import ClaimedTask, RescueReport
from taskstore.states import TaskStatus


class FakeConsumer:
    """Pools of claimable tasks (batches and orphans) and a log of what the worker wrote."""

    idle_poll_max_seconds = 0.05
    idle_probe_seconds: float | None = None

    def __init__(self, fresh: Sequence[int] = (), orphans: Sequence[int] = (), name: str = "t.x"):
        self.worker_id = "fake-worker"
        self.lease_seconds = 30.0
        self.pools = {False: list(fresh), True: list(orphans)}
        self.name = name
        self.claims: list[tuple[int, bool]] = []
        self.completed: list[Ending] = []
        self.failed: list[tuple[int, int, str, float | None]] = []
        self.interrupted: list[Ending] = []
        self.released: list[tuple[int, int]] = []
        self.beats = 0
        self.refill_queues: set[str] = set()  # queues whose completions may claim
        self.refills: list[tuple[int, str, int]] = []  # (completions, queue, limit)
        self.one_writer = False  # claims carry pending completions (SQLite's case)
        self.units: list[tuple[int, int]] = []  # claim_completing: (completions, limit)
        self.fail_units = 0  # how many claim_completing calls raise first

    async def claim(self, queue: str, limit: int, *, orphans: bool = False) -> list[ClaimedTask]:
        self.claims.append((limit, orphans))
        pool = self.pools[orphans]
        taken, pool[:] = pool[:limit], pool[limit:]
        return [ClaimedTask(i, self.name, queue, {}, 1, None, 0, fence=1) for i in taken]

    def held_back(self, queue: str) -> float:
        return 0.0

    def waits_for_endings(self) -> bool:
        return False

    def held_by(self, queue: str) -> str | None:
        return None

    def claims_ahead(self, queue: str) -> bool:
        return True

    def waiting_on_limits(self, queues: list[str]) -> bool:
        return False

    def queue_changed(self, queue: str) -> None:
        return None

    async def snooze(self, task_id: int, fence: int, seconds: float) -> bool:
        self.released.append((task_id, fence))
        return True

    async def any_due(self, queues: Sequence[str]) -> bool:
        return bool(self.pools[False])

    async def listen(self, wake: Callable[[str], None]) -> None:
        return None

    async def complete(self, done: Sequence[Ending]) -> set[int]:
        self.completed.extend(done)
        return {task_id for task_id, _, _ in done}

    def refillable(self, queue: str) -> bool:
        return queue in self.refill_queues or self.one_writer

    def claims_complete(self, queue: str) -> bool:
        return self.one_writer

    async def claim_completing(
        self, queue: str, limit: int, done: Sequence[Ending]
    ) -> tuple[set[int], list[ClaimedTask]]:
        if self.fail_units:
            self.fail_units -= 1
            raise OSError("the database went away")
        self.units.append((len(done), limit))
        return await self.complete(done), await self.claim(queue, limit)

    async def complete_and_claim(
        self, done: Sequence[Ending], queue: str, limit: int
    ) -> tuple[set[int], list[ClaimedTask]]:
        self.refills.append((len(done), queue, limit))
        accepted = await self.complete(done)
        return accepted, await self.claim(queue, min(limit, len(done)))

    def session(self) -> Any:
        raise AssertionError("no handler in these tests opens a session")

    async def fail(
        self, task_id: int, fence: int, error: dict[str, Any], retry_in: float | None
    ) -> TaskStatus:
        self.failed.append((task_id, fence, error["type"], retry_in))
        return TaskStatus.CREATED if retry_in is not None else TaskStatus.FAILED

    async def interrupt(self, cut: Sequence[Ending]) -> set[int]:
        self.interrupted.extend(cut)
        return {task_id for task_id, _, _ in cut}

    async def release(
        self,
        handed: Sequence[tuple[int, int]],
        *,
        delay_seconds: float = 0.0,
        wake: Sequence[str] = (),
    ) -> set[int]:
        self.released.extend(handed)
        return {task_id for task_id, _ in handed}

    async def hand_back_unserved(
        self, task: ClaimedTask, *, retry_in: float, grace_seconds: float, skip_seconds: float
    ) -> TaskStatus:
        self.released.append((task.id, task.fence))
        return TaskStatus.CREATED

    async def set_progress(self, task_id: int, fence: int, fraction: float) -> bool:
        return True

    async def heartbeat(
        self, held: Sequence[int], running: int, registration: Registration
    ) -> set[int]:
        self.beats += 1
        return set(held)

    async def unregister(self) -> None:
        return None

    async def rescue(self, queues: Sequence[str]) -> RescueReport:
        return RescueReport({}, bool(self.pools[True]))

    async def prune(self, retention_seconds: float, limit: int) -> int | None:
        return 0

    async def claimable_counts(self) -> dict[str, int]:
        return {"default": len(self.pools[False])}

    async def waiting(self, queues: Sequence[str]) -> tuple[int, float | None]:
        return len(self.pools[False]), None if not self.pools[False] else 0.0

    async def close(self) -> None:
        return None
