"""FlowGate: one worker's claims of queues with flow control.

A queue with settings (paused, concurrency, rate, key concurrency) is claimed in one
transaction that locks its settings row first, so the running count, the rate slots and
the claim agree across every worker and host. A queue whose only limit is its
concurrency, or its key concurrency, is first claimed in one statement that counts what
runs itself (and takes nothing where it cannot be sure; the transaction then decides).
Queues without settings keep the plain claim; which is which is cached for a second (a
notification about a queue's settings drops the cache at once), and the plain claim takes
nothing from a queue that has gained settings meanwhile, so they bind at once. When a
claim cannot take anything the gate says for how long claiming is pointless: until the
next rate slot frees, a second while paused (so a resume is seen that soon without
notifications), a moment at a limit.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Sequence

from taskstore.links import Link
from taskstore.records import ClaimedTask, QueueSettings
from taskstore.repositories.flow import NO_SLOTS, FreeSlots
from taskstore.store import TaskStore

SETTINGS_TTL = 1.0  # seconds a queue's settings are trusted before they are read again
#: a paused queue is looked at again this often, and (where no notification says that its
#: settings changed) a queue waiting for a rate slot
PAUSED_RECHECK = 1.0
FULL_RECHECK = 0.05  # at its concurrency (or key) limit: a running task may end any moment


LIMITS = ("paused", "concurrency", "rate", "key_concurrency")


@dataclasses.dataclass(slots=True)
class _Hold:
    until: float  # time.monotonic() before which a claim of the queue takes nothing
    limit: str  # which one holds it back: one of LIMITS

    @property
    def paused(self) -> bool:
        return self.limit == "paused"


class FlowGate:
    """Limited claims, the settings cache, and the hold-back hints of one worker."""

    def __init__(self, store: TaskStore, worker_id: str, lease_seconds: float, link: Link) -> None:
        self._store = store
        self._link = link  # the worker's claim connection: every read and claim goes there
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._settings: dict[str, tuple[float, QueueSettings | None]] = {}
        self._held: dict[str, _Hold] = {}
        # the limit each queue's last claim met: a hold lapses so that a claim looks again,
        # but the queue stays limited until a claim says otherwise
        self._met: dict[str, str] = {}
        self._holds = 0  # holds made so far (a claim that made none met no limit)
        # counted (or keyed) one-statement claims made since our last completion
        self._unfreed: set[str] = set()
        self._frees = 0  # writes of our completions so far (see `_hold_full`)

    async def limited(self, queue: str) -> bool:
        """Does the queue have flow control? (Read at most once a second.)"""
        now = time.monotonic()
        cached = self._settings.get(queue)
        if cached is None or now - cached[0] > SETTINGS_TTL:
            async with self._link.reading() as conn:
                cached = (now, await self._store.flow.get(conn, queue))
            self._settings[queue] = cached
        return cached[1] is not None and cached[1].limited

    def known_limited(self, queue: str) -> bool:
        cached = self._settings.get(queue)
        return cached is not None and cached[1] is not None and cached[1].limited

    def recheck(self, queue: str) -> None:
        """Read the queue's settings at its next claim: a plain claim took nothing, which
        it also does once the queue has gained flow control (`without_flow_control`)."""
        self._settings.pop(queue, None)

    def forget(self, queue: str) -> None:
        self._settings.pop(queue, None)
        self._held.pop(queue, None)
        self._met.pop(queue, None)

    def held_back(self, queue: str) -> float:
        hold = self._held.get(queue)
        return 0.0 if hold is None else max(0.0, hold.until - time.monotonic())

    def waiting_on_limits(self, queues: list[str]) -> bool:
        """Is a queue held back by a limit that lifts by itself (not a pause)?"""
        return any(self.held_back(q) > 0 and not self._held[q].paused for q in queues)

    def waits_for_endings(self) -> bool:
        """Is a queue held at its concurrency or key limit (so our pending completions
        are what would let it start more)?"""
        if self._unfreed:
            return True  # our tasks hold slots (keys) of a queue with a concurrency (key) limit
        now = time.monotonic()
        return any(
            h.until > now and h.limit in ("concurrency", "key_concurrency")
            for h in self._held.values()
        )

    def freed(self) -> None:
        """Our own attempts ended (committed): queues held at their concurrency or key
        limit may have room now, so look again at once instead of after the hold."""
        self._frees += 1
        self._unfreed.clear()
        for queue, hold in list(self._held.items()):
            if hold.limit in ("concurrency", "key_concurrency"):
                del self._held[queue]

    def refillable(self, queue: str) -> bool:
        """May our completions claim the queue's freed slots in the same statement? Its
        only limit is its concurrency (or its key concurrency), and tasks of ours hold
        slots (keys) of it."""
        return queue in self._unfreed

    def refilled(self, queue: str, taken: int) -> None:
        """Our completions were written, and took `taken` tasks of `queue` with them."""
        self.freed()
        if taken:
            # Slots (keys) taken as they were freed: the queue is as full as before, and
            # another claim now would only find that out (see _claim_counted).
            self._unfreed.add(queue)
            keyed = self.sole_key_limit(queue) is not None
            self._hold(queue, FULL_RECHECK, "key_concurrency" if keyed else "concurrency")

    def sole_key_limit(self, queue: str) -> int | None:
        """The queue's key concurrency where it is its only limit (as last read)."""
        cached = self._settings.get(queue)
        return None if cached is None or cached[1] is None else _sole_key_limit(cached[1])

    def held_by(self, queue: str) -> str | None:
        """The limit holding the queue back (one of `LIMITS`) as its last claim found, or
        None: the queue's last claim met no limit."""
        return self._met.get(queue)

    def _hold(self, queue: str, seconds: float, limit: str) -> None:
        self._held[queue] = _Hold(time.monotonic() + seconds, limit)
        self._met[queue] = limit
        self._holds += 1

    def _hold_full(self, queue: str, limit: str, began: int) -> None:
        """Hold a queue a claim found at its concurrency (or key) limit, unless our
        completions were written while that claim ran: what it counted as running may
        have ended since, and only another claim can tell (a hold would idle us)."""
        if self._frees == began:
            self._hold(queue, FULL_RECHECK, limit)

    async def claim(
        self, queue: str, limit: int, *, orphans: bool, skip: Sequence[str] = ()
    ) -> list[ClaimedTask]:
        """Claim within the queue's limits (leaving tasks named in `skip`): in one
        statement where its concurrency, or its key concurrency, is its only limit, else
        (or when that takes nothing while tasks are due) with its settings row locked."""
        holds = self._holds
        tasks = await self._claim(queue, limit, orphans=orphans, skip=skip)
        if self._holds == holds:
            self._met.pop(queue, None)
        return tasks

    async def _claim(
        self, queue: str, limit: int, *, orphans: bool, skip: Sequence[str]
    ) -> list[ClaimedTask]:
        cached, began = self._settings.get(queue), self._frees
        settings = None if cached is None else cached[1]
        if settings is not None and _counted(settings):
            tasks = await self._claim_counted(queue, limit, orphans, skip, began)
            if tasks:
                return tasks
            if queue in self._unfreed:
                # Full, most likely, with our own tasks running: their completions lift
                # this. (The locked claim below would tell why, at four round trips.)
                self._hold_full(queue, "concurrency", began)
                return []
            if not await self._any_due(queue, orphans, skip):
                return []  # nothing to take, full or not: one read instead of four trips
        elif settings is not None and (key_limit := _sole_key_limit(settings)) is not None:
            tasks = await self._claim_keyed(queue, limit, key_limit, orphans, skip, began)
            if tasks or not await self._any_due(queue, orphans, skip):
                return tasks
        return await self._claim_locked(queue, limit, orphans, skip, began)

    async def _any_due(self, queue: str, orphans: bool, skip: Sequence[str]) -> bool:
        left_out = {queue: skip} if skip else None
        return await self._link.read(
            lambda conn: self._store.tasks.any_due(conn, [queue], orphans=orphans, skip=left_out)
        )

    async def _in_one_statement(
        self,
        claim: Callable[..., Awaitable[list[ClaimedTask]]],
        queue: str,
        limit: int,
        orphans: bool,
        skip: Sequence[str],
    ) -> list[ClaimedTask]:
        """Run a one-statement claim (`claim_counted`, `claim_keyed`) on our link."""
        async with self._link.statement() as conn:
            return await claim(
                conn,
                worker_id=self._worker_id,
                queue=queue,
                limit=limit,
                lease_seconds=self._lease_seconds,
                orphans=orphans,
                skip=skip,
            )

    async def _claim_counted(
        self, queue: str, limit: int, orphans: bool, skip: Sequence[str], began: int
    ) -> list[ClaimedTask]:
        claim = self._store.tasks.claim_counted
        tasks = await self._in_one_statement(claim, queue, limit, orphans, skip)
        if tasks:
            self._unfreed.add(queue)
        if 0 < len(tasks) < limit:
            # Fewer than asked: the queue is full, or nothing more is due. Either way
            # another claim now would take nothing; our own completions lift this.
            self._hold_full(queue, "concurrency", began)
        return tasks

    async def _claim_keyed(
        self,
        queue: str,
        limit: int,
        key_limit: int,
        orphans: bool,
        skip: Sequence[str],
        began: int,
    ) -> list[ClaimedTask]:
        claim = functools.partial(self._store.tasks.claim_keyed, key_limit=key_limit)
        tasks = await self._in_one_statement(claim, queue, limit, orphans, skip)
        if tasks:
            self._unfreed.add(queue)  # our completions free keys: they may claim too
        # Fewer taken than asked: held back only if due tasks were passed over (their
        # keys busy), not when there is simply nothing more due.
        if tasks and len(tasks) < limit and await self._any_due(queue, orphans, skip):
            self._hold_full(queue, "key_concurrency", began)
        return tasks

    async def _claim_locked(
        self, queue: str, limit: int, orphans: bool, skip: Sequence[str], began: int
    ) -> list[ClaimedTask]:
        store = self._store
        async with self._link.transaction() as conn:
            settings = await store.flow.get(conn, queue, lock=True) or QueueSettings(queue)
            self._settings[queue] = (time.monotonic(), settings)
            allowed, slots, room = await self._allowance(conn, settings, limit, began)
            if allowed <= 0:
                return []
            tasks = await store.tasks.claim_limited(
                conn,
                worker_id=self._worker_id,
                queue=queue,
                limit=allowed,
                lease_seconds=self._lease_seconds,
                key_limit=settings.key_concurrency,
                orphans=orphans,
                skip=skip,
            )
            if tasks and slots:
                await store.flow.use_slots(conn, queue, slots.first(len(tasks)))
            # Fewer taken from a keyed queue than allowed: held back only if due tasks were
            # passed over (their keys busy), not when there is simply nothing more due.
            # (One read here spares the next claim, which would take nothing.)
            keys_busy = (
                len(tasks) < allowed
                and settings.key_concurrency is not None
                and await store.tasks.any_due(conn, [queue], orphans=orphans, skip={queue: skip})
            )
        if room is not None and len(tasks) >= room:
            # The claim filled the queue's concurrency: another claim would only find that
            # out again. Our own completions lift this at once (see `freed`).
            self._hold_full(queue, "concurrency", began)
        elif keys_busy:
            self._hold_full(queue, "key_concurrency", began)
        return tasks

    async def _allowance(
        self, conn: object, settings: QueueSettings, limit: int, began: int
    ) -> tuple[int, FreeSlots, int | None]:
        """How many the claim may take, the rate slots it may use, and the room left
        under the queue's concurrency (None: no such limit); holds the queue back (for
        as long as that is pointless) when the answer is none."""
        store, queue = self._store, settings.name
        if settings.paused:
            self._hold(queue, PAUSED_RECHECK, "paused")
            return 0, NO_SLOTS, None
        allowed, room = limit, None
        if settings.concurrency is not None:
            room = settings.concurrency - await store.flow.running(conn, queue)
            allowed = min(allowed, room)
            if allowed <= 0:
                self._hold_full(queue, "concurrency", began)
                return 0, NO_SLOTS, room
        rate, period = settings.rate_limit, settings.rate_period
        if rate is None or period is None:
            return allowed, NO_SLOTS, room
        slots = await store.flow.free_slots(conn, queue, period, rate, allowed)
        if not slots:
            next_at = await store.flow.next_slot_at(conn, queue, period)
            now = await store.tasks.clock(conn)
            wait = 0.001 if next_at is None else (next_at - now).total_seconds()
            hold = min(max(wait, 0.001), period)
            if not store.backend.notifies:  # no word of a lifted or raised rate will come
                hold = min(hold, PAUSED_RECHECK)
            self._hold(queue, hold, "rate")
        return len(slots), slots, room


def _counted(settings: QueueSettings) -> bool:
    """Can a claim of the queue count its running tasks in the claim statement itself?"""
    return (
        settings.concurrency is not None
        and not settings.paused
        and settings.rate_limit is None
        and settings.key_concurrency is None
    )


def _sole_key_limit(settings: QueueSettings) -> int | None:
    """The queue's key concurrency where it is its only limit (so a claim can apply it
    in one statement, `claim_keyed`), else None."""
    alone = not settings.paused and settings.concurrency is None and settings.rate_limit is None
    return settings.key_concurrency if alone else None
