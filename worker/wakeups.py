"""Wake-ups relayed from a supervisor: one LISTEN connection per host, not per process.

Every worker process that LISTENs holds a server connection that does nothing else. Under
`taskstore-worker --processes N` the supervisor holds the only one (`WakeRelay`) and
writes each notification's payload, one line each, into a pipe per worker; a worker reads
its pipe (`read_relayed`) instead of listening itself. So N workers cost the database
2N + 1 connections instead of 3N.

A wake-up is a hint (workers also poll), so a full pipe drops one rather than ever block
the supervisor. A worker whose supervisor is gone (its pipe at end of file) listens on its
own connection from then on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import anyio

from taskstore.errors import TaskStoreError
from taskstore.logs import get_logger

log = get_logger("taskstore.supervisor")


class WakeRelay:
    """The supervisor's LISTEN connection, relayed into one pipe per worker process."""

    def __init__(self, url: str | None) -> None:
        self._url = url
        self._pipes: dict[int, int] = {}  # worker slot -> the write end of its pipe
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Start listening in a thread of its own; False where the database has no
        notifications (SQLite, PgBouncer without a LISTEN URL): workers poll then."""
        from taskstore.backends import backend_for
        from taskstore.settings import Settings
        from taskstore.store import TaskStore

        try:
            settings = Settings.from_env(self._url)
            # Asked of the backend without building a store: the workers' start waits.
            if not backend_for(settings.backend).notifies:
                return False
            store = TaskStore(settings)
        except TaskStoreError:
            return False  # the workers say what is wrong with the settings
        if not store.backend.notifies:
            return False
        thread = threading.Thread(
            target=anyio.run, args=(self._listen, store), name="wake-relay", daemon=True
        )
        thread.start()
        return True

    async def _listen(self, store: object) -> None:
        await store.backend.listen(store.engine, self._relay)  # type: ignore[attr-defined]

    def pipe_for(self, slot: int) -> int:
        """A new pipe for the worker in `slot` (replacing a dead one's); returns the read
        end, for the worker to inherit. The caller closes its copy after the start."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        with self._lock:
            old = self._pipes.pop(slot, None)
            self._pipes[slot] = write_end
        if old is not None:
            os.close(old)
        return read_end

    def _relay(self, payload: str) -> None:
        line = payload.encode() + b"\n"
        with self._lock:
            for write_end in self._pipes.values():
                # Full: that worker has wake-ups it has not read, so it wakes anyway.
                # Broken: it died; its slot gets a new pipe when it restarts.
                with contextlib.suppress(BlockingIOError, BrokenPipeError):
                    os.write(write_end, line)


async def read_relayed(fd: int, wake: Callable[[str], None]) -> None:
    """Call `wake(payload)` for each line the supervisor relays; returns when the
    supervisor is gone (end of file)."""
    os.set_blocking(fd, False)
    wake("*")  # anything enqueued before this worker started
    pending = b""
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                wake(line.decode())
    finally:
        os.close(fd)
