"""Outcomes: run each claimed task's attempt and record how it ended.

An attempt waits for a handler slot (tasks claimed ahead do), runs under its timeout,
and ends one of four ways: completed (acknowledged in a batch, or committed with the
attempt's own session), failed (retried with backoff or failed for good, by the retry
policy), cut off by a graceful stop (handed back, not charged), or lost (cancelled or
rescued elsewhere: nothing to write).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from taskstore.consumer import STORE_ERRORS, Consumer
from taskstore.errors import LeaseLost
from taskstore.jsoncodec import dumps_json
from taskstore.records import ClaimedTask
from taskstore.states import TaskStatus
from taskstore.store import TaskStore
from taskstore.translate import connection_lost
from worker import retry
from worker.completer import Completer
from worker.config import BLOCKED_WARN_SECONDS, DEFAULT_MAX_ATTEMPTS
from worker.context import TaskContext, handler_ended
from worker.errors import NonRetryable, Snooze
from worker.execution import THREADS_RUNNING, Outcome, Running, attempt, error_document
from worker.registry import Registry, TaskDef
from worker.slots import Slots
from worker.state import UNRECORDED, WorkerState


class Outcomes:
    """Starts attempts as asyncio tasks and records their ends."""

    def __init__(
        self,
        state: WorkerState,
        consumer: Consumer,
        completer: Completer,
        registry: Registry,
        store: TaskStore,
    ) -> None:
        self._state = state
        self._consumer = consumer
        self._completer = completer
        self._registry = registry
        self._store = store
        self.resources: dict[str, Any] = {}
        self._slots = Slots(state.config.concurrency)  # handlers running at once
        measure = state.metrics.attempt_middleware()
        self._own_middleware = [measure] if measure is not None else []
        #: (queue, name) -> monotonic time until which its hand-backs are not warned of again
        self._unserved_quiet: dict[tuple[str, str], float] = {}

    def start(self, task: ClaimedTask) -> None:
        state = self._state
        state.in_flight[task.queue] += 1
        run = Running(task.id, task.queue, claimed_at=time.monotonic(), name=task.name)
        superseded = state.running.get(task.id)
        if superseded is not None:
            # Claimed again while an older attempt still runs here: that one was cancelled
            # and its task retried before a heartbeat stopped it. Its writes are fenced off.
            superseded.stop("lost")
        state.running[task.id] = run
        run.handle = asyncio.get_running_loop().create_task(self._execute(task, run))

    async def _execute(self, task: ClaimedTask, run: Running) -> None:
        state = self._state
        try:
            definition = self._registry.get(task.name)
            if definition is None:
                await self._hand_back_unserved(task)
                return
            # Most tasks find a slot free. Claimed-ahead ones wait for one, and one stopped
            # while it waits never started. One whose handler is not known to end within
            # milliseconds goes back at once: another worker may start it now.
            if not self._slots.take_now():
                if not state.fast(state.name_seconds, task.name):
                    await self._release_unstarted(task)
                    return
                if not await self._wait_for_slot(run):
                    self._never_started(task, run.reason or "lost")
                    return
            if task.id in THREADS_RUNNING and not await self._wait_for_old_thread(run):
                self._slots.give()
                self._never_started(task, run.reason or "lost")
                return
            try:
                outcome = await self._attempt(task, run, definition)
            finally:
                self._slots.give()
            state.note_duration(task.queue, task.name, outcome.seconds)
            if outcome.seconds >= BLOCKED_WARN_SECONDS and definition.is_async:
                state.long_async_runs.append((time.monotonic(), task.name))
            if outcome.ok and (outcome.ctx is None or outcome.ctx.used_session is None):
                # Most attempts: one more completion for the batch (no coroutine for it).
                self._completer.add(task.id, task.fence, outcome.result_json)
                state.counts["completed"] += 1
                state.metrics.ended(task.queue, task.name, "completed")
            else:
                await self._record(task, outcome)
        except Exception as exc:  # never let one task's bookkeeping take the worker down
            state.counts[UNRECORDED] += 1
            state.log.error(
                "could not record a task's outcome; its lease will expire",
                task_id=task.id,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            if state.running.get(task.id) is run:
                del state.running[task.id]
            state.in_flight[task.queue] -= 1
            state.signal()

    async def _hand_back_unserved(self, task: ClaimedTask) -> None:
        """No handler here: back to the queue uncharged for a worker that has one (our
        claims leave the name alone for a while, so this worker does not take it again);
        failed only once no live worker has served the name for the grace period."""
        config = self._state.config
        grace = config.unserved_grace_seconds
        if grace is None:
            grace = self._store.settings.unserved_grace_seconds
        try:
            status = await self._consumer.hand_back_unserved(
                task,
                retry_in=config.unserved_retry_seconds,
                grace_seconds=grace,
                skip_seconds=config.unserved_skip_seconds,
            )
        except STORE_ERRORS as exc:
            self._state.counts[UNRECORDED] += 1
            self._state.log.warning(
                "could not hand back a task with no handler here; its lease will expire",
                task_id=task.id,
                error=str(exc),
            )
            return
        failed = status is TaskStatus.FAILED
        self._state.counts["failed" if failed else "handed_back"] += 1
        key, now = (task.queue, task.name), time.monotonic()
        # A queue full of one unknown name would otherwise warn once per task.
        loud = failed or self._unserved_quiet.get(key, 0.0) <= now
        if loud and not failed:
            self._unserved_quiet[key] = now + config.unserved_skip_seconds
        (self._state.log.warning if loud else self._state.log.debug)(
            "no handler for this task here" + ("; failed" if failed else ""),
            task_id=task.id,
            name=task.name,
            queue=task.queue,
        )

    async def _release_unstarted(self, task: ClaimedTask) -> None:
        """A task claimed ahead whose handler may be slow: back to the queue, uncharged, in
        its place in line; this worker's next claim of its queue is into a free slot, so
        the task is not claimed ahead (and handed back) again."""
        state = self._state
        state.handed_back_queues.add(task.queue)
        try:
            await self._consumer.release([(task.id, task.fence)], wake=[task.queue])
        except STORE_ERRORS as exc:
            state.counts[UNRECORDED] += 1
            state.log.warning(
                "could not hand back a task claimed ahead; its lease will expire",
                task_id=task.id,
                error=str(exc),
            )
            return
        state.counts["handed_back"] += 1
        state.log.debug("a task claimed ahead was handed back unstarted", task_id=task.id)

    async def _wait_for_old_thread(self, run: Running) -> bool:
        """A cancelled attempt's sync handler still runs here in a thread, which nothing
        can stop: this attempt starts once it has ended (False if stopped first)."""
        try:
            # threads keep the count: polling it is simpler than waking this loop from them
            while run.task_id in THREADS_RUNNING and run.reason is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if not run.absorb_stop():
                raise
        return run.reason is None

    async def _wait_for_slot(self, run: Running) -> bool:
        """Wait for a free handler slot (claimed-ahead tasks do); False if stopped first."""
        try:
            await self._slots.take()
        except asyncio.CancelledError:
            if not run.absorb_stop():
                raise
            return False
        if run.reason is not None:
            self._slots.give()
            return False
        return True

    async def _attempt(self, task: ClaimedTask, run: Running, definition: TaskDef) -> Outcome:
        max_attempts = task.max_attempts or definition.max_attempts
        if task.attempt > max_attempts:  # earlier attempts crashed their workers
            message = (
                f"attempt {task.attempt} of {max_attempts}: earlier attempts never finished "
                "(their worker died, or was held up past its lease)"
            )
            self._state.metrics.started(task.queue, task.name)
            return Outcome(None, error=NonRetryable(message))
        ctx = TaskContext(
            task,
            store=self._store,
            consumer=self._consumer,
            max_attempts=max_attempts,
            resources=self.resources,
            registry=self._registry,
        )
        chain = self._registry.middleware
        if self._own_middleware:  # the worker's own instrumentation, outermost
            chain = [*self._own_middleware, *chain]
        return await attempt(definition, ctx, task.payload, run, chain)

    async def _record(self, task: ClaimedTask, outcome: Outcome) -> None:
        """Every ending but a plain completion (`_execute` batches those itself)."""
        session = outcome.ctx.used_session if outcome.ctx else None
        if session is not None:
            handler_ended(session)
        try:
            if outcome.ok and session is not None:
                await self._complete_in_session(task, outcome, session)
            elif session is not None:
                await _quietly(session.rollback(), self._state.log)
            if outcome.abandoned:
                self._ended(task, "abandoned")
                self._abandoned(task, outcome.abandoned)
            elif isinstance(outcome.error, Snooze):
                self._ended(task, "snoozed")
                await self._snooze(task, outcome.error.seconds)
            elif outcome.error is not None:
                self._ended(task, "error")
                await self._fail(task, outcome.error)
        finally:
            if session is not None:
                await _quietly(session.close(), self._state.log)

    def _ended(self, task: ClaimedTask, outcome: str) -> None:
        self._state.metrics.ended(task.queue, task.name, outcome)

    def _never_started(self, task: ClaimedTask, reason: str) -> None:
        if reason == "shutdown":
            self._completer.unstarted(task.id, task.fence)
        else:
            self._state.log.info("task stopped: cancelled or taken over", task_id=task.id)

    def _abandoned(self, task: ClaimedTask, reason: str) -> None:
        """A stopped attempt: cut off by a graceful stop (handed back) or lost."""
        if reason != "shutdown":
            self._state.log.info("task stopped: cancelled or taken over", task_id=task.id)
            return
        note = {
            "type": "CutOff",
            "message": "cut off by a graceful worker stop; runs again, not counted as an attempt",
            "attempt": task.attempt,
            "worker": self._state.worker_id,
        }
        self._completer.cut_off(task.id, task.fence, dumps_json(note))

    async def _complete_in_session(self, task: ClaimedTask, outcome: Outcome, session: Any) -> None:
        """Results and completion commit together, or not at all. The handler's rows are
        flushed first: what the database (or the ORM) refuses of them fails the attempt
        with that error, as if the handler had flushed them itself (a duplicate key, a
        table or column its migration has not made yet); only a lost connection is an
        outage, left to the lease."""
        try:
            await session.flush()
        except Exception as exc:
            if not connection_lost(exc):
                await self._rows_refused(task, session, exc)
                return
            await self._completion_lost(task, session, exc)
            return
        try:
            done = (task.id, task.fence, outcome.result_json)
            if await self._consumer.complete_in(session, done):
                self._state.counts["completed"] += 1
                self._ended(task, "completed")
                return
            self._ended(task, "abandoned")
            self._state.log.warning(
                "completion refused: lease lost; results discarded", task_id=task.id
            )
        except (IntegrityError, DataError) as exc:  # a constraint checked at the commit
            await self._rows_refused(task, session, exc)
        except STORE_ERRORS as exc:
            await self._completion_lost(task, session, exc)

    async def _rows_refused(self, task: ClaimedTask, session: Any, exc: Exception) -> None:
        self._ended(task, "error")
        await _quietly(session.rollback(), self._state.log)
        await self._fail(task, exc)

    async def _completion_lost(self, task: ClaimedTask, session: Any, exc: BaseException) -> None:
        self._ended(task, "completed")  # the handler's work is done; the write is not
        self._state.counts[UNRECORDED] += 1
        await _quietly(session.rollback(), self._state.log)
        self._state.log.warning(
            "completion failed; the task will be rescued and rerun",
            task_id=task.id,
            error=str(exc),
        )

    async def _snooze(self, task: ClaimedTask, seconds: float) -> None:
        try:
            kept = await self._consumer.snooze(task.id, task.fence, seconds)
        except STORE_ERRORS as exc:
            self._state.counts[UNRECORDED] += 1
            self._state.log.warning(
                "snooze not recorded; the task will be rescued", task_id=task.id, error=str(exc)
            )
            return
        if kept:
            self._state.counts["snoozed"] += 1
            # Nothing on the row says so (no error, the attempt not counted): say it here.
            self._state.log.info(
                "task snoozed",
                task_id=task.id,
                name=task.name,
                queue=task.queue,
                seconds=seconds,
            )
        else:
            self._state.log.warning("snooze not recorded: lease lost", task_id=task.id)

    async def _fail(self, task: ClaimedTask, error: BaseException) -> None:
        state = self._state
        definition = self._registry.get(task.name)
        max_attempts = task.max_attempts or (
            definition.max_attempts if definition else DEFAULT_MAX_ATTEMPTS
        )
        base = definition.backoff if definition else 1.0
        retry_in = (
            retry.backoff_seconds(base, task.attempt)
            if retry.should_retry(error, task.attempt, max_attempts)
            else None
        )
        doc = error_document(
            error,
            attempt=task.attempt,
            worker_id=state.worker_id,
            max_attempts=max_attempts,
            limit_from=_limit_from(task, definition),
        )
        try:
            await self._consumer.fail(task.id, task.fence, doc, retry_in)
        except LeaseLost:
            state.log.warning("failure not recorded: lease lost", task_id=task.id)
            return
        except STORE_ERRORS as exc:
            state.counts[UNRECORDED] += 1
            state.log.warning(
                "failure not recorded; the task will be rescued", task_id=task.id, error=str(exc)
            )
            return
        state.counts["retried" if retry_in is not None else "failed"] += 1
        state.log.warning(
            "task attempt failed",
            task_id=task.id,
            name=task.name,
            queue=task.queue,
            attempt=task.attempt,
            error=doc["type"],
            message=doc["message"],
            retry_in=None if retry_in is None else round(retry_in, 3),
        )

    async def cancel_leftovers(self) -> None:
        """If the worker itself is cancelled, its attempts go too (their leases expire)."""
        handles = [r.handle for r in self._state.running.values() if r.handle is not None]
        for handle in handles:
            if not handle.done():
                handle.cancel()
        if handles:
            await asyncio.gather(*handles, return_exceptions=True)


async def _quietly(cleanup: Any, log: Any) -> None:
    """Await a rollback/close whose failure (the connection is already gone) changes nothing."""
    try:
        await cleanup
    except Exception as exc:
        log.debug("cleanup failed", error=str(exc))


def _limit_from(task: ClaimedTask, definition: TaskDef | None) -> str | None:
    """Where the attempt limit applied to `task` comes from, when not from its row:
    "handler" (its @task sets one) or "default" (@task's default: the handler sets none)."""
    if task.max_attempts:
        return None
    return "handler" if definition and not definition.default_max_attempts else "default"
