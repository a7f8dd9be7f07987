"""An event loop on a daemon thread that blocking code calls into, and that never keeps the
process alive.

A blocking caller that forgets to close it must still be able to exit: the loop's thread is
a daemon, and whatever is still open is closed by an exit hook that runs while that thread
is alive (a hook run later, during interpreter teardown, would wait on a thread that no
longer runs, which is how a plain blocking portal left open hangs a process at exit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

T = TypeVar("T")


class BackgroundLoop:
    """One asyncio loop on one daemon thread; `call` runs a coroutine function on it."""

    def __init__(self, name: str) -> None:
        ready: concurrent.futures.Future[tuple[BlockingPortal, Any]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self._thread.start()
        self._portal, self._asyncio_loop = ready.result()
        self._stopped = threading.Event()

    @staticmethod
    def _run(ready: concurrent.futures.Future[tuple[BlockingPortal, Any]]) -> None:
        async def serve() -> None:
            async with BlockingPortal() as portal:
                ready.set_result((portal, asyncio.get_running_loop()))
                await portal.sleep_until_stopped()

        try:
            anyio.run(serve)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop and wait for its result (from any other thread)."""
        return self._portal.call(fn, *args)

    def call_within(self, seconds: float, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Like `call`, but give up waiting after `seconds` (`TimeoutError`)."""
        return self._portal.start_task_soon(fn, *args).result(timeout=seconds)

    def abandon(self) -> None:
        """In a forked child, where the loop's thread never came: its epoll set and the
        sockets in it are the parent's too. The loop is marked closed here, so nothing
        collected in this process unregisters those sockets from under the parent."""
        self._stopped.set()
        self._asyncio_loop._closed = True  # no public way: the loop "runs" in another process

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop (cancelling what still runs on it) and wait for its thread."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        # The stop cancels the loop's tasks, itself included; an already stopped loop refuses.
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            self._portal.start_task_soon(self._portal.stop, True).result(timeout=timeout)
        self._thread.join(timeout)
