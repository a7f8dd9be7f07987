"""Which event loop a store's connections belong to.

asyncpg's connections belong to the event loop that opened them: used from another loop
they fail with the driver's "attached to a different loop" errors, and cannot even be
closed there. A script that calls ``asyncio.run`` twice, or a test suite with an event
loop per test, meets that with a store made once. Once the loop that opened the
connections is no longer running they are of no use to anyone, so the store forgets them
(without closing: that would need their loop) and opens new ones on the loop in hand. A
loop still running in another thread may still be using them: that is refused.
"""

from __future__ import annotations

import asyncio
import weakref

from taskstore.errors import WrongEventLoop


class LoopBinding:
    """The loop a store last ran on, for backends whose connections belong to one."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def moved(self) -> bool:
        """Has the store come to a new loop, so that its connections must be dropped?
        Raises `WrongEventLoop` while the loop it ran on still runs (another thread)."""
        if not self._enabled:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not under asyncio (nothing here is loop-bound then)
            return False
        known = self._loop
        bound = known() if known is not None else None
        if bound is loop:
            return False
        if bound is not None and bound.is_running():
            raise WrongEventLoop(
                "this TaskStore is in use by an event loop running in another thread; its"
                " connections belong to that loop: make one store per event loop (or use"
                " taskstore.sync.SyncTaskStore from plain threads)"
            )
        self._loop = weakref.ref(loop)
        return known is not None
