"""Slots: how many handlers of one worker run at once.

A counting semaphore, first come first served, whose uncontended take is a plain call:
`asyncio.Semaphore.acquire` is a coroutine even when it need not wait, and a worker takes
a slot for every task it runs. Tasks claimed ahead of free slots wait in `take`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib


class Slots:
    """`count` slots; `take_now` or `take` one, `give` it back."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_now(self) -> bool:
        """Take a slot if one is free and no task waits for one (they go first)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot, behind the tasks that waited first."""
        if self.take_now():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as we were cancelled: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # give() may have passed it over
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: to the first task waiting, else to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
