"""A supervised worker stops when its supervisor is gone.

The supervisor restarts workers and passes signals on; without it nobody would, and a
supervisor started again would run a second set beside the first. So a worker started by
one (``--supervisor-pid``) watches it and stops gracefully once it has ended, killed
with SIGKILL say, as a worker stops on SIGTERM. It watches that pid, not its parent: a worker
forked from the zygote has the zygote for parent, and outlives a zygote that dies while
the supervisor lives (the supervisor adopts it).

A stop sent to every process (systemd's default ``KillMode``, ``pkill``) reaches a
supervised worker twice: from its sender and again through the supervisor. To such a
worker a repeated SIGTERM or SIGINT is therefore the stop already under way; the
supervisor passes an operator's second stop on as `CUT_OFF`, which every worker takes
as "cut off running tasks now".
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable
from typing import Any

import anyio

POLL_SECONDS = 1.0
#: a graceful stop, for a worker and a supervisor alike: a deploy, a Ctrl-C, a closed terminal
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CUT_OFF = signal.SIGQUIT


class Watched:
    """One process, watched through a pidfd where Linux has them, else by its pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = None
        self._gone = False
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._gone = True
        except (AttributeError, OSError):
            pass  # not Linux (or too old): `kill(pid, 0)`, which a zombie passes

    def gone(self) -> bool:
        if self._gone or self._fd is None:
            return self._gone or not _alive(self.pid)
        # a pidfd turns readable when the process ends, reaped or not
        return bool(select.select([self._fd], [], [], 0)[0])

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def watch_supervisor(pid: int, stop: Callable[[], None], log: Any) -> None:
    """Call `stop` once the supervisor `pid` has ended."""
    supervisor = Watched(pid)
    try:
        # a poll, not an event: nothing wakes a process when another one ends
        while not supervisor.gone():  # noqa: ASYNC110
            await anyio.sleep(POLL_SECONDS)
    finally:
        supervisor.close()
    log.warning("the supervisor is gone: stopping", supervisor_pid=pid)
    stop()
