"""Completer: acknowledges finished attempts in batches, fenced on (id, worker, attempt).

Completions wait in a buffer flushed when it reaches `ack_flush_at` or a few
milliseconds after the first one arrives; one statement carries up to `ack_batch`. A
failed flush keeps the batch (oldest first) and retries with backoff; while the buffer
is backed up the fetcher claims nothing more. Where a queue held at its concurrency limit
waits for exactly these completions, the statement that writes them also claims that
queue's next tasks into the freed slots (the fetcher says which queue, and how many it
can take). Where writers take turns (SQLite), every write of completions claims so, and
every claim takes the pending completions along (`riding`): one write turn, not two. At
shutdown, attempts cut off by the graceful stop and tasks claimed but never
started are handed back, uncharged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import anyio

from taskstore.consumer import STORE_ERRORS, Consumer, Ending
from taskstore.records import ClaimedTask
from worker.execution import threads_running
from worker.state import UNRECORDED, WorkerState

#: how long after a stop a task whose handler's thread was still running may start again:
#: the process exits at once after handing it back, and the thread ends with it
THREAD_EXIT_SECONDS = 5.0

#: (queue, how many) a completion write may claim, reserved in the worker's capacity
Refill = tuple[str, int]


class Completer:
    """The acknowledgement buffer and its flusher."""

    def __init__(self, state: WorkerState, consumer: Consumer) -> None:
        self._state = state
        self._consumer = consumer
        self._config = state.config
        self.acks: list[Ending] = []
        self._cut: list[Ending] = []
        self._unstarted: list[tuple[int, int]] = []
        self._ready = asyncio.Event()
        self.writes = 0  # completion writes so far (with or without a claim)
        self._lock = anyio.Lock()  # one flusher at a time
        self._plan_refill: Callable[[], Refill | None] = lambda: None
        self._refilled: Callable[[Refill, list[ClaimedTask]], None] = lambda _r, _t: None

    def refills(
        self,
        plan: Callable[[], Refill | None],
        refilled: Callable[[Refill, list[ClaimedTask]], None],
    ) -> None:
        """Let completion writes claim: `plan()` reserves room (or None), and
        `refilled(plan, tasks)` takes the reservation back and starts what was claimed."""
        self._plan_refill, self._refilled = plan, refilled

    # ---------------------------------------------------------------- buffer
    def add(self, task_id: int, fence: int, result_json: str | None) -> None:
        self.acks.append((task_id, fence, result_json))
        self._ready.set()

    def cut_off(self, task_id: int, fence: int, note_json: str) -> None:
        """An attempt stopped by the graceful stop: handed back when the worker ends."""
        self._cut.append((task_id, fence, note_json))

    def unstarted(self, task_id: int, fence: int) -> None:
        """A task claimed ahead that never got a handler slot."""
        self._unstarted.append((task_id, fence))

    def backlogged(self) -> bool:
        """Are completions piling up faster than they are written?"""
        return len(self.acks) >= 4 * self._config.ack_flush_at

    def idle(self) -> bool:
        """Nothing waits to be written and no write is under way."""
        return not self.acks and not self._lock.locked()

    def pending_ids(self) -> list[int]:
        """Finished tasks whose lease we hold until their ack is written."""
        return [task_id for task_id, _, _ in self.acks]

    # ----------------------------------------------------------------- flush
    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            # Wait a moment for more to batch with, unless a queue at its concurrency
            # limit waits for exactly these completions to start more.
            if (
                len(self.acks) < self._config.ack_flush_at
                and not self._consumer.waits_for_endings()
            ):
                await anyio.sleep(self._config.ack_delay_seconds)
            await self.flush()

    async def flush(self, final: bool = False) -> None:
        # The final flush must wait for a batch the loop is writing.
        async with self._lock:
            failures = 0
            while self.acks:
                batch = self.acks[: self._config.ack_batch]
                del self.acks[: len(batch)]
                if await self._write(batch):
                    failures = 0
                    continue
                self.acks[:0] = batch  # keep them, oldest first, for the next try
                failures += 1
                if final and failures >= 5:
                    self._state.counts[UNRECORDED] += len(self.acks)
                    return  # leases will expire and the tasks run again
                await anyio.sleep(min(5.0, 0.05 * 2 ** (failures - 1)))  # 0.05 s first

    @contextlib.asynccontextmanager
    async def riding(self) -> AsyncIterator[list[Ending]]:
        """The oldest pending completions, for a claim to write in its own unit (see
        `Consumer.claim_completing`); if the block fails they go back, oldest first."""
        async with self._lock:
            batch = self.acks[: self._config.ack_batch]
            del self.acks[: len(batch)]
            try:
                yield batch
            except BaseException:
                self.acks[:0] = batch
                raise

    def written(self, batch: list[Ending], accepted: set[int]) -> None:
        """A batch was written (by us or with a claim): wake the fetcher, report refusals."""
        self.writes += 1
        self._state.signal()  # the fetcher may be waiting for the backlog to shrink
        if len(accepted) < len(batch):
            lost = [t for t, _, _ in batch if t not in accepted]
            self._state.log.warning("completions refused: lease lost", task_ids=lost)

    async def _write(self, batch: list[Ending]) -> bool:
        refill, tasks = self._plan_refill(), []
        try:
            if refill is None:
                accepted = await self._consumer.complete(batch)
            else:
                accepted, tasks = await self._consumer.complete_and_claim(batch, *refill)
        except STORE_ERRORS as exc:
            self._state.log.warning(
                "acknowledgement failed; retrying", pending=len(self.acks), error=str(exc)
            )
            return False
        finally:
            if refill is not None:
                self._refilled(refill, tasks)
        self.written(batch, accepted)
        return True

    async def hand_back(self) -> None:
        """At the end: cut-off and never-started tasks go back to the queue, uncharged."""
        log = self._state.log
        try:
            running = threads_running()  # one look: a thread may end meanwhile
            alive = [end for end in self._cut if end[0] in running]
            if alive:
                # Their threads cannot be stopped: the process exits with them still running
                # (see `worker.cli`), and nobody may start them again before it has.
                done = await self._consumer.interrupt(alive, delay_seconds=THREAD_EXIT_SECONDS)
                log.warning(
                    "tasks cut off at shutdown in threads that still run: they run again "
                    "once this process has exited",
                    task_ids=sorted(done),
                    after_seconds=THREAD_EXIT_SECONDS,
                )
            cut = [end for end in self._cut if end[0] not in running]
            if cut:
                done = await self._consumer.interrupt(cut)
                log.warning("tasks cut off at shutdown will run again", task_ids=sorted(done))
            if self._unstarted:
                done = await self._consumer.release(self._unstarted)
                log.info("tasks claimed ahead were handed back unstarted", task_ids=sorted(done))
        except STORE_ERRORS as exc:
            self._state.counts[UNRECORDED] += len(self._cut) + len(self._unstarted)
            log.warning(
                "could not hand back cut-off tasks; their leases will expire", error=str(exc)
            )
