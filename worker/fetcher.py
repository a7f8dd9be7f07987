"""Fetcher: claims batches per queue sized to free capacity, and paces itself when idle.

- Capacity: per queue (its own limit) and overall (`concurrency`); while handlers end
  within milliseconds one batch more is claimed ahead, so the next claim's round trip
  overlaps this batch's run (those tasks wait, leased, for a handler slot). Where writers
  take turns (SQLite) one claim may take both batches, and claims carry the pending
  completions (see `worker.completer`).
- Batches: it waits for free slots (and for acks to keep up), then lingers a moment
  while busy so one claim fills several slots; queues take turns.
- Orphans (tasks rescued after their worker died) are claimed one at a time, each alone.
- Idle: it waits for a notification, or probes with a cheap read where there are none
  (SQLite), backing off up to the backend's longest pause.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import anyio

from taskstore.consumer import STORE_ERRORS, Consumer
from taskstore.records import ClaimedTask
from worker.completer import Completer, Refill
from worker.outcomes import Outcomes
from worker.state import WorkerState


class Fetcher:
    """The claim loop of one worker."""

    def __init__(
        self, state: WorkerState, consumer: Consumer, outcomes: Outcomes, completer: Completer
    ) -> None:
        self._state = state
        self._consumer = consumer
        self._outcomes = outcomes
        self._completer = completer
        config = state.config
        self._config = config
        self._queue_order = list(config.queues)
        self._poll_max = config.poll_max_seconds or consumer.idle_poll_max_seconds
        self._claim_threshold = max(1, min(config.ack_flush_at, config.concurrency // 4))
        self._claim_failures = 0
        self._ended = False  # no claims after the loop: nothing would start the tasks
        completer.refills(self._plan_refill, self._refilled)

    # -------------------------------------------------------------- capacity
    def free(self, queue: str) -> int:
        """How many tasks of `queue` one claim may take now."""
        if self._consumer.held_back(queue) > 0:  # paused, at its limit, out of rate slots
            return 0
        return self._room(queue)

    def _room(self, queue: str) -> int:
        config, in_flight = self._config, self._state.in_flight
        limit = config.queues.get(queue)
        # A queue with its own limit here, or flow control in the database, never runs
        # ahead: tasks waiting for a slot would hold what the limit allows.
        if limit is not None or not self._consumer.claims_ahead(queue):
            total_free = config.concurrency - sum(in_flight.values())
            queue_free = total_free if limit is None else limit - in_flight[queue]
            return max(0, min(total_free, queue_free))
        if self._consumer.claims_complete(queue):
            # Where each claim is a turn of the one write lock, one turn takes both
            # batches when both are free (other writers wait for each turn).
            return max(0, self._total_free(queue))
        return max(0, min(self._total_free(queue), config.concurrency))

    def _plan_refill(self) -> Refill | None:
        """A queue whose slots our completions free, to claim in their statement: the
        room is reserved (counted in flight) until `_refilled` gives it back."""
        state = self._state
        if state.stopping or state.orphans_waiting or self._ended:
            return None
        for queue in self._queue_order:
            if self._consumer.refillable(queue) and (room := self._room(queue)) > 0:
                state.handed_back_queues.discard(queue)  # this claim has a free slot
                state.in_flight[queue] += room
                return queue, room
        return None

    def _refilled(self, refill: Refill, tasks: list[ClaimedTask]) -> None:
        queue, reserved = refill
        self._state.in_flight[queue] -= reserved
        for task in tasks:
            self._outcomes.start(task)
        if tasks:
            self._state.metrics.claimed(len(tasks))

    def _until_unheld(self) -> float | None:
        """Seconds until the first held-back queue may be claimed again (None: none is)."""
        held = [s for s in map(self._consumer.held_back, self._queue_order) if s > 0]
        return min(held) if held else None

    def _total_free(self, queue: str | None = None) -> int:
        """Free capacity for a claim of `queue` (None: of any queue)."""
        in_flight = sum(self._state.in_flight.values())
        return self._config.concurrency + self._ahead(queue) - in_flight

    def _ahead(self, queue: str | None) -> int:
        """Tasks claimed ahead of free handler slots. While a queue's handlers end within
        a few milliseconds, a claim's round trip is what they would wait for: the next
        batch is claimed while this one runs. Queues of slow handlers get none, so no
        worker hoards tasks that another could start now (and a slow task that comes in a
        batch claimed ahead is handed back at once: `worker.outcomes`)."""
        state = self._state
        queues = self._queue_order if queue is None else (queue,)
        held = state.handed_back_queues
        fast = any(state.fast(state.queue_seconds, q) for q in queues if q not in held)
        return self._config.concurrency if fast and not state.stopping else 0

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            self._ended = True

    async def _loop(self) -> None:
        state, config = self._state, self._config
        delay = config.poll_min_seconds
        while True:
            await self._await_room()
            if state.stopping:
                return
            looked = state.orphans_waiting
            writes = self._completer.writes
            claimed, had_room = await self.claim_round()
            if claimed:
                delay = config.poll_min_seconds
                continue
            limits = self._consumer.waiting_on_limits(self._queue_order)
            if not looked and not state.running and not limits:
                state.orphans_waiting = True  # idle: before waiting, look for orphans too
                continue
            if config.burst and not state.running and not limits:
                if self._completer.idle() and self._completer.writes == writes:
                    return  # drained: nothing claimable, in flight, or written since we looked
                # Completions written (or being written) may make their dependents due, and
                # a write under way may claim tasks itself (a queue at its limit): wait for
                # it, then look once more.
                await self._completer.flush()
                continue
            if state.stopping:
                return
            unheld = self._until_unheld()
            if not had_room or config.burst:
                await state.wait(unheld)  # a handler ends, or a hold lifts
            else:
                # Other queues were empty: back off, but no later than a held queue (the
                # next rate slot) may be claimed again.
                await self._idle_wait(delay if unheld is None else min(delay, unheld))
                delay = min(delay * 2, self._poll_max)

    async def _await_room(self) -> None:
        """Wait for free slots (and for acks to keep up), then linger a moment while busy
        so one claim fills several slots instead of one claim per slot."""
        state = self._state
        while not state.stopping and (
            self._total_free() == 0
            or self._completer.backlogged()
            or (state.orphans_waiting and state.running)
        ):
            await state.wait(None)
        # Linger only while few slots are free: handlers that end together (fast ones do)
        # free enough slots within a wake-up, and a fixed sleep would idle the worker.
        deadline = time.monotonic() + self._config.claim_linger_seconds
        while (
            state.running
            and not state.stopping
            and self._total_free() < self._claim_threshold
            and (left := deadline - time.monotonic()) > 0
        ):
            await state.wait(left)

    async def _idle_wait(self, seconds: float) -> None:
        """Idle until woken or `seconds` pass. Where no notifications come (SQLite), look
        every few milliseconds with a cheap read, which takes no write lock, and return as
        soon as something is due; the claim that follows is the only write."""
        state = self._state
        step = self._consumer.idle_probe_seconds
        if step is None:
            await state.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        pause = step
        while not state.stopping and time.monotonic() < deadline:
            await state.wait(pause)
            # Held-back queues have due tasks that cannot start: probing them would spin.
            open_queues = [q for q in self._queue_order if self._consumer.held_back(q) == 0]
            began = time.monotonic()
            try:
                if open_queues and await self._consumer.any_due(open_queues):
                    return
            except STORE_ERRORS:
                return  # let the claim report it
            # A slow probe (one that reads past many tasks whose names we leave to
            # others) must not keep a core busy: look at most a tenth of the time.
            pause = max(step, 9 * (time.monotonic() - began))

    async def claim_round(self) -> tuple[int, bool]:
        """One claim per queue with room, rotating the start so no queue starves."""
        state = self._state
        self._queue_order.append(self._queue_order.pop(0))
        if state.orphans_waiting:
            if state.running:  # flagged during the linger: let the running tasks end first
                return 0, False
            if await self._claim_orphan():
                return 1, True
        claimed, had_room = 0, False
        for queue in list(self._queue_order):
            free = self.free(queue)
            if free <= 0 or state.stopping:
                continue
            had_room = True
            state.handed_back_queues.discard(queue)  # this claim had a free slot
            for task in await self._claim(queue, free):
                self._outcomes.start(task)
                claimed += 1
        return claimed, had_room

    async def _claim_orphan(self) -> bool:
        """With nothing else running, claim one task rescued after its worker died and
        start it; it runs alone, and claiming waits until it is done. False (and back to
        batches) once there is none."""
        if not self._completer.idle():
            # If this task kills the process, the completions it would take with it are
            # those of innocent tasks, charged an attempt each: write them first, and
            # wait for a write already under way (its batch is off the buffer).
            await self._completer.flush()
        for queue in list(self._queue_order):
            if self.free(queue) > 0 and not self._state.stopping:
                for task in await self._claim(queue, 1, orphans=True):
                    self._outcomes.start(task)
                    return True
        self._state.orphans_waiting = False
        return False

    async def _claim(self, queue: str, limit: int, orphans: bool = False) -> list[ClaimedTask]:
        state = self._state
        try:
            with self._reserved(queue, limit):  # the caller starts what comes back
                if not orphans and self._completer.acks and self._consumer.claims_complete(queue):
                    tasks = await self._claim_completing(queue, limit)
                else:
                    tasks = await self._consumer.claim(queue, limit, orphans=orphans)
        except STORE_ERRORS as exc:
            # A killed connection is replaced at once; a server that is down is asked
            # again less and less often.
            retry_in = min(self._poll_max, self._config.poll_min_seconds * 2**self._claim_failures)
            self._claim_failures = min(self._claim_failures + 1, 16)
            state.log.warning(
                "claim failed; will retry", queue=queue, error=str(exc), retry_in=retry_in
            )
            await anyio.sleep(retry_in)
            return []
        if tasks:
            state.metrics.claimed(len(tasks))
        self._claim_failures = 0
        return tasks

    @contextlib.contextmanager
    def _reserved(self, queue: str, room: int) -> Iterator[None]:
        """The room is a claim's while it is out: a completion write meanwhile must not
        plan to claim it too (`_plan_refill`), past a limit of this worker's."""
        self._state.in_flight[queue] += room
        try:
            yield
        finally:
            self._state.in_flight[queue] -= room

    async def _claim_completing(self, queue: str, limit: int) -> list[ClaimedTask]:
        """Claim, writing our pending completions in the same unit (one write turn, where
        writers take turns, instead of two)."""
        async with self._completer.riding() as batch:
            if batch:
                accepted, tasks = await self._consumer.claim_completing(queue, limit, batch)
        if not batch:  # the completer wrote them while we waited for its lock
            return await self._consumer.claim(queue, limit)
        self._completer.written(batch, accepted)
        return tasks
