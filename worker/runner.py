"""The worker runtime: fetch -> execute -> complete, with heartbeats, rescue and shutdown.

One process runs:
- one fetcher, claiming batches per queue sized to free capacity (per queue and overall);
  while handlers end within milliseconds it claims one batch ahead, so the next batch's
  round trip overlaps this one's run (those tasks wait, leased, for a handler slot);
- the handlers, each attempt a task of its own that can be cancelled alone;
- an acknowledger, completing finished attempts in batches (flushed on size or after a
  few milliseconds), fenced on (id, worker, attempt);
- a heartbeat, extending every lease the worker holds in one statement and stopping
  handlers whose task was cancelled or rescued elsewhere;
- a rescuer, returning tasks whose lease expired (a crashed worker's) to the queue; such
  orphans then run one at a time, each alone in its worker, so that a task which kills
  its process is charged for the crash by itself.
The worker never sees SQL: it calls the store's repository.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import socket
import time
import uuid
from typing import Any

import anyio
from sqlalchemy.exc import DBAPIError

from taskstore.engine import dumps_json
from taskstore.errors import LeaseLost, TaskStoreError
from taskstore.links import Link
from taskstore.logs import get_logger
from taskstore.records import ClaimedTask
from taskstore.store import TaskStore
from worker import retry
from worker.context import TaskContext
from worker.errors import NonRetryable, UnknownTask
from worker.execution import Outcome, Running, attempt, error_document
from worker.metrics import NoMetrics
from worker.registry import Registry
from worker.scheduler import run_schedules

log = get_logger("taskstore.worker")
DB_ERRORS = (TaskStoreError, DBAPIError, OSError)
DEFAULT_MAX_ATTEMPTS = 3
PRUNE_LOCK_KEY = 0x7461736B70727E  # any constant shared by all workers
PRUNE_BATCH = 5000


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs; every field is a `taskstore-worker` option."""

    queues: dict[str, int | None]  # queue -> its own concurrency limit (None: only the total)
    concurrency: int = 10
    lease_seconds: float = 30.0
    heartbeat_seconds: float | None = None  # default: a third of the lease
    rescue_seconds: float | None = None  # default: half the lease
    poll_min_seconds: float = 0.05
    poll_max_seconds: float | None = None  # default: the backend's (shorter without NOTIFY)
    shutdown_timeout: float = 30.0
    burst: bool = False
    ack_batch: int = 500  # most completions one statement carries
    ack_flush_at: int = 100  # flush at once from this many pending, else after the delay
    ack_delay_seconds: float = 0.005
    prune_seconds: float = 60.0  # how often one worker prunes finished tasks past retention
    claim_linger_seconds: float = 0.002
    prefetch_below_seconds: float = 0.01  # claim ahead while handlers are this fast

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    @property
    def rescue_interval(self) -> float:
        return self.rescue_seconds or self.lease_seconds / 2


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs tasks of the configured queues until stopped (or drained, in burst)."""

    def __init__(
        self,
        store: TaskStore,
        registry: Registry,
        config: WorkerConfig,
        worker_id: str | None = None,
        metrics: NoMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or NoMetrics()
        self.registry = registry
        self.config = config
        self.worker_id = worker_id or new_worker_id()
        self.resources: dict[str, Any] = {}
        self.running: dict[int, Running] = {}
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self._acks: list[tuple[int, int, str | None]] = []
        self._cut: list[tuple[int, int, str | None]] = []
        # asyncio primitives on the hot path: anyio's re-detect the event loop per object.
        self._wake = asyncio.Event()
        self._ack_ready = asyncio.Event()
        self._stopping = False
        # Orphans (tasks rescued after their worker died) may be waiting: run those one at a
        # time, alone (see `taskstore.models.task.orphaned`). Look at once on start.
        self._orphans_waiting = True
        self._claim_failures = 0
        self._queue_order = list(config.queues)
        self._poll_max = config.poll_max_seconds or store.backend.idle_poll_max_seconds
        self._claim_threshold = max(1, min(config.ack_flush_at, config.concurrency // 4))
        # Our own acks and heartbeats touch the same rows: never let them deadlock each other.
        self._row_lock = anyio.Lock()
        self._ack_lock = anyio.Lock()
        self._fetch_link = Link(store)
        self._ack_link = Link(store)
        self._slots = asyncio.Semaphore(config.concurrency)  # handlers running at once
        self._recent_seconds = float("inf")  # moving average of handler durations
        self.log = log.bind(worker=self.worker_id)

    # ------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        """Stop claiming; running handlers get `shutdown_timeout` to finish."""
        self._stopping = True
        self._wake.set()

    def cut_off(self) -> None:
        """Stop now: cancel running handlers; their tasks are marked to run again."""
        self.stop()
        for run in list(self.running.values()):
            run.stop("shutdown")

    async def run(self) -> None:
        await self._hooks(self.registry.startup, "startup")
        self.log.info(
            "worker started",
            queues=self.config.queues,
            concurrency=self.config.concurrency,
            burst=self.config.burst,
        )
        try:
            await self.heartbeat()  # register at once, so operators see the worker start
            async with anyio.create_task_group() as services:
                services.start_soon(self._heartbeat_loop)
                services.start_soon(self._rescue_loop)
                services.start_soon(self._prune_loop)
                services.start_soon(self._ack_loop)
                if type(self.metrics) is not NoMetrics:
                    services.start_soon(self._depth_loop)
                if not self.config.burst:
                    services.start_soon(
                        self.store.backend.listen, self.store.engine, self._on_notify
                    )
                    services.start_soon(run_schedules, self.store, self.registry.periodic())
                try:
                    await self._fetch_loop()
                    await self._drain()
                finally:
                    await self._cancel_leftovers()
                await self._write_interrupted()
                await self._flush_acks(final=True)
                services.cancel_scope.cancel()
        finally:
            await self._fetch_link.close()
            await self._ack_link.close()
            await self._unregister()
            await self._hooks(self.registry.shutdown, "shutdown")
            self.log.info("worker stopped", **dict(self.counts))

    async def _hooks(self, hooks: list[Any], phase: str) -> None:
        for hook in hooks:
            result = hook(self.resources)
            if hasattr(result, "__await__"):
                await result
        if hooks:
            self.log.info(f"{phase} hooks ran", count=len(hooks))

    def _on_notify(self, payload: str) -> None:
        if payload == "*" or not self.config.queues.keys().isdisjoint(payload.split(",")):
            self._wake.set()

    async def _cancel_leftovers(self) -> None:
        """If the worker itself is cancelled, its attempts go too (their leases expire)."""
        handles = [r.handle for r in self.running.values() if r.handle is not None]
        for handle in handles:
            if not handle.done():
                handle.cancel()
        if handles:
            await asyncio.gather(*handles, return_exceptions=True)

    async def _drain(self) -> None:
        """Give running handlers the grace period, then cut off what is left."""
        with anyio.move_on_after(self.config.shutdown_timeout):
            while self.running:
                await self._wait_wake(None)
        for run in list(self.running.values()):
            run.stop("shutdown")

    # ------------------------------------------------------------------ fetch
    def _free(self, queue: str) -> int:
        """How many tasks of `queue` one claim may take now."""
        limit = self.config.queues.get(queue)
        if limit is not None:  # a queue with its own limit never runs ahead of it
            queue_free = limit - self.in_flight[queue]
            total_free = self.config.concurrency - sum(self.in_flight.values())
            return max(0, min(total_free, queue_free))
        return max(0, min(self._total_free(), self.config.concurrency))

    def _total_free(self) -> int:
        return self.config.concurrency + self._ahead() - sum(self.in_flight.values())

    def _ahead(self) -> int:
        """Tasks claimed ahead of free handler slots. While handlers end within a few
        milliseconds, a claim's round trip is what they would wait for: the next batch is
        claimed while this one runs. Slow handlers get none, so no worker hoards tasks
        that another could start now."""
        fast = self._recent_seconds < self.config.prefetch_below_seconds
        return self.config.concurrency if fast and not self._stopping else 0

    async def _await_room(self) -> None:
        """Claim in batches: wait for free slots (and for acks to keep up), then linger a
        moment while busy so one claim fills several slots instead of one claim per slot."""
        backlog = 4 * self.config.ack_flush_at
        while not self._stopping and (
            self._total_free() == 0
            or len(self._acks) >= backlog
            or (self._orphans_waiting and self.running)
        ):
            await self._wait_wake(None)
        # Linger only while few slots are free: handlers that end together (fast ones do)
        # free enough slots within a wake-up, and a fixed sleep would idle the worker.
        deadline = time.monotonic() + self.config.claim_linger_seconds
        while (
            self.running
            and not self._stopping
            and self._total_free() < self._claim_threshold
            and (left := deadline - time.monotonic()) > 0
        ):
            await self._wait_wake(left)

    async def _fetch_loop(self) -> None:
        delay = self.config.poll_min_seconds
        while True:
            await self._await_room()
            if self._stopping:
                return
            looked = self._orphans_waiting
            claimed, had_room = await self._claim_round()
            if claimed:
                delay = self.config.poll_min_seconds
                continue
            if not looked and not self.running:
                self._orphans_waiting = True  # idle: before waiting, look for orphans too
                continue
            if self._stopping or (self.config.burst and not self.running):
                return  # stopping, or drained: nothing claimable now and nothing in flight
            if not had_room or self.config.burst:
                await self._wait_wake(None)  # wait for a handler to finish
            else:
                await self._idle_wait(delay)
                delay = min(delay * 2, self._poll_max)

    async def _idle_wait(self, seconds: float) -> None:
        """Idle until woken or `seconds` pass. Where no notifications come (SQLite), look
        every few milliseconds with a cheap read, which takes no write lock, and return as
        soon as something is due; the claim that follows is the only write."""
        step = self.store.backend.idle_probe_seconds
        if step is None:
            await self._wait_wake(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            await self._wait_wake(step)
            try:
                async with self.store.reading() as conn:
                    if await self.store.tasks.any_due(conn, list(self.config.queues)):
                        return
            except DB_ERRORS:
                return  # let the claim report it

    async def _claim_round(self) -> tuple[int, bool]:
        """One claim per queue with room, rotating the start so no queue starves."""
        self._queue_order.append(self._queue_order.pop(0))
        if self._orphans_waiting:
            if self.running:  # flagged during the linger: let the running tasks end first
                return 0, False
            if await self._claim_orphan():
                return 1, True
        claimed, had_room = 0, False
        for queue in list(self._queue_order):
            free = self._free(queue)
            if free <= 0 or self._stopping:
                continue
            had_room = True
            for task in await self._claim(queue, free):
                self._start(task)
                claimed += 1
        return claimed, had_room

    async def _claim_orphan(self) -> bool:
        """With nothing else running, claim one task rescued after its worker died and
        start it; it runs alone, and claiming waits until it is done. False (and back to
        batches) once there is none."""
        if self._acks:
            # If this task kills the process, the completions it would take with it are
            # those of innocent tasks, charged an attempt each: write them first.
            await self._flush_acks()
        for queue in list(self._queue_order):
            if self._free(queue) > 0 and not self._stopping:
                for task in await self._claim(queue, 1, orphans=True):
                    self._start(task)
                    return True
        self._orphans_waiting = False
        return False

    async def _claim(self, queue: str, limit: int, orphans: bool = False) -> list[ClaimedTask]:
        try:
            async with self._fetch_link.statement() as conn:
                tasks = await self.store.tasks.claim(
                    conn,
                    worker_id=self.worker_id,
                    queue=queue,
                    limit=limit,
                    lease_seconds=self.config.lease_seconds,
                    orphans=orphans,
                )
            if tasks:
                self.metrics.claimed(len(tasks))
            self._claim_failures = 0
            return tasks
        except DB_ERRORS as exc:
            # A killed connection is replaced at once; a server that is down is asked
            # again less and less often.
            retry_in = min(self._poll_max, self.config.poll_min_seconds * 2**self._claim_failures)
            self._claim_failures = min(self._claim_failures + 1, 16)
            self.log.warning(
                "claim failed; will retry", queue=queue, error=str(exc), retry_in=retry_in
            )
            await anyio.sleep(retry_in)
            return []

    async def _wait_wake(self, seconds: float | None) -> None:
        with anyio.move_on_after(seconds):
            await self._wake.wait()
        self._wake.clear()

    def _start(self, task: ClaimedTask) -> None:
        self.in_flight[task.queue] += 1
        run = Running(task.id, task.queue, claimed_at=time.monotonic())
        self.running[task.id] = run
        run.handle = asyncio.get_running_loop().create_task(self._execute(task, run))

    # ---------------------------------------------------------------- execute
    async def _execute(self, task: ClaimedTask, run: Running) -> None:
        try:
            if not await self._take_slot(run):  # stopped while waiting: it never started
                self._abandoned(task, run.reason or "lost")
                return
            try:
                outcome = await self._attempt(task, run)
            finally:
                self._slots.release()
            self._note_duration(outcome.seconds)
            await self._record(task, outcome)
        except Exception as exc:  # never let one task's bookkeeping take the worker down
            self.log.error(
                "could not record a task's outcome; its lease will expire",
                task_id=task.id,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            self.running.pop(task.id, None)
            self.in_flight[task.queue] -= 1
            self._wake.set()

    def _note_duration(self, seconds: float) -> None:
        """A moving average of handler durations (the last eight or so weigh most)."""
        recent = self._recent_seconds
        first = recent == float("inf")
        self._recent_seconds = seconds if first else recent + (seconds - recent) / 8

    async def _take_slot(self, run: Running) -> bool:
        """Wait for a free handler slot (claimed-ahead tasks do); False if stopped first."""
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            if not run.absorb_stop():
                raise
            return False
        if run.reason is not None:
            self._slots.release()
            return False
        return True

    async def _attempt(self, task: ClaimedTask, run: Running) -> Outcome:
        self.metrics.started(task.queue, task.name)
        definition = self.registry.get(task.name)
        if definition is None:
            return Outcome(
                None,
                error=UnknownTask(f"no handler named {task.name!r} in worker {self.worker_id}"),
            )
        max_attempts = task.max_attempts or definition.max_attempts
        if task.attempt > max_attempts:  # earlier attempts crashed their workers
            return Outcome(
                None,
                error=NonRetryable(
                    f"attempt {task.attempt} of {max_attempts}: earlier attempts never finished"
                ),
            )
        ctx = TaskContext(
            task,
            store=self.store,
            worker_id=self.worker_id,
            max_attempts=max_attempts,
            resources=self.resources,
        )
        return await attempt(definition, ctx, task.payload, run)

    async def _record(self, task: ClaimedTask, outcome: Outcome) -> None:
        session = outcome.ctx.used_session if outcome.ctx else None
        try:
            if outcome.ok and session is not None:
                await self._complete_in_session(task, outcome, session)
            elif outcome.ok:
                self._acks.append((task.id, task.attempt, outcome.result_json))
                self._ack_ready.set()
                self.counts["completed"] += 1
            elif session is not None:
                await _quietly(session.rollback())
            if outcome.abandoned:
                self._abandoned(task, outcome.abandoned)
            elif outcome.error is not None:
                await self._fail(task, outcome.error)
        finally:
            if session is not None:
                await _quietly(session.close())
            self.metrics.finished(task.queue, task.name, _label(outcome), outcome.seconds)

    def _abandoned(self, task: ClaimedTask, reason: str) -> None:
        """A stopped attempt: cut off at shutdown (marked to run again) or lost."""
        if reason == "shutdown":
            doc = error_document(
                NonRetryable("cut off by worker shutdown"),
                attempt=task.attempt,
                worker_id=self.worker_id,
            )
            self._cut.append((task.id, task.attempt, dumps_json(doc)))
        else:
            self.log.info("task stopped: cancelled or taken over", task_id=task.id)

    async def _complete_in_session(self, task: ClaimedTask, outcome: Outcome, session: Any) -> None:
        """Results and completion commit together, or not at all."""
        try:
            done = [(task.id, task.attempt, outcome.result_json)]
            accepted = await self.store.tasks.complete_many(
                session, worker_id=self.worker_id, done=done
            )
            if accepted:
                await session.commit()
                self.counts["completed"] += 1
                return
            await session.rollback()
            self.log.warning("completion refused: lease lost; results discarded", task_id=task.id)
        except DB_ERRORS as exc:
            await _quietly(session.rollback())
            self.log.warning(
                "completion failed; the task will be rescued and rerun",
                task_id=task.id,
                error=str(exc),
            )

    async def _fail(self, task: ClaimedTask, error: BaseException) -> None:
        definition = self.registry.get(task.name)
        max_attempts = task.max_attempts or (
            definition.max_attempts if definition else DEFAULT_MAX_ATTEMPTS
        )
        base = definition.backoff if definition else 1.0
        retry_in = (
            retry.backoff_seconds(base, task.attempt)
            if retry.should_retry(error, task.attempt, max_attempts)
            else None
        )
        doc = error_document(error, attempt=task.attempt, worker_id=self.worker_id)
        try:
            async with self.store.transaction() as conn:
                await self.store.tasks.fail(
                    conn,
                    task_id=task.id,
                    worker_id=self.worker_id,
                    attempt=task.attempt,
                    error=doc,
                    retry_in=retry_in,
                )
        except LeaseLost:
            self.log.warning("failure not recorded: lease lost", task_id=task.id)
            return
        except DB_ERRORS as exc:
            self.log.warning(
                "failure not recorded; the task will be rescued", task_id=task.id, error=str(exc)
            )
            return
        self.counts["retried" if retry_in is not None else "failed"] += 1
        self.log.warning(
            "task attempt failed",
            task_id=task.id,
            name=task.name,
            queue=task.queue,
            attempt=task.attempt,
            error=doc["type"],
            message=doc["message"],
            retry_in=None if retry_in is None else round(retry_in, 3),
        )

    # ------------------------------------------------------------------- acks
    async def _ack_loop(self) -> None:
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            if len(self._acks) < self.config.ack_flush_at:
                await anyio.sleep(self.config.ack_delay_seconds)
            await self._flush_acks()

    async def _flush_acks(self, final: bool = False) -> None:
        # One flusher at a time: the final flush must wait for a batch the loop is writing.
        async with self._ack_lock:
            failures = 0
            while self._acks:
                batch = self._acks[: self.config.ack_batch]
                del self._acks[: len(batch)]
                if await self._write_acks(batch):
                    failures = 0
                    continue
                self._acks[:0] = batch  # keep them, oldest first, for the next try
                failures += 1
                if final and failures >= 5:
                    return  # leases will expire and the tasks run again
                await anyio.sleep(min(5.0, 0.05 * 2 ** (failures - 1)))  # 0.05 s first

    async def _write_acks(self, batch: list[tuple[int, int, str | None]]) -> bool:
        try:
            async with self._row_lock, self._ack_link.statement() as conn:
                accepted = await self.store.tasks.complete_many(
                    conn, worker_id=self.worker_id, done=batch
                )
        except DB_ERRORS as exc:
            self.log.warning(
                "acknowledgement failed; retrying", pending=len(self._acks), error=str(exc)
            )
            return False
        self._wake.set()  # the fetcher may be waiting for the backlog to shrink
        if len(accepted) < len(batch):
            lost = [t for t, _, _ in batch if t not in accepted]
            self.log.warning("completions refused: lease lost", task_ids=lost)
        return True

    async def _write_interrupted(self) -> None:
        if not self._cut:
            return
        try:
            async with self._row_lock, self.store.transaction() as conn:
                done = await self.store.tasks.interrupt_many(
                    conn, worker_id=self.worker_id, cut=self._cut
                )
            self.log.warning("tasks cut off at shutdown will run again", task_ids=sorted(done))
        except DB_ERRORS as exc:
            self.log.warning(
                "could not release cut-off tasks; their leases will expire", error=str(exc)
            )

    # ---------------------------------------------------------- leases, rescue
    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.heartbeat_interval)
            await self.heartbeat()

    async def heartbeat(self) -> None:
        """Extend all our leases and our registry row; stop handlers whose task is gone."""
        started = time.monotonic()
        try:
            async with self._row_lock, self.store.transaction() as conn:
                held = await self.store.tasks.heartbeat(
                    conn,
                    worker_id=self.worker_id,
                    lease_seconds=self.config.lease_seconds,
                    task_ids=self._held_ids(),
                )
                await self._register(conn)
        except DB_ERRORS as exc:
            self.log.warning("heartbeat failed", error=str(exc))
            return
        for task_id, run in list(self.running.items()):
            if task_id not in held and run.claimed_at < started and run.reason is None:
                run.stop("lost")

    async def _prune_loop(self) -> None:
        """Retention: delete finished tasks past the configured age, in bounded batches,
        one worker at a time (a database lock), a batch per pass."""
        retention = self.store.settings.retention_seconds
        while retention > 0:
            await anyio.sleep(self.config.prune_seconds)
            try:
                async with self.store.transaction() as conn:
                    if not await self.store.backend.try_lock(conn, PRUNE_LOCK_KEY):
                        continue
                    pruned = await self.store.tasks.purge(
                        conn, older_than_seconds=retention, limit=PRUNE_BATCH
                    )
            except DB_ERRORS as exc:
                self.log.warning("pruning failed", error=str(exc))
                continue
            if pruned:
                self.log.info("pruned finished tasks past retention", count=pruned)

    async def _depth_loop(self) -> None:
        """Queue depth for the metrics gauge (an index-only count of claimable rows)."""
        while True:
            try:
                async with self.store.reading() as conn:
                    self.metrics.depth(await self.store.tasks.claimable_counts(conn))
            except DB_ERRORS as exc:
                self.log.warning("queue depth unavailable", error=str(exc))
            await anyio.sleep(15)

    def _held_ids(self) -> list[int]:
        """Tasks whose lease we still need: running, or finished and awaiting their ack."""
        return [*self.running, *(task_id for task_id, _, _ in self._acks)]

    async def _register(self, conn: Any) -> None:
        await self.store.worker_registry.beat(
            conn,
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.config.queues,
            concurrency=self.config.concurrency,
            lease_seconds=self.config.lease_seconds,
            running=len(self.running),
        )

    async def _unregister(self) -> None:
        try:
            async with self.store.transaction() as conn:
                await self.store.worker_registry.remove(conn, self.worker_id)
        except DB_ERRORS as exc:
            self.log.warning("could not remove the worker's registry row", error=str(exc))

    async def _rescue_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.rescue_interval)
            try:
                async with self.store.transaction() as conn:
                    rescued = await self.store.tasks.rescue_expired(conn)
                    await self.store.worker_registry.prune_dead(conn)
                    # Our own rescues we run at once; others' only once they have waited
                    # a lease (their rescuer is on them), so a crash drains one worker,
                    # not the whole fleet.
                    waiting = await self.store.tasks.any_due(
                        conn,
                        list(self.config.queues),
                        orphans=True,
                        waiting_seconds=0.0 if rescued else self.config.lease_seconds,
                    )
            except DB_ERRORS as exc:
                self.log.warning("rescue failed", error=str(exc))
                continue
            if waiting and not self._orphans_waiting:
                self._orphans_waiting = True  # the fetcher lets running tasks drain first
                self._wake.set()
            if rescued:
                self.counts["rescued"] += len(rescued)
                self.metrics.rescued(len(rescued))
                self.log.warning(
                    "rescued tasks with expired leases",
                    tasks={i: s.value for i, s in rescued.items()},
                )
                self._wake.set()


def _label(outcome: Outcome) -> str:
    if outcome.abandoned:
        return "abandoned"
    return "completed" if outcome.ok else "error"


async def _quietly(cleanup: Any) -> None:
    """Await a rollback/close whose failure (the connection is already gone) changes nothing."""
    try:
        await cleanup
    except Exception as exc:
        log.debug("cleanup failed", error=str(exc))
