"""Consumer: the store as a worker sees it.

A worker process calls only this (and the public `TaskStore`), never repositories,
backends or connections. It owns every transaction a worker runs: claim, complete (with
the attempt's own session), fail or retry, interrupt, release, heartbeat with
registration, rescue, prune under a lock, progress, periodic ticks. Each method is one
unit of work: it commits before it returns, and a failure leaves nothing half-written.

They all run on the worker's two held connections, so a worker process costs the
database two connections whatever it does: one for claims, reads and maintenance, one
for completions and the other endings. Only an attempt's own session (a handler that
calls ``ctx.session()``) takes another, from the pool.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from taskstore import validation
from taskstore.errors import TaskStoreError
from taskstore.flow_gate import FlowGate
from taskstore.jsoncodec import dumps_json
from taskstore.links import Link
from taskstore.records import ClaimedTask, RescueReport, TaskInfo
from taskstore.states import TaskStatus
from taskstore.store import TaskStore

#: what a worker's database work may raise when the database is down or the row moved on
STORE_ERRORS: tuple[type[BaseException], ...] = (TaskStoreError, DBAPIError, OSError)
#: (task id, attempt, JSON document or None): a completion's result, a cut-off's note
Ending = tuple[int, int, str | None]
_PRUNE_LOCK_KEY = 0x7461736B70727E  # any constant shared by all workers


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    """What a worker's registry row says about it (refreshed by every heartbeat)."""

    host: str
    pid: int
    queues: dict[str, int | None]
    concurrency: int
    lease_seconds: float
    tasks: list[str]


class Consumer:
    """One worker's view of one store."""

    def __init__(self, store: TaskStore, worker_id: str, lease_seconds: float) -> None:
        self._store = store
        self._tasks = store.tasks
        self._workers = store.worker_registry
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        backend = store.backend
        self._fetch_link = Link(store.engine, backend, store.translate)
        self._ack_link = Link(store.engine, backend, store.translate)
        # Our own acks, endings and heartbeats touch the same rows: never let them
        # deadlock each other.
        self._row_lock = anyio.Lock()
        #: longest pause between claims of an idle worker
        self.idle_poll_max_seconds: float = backend.idle_poll_max_seconds
        #: how often an idle worker probes for due tasks (None: notifications wake it)
        self.idle_probe_seconds: float | None = backend.idle_probe_seconds
        self._flow = FlowGate(store, worker_id, lease_seconds, self._fetch_link)
        #: (queue, name) -> monotonic deadline: names handed back to a live worker that
        #: has their handler, left out of our claims until then
        self._skips: dict[tuple[str, str], float] = {}
        self._probed_due: set[str] = set()  # queues our last probe found a task due in
        # Where one writer at a time commits (SQLite), a claim that also writes our
        # pending completions saves a whole write turn: a commit and a hand-off of the
        # lock. PostgreSQL writes the two at once on the two links instead.
        self._one_writer = backend.writes_read_latest

    def held_back(self, queue: str) -> float:
        """Seconds until a claim of `queue` could take anything (paused, at its limit,
        out of rate slots), or 0: claim now."""
        return self._flow.held_back(queue)

    def waits_for_endings(self) -> bool:
        """Is a queue held at a concurrency limit that this worker's pending
        completions would free? (Then they are worth writing at once.)"""
        return self._flow.waits_for_endings()

    def held_by(self, queue: str) -> str | None:
        """Which limit holds `queue` back now (paused, concurrency, rate, key_concurrency)."""
        return self._flow.held_by(queue)

    def claims_ahead(self, queue: str) -> bool:
        """May the worker claim more of `queue` than it can start now? Not where flow
        control counts what runs: tasks waiting for a slot would hold the queue's limit."""
        return not self._flow.known_limited(queue)

    def waiting_on_limits(self, queues: list[str]) -> bool:
        """Is one of `queues` held back by a limit that lifts by itself (not a pause)?"""
        return self._flow.waiting_on_limits(queues)

    def queue_changed(self, queue: str) -> None:
        """A notification said the queue's settings changed: read them at the next claim."""
        self._flow.forget(queue)

    async def close(self) -> None:
        await self._fetch_link.close()
        await self._ack_link.close()

    # ------------------------------------------------------------------ fetch
    async def claim(self, queue: str, limit: int, *, orphans: bool = False) -> list[ClaimedTask]:
        """Claim and start up to `limit` due tasks of `queue` (see `LeaseStatements.claim`),
        within the queue's flow control if it has any."""
        skip = self.skipped(queue)
        if await self._flow.limited(queue):
            return await self._flow.claim(queue, limit, orphans=orphans, skip=skip)
        async with self._fetch_link.statement() as conn:
            made = await self._claim_later(conn, queue, limit, orphans=orphans, skip=skip)
        return self._plain_claimed(queue, made())  # committed: made outside the write lock

    async def _claim_later(
        self, conn: Any, queue: str, limit: int, *, orphans: bool, skip: tuple[str, ...]
    ) -> Callable[[], list[ClaimedTask]]:
        return await self._tasks.claim_later(
            conn,
            worker_id=self.worker_id,
            queue=queue,
            limit=limit,
            lease_seconds=self.lease_seconds,
            orphans=orphans,
            skip=skip,
        )

    def claims_complete(self, queue: str) -> bool:
        """Should a claim of `queue` carry our pending completions (`claim_completing`)?"""
        return self._one_writer and self.claims_ahead(queue)

    async def claim_completing(
        self, queue: str, limit: int, done: Sequence[Ending]
    ) -> tuple[set[int], list[ClaimedTask]]:
        """Complete `done` and claim up to `limit` tasks of `queue`, in one unit; returns
        the ids accepted by the fence and the tasks claimed. A queue with flow control
        takes its own path, after the completions' unit."""
        if await self._flow.limited(queue):
            accepted = await self.complete(done)
            return accepted, await self.claim(queue, limit)
        async with self._row_lock, self._fetch_link.transaction() as conn:
            accepted = await self._tasks.complete_many(conn, worker_id=self.worker_id, done=done)
            made = await self._claim_later(
                conn, queue, limit, orphans=False, skip=self.skipped(queue)
            )
        self._flow.freed()
        return accepted, self._plain_claimed(queue, made())

    def _plain_claimed(self, queue: str, tasks: list[ClaimedTask]) -> list[ClaimedTask]:
        # Nothing taken although our probe saw a task due: taken by another worker, or the
        # queue has gained flow control (see `without_flow_control`) and the probe would
        # keep waking us for it. Read its settings at the next claim. (Not after every
        # empty claim: that read would cost each pickup after an idle spell.)
        if not tasks and queue in self._probed_due:
            self._flow.recheck(queue)
        self._probed_due.discard(queue)
        return tasks

    def skipped(self, queue: str) -> tuple[str, ...]:
        """Task names of `queue` our claims leave for the live workers that have them."""
        if not self._skips:
            return ()
        now = time.monotonic()
        for key in [key for key, until in self._skips.items() if until <= now]:
            del self._skips[key]
        return tuple(sorted(name for q, name in self._skips if q == queue))

    async def dependency_results(self, task_id: int) -> dict[int, Any]:
        """{dependency id: result} of a task's dependencies."""
        async with self._fetch_link.reading() as conn:
            return await self._tasks.dependency_results(conn, task_id)

    async def any_due(self, queues: Sequence[str]) -> bool:
        """Is a task of `queues` claimable now, by us (not one whose name we leave to
        others)? A read: no write lock."""
        skip = {queue: self.skipped(queue) for queue in queues} if self._skips else None
        due = await self._fetch_link.read(
            lambda conn: self._tasks.any_due(conn, list(queues), skip=skip)
        )
        if due:
            self._probed_due.update(queues)
        return due

    async def listen(self, wake: Callable[[str], None]) -> None:
        """Call `wake(queues)` on every enqueue notification, forever (returns at once
        where the database has none)."""
        await self._store.backend.listen(self._store.engine, wake)

    # ------------------------------------------------------------- endings
    async def complete(self, done: Sequence[Ending]) -> set[int]:
        """Complete a batch of attempts; returns the ids accepted by the fence."""
        async with self._row_lock, self._ack_link.statement() as conn:
            accepted = await self._tasks.complete_many(conn, worker_id=self.worker_id, done=done)
        self._flow.freed()
        return accepted

    def refillable(self, queue: str) -> bool:
        """May completions of ours claim `queue`'s freed slots (`complete_and_claim`)?
        (Not while we leave some of its names to others: that statement takes any.)"""
        if self.claims_complete(queue):
            return True
        return self._flow.refillable(queue) and not self.skipped(queue)

    async def complete_and_claim(
        self, done: Sequence[Ending], queue: str, limit: int
    ) -> tuple[set[int], list[ClaimedTask]]:
        """Complete a batch and claim, at once, up to `limit` tasks of `queue` into the
        slots it frees; returns the ids accepted by the fence and the tasks claimed."""
        if self.claims_complete(queue):
            return await self.claim_completing(queue, limit, done)
        async with self._row_lock, self._ack_link.statement() as conn:
            accepted, tasks = await self._tasks.complete_and_claim(
                conn,
                worker_id=self.worker_id,
                done=done,
                queue=queue,
                limit=limit,
                lease_seconds=self.lease_seconds,
                key_limit=self._flow.sole_key_limit(queue),
            )
        self._flow.refilled(queue, len(tasks))
        return accepted, tasks

    def session(self) -> AsyncSession:
        """A session for one attempt's own writes; `complete_in` commits it."""
        return self._store.sessions()

    async def complete_in(self, session: AsyncSession, done: Ending) -> bool:
        """Complete one attempt in its own session: results and completion commit
        together, or (lease lost: False) not at all."""
        accepted = await self._tasks.complete_many(session, worker_id=self.worker_id, done=[done])
        if accepted:
            await session.commit()
            self._flow.freed()
            return True
        await session.rollback()
        return False

    async def fail(
        self, task_id: int, fence: int, error: dict[str, Any], retry_in: float | None
    ) -> TaskStatus:
        """End a failed attempt (retry after `retry_in` seconds, or failed); raises
        `LeaseLost` if the attempt is no longer this worker's."""
        async with self._ack_link.transaction() as conn:
            status = await self._tasks.fail(
                conn,
                task_id=task_id,
                worker_id=self.worker_id,
                fence=fence,
                error=error,
                retry_in=retry_in,
            )
        self._flow.freed()
        return status

    async def interrupt(self, cut: Sequence[Ending], *, delay_seconds: float = 0.0) -> set[int]:
        """Hand back attempts cut off by a graceful stop (not charged as attempts), due
        again after `delay_seconds`."""
        async with self._row_lock, self._ack_link.transaction() as conn:
            return await self._tasks.interrupt_many(
                conn, worker_id=self.worker_id, cut=cut, delay_seconds=delay_seconds
            )

    async def release(
        self,
        handed: Sequence[tuple[int, int]],
        *,
        delay_seconds: float = 0.0,
        wake: Sequence[str] = (),
    ) -> set[int]:
        """Hand back (task id, fence) pairs claimed but never run, uncharged; the workers
        of the queues in `wake` are told at once."""
        async with self._row_lock, self._ack_link.transaction() as conn:
            done = await self._tasks.release_many(
                conn, worker_id=self.worker_id, handed=handed, delay_seconds=delay_seconds
            )
            if done and wake:
                await self._store.backend.notify(conn, list(wake))
            return done

    async def hand_back_unserved(
        self,
        task: ClaimedTask,
        *,
        retry_in: float,
        grace_seconds: float,
        skip_seconds: float = 30.0,
    ) -> TaskStatus:
        """A task this worker has no handler for goes back uncharged. Where a live worker
        has the handler, it is due at once (those workers are woken) and this worker's
        claims leave the name alone for `skip_seconds`; otherwise it is due again after
        `retry_in` (our claims leave the name alone until then), and fails
        (``UnknownTask``) only once no live worker has served its name for
        `grace_seconds`. Returns the task's new status."""
        async with self._row_lock, self._ack_link.transaction() as conn:
            queues, served = await self._workers.served(conn)
            now = await self._tasks.clock(conn)
            info = await self._tasks.get(conn, task.id)
            elsewhere = task.name in served and task.queue in queues
            since = None if task.name in served else _unserved_since(info, now)
            if since is not None and (now - since).total_seconds() >= grace_seconds:
                error = _unserved_doc(task, self.worker_id, since, final=True)
                return await self._tasks.fail(
                    conn,
                    task_id=task.id,
                    worker_id=self.worker_id,
                    fence=task.fence,
                    error=error,
                    retry_in=None,
                )
            note = dumps_json(_unserved_doc(task, self.worker_id, since, final=False))
            await self._tasks.release_many(
                conn,
                worker_id=self.worker_id,
                handed=[(task.id, task.fence)],
                delay_seconds=0.0 if elsewhere else retry_in,
                note=note,
            )
            if elsewhere:
                await self._store.backend.notify(conn, [task.queue])
        # Until it is due again our claims leave the name alone: a queue holding many
        # such tasks costs one claim per lapse, not a hand-back per task.
        self._skips[task.queue, task.name] = time.monotonic() + (
            skip_seconds if elsewhere else retry_in
        )
        return TaskStatus.CREATED

    async def snooze(self, task_id: int, fence: int, seconds: float) -> bool:
        """The handler asked to run later: due in `seconds`, the attempt not charged."""
        async with self._row_lock, self._ack_link.transaction() as conn:
            kept = await self._tasks.snooze(
                conn, worker_id=self.worker_id, task_id=task_id, fence=fence, seconds=seconds
            )
        self._flow.freed()
        return kept

    async def set_progress(self, task_id: int, fence: int, fraction: float) -> bool:
        """Record a running attempt's progress; False if the attempt is no longer ours."""
        async with self._ack_link.transaction() as conn:
            return await self._tasks.set_progress(
                conn, task_id=task_id, worker_id=self.worker_id, fence=fence, fraction=fraction
            )

    # ----------------------------------------------------------- maintenance
    async def heartbeat(
        self, held: Sequence[int], running: int, registration: Registration
    ) -> set[int]:
        """Extend the leases of `held` and refresh the registry row (`running` attempts
        now), in one transaction; returns the ids still this worker's."""
        async with self._row_lock, self._ack_link.transaction() as conn:
            kept = await self._tasks.heartbeat(
                conn, worker_id=self.worker_id, lease_seconds=self.lease_seconds, task_ids=held
            )
            await self._workers.beat(
                conn,
                worker_id=self.worker_id,
                running=running,
                **dataclasses.asdict(registration),
            )
        return kept

    async def unregister(self) -> None:
        async with self._ack_link.transaction() as conn:
            await self._workers.remove(conn, self.worker_id)

    async def rescue(self, queues: Sequence[str]) -> RescueReport:
        """Take back expired leases, forget dead workers, and look for orphans of
        `queues`: our own rescues at once; others' only once they have waited a lease
        (their rescuer is on them), so a crash drains one worker, not the whole fleet."""
        async with self._fetch_link.transaction() as conn:
            rescued = await self._tasks.rescue_expired(conn)
            # Repairs a completion whose promotion of its dependents did not happen.
            await self._tasks.settle_all(conn)
            await self._workers.prune_dead(conn)
            waiting = await self._tasks.any_due(
                conn,
                list(queues),
                orphans=True,
                waiting_seconds=0.0 if rescued else self.lease_seconds,
            )
        return RescueReport(rescued, waiting)

    async def prune(self, retention_seconds: float, limit: int) -> int | None:
        """Delete up to `limit` finished tasks past retention; None if another worker
        is pruning (one at a time, under a database lock)."""
        async with self._fetch_link.transaction() as conn:
            if not await self._store.backend.try_lock(conn, _PRUNE_LOCK_KEY):
                return None
            return await self._tasks.purge(conn, older_than_seconds=retention_seconds, limit=limit)

    async def enqueue_tick(
        self, name: str, tick: dt.datetime, **options: Any
    ) -> tuple[int | None, dt.datetime]:
        """Enqueue one tick of a schedule once across all workers, if it is due by the
        database's clock. Returns the new id (None: another worker's, or not yet due) and
        that clock, which schedules keep to (a host's own clock may be off)."""
        limit = self._store.settings.max_payload_bytes
        task = validation.new_task(name, {}, max_payload_bytes=limit, **options)
        async with self._ack_link.transaction() as conn:
            now = await self._tasks.clock(conn)
            due = tick <= now
            return (await self._tasks.insert_periodic(conn, task, tick) if due else None), now

    async def claimable_counts(self) -> dict[str, int]:
        """Tasks due now, per queue (for the depth gauge)."""
        async with self._fetch_link.reading() as conn:
            return await self._tasks.claimable_counts(conn)

    async def waiting(self, queues: Sequence[str]) -> tuple[int, float | None]:
        """Claimable tasks of `queues`: how many, and seconds until the first is due."""
        async with self._fetch_link.reading() as conn:
            return await self._tasks.waiting(conn, list(queues))


def _unserved_since(info: TaskInfo | None, now: dt.datetime) -> dt.datetime:
    """Since when no live worker has served this task (noted when it was handed back)."""
    noted = (info.error or {}).get("unserved_since") if info is not None else None
    return dt.datetime.fromisoformat(noted) if isinstance(noted, str) else now


def _unserved_doc(
    task: ClaimedTask, worker_id: str, since: dt.datetime | None, *, final: bool
) -> dict[str, Any]:
    if final:
        message = f"no live worker has a handler named {task.name!r} (waited since {since})"
    elif since is None:
        message = f"worker {worker_id} has no handler named {task.name!r}; left for one that has"
    else:
        message = f"no live worker has a handler named {task.name!r}; waiting for one"
    return {
        "type": "UnknownTask",
        "message": message,
        "unserved_since": since.isoformat() if since is not None else None,
        "worker": worker_id,
    }
