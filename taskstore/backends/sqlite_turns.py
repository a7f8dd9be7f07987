"""Writers of one SQLite file take turns across processes instead of sleeping.

SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps in
steps of 1 to 100 ms and looks again, so a second worker process mostly sleeps while the
lock is free. Here every write transaction of ours first takes an exclusive ``flock`` on
a file beside the database (``<db>-writer``): the kernel wakes the next waiter the moment
the holder lets go. In this process the asyncio lock goes first (one writer at a time
here), then the file lock: without waiting when it is free (the common case, no thread
hand-off), else in a thread. The kernel drops the lock of a process that dies; SQLite's
own locking stays underneath, for writers that do not take part.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator


class WriterTurns:
    """``async with turns():`` around each write transaction."""

    def __init__(self, database_path: str | None) -> None:
        self._local = asyncio.Lock()
        self._path = None if database_path is None else database_path + "-writer"
        self._fd: int | None = None

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        async with self._local:
            fd = self._file()
            if fd is None:
                yield
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process writes: wait for our turn
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self._fd is None and self._path is not None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self._path = None  # a read-only folder: SQLite's busy handler alone
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
